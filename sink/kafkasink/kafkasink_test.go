package kafkasink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/sink"
)

// Every parcel of every request acknowledged (SubmitAndWait, what
// ACK=persisted does) is in the topic exactly once, keyed by its id, with
// the file sink's JSON line as its value and the received time in a header
// and as its timestamp; one id's records share a partition.
func TestEveryAcknowledgedParcelReadBackOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, kfake.SeedTopics(6, testTopic))
	s := newSink(t, testConfig(c))
	waitHealthy(t, s)
	d := newDispatcher(t, s)

	const requests, perRequest = 40, 9
	received := time.Date(2026, 11, 29, 9, 12, 3, 123456789, time.UTC)
	var wg sync.WaitGroup
	for r := range requests {
		wg.Go(func() {
			ps := parcels(fmt.Sprint("r", r), perRequest)
			if r == 0 {
				ps[0].Data = "quote \" backslash \\ <html> \u2028 é"
				ps[1].ID = "id \"received\":\"x"
			}
			if err := d.SubmitAndWait(received, ingest.NewBatch(ps), 10*time.Second); err != nil {
				t.Errorf("SubmitAndWait(request %d) = %v; want nil", r, err)
			}
		})
	}
	wg.Wait()
	// The same id again: its second record follows the first in the
	// same partition.
	if err := d.SubmitAndWait(received.Add(time.Second), ingest.NewBatch(parcels("r1", 1)), 10*time.Second); err != nil {
		t.Fatal(err)
	}

	got := readBack(t, c.ListenAddrs(), testTopic)
	if len(got) != requests*perRequest {
		t.Errorf("distinct keys in the topic = %d; want %d", len(got), requests*perRequest)
	}
	for r := range requests {
		ps := parcels(fmt.Sprint("r", r), perRequest)
		if r == 0 {
			ps[0].Data = "quote \" backslash \\ <html> \u2028 é"
			ps[1].ID = "id \"received\":\"x"
		}
		for _, p := range ps {
			recs := got[p.ID]
			want := 1
			if p.ID == "r1-0" {
				want = 2
			}
			if len(recs) != want {
				t.Errorf("records of %q = %d; want %d", p.ID, len(recs), want)
				continue
			}
			rec := recs[0]
			wantValue := record{ID: p.ID, Time: p.Time, Data: p.Data, Received: "2026-11-29T09:12:03.123456789Z"}
			if rec.value != wantValue || rec.received != wantValue.Received {
				t.Errorf("record of %q = %+v, header %q; want %+v and the same received header", p.ID, rec.value, rec.received, wantValue)
			}
			if want == 2 && (recs[1].partition != rec.partition || recs[1].value.Received != "2026-11-29T09:12:04.123456789Z") {
				t.Errorf("second record of %q = %+v in partition %d; want the later one in partition %d", p.ID, recs[1].value, recs[1].partition, rec.partition)
			}
		}
	}
	if st, want := s.Stats(), (Stats{Produced: requests*perRequest + 1}); st != want {
		t.Errorf("Stats() = %+v; want %+v", st, want)
	}
	if st := d.Stats(); st.Completed != requests*perRequest+1 || st.Failed != 0 {
		t.Errorf("dispatcher Stats() = %+v; want every parcel completed", st)
	}
}

// The record a task becomes: the exact bytes the file sink writes, the id
// as key, the header a view of the value's received time.
func TestNewEntry(t *testing.T) {
	t.Parallel()
	s := &Sink{cfg: Config{Topic: "t"}, life: context.Background()}
	p := ingest.Parcel{ID: "7", Time: "2017-01-01T00:00:07Z", Data: `a"b`}
	received := time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))
	task := ingest.NewTask(&p, received, 1, func(error) {})
	var enc sink.RecordEncoder
	e := s.newEntry(task, &enc)
	if got, want := string(e.rec.Value), string(sink.AppendRecord(nil, task)); got != want {
		t.Errorf("value = %s; want %s", got, want)
	}
	if got := string(e.rec.Key); got != "7" {
		t.Errorf("key = %q; want 7", got)
	}
	if h := e.rec.Headers; len(h) != 1 || h[0].Key != "received" || string(h[0].Value) != "2026-01-02T02:04:05.000000006Z" {
		t.Errorf("headers = %q; want received=2026-01-02T02:04:05.000000006Z", h)
	}
	if !e.rec.Timestamp.Equal(received) || e.rec.Topic != "t" || entryOf(&e.rec) != e {
		t.Errorf("record = %+v; want the received timestamp, topic t, and its entry found from it", e.rec)
	}
	// Appending to the key cannot overwrite the value.
	if cap(e.rec.Key) != len(e.rec.Key) {
		t.Errorf("key capacity %d; want its length %d", cap(e.rec.Key), len(e.rec.Key))
	}
}

