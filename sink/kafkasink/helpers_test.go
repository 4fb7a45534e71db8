package kafkasink

import (
	"context"
	"encoding/json"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/testutil"
)

const testTopic = "parcels"

// cluster is an in-process kfake cluster whose brokers' listeners the test
// can take down: every connection closed and new ones closed as soon as
// they are accepted, as a broker that died or a network that broke looks
// to a client.
type cluster struct {
	*kfake.Cluster
	mu        sync.Mutex
	listeners []*switchListener // by node id: kfake opens them in order
}

// newCluster starts a cluster of n brokers with opts and closes it when
// the test ends.
func newCluster(t testing.TB, n int, opts ...kfake.Opt) *cluster {
	t.Helper()
	c := &cluster{}
	listen := func(network, addr string) (net.Listener, error) {
		ln, err := net.Listen(network, addr)
		if err != nil {
			return nil, err
		}
		sl := &switchListener{Listener: ln, conns: map[net.Conn]struct{}{}}
		c.mu.Lock()
		c.listeners = append(c.listeners, sl)
		c.mu.Unlock()
		return sl, nil
	}
	opts = append([]kfake.Opt{kfake.NumBrokers(n), kfake.ListenFn(listen)}, opts...)
	kc, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("kfake.NewCluster() error = %v", err)
	}
	c.Cluster = kc
	t.Cleanup(kc.Close)
	return c
}

// brokers returns the cluster's addresses as KAFKA_BROKERS lists them.
func (c *cluster) brokers() string {
	var s string
	for i, a := range c.ListenAddrs() {
		if i > 0 {
			s += ","
		}
		s += a
	}
	return s
}

// setDown takes broker node's listener down (closing its connections) or
// brings it back.
func (c *cluster) setDown(node int, down bool) {
	c.mu.Lock()
	l := c.listeners[node]
	c.mu.Unlock()
	l.setDown(down)
}

// setAllDown takes every broker down, or brings every one back.
func (c *cluster) setAllDown(down bool) {
	c.mu.Lock()
	ls := append([]*switchListener(nil), c.listeners...)
	c.mu.Unlock()
	for _, l := range ls {
		l.setDown(down)
	}
}

// stopBroker makes node a dead broker: its connections are cut, nothing
// can connect to it, and its partitions get new leaders, as a controller
// elects them when a broker leaves.
func (c *cluster) stopBroker(t testing.TB, node int) {
	t.Helper()
	c.setDown(node, true)
	if err := c.RemoveNode(int32(node)); err != nil {
		t.Fatalf("RemoveNode(%d) error = %v", node, err)
	}
}

type switchListener struct {
	net.Listener
	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func (l *switchListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if l.down {
			l.mu.Unlock()
			conn.Close()
			continue
		}
		l.conns[conn] = struct{}{}
		l.mu.Unlock()
		return conn, nil
	}
}

func (l *switchListener) setDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.down = down
	if down {
		for c := range l.conns {
			c.Close()
		}
		clear(l.conns)
	}
}

// testConfig is DefaultConfig pointed at c's brokers and testTopic, with a
// short check interval.
func testConfig(c *cluster) Config {
	cfg := DefaultConfig()
	cfg.Brokers = c.brokers()
	cfg.Topic = testTopic
	cfg.CheckInterval = 50 * time.Millisecond
	// A stopped broker's partitions are led elsewhere within this,
	// rather than the second a test would wait out.
	cfg.MetadataMinAge = 100 * time.Millisecond
	// Retries of lost acknowledgements after 20 ms rather than 250 ms
	// and more.
	cfg.RetryBackoff = 20 * time.Millisecond
	return cfg
}

// newSink builds a Sink and closes it when the test ends.
func newSink(t testing.TB, cfg Config) *Sink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	testutil.CloseAtEnd(t, s, 10*time.Second)
	return s
}

// newDispatcher builds and starts a Dispatcher storing in s, and shuts it
// down when the test ends if the test did not.
func newDispatcher(t testing.TB, s ingest.Sink) *ingest.Dispatcher {
	t.Helper()
	return testutil.StartDispatcher(t, s, 1024, 16)
}

// parcels returns n parcels with ids prefix-0 to prefix-(n-1).
func parcels(prefix string, n int) []ingest.Parcel {
	ps := make([]ingest.Parcel, n)
	for i := range ps {
		ps[i] = ingest.Parcel{ID: prefix + "-" + strconv.Itoa(i), Time: "2017-01-01T00:00:01Z", Data: "abc"}
	}
	return ps
}

// waitFor polls cond every 10 ms until it holds, failing the test after
// timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stored is a record read back from the topic.
type stored struct {
	key, received string
	value         record
	partition     int32
}

// record is the JSON value of a stored record.
type record struct {
	ID, Time, Data, Received string
}

// readBack consumes the whole topic, as it is when called, with a franz-go
// consumer of its own and returns its records by key: every record below
// each partition's end offset, duplicates included.
func readBack(t testing.TB, brokers []string, topic string, opts ...kgo.Opt) map[string][]stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		t.Fatalf("ListEndOffsets(%s) error = %v, %v", topic, err, ends.Error())
	}
	left := map[int32]int64{} // partition -> its end offset, while not read up to it
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})

	consumer, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	got := map[string][]stored{}
	for len(left) > 0 {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: partitions %v not read to their end: %v", topic, left, err)
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("fetching %s/%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset >= end {
				return // written after the call
			}
			if r.Offset == end-1 {
				delete(left, r.Partition)
			}
			st := stored{key: string(r.Key), partition: r.Partition}
			for _, h := range r.Headers {
				if h.Key == ReceivedHeader {
					st.received = string(h.Value)
				}
			}
			if err := json.Unmarshal(r.Value, &st.value); err != nil {
				t.Errorf("record %s at %d/%d: value %q is not a parcel record: %v", r.Key, r.Partition, r.Offset, r.Value, err)
			}
			got[st.key] = append(got[st.key], st)
		})
	}
	return got
}

// waitHealthy waits until s is healthy: its first check, made in New, may
// time out on a machine busy with parallel tests under the race detector.
func waitHealthy(t testing.TB, s *Sink) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.Healthy()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Healthy() = %v after 20s; want nil", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
