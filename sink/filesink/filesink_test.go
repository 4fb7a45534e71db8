package filesink

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/testutil"
)

// outcomes records how each task was finished.
type outcomes struct {
	mu     sync.Mutex
	ok     []string
	failed []string
}

func (o *outcomes) task(id string, seq uint64) ingest.Task {
	p := ingest.Parcel{ID: id, Time: "2017-01-01T00:00:01Z", Data: "data of " + id}
	return ingest.NewTask(&p, time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC), seq, func(err error) {
		o.mu.Lock()
		defer o.mu.Unlock()
		if err != nil {
			o.failed = append(o.failed, id)
		} else {
			o.ok = append(o.ok, id)
		}
	})
}

func (o *outcomes) counts() (ok, failed int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.ok), len(o.failed)
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.RetryBackoff == 0 {
		// Tests that make writes fail wait for the next retry once
		// they stop failing: 5 ms doubling, rather than 50.
		cfg.RetryBackoff = 5 * time.Millisecond
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	testutil.CloseAtEnd(t, s, 100*time.Millisecond)
	return s
}

func closeSink(t *testing.T, s *Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close() error = %v", err)
	}
}

func store(t *testing.T, s *Sink, o *outcomes, prefix string, n int) {
	t.Helper()
	for i := range n {
		if err := s.Store(context.Background(), o.task(fmt.Sprintf("%s%d", prefix, i), uint64(i+1))); err != nil {
			t.Fatalf("Store() error = %v", err)
		}
	}
}

// storeUntilHeld stores parcels named by format and a counter, up to 1000,
// until a Store has blocked for 50 ms while the sink reports itself
// unhealthy, as Store does once both groups are full while the sink cannot
// write; it returns how many it stored. A Store that blocks while the sink
// is still healthy (an fsync slowed by a loaded machine, or the failure not
// met yet) took nothing, and is tried again, for up to 10 s.
func storeUntilHeld(s *Sink, o *outcomes, format string) int {
	deadline := time.Now().Add(10 * time.Second)
	n := 0
	for n < 1000 && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := s.Store(ctx, o.task(fmt.Sprintf(format, n), 1))
		cancel()
		if err == nil {
			n++
		} else if s.Healthy() != nil {
			break
		}
	}
	return n
}

type line struct {
	ID, Time, Data, Received string
}

// readDir returns every line of every segment in dir, in segment order, and
// the segments' names.
func readDir(t *testing.T, dir string) ([]line, []string) {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []line
	var names []string
	for _, seg := range segs {
		names = append(names, seg.name)
		b, err := os.ReadFile(filepath.Join(dir, seg.name))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("segment %s does not end with a newline", seg.name)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var l line
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatalf("segment %s: line %q: %v", seg.name, sc.Text(), err)
			}
			lines = append(lines, l)
		}
	}
	return lines, names
}

func ids(lines []line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.ID
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		// Short: tests that write parcels one at a time wait here for
		// each, after the writer's 2 ms linger.
		time.Sleep(250 * time.Microsecond)
	}
}

func wantIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func TestStoresEveryParcelAsOneLine(t *testing.T) {
	t.Parallel()
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			dir := t.TempDir()
			s := newSink(t, Config{Dir: dir, Durable: durable})
			var o outcomes
			store(t, s, &o, "p", 100)
			closeSink(t, s)
			if ok, failed := o.counts(); ok != 100 || failed != 0 {
				t.Fatalf("finished ok=%d failed=%d, want 100 and 0", ok, failed)
			}
			lines, _ := readDir(t, dir)
			if got, want := ids(lines), wantIDs("p", 100); !slices.Equal(got, want) {
				t.Fatalf("ids in the files = %v, want %v", got, want)
			}
			l := lines[7]
			if l.Time != "2017-01-01T00:00:01Z" || l.Data != "data of p7" || l.Received != "2026-11-29T08:00:00Z" {
				t.Errorf("line = %+v, want the parcel as sent and its receive time", l)
			}
			if durable && s.Stats().Fsyncs == 0 {
				t.Error("durable sink finished tasks without an fsync")
			}
		})
	}
}