// While the topic is missing the sink is unhealthy, saying so; it becomes
// healthy by itself once the topic exists.
func TestTopicMissingThenCreated(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	s := newSink(t, testConfig(c))
	waitFor(t, 20*time.Second, "Healthy() an error naming the missing topic", func() bool {
		err := s.Healthy()
		return err != nil && strings.Contains(err.Error(), "topic parcels") && strings.Contains(err.Error(), "does not exist")
	})
	// Parcels taken meanwhile (the server refuses new ones while the sink
	// is unhealthy, but some may have been taken before the topic went)
	// wait for the topic rather than fail.
	d := newDispatcher(t, s)
	done := make(chan error, 1)
	go func() { done <- d.SubmitAndWait(time.Now(), ingest.NewBatch(parcels("early", 9)), 30*time.Second) }()
	waitFor(t, 5*time.Second, "9 parcels held", func() bool { return d.Stats().InFlight() == 9 })

	admin, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := kadm.NewClient(admin).CreateTopic(context.Background(), 3, 1, nil, testTopic); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "Healthy() nil once the topic exists", func() bool { return s.Healthy() == nil })
	if err := <-done; err != nil {
		t.Fatalf("SubmitAndWait() while the topic was missing = %v; want nil once it exists", err)
	}
	if got := readBack(t, c.ListenAddrs(), testTopic); len(got) != 9 {
		t.Errorf("records read back = %d; want 9", len(got))
	}
}

// With CreateTopic the sink creates a missing topic with the partitions
// asked for, and is healthy at once.
func TestCreateTopic(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	cfg := testConfig(c)
	cfg.CreateTopic, cfg.Partitions, cfg.Replication = true, 4, 3
	s := newSink(t, cfg)
	waitHealthy(t, s)
	admin, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	topics, err := kadm.NewClient(admin).ListTopics(context.Background(), testTopic)
	if err != nil || len(topics[testTopic].Partitions) != 4 {
		t.Errorf("topic %s = %+v (%v); want 4 partitions", testTopic, topics[testTopic], err)
	}
}

// The whole cluster unreachable: the sink says so, the parcels it took
// wait, and once the brokers are back they are stored and the sink is
// healthy again, with no restart.
func TestClusterUnreachableThenBack(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, kfake.SeedTopics(3, testTopic))
	cfg := testConfig(c)
	// Brokers that are down hang the check's requests: it fails when it
	// times out. A check of brokers that answer takes milliseconds.
	cfg.CheckTimeout = 200 * time.Millisecond
	s := newSink(t, cfg)
	d := newDispatcher(t, s)
	if err := d.SubmitAndWait(time.Now(), ingest.NewBatch(parcels("before", 9)), 10*time.Second); err != nil {
		t.Fatal(err)
	}

	c.setAllDown(true)
	waitFor(t, 10*time.Second, "Healthy() an error while no broker answers", func() bool { return s.Healthy() != nil })
	if err := s.Healthy(); !strings.Contains(err.Error(), "no Kafka broker") {
		t.Errorf("Healthy() = %v; want one saying no broker answers", err)
	}
	done := make(chan error, 1)
	go func() { done <- d.SubmitAndWait(time.Now(), ingest.NewBatch(parcels("during", 9)), 30*time.Second) }()
	waitFor(t, 5*time.Second, "9 parcels held", func() bool { return d.Stats().InFlight() == 9 })

	c.setAllDown(false)
	if err := <-done; err != nil {
		t.Fatalf("SubmitAndWait() during the outage = %v; want nil once the brokers are back", err)
	}
	waitFor(t, 10*time.Second, "Healthy() nil again", func() bool { return s.Healthy() == nil })
	got := readBack(t, c.ListenAddrs(), testTopic)
	for _, p := range append(parcels("before", 9), parcels("during", 9)...) {
		if n := len(got[p.ID]); n != 1 {
			t.Errorf("records of %s = %d; want 1", p.ID, n)
		}
	}
}

