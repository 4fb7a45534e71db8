//go:build e2e

package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The binary with SINK=nats: without NATS it starts but is not ready and
// refuses parcels with 503; once NATS is up it becomes ready by itself,
// stores every parcel in the stream, and accounts for them at shutdown.
func TestNATSSinkEndToEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	url := "nats://127.0.0.1:" + strconv.Itoa(port)

	p := startProcess(t, map[string]string{
		"ADDR": "127.0.0.1:0", "SINK": "nats", "NATS_URL": url, "NATS_STREAM": "E2E", "ACK": "persisted",
	})
	client := newClient(t)
	var addr string
	select {
	case addr = <-p.listening:
	case <-time.After(startTimeout):
		t.Fatal("fastingest did not start without NATS")
	}
	if code := getStatus(t, client, addr, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz without NATS = %d, want 503", code)
	}
	if code, body := post(t, client, addr, referencePayload()); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "NATS") {
		t.Errorf("POST / without NATS = %d %s, want 503 naming NATS", code, body)
	}

	ns, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	deadline := time.Now().Add(20 * time.Second)
	for getStatus(t, client, addr, "/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/readyz not 200 within 20s of NATS starting")
		}
		time.Sleep(20 * time.Millisecond)
	}
	postReference(t, client, addr)
	// ACK=persisted: the 202 came once JetStream acknowledged all nine.
	if got := scrape(t, addr, "fastingest_nats_acknowledged_total"); got != 9 {
		t.Errorf("fastingest_nats_acknowledged_total = %d after the 202; want 9", got)
	}
	if got := scrape(t, addr, "fastingest_nats_ready"); got != 1 {
		t.Errorf("fastingest_nats_ready = %d once ready; want 1", got)
	}

	code, log := p.stop()
	last := log[len(log)-1]
	if code != 0 || !strings.Contains(last, "accepted=9 completed=9 failed=0") || !strings.Contains(last, "nats_acknowledged=9") {
		t.Fatalf("exit %d, summary %q; want 0 and 9 parcels acknowledged", code, last)
	}

	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "E2E")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for seq := uint64(1); seq <= 9; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		var rec struct{ ID, Time, Data string }
		if err := json.Unmarshal(msg.Data, &rec); err != nil || rec.Data != "abc" {
			t.Fatalf("message %d = %s (%v), want a parcel record", seq, msg.Data, err)
		}
		ids[rec.ID] = true
	}
	if len(ids) != 9 {
		t.Errorf("distinct ids in the stream = %v, want 1 to 9", ids)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 9 {
		t.Errorf("stream holds %v messages (%v), want 9", info.State.Msgs, err)
	}
}

func getStatus(t *testing.T, client *http.Client, addr, path string) int {
	t.Helper()
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
