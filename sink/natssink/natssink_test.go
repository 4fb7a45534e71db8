package natssink

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fastingest/fastingest/ingest"
)

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // substring of the error; empty: valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"several urls", func(c *Config) { c.URL = "nats://a:4222, tls://b:4223,c:4224" }, ""},
		{"empty url", func(c *Config) { c.URL = " , " }, "URL is empty"},
		{"unparsable url, password not echoed", func(c *Config) { c.URL = "nats://u:secret@a:port" }, "invalid NATS URL"},
		{"bad scheme", func(c *Config) { c.URL = "http://a:4222" }, `scheme "http"`},
		{"bad port", func(c *Config) { c.URL = "nats://a:port" }, "invalid NATS URL"},
		{"no host", func(c *Config) { c.URL = "nats://:4222" }, "has no host"},
		{"password not echoed", func(c *Config) { c.URL = "nats://u:secret@:4222" }, "redacted@"},
		{"token not echoed", func(c *Config) { c.URL = "nats://secret@:4222" }, "redacted@"},
		{"empty subject", func(c *Config) { c.Subject = "" }, `Subject "": empty`},
		{"wildcard subject", func(c *Config) { c.Subject = "a.*" }, "not a literal subject: a wildcard"},
		{"wildcard in a token", func(c *Config) { c.Subject = "a.b>" }, "not a literal subject: a wildcard"},
		{"subject with empty token", func(c *Config) { c.Subject = "a..b" }, "not a literal subject: an empty token"},
		{"subject ending in a dot", func(c *Config) { c.Subject = "a." }, "an empty token"},
		{"subject with space", func(c *Config) { c.Subject = "a b" }, "not a literal subject: whitespace"},
		{"empty stream", func(c *Config) { c.Stream = "" }, `Stream "": empty`},
		{"dotted stream", func(c *Config) { c.Stream = "A.B" }, `may not contain '.'`},
		{"stream with a slash", func(c *Config) { c.Stream = "A/B" }, `may not contain '/'`},
		{"zero replicas", func(c *Config) { c.Replicas = 0 }, "Replicas 0: want an integer from 1 to 5"},
		{"six replicas", func(c *Config) { c.Replicas = 6 }, "Replicas 6: want an integer from 1 to 5"},
		{"zero max pending", func(c *Config) { c.MaxPending = 0 }, "MaxPending must be at least 1"},
		{"zero ack wait", func(c *Config) { c.AckWait = 0 }, "AckWait must be positive"},
		{"zero duplicates", func(c *Config) { c.Duplicates = 0 }, "Duplicates must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.modify(&cfg)
			_, err := cfg.validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("validate() error = %v; want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("validate() error = %v; want one containing %q", err, tt.want)
			case tt.want != "" && strings.Contains(err.Error(), "secret"):
				t.Fatalf("validate() error = %v shows the password", err)
			}
		})
	}
}

// Credentials never reach logs or Healthy's message: neither a user and
// password nor a bare token.
func TestRedactURLs(t *testing.T) {
	t.Parallel()
	got := RedactURLs("nats://u:secret@a:4222, secret@b:4222,tls://c:4223,nats://[bad")
	want := "nats://redacted@a:4222,nats://redacted@b:4222,tls://c:4223,(unparsable URL)"
	if got != want {
		t.Errorf("RedactURLs() = %q, want %q", got, want)
	}
}

// New fails on an invalid Config at once, without trying to connect.
func TestNewFailsOnInvalidConfig(t *testing.T) {
	t.Parallel()
	cfg := testConfig("nats://127.0.0.1:1")
	cfg.Replicas = 0
	start := time.Now()
	s, err := New(context.Background(), cfg)
	if err == nil {
		s.Close(context.Background())
		t.Fatal("New() with Replicas 0 error = nil; want an error")
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("New() took %v to refuse an invalid config", elapsed)
	}
}

// A stream that exists but captures other subjects is a configuration
// error that waiting does not fix.
func TestNewFailsOnStreamMismatch(t *testing.T) {
	t.Parallel()
	srv := runServer(t, -1, t.TempDir())
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: DefaultStream, Subjects: []string{"elsewhere.>"}}); err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, testConfig(srv.ClientURL()))
	if err == nil {
		s.Close(ctx)
		t.Fatal("New() error = nil; want the stream mismatch")
	}
	if !errors.Is(err, errStreamMismatch) {
		t.Fatalf("New() error = %v; want errStreamMismatch", err)
	}
}

func TestSubjectMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern, subject string
		want             bool
	}{
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.b", "a.b.c", false},
		{"a.b.c", "a.b", false},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{">", "a", true},
		{"*.b", "a.b", true},
		{"*", "a.b", false},
	}
	for _, tt := range tests {
		if got := subjectMatches(tt.pattern, tt.subject); got != tt.want {
			t.Errorf("subjectMatches(%q, %q) = %v; want %v", tt.pattern, tt.subject, got, tt.want)
		}
	}
}