// A durable sink finishes a task only after the fsync that covers it, and
// concurrent stores share fsyncs (group commit).
func TestDurableGroupCommit(t *testing.T) {
	t.Parallel()
	s := newSink(t, Config{Durable: true})
	// An fsync as long as a real disk's may take: on a fast disk and a
	// busy CPU, a group could otherwise always be written before a
	// second writer gets to Store. Set before the first Store, which the
	// writer goroutine waits for.
	s.fdatasync = func(fd int) error {
		time.Sleep(time.Millisecond)
		return syscall.Fdatasync(fd)
	}
	const writers, each = 32, 50
	var finished, early atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				p := ingest.Parcel{ID: fmt.Sprintf("w%d-%d", w, i), Time: "2017-01-01T00:00:01Z"}
				fsyncsBefore := s.Stats().Fsyncs
				done := make(chan struct{})
				task := ingest.NewTask(&p, time.Now(), 1, func(err error) {
					if err != nil {
						t.Errorf("Finish(%v), want nil", err)
					}
					if s.Stats().Fsyncs == fsyncsBefore {
						early.Add(1)
					}
					finished.Add(1)
					close(done)
				})
				if err := s.Store(context.Background(), task); err != nil {
					t.Errorf("Store() error = %v", err)
					return
				}
				<-done // like an ACK=persisted request: wait before the next
			}
		})
	}
	wg.Wait()
	closeSink(t, s)
	if got := finished.Load(); got != writers*each {
		t.Fatalf("finished %d tasks, want %d", got, writers*each)
	}
	if n := early.Load(); n > 0 {
		t.Errorf("%d tasks finished before any fsync after their Store", n)
	}
	fsyncs := s.Stats().Fsyncs
	t.Logf("%d parcels, %d fsyncs", writers*each, fsyncs)
	if fsyncs >= writers*each {
		t.Errorf("%d fsyncs for %d parcels: concurrent stores should share fsyncs", fsyncs, writers*each)
	}
}

func TestRotatesBySize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSink(t, Config{Dir: dir, SegmentBytes: 1000, GroupBytes: 300})
	var o outcomes
	for i := range 60 {
		store(t, s, &o, fmt.Sprintf("r%02d-", i), 1)
	}
	waitFor(t, "the parcels to be written", func() bool { ok, _ := o.counts(); return ok == 60 })
	closeSink(t, s)
	lines, names := readDir(t, dir)
	if len(names) < 4 {
		t.Fatalf("%d segments after ~7 KB with SegmentBytes=1000, want several: %v", len(names), names)
	}
	if !slices.IsSorted(names) {
		t.Errorf("segment names do not sort: %v", names)
	}
	for _, n := range names {
		info, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > 1000+300 {
			t.Errorf("segment %s holds %d bytes, want about SegmentBytes=1000", n, info.Size())
		}
	}
	var want []string
	for i := range 60 {
		want = append(want, fmt.Sprintf("r%02d-0", i))
	}
	if got := ids(lines); !slices.Equal(got, want) {
		t.Errorf("ids across segments = %v, want %v", got, want)
	}
}

func TestRotatesByAge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSink(t, Config{Dir: dir, SegmentAge: 20 * time.Millisecond})
	var o outcomes
	store(t, s, &o, "a", 3)
	waitFor(t, "a second segment", func() bool {
		segs, _ := listSegments(dir)
		return len(segs) >= 2
	})
	store(t, s, &o, "b", 3)
	closeSink(t, s)
	lines, names := readDir(t, dir)
	if got, want := ids(lines), append(wantIDs("a", 3), wantIDs("b", 3)...); !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	if len(names) < 2 {
		t.Errorf("segments = %v, want at least 2", names)
	}
}

func TestRetentionDeletesOldestSegments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSink(t, Config{Dir: dir, SegmentBytes: 500, RetainBytes: 2000, GroupBytes: 200})
	var o outcomes
	for i := range 100 {
		store(t, s, &o, fmt.Sprintf("k%03d-", i), 1)
	}
	waitFor(t, "the parcels to be written", func() bool { ok, _ := o.counts(); return ok == 100 })
	closeSink(t, s)
	lines, names := readDir(t, dir)
	var total int64
	for _, n := range names {
		info, _ := os.Stat(filepath.Join(dir, n))
		total += info.Size()
	}
	if total > 2000+500+200 {
		t.Errorf("segments hold %d bytes, want at most about RetainBytes=2000", total)
	}
	if len(lines) == 0 || lines[len(lines)-1].ID != "k099-0" {
		t.Fatalf("the newest parcels must be kept; last lines = %v", ids(lines))
	}
	if lines[0].ID == "k000-0" {
		t.Errorf("the oldest segment was not deleted")
	}
	// What is kept is a contiguous run of the newest parcels.
	got := ids(lines)
	var want []string
	for i := 100 - len(got); i < 100; i++ {
		want = append(want, fmt.Sprintf("k%03d-0", i))
	}
	if !slices.Equal(got, want) {
		t.Errorf("kept ids = %v, want the newest %d in order", got, len(got))
	}
}

func TestRepairsTornTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	whole := `{"id":"1","time":"2017-01-01T00:00:01Z","data":"a","received":"2026-11-29T08:00:00Z"}` + "\n"
	older := "20261129T070000.000000000Z.ndjson"
	last := "20261129T080000.000000000Z.ndjson"
	if err := os.WriteFile(filepath.Join(dir, older), []byte(whole+"{\"id\":\"torn-but-not-last"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, last), []byte(whole+whole+`{"id":"2","time":"20`), 0o640); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s := newSink(t, Config{Dir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	var o outcomes
	store(t, s, &o, "new", 1)
	closeSink(t, s)

	b, err := os.ReadFile(filepath.Join(dir, last))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != whole+whole {
		t.Errorf("last segment after repair = %q, want its two whole lines", b)
	}
	if !strings.Contains(logs.String(), "torn") || !strings.Contains(logs.String(), "bytes_cut=20") {
		t.Errorf("log = %q, want a notice of the 20 bytes cut", logs.String())
	}
	segs, _ := listSegments(dir)
	if len(segs) != 3 || segs[2].name <= last {
		t.Errorf("segments = %v, want the new parcels in a new, later segment", segs)
	}
	// Every segment is checked, not only the last: a torn line followed by
	// a segment switch (a write that could not be cut back) leaves one in a
	// closed segment.
	if b, _ := os.ReadFile(filepath.Join(dir, older)); string(b) != whole {
		t.Errorf("older segment after repair = %q, want its whole line", b)
	}
	if st := s.Stats(); st.SegmentsRepaired != 2 || st.CutBytes != 20+24 || st.CutLines != 2 {
		t.Errorf("stats = %+v; want 2 segments repaired, 44 bytes and 2 lines cut", st)
	}
}

func TestRepairTailWithoutAnyNewline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := "20261129T080000.000000000Z.ndjson"
	if err := os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte("x"), 200<<10), 0o640); err != nil {
		t.Fatal(err)
	}
	cut, lines, err := repairSegment(filepath.Join(dir, name), fsyncDir)
	if err != nil || cut != 200<<10 || lines != 1 {
		t.Fatalf("repairSegment() = %d, %d, %v; want %d, 1, nil", cut, lines, err, 200<<10)
	}
}

// limitFileSize makes writes past n bytes of any file fail with EFBIG, as a
// full disk would, until the returned function lifts the limit. It changes
// the whole test process, so tests using it must not run in parallel.
func limitFileSize(t *testing.T, n uint64) (lift func()) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatalf("cannot limit the file size: %v", err)
	}
	var once sync.Once
	lift = func() {
		once.Do(func() {
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Errorf("cannot restore the file size limit: %v", err)
			}
		})
	}
	t.Cleanup(lift)
	return lift
}

// A full disk loses nothing: the sink turns unhealthy, holds and retries
// the parcels, blocks new stores once its groups are full, and writes
// everything exactly once when space returns.
func TestDiskFullRetriesUntilSpaceReturns(t *testing.T) {
	// Not parallel: limitFileSize changes the whole process.
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			dir := t.TempDir()
			s := newSink(t, Config{Dir: dir, Durable: durable, GroupBytes: 4096})
			var o outcomes
			store(t, s, &o, "before", 10)
			waitFor(t, "the first parcels to be written", func() bool { ok, _ := o.counts(); return ok == 10 })
			if err := s.Healthy(); err != nil {
				t.Fatalf("Healthy() = %v before the disk filled", err)
			}

			lift := limitFileSize(t, 2000) // the segment holds ~1 KB already
			n := storeUntilHeld(s, &o, "full%d")
			waitFor(t, "the sink to report unhealthy", func() bool { return s.Healthy() != nil })
			if !strings.Contains(s.Healthy().Error(), "file too large") {
				t.Errorf("Healthy() = %v, want the write error", s.Healthy())
			}
			if n >= 1000 {
				t.Fatalf("all 1000 stores returned while the disk was full: the groups must bound what the sink holds")
			}
			ok, failed := o.counts()
			if failed != 0 || ok > 10+n {
				t.Fatalf("while full: ok=%d failed=%d", ok, failed)
			}

			lift()
			waitFor(t, "every held parcel to be written", func() bool { ok, _ := o.counts(); return ok == 10+n })
			waitFor(t, "the sink to report healthy", func() bool { return s.Healthy() == nil })
			closeSink(t, s)
			lines, _ := readDir(t, dir)
			if got, want := ids(lines), append(wantIDs("before", 10), wantIDs("full", n)...); !slices.Equal(got, want) {
				t.Errorf("ids = %v\nwant %v", got, want)
			}
		})
	}
}

