//go:build unix && e2e

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The binary with SINK=kafka and ACK=persisted, against an in-process
// 3-broker kfake cluster: before the cluster exists, and while its topic is
// missing, /readyz and POST / answer 503 and nothing is accepted; once the
// topic exists it becomes ready by itself; every parcel of 8 clients'
// requests is acknowledged, and read back exactly once, by id, with
// franz-go's consumer and with kcat where it is installed; the shutdown
// summary accounts for every parcel.
func TestKafkaSinkEndToEnd(t *testing.T) {
	const topic = "e2e.parcels"
	ports := freeTCPPorts(t, 3)
	var brokers []string
	for _, p := range ports {
		brokers = append(brokers, "127.0.0.1:"+strconv.Itoa(p))
	}
	p := startProcess(t, map[string]string{
		"ADDR": "127.0.0.1:0", "SINK": "kafka", "ACK": "persisted", "KAFKA_BROKERS": strings.Join(brokers, ","),
		"KAFKA_TOPIC": topic, "KAFKA_LINGER": "1ms",
	})
	client := newClient(t)
	var addr string
	select {
	case addr = <-p.listening:
	case <-time.After(startTimeout):
		t.Fatal("fastingest did not start without Kafka")
	}
	refused := func(what, wantInBody string) {
		t.Helper()
		if code := getStatus(t, client, addr, "/readyz"); code != http.StatusServiceUnavailable {
			t.Errorf("GET /readyz %s = %d, want 503", what, code)
		}
		if code, body := post(t, client, addr, kafkaPayload("refused", 0)); code != http.StatusServiceUnavailable ||
			!strings.Contains(body, wantInBody) {
			t.Errorf("POST / %s = %d %s, want 503 with %q", what, code, body, wantInBody)
		}
	}
	refused("without Kafka", "no Kafka broker")

	c, err := kfake.NewCluster(kfake.Ports(ports...))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := post(t, client, addr, kafkaPayload("refused", 0))
		if strings.Contains(body, "does not exist") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST / = %s 20s after the cluster started; want 503 naming the missing topic", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	refused("while the topic is missing", "KAFKA_CREATE_TOPIC=1")

	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(admin).CreateTopic(ctx, 6, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	for getStatus(t, client, addr, "/readyz") != http.StatusOK {
		if time.Now().After(deadline.Add(10 * time.Second)) {
			t.Fatal("/readyz not 200 once the topic exists")
		}
		time.Sleep(20 * time.Millisecond)
	}

	const clients, requests = 8, 25
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Go(func() {
			client := newClient(t)
			for r := range requests {
				body := kafkaPayload("c"+strconv.Itoa(cl), r)
				if code, resp := post(t, client, addr, body); code != http.StatusAccepted || resp != `{"accepted":9}` {
					t.Errorf("POST / = %d %s; want 202 {\"accepted\":9}", code, resp)
				}
			}
		})
	}
	wg.Wait()
	const parcels = clients * requests * 9
	metrics := getOK(t, client, addr, "/metrics")
	wantContains(t, "/metrics", metrics, "fastingest_kafka_records_produced_total "+strconv.Itoa(parcels)+"\n",
		"fastingest_kafka_ready 1\n", "fastingest_kafka_produce_latency_seconds_count "+strconv.Itoa(parcels)+"\n")

	code, log := p.stop()
	want := fmt.Sprintf("accepted=%d completed=%d failed=0 not_completed=0", parcels, parcels)
	if last := lastLine(t, log); code != 0 || !strings.Contains(last, want) ||
		!strings.Contains(last, "kafka_produced="+strconv.Itoa(parcels)+" kafka_failed=0 kafka_abandoned=0") {
		t.Fatalf("exit %d, summary %q; want 0 and %s, every parcel produced", code, last, want)
	}

	wantIDs := map[string]bool{}
	for cl := range clients {
		for r := range requests {
			for i := range 9 {
				wantIDs[kafkaID("c"+strconv.Itoa(cl), r, i)] = true
			}
		}
	}
	checkOnce := func(reader string, ids []string) {
		t.Helper()
		seen := map[string]int{}
		for _, id := range ids {
			seen[id]++
		}
		for id, n := range seen {
			if n != 1 || !wantIDs[id] {
				t.Errorf("%s: id %q read %d times; want each posted id once", reader, id, n)
			}
		}
		if len(seen) != len(wantIDs) {
			t.Errorf("%s: %d distinct ids, want %d", reader, len(seen), len(wantIDs))
		}
	}
	checkOnce("franz-go consumer", consumeIDs(t, brokers, topic, parcels))
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Log("kcat is not installed (apt-get install kcat): read back with franz-go only")
		return
	}
	out, err := exec.CommandContext(ctx, kcat, "-C", "-b", strings.Join(brokers, ","), "-t", topic,
		"-o", "beginning", "-e", "-q", "-f", "%k %s\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	var ids []string
	for line := range strings.Lines(string(out)) {
		key, value, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		var rec struct{ ID, Data string }
		if err := json.Unmarshal([]byte(value), &rec); err != nil || rec.ID != key || rec.Data != "abc" {
			t.Errorf("kcat record %q: key and value do not match (%v)", line, err)
		}
		ids = append(ids, key)
	}
	checkOnce("kcat", ids)
}

// kafkaID is the id of parcel i of request r of a client.
func kafkaID(client string, r, i int) string {
	return client + "-" + strconv.Itoa(r) + "-" + strconv.Itoa(i)
}

// kafkaPayload is a request of 9 parcels with ids unique to the client
// and request.
func kafkaPayload(client string, r int) string {
	var b strings.Builder
	b.WriteString(`{"Data":[`)
	for i := range 9 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%q,"time":"2017-01-01T00:00:01Z","data":"abc"}`, kafkaID(client, r, i))
	}
	b.WriteString(`]}`)
	return b.String()
}

// consumeIDs reads the topic from its start with franz-go's consumer until
// it has n records, then until the partitions' end offsets add up to what
// it read, and returns the records' keys.
func consumeIDs(t *testing.T, brokers []string, topic string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("ListEndOffsets: %v %v", err, ends.Error())
	}
	var total int
	ends.Each(func(o kadm.ListedOffset) { total += int(o.Offset) })
	if total != n {
		t.Errorf("records in the topic = %d; want %d", total, n)
	}
	var ids []string
	for len(ids) < total {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", len(ids), total, ctx.Err())
		}
		fetches.EachRecord(func(r *kgo.Record) { ids = append(ids, string(r.Key)) })
	}
	return ids
}

// freeTCPPorts returns n ports on 127.0.0.1 that were free a moment ago,
// for a cluster started after its client.
func freeTCPPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// getOK returns the body of a GET, failing the test unless it is
// answered 200.
func getOK(t *testing.T, client *http.Client, addr, path string) string {
	t.Helper()
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d (%v)", path, resp.StatusCode, err)
	}
	return string(b)
}