func TestMsgID(t *testing.T) {
	t.Parallel()
	seen := make(map[string]uint64)
	for seq := uint64(1); seq <= 1000; seq++ {
		id := msgID("P", seq)
		if want := "P-" + strconv.FormatUint(seq, 10); id != want {
			t.Fatalf("msgID(P, %d) = %q; want %q", seq, id, want)
		}
		if other, dup := seen[id]; dup {
			t.Fatalf("msgID(P, %d) = msgID(P, %d) = %q", seq, other, id)
		}
		seen[id] = seq
	}
	if got, want := msgID("P", 7), msgID("P", 7); got != want {
		t.Errorf("msgID is not deterministic: %q, %q", got, want)
	}
	// Two sinks (process runs) number parcels from 1 alike: their
	// prefixes must tell them apart.
	a := newSink(t, testConfig(unreachableURL(t)))
	b := newSink(t, testConfig(unreachableURL(t)))
	if a.prefix == b.prefix || len(a.prefix) < 16 {
		t.Errorf("prefixes %q and %q: want distinct random prefixes", a.prefix, b.prefix)
	}
}

// unreachableURL returns a URL where no server listens (yet).
func unreachableURL(t testing.TB) string {
	return "nats://127.0.0.1:" + strconv.Itoa(freePorts(t, 1)[0])
}

// A publish retried after its acknowledgement was lost carries the same
// Nats-Msg-Id, so JetStream drops it and the parcel is stored once. The
// test publishes a parcel, and once it is stored feeds its entry to the
// sink's retry path as if the acknowledgement had timed out.
func TestRetryReusesMsgID(t *testing.T) {
	t.Parallel()
	srv := runServer(t, -1, t.TempDir())
	s := newSink(t, testConfig(srv.ClientURL()))

	p := ingest.Parcel{ID: "once", Time: "2017-01-01T00:00:01Z", Data: "x"}
	finished := make(chan error, 2)
	task := ingest.NewTask(&p, received, 42, func(err error) { finished <- err })

	// What Store does, up to the collector.
	s.slots <- struct{}{}
	s.held.Add(1)
	e := s.newEntry(task)
	if err := s.publish(e); err != nil {
		t.Fatalf("publish() error = %v", err)
	}
	select {
	case err := <-e.result:
		if err != nil {
			t.Fatalf("first publish failed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("first publish not acknowledged within 10s")
	}

	s.publishFailed(e, errAckTimeout)
	retriedAndFinished(t, finished)
	if st := s.Stats(); st.Published != 2 || st.Retried != 1 || st.Acknowledged != 1 {
		t.Errorf("Stats() = %+v; want 2 published, 1 retried, 1 acknowledged", st)
	}

	msgs := readStream(t, srv.ClientURL(), DefaultStream)
	if len(msgs) != 1 {
		t.Fatalf("stream holds %d messages; want 1", len(msgs))
	}
	if want := s.prefix + "-42"; msgs[0].msgID != want {
		t.Errorf("Nats-Msg-Id = %q; want %q", msgs[0].msgID, want)
	}
	select {
	case err := <-finished:
		t.Errorf("task finished twice, the second time with %v", err)
	default:
	}
}

// The whole path: a dispatcher storing batches in the sink, each parcel
// once in the stream with its record, every task completed.
func TestStoresEachParcelOnce(t *testing.T) {
	t.Parallel()
	srv := runServer(t, -1, t.TempDir())
	s := newSink(t, testConfig(srv.ClientURL()))
	if err := s.Healthy(); err != nil {
		t.Fatalf("Healthy() = %v; want nil", err)
	}
	d := newDispatcher(t, s)

	want := make(map[string]string)
	submit(t, d, parcels("p", 500), 25, want)
	shutdownDispatcher(t, d) // closes the sink

	st := d.Stats()
	if st.Completed != st.Accepted || st.Accepted != 500 || st.Failed != 0 {
		t.Errorf("Stats() = %+v; want 500 accepted, 500 completed, 0 failed", st)
	}
	if got := s.Stats(); got.Acknowledged != 500 || got.Abandoned != 0 {
		t.Errorf("sink Stats() = %+v; want 500 acknowledged, 0 abandoned", got)
	}
	checkStream(t, readStream(t, srv.ClientURL(), DefaultStream), want, s.prefix)
	if err := s.Healthy(); !errors.Is(err, ErrClosed) {
		t.Errorf("Healthy() after Close = %v; want ErrClosed", err)
	}
}

// Parcels stored while the server is down wait in the sink, and land once
// each when it comes back on the same port with the same store.
func TestRidesOutServerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := runServer(t, -1, dir)
	port := serverPort(srv)
	s := newSink(t, testConfig(srv.ClientURL()))
	d := newDispatcher(t, s)

	want := make(map[string]string)
	submit(t, d, parcels("before", 10), 5, want)
	waitFor(t, 10*time.Second, "the first parcels to be stored", func() bool { return d.Stats().Completed == 10 })

	stopServer(srv)
	waitFor(t, 10*time.Second, "Healthy to report the lost connection", func() bool { return s.Healthy() != nil })
	if err := s.Healthy(); !strings.Contains(err.Error(), "not connected") {
		t.Errorf("Healthy() = %v; want it to say the sink is not connected", err)
	}

	submit(t, d, parcels("during", 40), 8, want)
	waitFor(t, 10*time.Second, "the sink to take every parcel", func() bool {
		st := d.Stats()
		return st.Accepted == 50 && st.Queued == 0
	})
	holdsFor(t, 150*time.Millisecond, "no parcel completing or failing while NATS is down", func() bool {
		st := d.Stats()
		return st.Completed == 10 && st.Failed == 0
	})

	runServer(t, port, dir)
	waitFor(t, 20*time.Second, "the held parcels to be stored", func() bool { return d.Stats().Completed == 50 })
	waitFor(t, 10*time.Second, "Healthy to recover", func() bool { return s.Healthy() == nil })
	shutdownDispatcher(t, d)
	if st := d.Stats(); st.Failed != 0 {
		t.Errorf("Stats() = %+v; want no failures", st)
	}
	checkStream(t, readStream(t, srv.ClientURL(), DefaultStream), want, s.prefix)
}

// A sink started before its server starts, holds parcels, and creates the
// stream once the server is up.
func TestStartsBeforeServer(t *testing.T) {
	t.Parallel()
	port := freePorts(t, 1)[0]
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	s := newSink(t, testConfig(url))
	if err := s.Healthy(); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("Healthy() before any server = %v; want not connected", err)
	}
	d := newDispatcher(t, s)
	want := make(map[string]string)
	submit(t, d, parcels("early", 20), 10, want)
	waitFor(t, 10*time.Second, "the sink to take every parcel", func() bool { return d.Stats().Queued == 0 })
	holdsFor(t, 100*time.Millisecond, "no parcel completing or failing without a server", func() bool {
		st := d.Stats()
		return st.Completed == 0 && st.Failed == 0
	})

	runServer(t, port, t.TempDir())
	waitFor(t, 20*time.Second, "the held parcels to be stored", func() bool { return d.Stats().Completed == 20 })
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy() = %v; want nil", err)
	}
	shutdownDispatcher(t, d)
	checkStream(t, readStream(t, url, DefaultStream), want, s.prefix)
}