// When the disk stays full past Close's deadline, every held task is
// finished as failed: counted, never silently lost.
func TestCloseDeadlineFailsWhatCannotBeWritten(t *testing.T) {
	// Not parallel: limitFileSize changes the whole process.
	dir := t.TempDir()
	s := newSink(t, Config{Dir: dir, GroupBytes: 4096})
	limitFileSize(t, 100)
	var o outcomes
	store(t, s, &o, "x", 20)
	waitFor(t, "the sink to report unhealthy", func() bool { return s.Healthy() != nil })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s.Close(ctx)
	if err == nil {
		t.Error("Close() = nil with writes failing, want the write error")
	}
	if ok, failed := o.counts(); ok != 0 || failed != 20 {
		t.Errorf("ok=%d failed=%d, want 0 and 20", ok, failed)
	}
	if err := s.Store(context.Background(), o.task("late", 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Store after Close = %v, want ErrClosed", err)
	}
}

// The whole path: dispatcher, workers, sink; the counters add up.
func TestWithDispatcher(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSink(t, Config{Dir: dir, Durable: true})
	d, err := ingest.New(ingest.Config{MaxQueue: 64, MaxWorkers: 16, Sink: s})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Go(func() {
			for r := range 20 {
				parcels := make([]ingest.Parcel, 9)
				for i := range parcels {
					parcels[i] = ingest.Parcel{ID: fmt.Sprintf("c%d-r%d-%d", c, r, i), Time: "2017-01-01T00:00:01Z", Data: "abc"}
				}
				if err := d.SubmitAndWait(time.Now(), ingest.NewBatch(parcels), 10*time.Second); err != nil {
					t.Errorf("SubmitAndWait() = %v", err)
				}
			}
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown() = %v", err)
	}
	st := d.Stats()
	if st.Accepted != 8*20*9 || st.Completed != st.Accepted || st.Failed != 0 {
		t.Errorf("stats = %+v, want 1440 accepted, all completed", st)
	}
	lines, _ := readDir(t, dir)
	seen := map[string]int{}
	for _, l := range lines {
		seen[l.ID]++
	}
	if len(seen) != 1440 || len(lines) != 1440 {
		t.Errorf("%d lines, %d distinct ids, want 1440 each", len(lines), len(seen))
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{}); err == nil {
		t.Error("New without a directory succeeded")
	}
	if _, err := New(Config{Dir: t.TempDir(), SegmentAge: -time.Second}); err == nil {
		t.Error("New with a negative SegmentAge succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Dir: file}); err == nil {
		t.Error("New with a file as the directory succeeded")
	}
}

// Without ACK=persisted a written parcel is fsynced within FsyncInterval,
// even when nothing else is written after it; an interval of 0 fsyncs
// every write (as FSYNC_INTERVAL=0 does), and a negative one is refused.
func TestFsyncInterval(t *testing.T) {
	t.Parallel()
	s := newSink(t, Config{FsyncInterval: 30 * time.Millisecond})
	var o outcomes
	store(t, s, &o, "a", 3)
	waitFor(t, "the parcels to be written", func() bool { ok, _ := o.counts(); return ok == 3 })
	waitFor(t, "an fsync after FsyncInterval", func() bool { return s.Stats().Fsyncs >= 1 })
	if st := s.Stats(); st.Fsyncs > st.Writes {
		t.Errorf("stats = %+v: more fsyncs than writes", st)
	}

	if _, err := New(Config{Dir: t.TempDir(), FsyncInterval: -time.Second}); err == nil {
		t.Error("New with a negative FsyncInterval succeeded")
	}
	every := newSink(t, Config{FsyncInterval: 0})
	for i := range 5 {
		store(t, every, &o, fmt.Sprintf("e%d-", i), 1)
		waitFor(t, "the parcel to be written", func() bool { ok, _ := o.counts(); return ok == 3+i+1 })
	}
	if st := every.Stats(); st.Fsyncs != st.Writes || st.Writes == 0 {
		t.Errorf("FsyncInterval 0: stats = %+v, want one fsync per write", st)
	}
}

// A panic while encoding a parcel (here a task without one) fails that
// parcel alone, as an error: the sink stays usable, the file gets no torn
// line, and in a run the parcels around it are taken and written.
func TestPanicInStoreLeavesSinkUsable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSink(t, Config{Dir: dir})
	var o outcomes
	store(t, s, &o, "before", 2)
	if err := s.Store(context.Background(), ingest.Task{}); err == nil {
		t.Error("Store of a task without a parcel returned nil; want the encoder's panic as an error")
	}
	store(t, s, &o, "after", 2) // would deadlock if the mutex were still held
	closeSink(t, s)
	lines, _ := readDir(t, dir)
	if got, want := ids(lines), append(wantIDs("before", 2), wantIDs("after", 2)...); !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
}

// TestNewSegmentDirectorySynced: a new segment's name is made durable (the
// data directory fsynced) before anything is written to it, and a segment
// whose directory cannot be synced is not used: the sink turns unhealthy,
// holds the parcels, and writes each exactly once when the sync works again.
func TestNewSegmentDirectorySynced(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSink(t, Config{Dir: dir, Durable: true, SegmentBytes: 1000, GroupBytes: 300})
	var failing atomic.Bool
	var synced atomic.Int64
	// Set before the first Store, which the writer goroutine waits for.
	s.syncDir = func(d string) error {
		if failing.Load() {
			return errors.New("input/output error")
		}
		time.Sleep(5 * time.Millisecond) // as long as a real disk's fsync may take
		synced.Add(1)
		return fsyncDir(d)
	}
	var o outcomes
	// 21 parcels: the 20th fills a segment, which the writer rotates
	// after finishing that parcel; the 21st is written only once the
	// rotation, and its directory sync, are done.
	for i := range 21 {
		store(t, s, &o, fmt.Sprintf("a%02d-", i), 1)
		waitFor(t, "the parcel to be written", func() bool { ok, _ := o.counts(); return ok == i+1 })
	}
	_, names := readDir(t, dir)
	if got := synced.Load(); got != int64(len(names)-1) {
		t.Errorf("directory synced %d times for %d segments opened after New; want one each", got, len(names)-1)
	}

	failing.Store(true)
	// Store blocks once both groups are full: the sink holds a bounded
	// number of parcels while it cannot write.
	n := storeUntilHeld(s, &o, "b%03d-0")
	waitFor(t, "the sink to report unhealthy", func() bool { return s.Healthy() != nil })
	if err := s.Healthy(); !strings.Contains(err.Error(), "fsync of the data directory") {
		t.Errorf("Healthy() = %v; want the directory fsync error", err)
	}
	if n >= 1000 {
		t.Fatal("all 1000 stores returned while no segment could be opened: the groups must bound what the sink holds")
	}
	if ok, failed := o.counts(); ok > 21+n || failed != 0 {
		t.Fatalf("while the directory could not be synced: ok=%d failed=%d", ok, failed)
	}

	failing.Store(false)
	waitFor(t, "every held parcel to be written", func() bool { ok, _ := o.counts(); return ok == 21+n })
	waitFor(t, "the sink to report healthy", func() bool { return s.Healthy() == nil })
	closeSink(t, s)
	lines, _ := readDir(t, dir)
	var want []string
	for i := range 21 {
		want = append(want, fmt.Sprintf("a%02d-0", i))
	}
	for i := range n {
		want = append(want, fmt.Sprintf("b%03d-0", i))
	}
	if got := ids(lines); !slices.Equal(got, want) {
		t.Errorf("ids = %v\nwant %v", got, want)
	}
}

// TestRetentionAfterFailedRotation: when the next segment cannot be opened,
// the closed one's bytes are counted once by RETAIN_BYTES, not also as the
// current segment's, which deleted an old segment early.
func TestRetentionAfterFailedRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Lines of 102 bytes: a segment closes at 1020 bytes. Three closed
	// segments hold 3060 bytes, under RetainBytes; counted twice, the
	// last would make 4080, over it.
	s := newSink(t, Config{Dir: dir, SegmentBytes: 1000, GroupBytes: 300, RetainBytes: 3500})
	var failing atomic.Bool
	s.syncDir = func(d string) error {
		if failing.Load() {
			return errors.New("input/output error")
		}
		return fsyncDir(d)
	}
	var o outcomes
	for i := range 30 {
		if i == 29 {
			failing.Store(true) // the rotation after the 30th parcel fails
		}
		store(t, s, &o, fmt.Sprintf("r%02d-", i), 1)
		waitFor(t, "the parcel to be written", func() bool { ok, _ := o.counts(); return ok == i+1 })
	}
	// The writer rotates after finishing the 30th parcel; it takes the
	// next one only after that, finds no segment and turns unhealthy.
	store(t, s, &o, "after-", 1)
	waitFor(t, "the sink to report unhealthy", func() bool { return s.Healthy() != nil })
	if names := segmentNames(t, dir); len(names) != 3 {
		t.Errorf("segments after a failed rotation: %v; want all 3 (3060 bytes, under RETAIN_BYTES 3500)", names)
	}
	failing.Store(false)
	waitFor(t, "the held parcel to be written", func() bool { ok, _ := o.counts(); return ok == 31 })
	closeSink(t, s)
}

func segmentNames(t *testing.T, dir string) []string {
	t.Helper()
	_, names := readDir(t, dir)
	return names
}

// TestRotationFsyncRetried: without ACK=persisted, the fsync that closes a
// segment is retried like the periodic one, not only logged: the sink turns
// unhealthy, the segment stays open, and once the fsync works the rotation
// goes on and every parcel is stored once.
func TestRotationFsyncRetried(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSink(t, Config{Dir: dir, SegmentBytes: 1000, GroupBytes: 300, FsyncInterval: time.Hour})
	var failing atomic.Bool
	failing.Store(true)
	s.fdatasync = func(fd int) error { // set before the first Store
		if failing.Load() {
			return syscall.EIO
		}
		return syscall.Fdatasync(fd)
	}
	var o outcomes
	// Twelve lines of about 100 bytes fill the first segment; its
	// rotation needs the fsync that fails.
	store(t, s, &o, "r", 12)
	waitFor(t, "the sink to report unhealthy", func() bool { return s.Healthy() != nil })
	if err := s.Healthy(); !strings.Contains(err.Error(), "cannot fsync") {
		t.Errorf("Healthy() = %v; want the fsync error", err)
	}
	if names := segmentNames(t, dir); len(names) != 1 {
		t.Errorf("segments while the closing fsync fails: %v; want the first still open", names)
	}
	failing.Store(false)
	store(t, s, &o, "s", 5)
	waitFor(t, "every parcel written", func() bool { ok, _ := o.counts(); return ok == 17 })
	waitFor(t, "the sink to report healthy", func() bool { return s.Healthy() == nil })
	closeSink(t, s)
	lines, names := readDir(t, dir)
	if len(names) != 2 {
		t.Errorf("segments = %v; want 2 after the rotation", names)
	}
	if got, want := ids(lines), append(wantIDs("r", 12), wantIDs("s", 5)...); !slices.Equal(got, want) {
		t.Errorf("ids = %v\nwant %v", got, want)
	}
}

// TestStoreRun: a run is taken in order under one lock, each parcel
// written once; a parcel whose line cannot be encoded fails alone, its
// neighbours in the run taken and written; groups fill and flush across a
// run larger than one.
func TestStoreRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSink(t, Config{Dir: dir, GroupBytes: 300})
	var o outcomes
	run := make([]ingest.Task, 0, 20)
	var want []string
	for i := range 20 {
		id := fmt.Sprintf("run%d", i)
		if i == 7 {
			run = append(run, ingest.Task{}) // no parcel: its encoding panics
			continue
		}
		run = append(run, o.task(id, uint64(i+1)))
		want = append(want, id)
	}
	errs := make([]error, len(run))
	s.StoreRun(context.Background(), run, errs)
	for i, err := range errs {
		if (err != nil) != (i == 7) {
			t.Errorf("errs[%d] = %v; want an error for the task without a parcel only", i, err)
		}
	}
	closeSink(t, s)
	lines, _ := readDir(t, dir)
	if got := ids(lines); !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	if ok, failed := o.counts(); ok != 19 || failed != 0 {
		t.Errorf("finished %d ok and %d failed; want 19 ok, none failed (the 20th was never taken)", ok, failed)
	}
}