// A broker stopped in the middle of a load, with leaders moving to the
// others: every parcel acknowledged is in the topic exactly once, and no
// parcel at all is there twice.
func TestBrokerStoppedUnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, kfake.SeedTopics(6, testTopic))
	s := newSink(t, testConfig(c))
	d := newDispatcher(t, s)

	const clients, perRequest = 8, 9
	var (
		mu       sync.Mutex
		acked    []string // ids of parcels acknowledged
		requests atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for cl := range clients {
		wg.Go(func() {
			for r := 0; ; r++ {
				select {
				case <-stop:
					return
				default:
				}
				ps := parcels(fmt.Sprintf("c%d-r%d", cl, r), perRequest)
				err := d.SubmitAndWait(time.Now(), ingest.NewBatch(ps), 20*time.Second)
				requests.Add(1)
				if err != nil {
					continue // not acknowledged: may be stored or not, never twice
				}
				mu.Lock()
				for _, p := range ps {
					acked = append(acked, p.ID)
				}
				mu.Unlock()
			}
		})
	}
	waitFor(t, 30*time.Second, "50 requests before the stop", func() bool { return requests.Load() >= 50 })
	leader := c.LeaderFor(testTopic, 0)
	c.stopBroker(t, int(leader))
	stoppedAt := requests.Load()
	waitFor(t, 30*time.Second, "50 requests after the stop", func() bool { return requests.Load() >= stoppedAt+50 })
	close(stop)
	wg.Wait()

	got := readBack(t, c.ListenAddrs(), testTopic)
	for id, recs := range got {
		if len(recs) != 1 {
			t.Errorf("records of %s = %d; want 1", id, len(recs))
		}
	}
	for _, id := range acked {
		if len(got[id]) == 0 {
			t.Errorf("acknowledged parcel %s is not in the topic", id)
		}
	}
	if len(acked) < 100*perRequest/2 {
		t.Errorf("%d parcels acknowledged of %d requests; want most", len(acked), requests.Load())
	}
	t.Logf("%d requests, %d parcels acknowledged, broker %d stopped after %d requests; sink %+v",
		requests.Load(), len(acked), leader, stoppedAt, s.Stats())
}

// Close within its context: what it cannot deliver (no broker answers)
// fails with ErrNotAcknowledged once the context ends, counted as
// abandoned, and Close says how many.
func TestCloseGivesUpAtItsDeadline(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, kfake.SeedTopics(3, testTopic))
	s := newSink(t, testConfig(c))
	c.setAllDown(true)
	const n = 5
	errs := make(chan error, n)
	for _, p := range parcels("held", n) {
		if err := s.Store(context.Background(), ingest.NewTask(&p, time.Now(), 1, func(err error) { errs <- err })); err != nil {
			t.Fatalf("Store() = %v; want nil", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := s.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "5 parcels not acknowledged") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close() = %v; want 5 parcels not acknowledged: deadline exceeded", err)
	}
	for range n {
		if err := <-errs; !errors.Is(err, ErrNotAcknowledged) {
			t.Errorf("task finished with %v; want ErrNotAcknowledged", err)
		}
	}
	if st := s.Stats(); st != (Stats{Abandoned: n}) {
		t.Errorf("Stats() = %+v; want %d abandoned", st, n)
	}
	if err := s.Store(context.Background(), ingest.NewTask(&ingest.Parcel{ID: "late"}, time.Now(), 1, func(error) {})); !errors.Is(err, ErrClosed) {
		t.Errorf("Store() after Close = %v; want ErrClosed", err)
	}
	run := []ingest.Task{ingest.NewTask(&ingest.Parcel{ID: "a"}, time.Now(), 1, func(error) {}),
		ingest.NewTask(&ingest.Parcel{ID: "b"}, time.Now(), 2, func(error) {})}
	runErrs := make([]error, 2)
	if s.StoreRun(context.Background(), run, runErrs); !errors.Is(runErrs[0], ErrClosed) || !errors.Is(runErrs[1], ErrClosed) {
		t.Errorf("StoreRun() after Close set %v; want ErrClosed for each task", runErrs)
	}
	if err := s.Healthy(); !errors.Is(err, ErrClosed) {
		t.Errorf("Healthy() after Close = %v; want ErrClosed", err)
	}
	if err2 := s.Close(context.Background()); err2 == nil || err2.Error() != err.Error() {
		t.Errorf("second Close() = %v; want the first one's %v", err2, err)
	}
}