// A stream deleted under the sink is created again, and the parcels
// published meanwhile land in it.
func TestRecreatesDeletedStream(t *testing.T) {
	t.Parallel()
	srv := runServer(t, -1, t.TempDir())
	s := newSink(t, testConfig(srv.ClientURL()))
	d := newDispatcher(t, s)

	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, DefaultStream); err != nil {
		t.Fatal(err)
	}

	want := make(map[string]string)
	submit(t, d, parcels("after", 30), 10, want)
	waitFor(t, 20*time.Second, "the parcels to be stored", func() bool { return d.Stats().Completed == 30 })
	waitFor(t, 10*time.Second, "Healthy to recover", func() bool { return s.Healthy() == nil })
	shutdownDispatcher(t, d)
	checkStream(t, readStream(t, srv.ClientURL(), DefaultStream), want, s.prefix)
}

// When Close's context ends while NATS is down, every task the sink holds
// is finished with an error, and Close returns.
func TestCloseGivesUpWhileServerDown(t *testing.T) {
	t.Parallel()
	srv := runServer(t, -1, t.TempDir())
	s := newSink(t, testConfig(srv.ClientURL()))
	d := newDispatcher(t, s)
	stopServer(srv)
	waitFor(t, 10*time.Second, "Healthy to report the lost connection", func() bool { return s.Healthy() != nil })

	submit(t, d, parcels("lost", 30), 10, make(map[string]string))
	waitFor(t, 10*time.Second, "the sink to take every parcel", func() bool {
		st := d.Stats()
		return st.Accepted == 30 && st.Queued == 0
	})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := d.Shutdown(ctx)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Shutdown() took %v with a 100ms context", elapsed)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown() error = %v; want it to wrap context.DeadlineExceeded", err)
	}
	st := d.Stats()
	if st.Completed+st.Failed != st.Accepted || st.Failed != 30 {
		t.Errorf("Stats() = %+v; want all 30 parcels failed", st)
	}
	if got := s.Stats(); got.Abandoned != 30 || got.Acknowledged != 0 {
		t.Errorf("sink Stats() = %+v; want 30 abandoned, 0 acknowledged", got)
	}
	// A second Close returns the first one's result at once.
	if err2 := s.Close(context.Background()); err2 == nil || err2.Error() != s.closeErr.Error() {
		t.Errorf("second Close() = %v; want %v", err2, s.closeErr)
	}
}

