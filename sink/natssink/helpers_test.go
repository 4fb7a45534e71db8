package natssink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/testutil"
	"github.com/fastingest/fastingest/sink"
)

// runServer starts a JetStream server on 127.0.0.1:port (-1: any free
// port) storing in storeDir, waits until it accepts connections, and shuts
// it down when the test ends.
func runServer(t testing.TB, port int, storeDir string) *server.Server {
	t.Helper()
	return startServer(t, &server.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  storeDir,
	})
}

func startServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	opts.NoLog = true
	opts.NoSigs = true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("server.NewServer() error = %v", err)
	}
	go srv.Start()
	t.Cleanup(func() { stopServer(srv) })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("NATS server %s not ready for connections within 10s", opts.ServerName)
	}
	return srv
}

// stopServer shuts srv down and waits until it is gone, so that its port
// and store directory are free. Safe to call twice.
func stopServer(srv *server.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}

func serverPort(srv *server.Server) int {
	return srv.Addr().(*net.TCPAddr).Port
}

// freePorts returns n TCP ports on 127.0.0.1 that were free a moment ago:
// for what must be known before a server starts (cluster routes, a server
// started after its client).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	lns := make([]net.Listener, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("net.Listen() error = %v", err)
		}
		lns[i] = ln // held until all are picked, so the n differ
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// testConfig is DefaultConfig pointed at url.
func testConfig(url string) Config {
	cfg := DefaultConfig()
	cfg.URL = url
	// Tests that restart a server wait for the reconnection.
	cfg.ReconnectWait = 25 * time.Millisecond
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
	return testutil.StartDispatcher(t, s, 256, 8)
}

func shutdownDispatcher(t testing.TB, d *ingest.Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("Dispatcher.Shutdown() error = %v", err)
	}
}

// received is the receive time of every parcel the tests submit, so that
// the records they expect are known in advance.
var received = time.Date(2026, 11, 29, 8, 0, 0, 123456789, time.UTC)

// parcels returns n parcels with ids prefix-0 ... and data that needs
// escaping, so that the test sees the record is encoded, not passed on.
func parcels(prefix string, n int) []ingest.Parcel {
	ps := make([]ingest.Parcel, n)
	for i := range ps {
		ps[i] = ingest.Parcel{
			ID:   prefix + "-" + strconv.Itoa(i),
			Time: "2017-01-01T00:00:01Z",
			Data: fmt.Sprintf(`payload %d "quoted" <tag> & é`, i),
		}
	}
	return ps
}

// submit queues ps in batches of size, and returns the record the stream
// must hold for each parcel id.
func submit(t testing.TB, d *ingest.Dispatcher, ps []ingest.Parcel, size int, want map[string]string) {
	t.Helper()
	for start := 0; start < len(ps); start += size {
		batch := append([]ingest.Parcel(nil), ps[start:min(start+size, len(ps))]...)
		for i := range batch {
			want[batch[i].ID] = string(sink.AppendRecord(nil, ingest.NewTask(&batch[i], received, 0, nil)))
		}
		if err := d.Submit(received, ingest.NewBatch(batch)); err != nil {
			t.Fatalf("Submit() error = %v", err)
		}
	}
}

// waitFor polls cond every few milliseconds until it holds, failing the
// test if it does not within timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// holdsFor checks that cond keeps holding for d: for asserting that
// something does not happen, which takes watching for a while.
func holdsFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf("%s stopped holding", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// storedMsg is a message read back from the stream.
type storedMsg struct {
	seq   uint64
	msgID string
	id    string // the record's parcel id
	data  string
}

// readStream returns every message of the stream, in order, reading from
// any of the servers in url.
func readStream(t testing.TB, url, stream string) []storedMsg {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("nats.Connect(%s) error = %v", url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New() error = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("Stream(%s) error = %v", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("Stream.Info() error = %v", err)
	}
	total := int(info.State.Msgs)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("OrderedConsumer() error = %v", err)
	}
	msgs := make([]storedMsg, 0, total)
	for len(msgs) < total {
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d messages of stream %s: %v", len(msgs), total, stream, ctx.Err())
		}
		batch, err := cons.Fetch(min(500, total-len(msgs)), jetstream.FetchMaxWait(5*time.Second))
		if settling(err) {
			continue
		}
		if err != nil {
			t.Fatalf("Fetch() error = %v", err)
		}
		for m := range batch.Messages() {
			meta, err := m.Metadata()
			if err != nil {
				t.Fatalf("Metadata() error = %v", err)
			}
			var rec struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(m.Data(), &rec); err != nil {
				t.Fatalf("message %d is not a JSON record: %v: %s", meta.Sequence.Stream, err, m.Data())
			}
			msgs = append(msgs, storedMsg{
				seq:   meta.Sequence.Stream,
				msgID: m.Headers().Get(jetstream.MsgIDHeader),
				id:    rec.ID,
				data:  string(m.Data()),
			})
		}
		if err := batch.Error(); err != nil && !settling(err) {
			t.Fatalf("Fetch() batch error = %v", err)
		}
	}
	return msgs
}

// settling reports whether err is a cluster still electing the stream's
// leader after a node stopped ("no responders"): the read goes on, after a
// moment, from where it was (the ordered consumer resumes), within the
// read's 30 s.
func settling(err error) bool {
	if !errors.Is(err, nats.ErrNoResponders) {
		return false
	}
	time.Sleep(100 * time.Millisecond)
	return true
}

// checkStream checks that the stream holds exactly the records of want,
// each once, under distinct Nats-Msg-Ids starting with prefix.
func checkStream(t testing.TB, msgs []storedMsg, want map[string]string, prefix string) {
	t.Helper()
	seen := make(map[string]uint64, len(msgs))
	msgIDs := make(map[string]string, len(msgs))
	for _, m := range msgs {
		if seq, dup := seen[m.id]; dup {
			t.Errorf("parcel %s stored twice: messages %d and %d", m.id, seq, m.seq)
			continue
		}
		seen[m.id] = m.seq
		if rec, ok := want[m.id]; !ok {
			t.Errorf("message %d holds parcel %s, which was never submitted", m.seq, m.id)
		} else if m.data != rec {
			t.Errorf("message %d = %s; want %s", m.seq, m.data, rec)
		}
		if !strings.HasPrefix(m.msgID, prefix+"-") {
			t.Errorf("message %d has Nats-Msg-Id %q; want prefix %q", m.seq, m.msgID, prefix+"-")
		}
		if other, dup := msgIDs[m.msgID]; dup {
			t.Errorf("parcels %s and %s share Nats-Msg-Id %q", other, m.id, m.msgID)
		}
		msgIDs[m.msgID] = m.id
	}
	for id := range want {
		if _, ok := seen[id]; !ok {
			t.Errorf("parcel %s missing from the stream", id)
		}
	}
	if len(msgs) != len(want) {
		t.Errorf("stream holds %d messages; want %d", len(msgs), len(want))
	}
}