// Close flushes: records lingering in the producer are acknowledged before
// it returns.
func TestCloseFlushes(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, kfake.SeedTopics(3, testTopic))
	cfg := testConfig(c)
	cfg.Linger = time.Minute // nothing is sent before Close flushes
	s := newSink(t, cfg)
	var finished atomic.Int64
	for _, p := range parcels("f", 20) {
		if err := s.Store(context.Background(), ingest.NewTask(&p, time.Now(), 1, func(err error) {
			if err == nil {
				finished.Add(1)
			}
		})); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close() = %v; want nil", err)
	}
	if n := finished.Load(); n != 20 {
		t.Errorf("tasks acknowledged by Close = %d; want 20", n)
	}
}

// Acknowledgements lost after the broker wrote the records (it answers
// REQUEST_TIMED_OUT having appended them): the producer sends the batches
// again, the broker recognizes their sequence numbers, and each parcel is
// in the topic once.
func TestLostAcknowledgementsStoreOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, kfake.SeedTopics(3, testTopic))
	lost := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.RequestTimedOut, Count: 5})
	s := newSink(t, testConfig(c))
	d := newDispatcher(t, s)
	var wg sync.WaitGroup
	for r := range 10 {
		wg.Go(func() {
			if err := d.SubmitAndWait(time.Now(), ingest.NewBatch(parcels(fmt.Sprint("l", r), 9)), 10*time.Second); err != nil {
				t.Errorf("SubmitAndWait() = %v; want nil", err)
			}
		})
	}
	wg.Wait()
	if n := lost.Hits(); n != 5 {
		t.Errorf("acknowledgements lost = %d; want 5", n)
	}
	got := readBack(t, c.ListenAddrs(), testTopic)
	if len(got) != 90 {
		t.Errorf("distinct keys = %d; want 90", len(got))
	}
	for id, recs := range got {
		if len(recs) != 1 {
			t.Errorf("records of %s = %d; want 1", id, len(recs))
		}
	}
}

// An error no retry can fix (a record larger than the broker takes) fails
// the parcel, counted; the sink stays healthy and stores the next ones.
func TestUnfixableErrorFailsTheParcel(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, kfake.SeedTopics(1, testTopic), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2000"}))
	s := newSink(t, testConfig(c))
	d := newDispatcher(t, s)
	big := parcels("big", 1)
	// Random letters: the broker measures the compressed batch.
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 8000)
	for i := range data {
		data[i] = 'a' + byte(rng.IntN(26))
	}
	big[0].Data = string(data)
	err := d.SubmitAndWait(time.Now(), ingest.NewBatch(big), 10*time.Second)
	var ns *ingest.NotStoredError
	if !errors.As(err, &ns) || ns.Failed != 1 {
		t.Fatalf("SubmitAndWait(an 8 KB parcel) = %v; want 1 of 1 parcels not stored", err)
	}
	if err := d.SubmitAndWait(time.Now(), ingest.NewBatch(parcels("small", 9)), 10*time.Second); err != nil {
		t.Fatalf("SubmitAndWait(small parcels) = %v; want nil", err)
	}
	if st := s.Stats(); st != (Stats{Produced: 9, Failed: 1}) {
		t.Errorf("Stats() = %+v; want 9 produced, 1 failed", st)
	}
	waitHealthy(t, s)
}

// StoreRun takes a run longer than MaxRun whole, each task finished once
// its record is acknowledged.
func TestStoreRun(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, kfake.SeedTopics(3, testTopic))
	s := newSink(t, testConfig(c))
	const n = 2*maxRun + 5
	var wg sync.WaitGroup
	ps := parcels("run", n)
	run := make([]ingest.Task, n)
	for i := range run {
		wg.Add(1)
		run[i] = ingest.NewTask(&ps[i], time.Now(), uint64(i+1), func(err error) {
			if err != nil {
				t.Errorf("task finished with %v; want nil", err)
			}
			wg.Done()
		})
	}
	errs := make([]error, n)
	s.StoreRun(context.Background(), run, errs)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("StoreRun() set errs[%d] = %v; want every task taken", i, err)
		}
	}
	wg.Wait()
	if got := readBack(t, c.ListenAddrs(), testTopic); len(got) != n {
		t.Errorf("records read back = %d; want %d", len(got), n)
	}
}