// Store blocks while the sink holds MaxPending parcels, and gives up when
// its context ends, without taking the task. Close then finishes exactly
// the tasks taken, once each.
func TestStoreBlocksWhenFull(t *testing.T) {
	t.Parallel()
	cfg := testConfig(unreachableURL(t))
	cfg.MaxPending = 2
	s := newSink(t, cfg)

	var results [3]chan error
	tasks := make([]ingest.Task, 3)
	for i := range tasks {
		results[i] = make(chan error, 2) // room to notice a second Finish
		p := ingest.Parcel{ID: strconv.Itoa(i), Time: "2017-01-01T00:00:01Z"}
		tasks[i] = ingest.NewTask(&p, received, uint64(i+1), func(err error) { results[i] <- err })
	}
	for _, task := range tasks[:2] {
		if err := s.Store(context.Background(), task); err != nil {
			t.Fatalf("Store() error = %v; want nil", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Store(ctx, tasks[2]); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Store() into a full sink = %v; want context.DeadlineExceeded", err)
	}

	closeCtx, cancelClose := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelClose()
	if err := s.Close(closeCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close() = %v; want context.DeadlineExceeded", err)
	}
	for i, res := range results[:2] {
		select {
		case err := <-res:
			if !errors.Is(err, ErrNotAcknowledged) {
				t.Errorf("task %d finished with %v; want ErrNotAcknowledged", i, err)
			}
		default:
			t.Errorf("task %d not finished by Close", i)
		}
		if len(res) != 0 {
			t.Errorf("task %d finished twice", i)
		}
	}
	if len(results[2]) != 0 {
		t.Errorf("task refused by Store was finished")
	}
	if err := s.Store(context.Background(), tasks[2]); !errors.Is(err, ErrClosed) {
		t.Errorf("Store() after Close = %v; want ErrClosed", err)
	}
	if len(results[2]) != 0 {
		t.Errorf("task refused by a closed sink was finished")
	}
}

// A Store waiting for room gives up when Close begins.
func TestCloseReleasesBlockedStore(t *testing.T) {
	t.Parallel()
	cfg := testConfig(unreachableURL(t))
	cfg.MaxPending = 1
	s := newSink(t, cfg)
	finished := make(chan error, 2)
	p := ingest.Parcel{ID: "a", Time: "2017-01-01T00:00:01Z"}
	if err := s.Store(context.Background(), ingest.NewTask(&p, received, 1, func(err error) { finished <- err })); err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		q := ingest.Parcel{ID: "b", Time: "2017-01-01T00:00:01Z"}
		blocked <- s.Store(context.Background(), ingest.NewTask(&q, received, 2, func(error) {
			t.Error("task refused by Store was finished")
		}))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = s.Close(ctx)
	select {
	case err := <-blocked:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("blocked Store() = %v; want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Store() did not return after Close")
	}
	if err := <-finished; !errors.Is(err, ErrNotAcknowledged) {
		t.Errorf("held task finished with %v; want ErrNotAcknowledged", err)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		attempts int
		want     time.Duration
	}{
		{1, 50 * time.Millisecond},
		{2, 100 * time.Millisecond},
		{4, 400 * time.Millisecond},
		{5, 800 * time.Millisecond},
		{6, time.Second},
		{100, time.Second},
	}
	for _, tt := range tests {
		if got := backoff(tt.attempts); got != tt.want {
			t.Errorf("backoff(%d) = %v; want %v", tt.attempts, got, tt.want)
		}
	}
}

// A panic while building a message (here: a task without a parcel) leaves
// nothing taken, so Close does not wait for a parcel that never was.
func TestPanicInStoreTakesNothing(t *testing.T) {
	t.Parallel()
	srv := runServer(t, -1, t.TempDir())
	s := newSink(t, testConfig(srv.ClientURL()))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Store of a task without a parcel did not panic")
			}
		}()
		_ = s.Store(context.Background(), ingest.Task{})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close() = %v, want nil: nothing was taken", err)
	}
}

// retriedAndFinished waits for a task's finish after its retry, which must
// succeed.
func retriedAndFinished(t *testing.T, finished <-chan error) {
	t.Helper()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatalf("task finished with %v after the retry; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("task not finished within 10s of the retry")
	}
}
