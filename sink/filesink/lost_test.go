package filesink

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/testutil"
)

// persistedLoad stores parcels from writers goroutines, each waiting for
// its parcel to be finished before the next, as ACK=persisted requests do,
// until stop is closed. It records every id finished without an error, and
// the ids whose Store began after the epoch counter changed.
type persistedLoad struct {
	mu    sync.Mutex
	acked map[string]int // id -> the epoch its Store began in
	epoch atomic.Int64
	n     atomic.Int64 // parcels finished
	stop  chan struct{}
	wg    sync.WaitGroup
}

func startPersistedLoad(t *testing.T, s *Sink, writers int) *persistedLoad {
	t.Helper()
	l := &persistedLoad{acked: map[string]int{}, stop: make(chan struct{})}
	for w := range writers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				epoch := int(l.epoch.Load())
				id := fmt.Sprintf("w%d-%d", w, i)
				p := ingest.Parcel{ID: id, Time: "2017-01-01T00:00:01Z", Data: strings.Repeat("x", 40)}
				done := make(chan error, 1)
				if err := s.Store(context.Background(), ingest.NewTask(&p, time.Now(), 1, func(err error) { done <- err })); err != nil {
					t.Errorf("Store() = %v", err)
					return
				}
				if err := <-done; err != nil {
					t.Errorf("Finish(%v), want nil", err)
					return
				}
				l.mu.Lock()
				l.acked[id] = epoch
				l.mu.Unlock()
				l.n.Add(1)
			}
		})
	}
	return l
}

// waitMore waits until n more parcels have been finished.
func (l *persistedLoad) waitMore(t *testing.T, n int64) {
	t.Helper()
	target := l.n.Load() + n
	waitFor(t, fmt.Sprintf("%d more parcels acknowledged", n), func() bool { return l.n.Load() >= target })
}

func (l *persistedLoad) finish() {
	close(l.stop)
	l.wg.Wait()
}

// checkNoNUL fails the test if a file in dir holds a NUL byte.
func checkNoNUL(t *testing.T, dir string) {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.IndexByte(b, 0); i >= 0 {
			t.Errorf("%s holds a NUL byte at offset %d", filepath.Base(name), i)
		}
	}
}

// Deleting or truncating the segment being written under an ACK=persisted
// load: every parcel stored after that is acknowledged only once it is in
// a linked file; the parcels acknowledged before and gone with the file are
// counted; no NUL run is left; the sink goes on in a new segment.
func TestActiveSegmentLostUnderPersistedLoad(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		lose func(path string) error
		// gone: every parcel acknowledged before is gone with the file
		gone bool
	}{
		{"deleted", os.Remove, true},
		{"truncated to 0", func(path string) error { return os.Truncate(path, 0) }, true},
		{"truncated mid-line", func(path string) error {
			info, err := os.Stat(path)
			if err != nil {
				return err
			}
			return os.Truncate(path, info.Size()/2+7)
		}, false},
		{"moved away", func(path string) error { return os.Rename(path, path+".moved") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := newSink(t, Config{Dir: dir, Durable: true})
			l := startPersistedLoad(t, s, 16)
			l.waitMore(t, 300)

			lostPath := s.Segment()
			if err := tc.lose(lostPath); err != nil {
				t.Fatal(err)
			}
			l.epoch.Store(1) // Stores from here on began after the loss
			l.waitMore(t, 300)
			waitFor(t, "the loss to be noticed", func() bool { return s.Stats().SegmentsLost >= 1 })
			if s.Segment() == lostPath {
				t.Errorf("Segment() = %s, the lost one; want a new segment", lostPath)
			}
			l.finish()
			closeSink(t, s)
			_ = os.Remove(lostPath + ".moved") // a moved file is not the sink's any more

			checkNoNUL(t, dir)
			lines, _ := readDir(t, dir) // fails on a line that is not a whole record
			inFiles := map[string]int{}
			for _, ln := range lines {
				inFiles[ln.ID]++
			}
			var missingAfter, missingBefore []string
			for id, epoch := range l.acked {
				if inFiles[id] > 0 {
					continue
				}
				if epoch == 1 {
					missingAfter = append(missingAfter, id)
				} else {
					missingBefore = append(missingBefore, id)
				}
			}
			st := s.Stats()
			t.Logf("%d acknowledged, %d in files, %d acknowledged before the loss and gone; stats %+v",
				len(l.acked), len(inFiles), len(missingBefore), st)
			if len(missingAfter) > 0 {
				slices.Sort(missingAfter)
				t.Errorf("%d parcels stored after the loss were acknowledged and are in no file, e.g. %v",
					len(missingAfter), missingAfter[:min(5, len(missingAfter))])
			}
			if uint64(len(missingBefore)) > st.ParcelsLost {
				t.Errorf("%d acknowledged parcels are gone, but ParcelsLost = %d", len(missingBefore), st.ParcelsLost)
			}
			if tc.gone && (len(missingBefore) == 0 || st.ParcelsLost == 0) {
				t.Errorf("gone: %d, ParcelsLost %d; want the parcels acknowledged before the loss counted", len(missingBefore), st.ParcelsLost)
			}
			if err := s.Healthy(); err != nil {
				t.Errorf("Healthy() = %v after a lost segment; want nil, the sink goes on in a new one", err)
			}
		})
	}
}

// A segment lost while nothing is written (or with ACK=enqueued, where no
// write is checked) is noticed within FsyncInterval: the parcels in it are
// counted, logged, and the next parcels go to a new segment.
func TestIdleSegmentLossNoticedWithinFsyncInterval(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs testutil.SyncBuffer
	s := newSink(t, Config{Dir: dir, FsyncInterval: 20 * time.Millisecond, Logger: newTextLogger(&logs)})
	var o outcomes
	store(t, s, &o, "a", 7)
	waitFor(t, "the parcels to be written", func() bool { ok, _ := o.counts(); return ok == 7 })
	lost := s.Segment()
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the loss to be noticed", func() bool { return s.Stats().SegmentsLost == 1 })
	if got := s.Stats().ParcelsLost; got != 7 {
		t.Errorf("ParcelsLost = %d, want the 7 parcels of the deleted segment", got)
	}
	if _, err := os.Stat(s.Segment()); err != nil || s.Segment() == lost {
		t.Errorf("Segment() = %s (%v); want a new segment on disk", s.Segment(), err)
	}
	store(t, s, &o, "b", 3)
	closeSink(t, s)
	lines, _ := readDir(t, dir)
	if got, want := ids(lines), wantIDs("b", 3); !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "parcels_lost=7") {
		t.Errorf("log = %q; want an ERROR line counting 7 parcels lost", logs.String())
	}
	attrs := fmt.Sprint(s.SummaryAttrs())
	if !strings.Contains(attrs, "file_parcels_lost 7") || !strings.Contains(attrs, "file_segments_lost 1") {
		t.Errorf("SummaryAttrs() = %v; want the lost segment and its parcels", attrs)
	}
	var m bytes.Buffer
	s.WriteMetrics(&m)
	if !strings.Contains(m.String(), "\nfastingest_file_parcels_lost_total 7\n") {
		t.Errorf("metrics lack fastingest_file_parcels_lost_total 7:\n%s", m.String())
	}
}

// Segments are opened with O_APPEND: a write after a truncation by
// someone else lands at the new end, not at the old offset behind a run of
// NUL bytes.
func TestSegmentsAppend(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSink(t, Config{Dir: dir, FsyncInterval: time.Hour})
	var o outcomes
	store(t, s, &o, "a", 5)
	waitFor(t, "the parcels to be written", func() bool { ok, _ := o.counts(); return ok == 5 })
	if err := os.Truncate(s.Segment(), 0); err != nil {
		t.Fatal(err)
	}
	store(t, s, &o, "b", 5)
	waitFor(t, "the parcels to be written", func() bool { ok, _ := o.counts(); return ok == 10 })
	closeSink(t, s)
	checkNoNUL(t, dir)
	lines, _ := readDir(t, dir)
	if got := ids(lines); !slices.Contains(got, "b4") {
		t.Errorf("ids = %v; want b0..b4", got)
	}
}

func TestFilterSegment(t *testing.T) {
	t.Parallel()
	rec := func(id string) string { return `{"id":"` + id + `"}` + "\n" }
	nul := func(n int) string { return strings.Repeat("\x00", n) }
	for _, tc := range []struct {
		name, in, want     string
		cutBytes, cutLines int64
	}{
		{"clean", rec("1") + rec("2"), rec("1") + rec("2"), 0, 0},
		{"torn tail", rec("1") + `{"id":"2`, rec("1"), 8, 1},
		{"NUL run between lines", rec("1") + nul(100) + rec("2"), rec("1") + rec("2"), 100, 0},
		{"truncated mid-line, then written at the old offset", rec("1") + `{"id":"2` + nul(50) + rec("3"),
			rec("1") + rec("3"), 8 + 50, 1},
		{"NUL run in the middle of a line", rec("1") + `{"id":` + nul(10) + `"2"}` + "\n" + rec("3"),
			rec("1") + rec("3"), 6 + 10 + 5, 2},
		{"only NULs", nul(3000), "", 3000, 0},
		{"NUL run at the end", rec("1") + nul(7), rec("1"), 7, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			cutBytes, cutLines, err := filterSegment(strings.NewReader(tc.in), &out)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want || cutBytes != tc.cutBytes || cutLines != tc.cutLines {
				t.Errorf("filterSegment(%q) = %q, %d bytes, %d lines cut; want %q, %d, %d",
					tc.in, out.String(), cutBytes, cutLines, tc.want, tc.cutBytes, tc.cutLines)
			}
			if int64(len(tc.in)-out.Len()) != cutBytes {
				t.Errorf("cut %d bytes, but the output is %d bytes shorter", cutBytes, len(tc.in)-out.Len())
			}
		})
	}
	// Lines longer than the reader's buffer.
	long := `{"id":"` + strings.Repeat("y", 3<<20) + `"}` + "\n"
	var out bytes.Buffer
	if _, _, err := filterSegment(io.MultiReader(strings.NewReader(long+nul(5)), strings.NewReader(long)), &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != long+long {
		t.Errorf("long lines around a NUL run: got %d bytes, want %d", out.Len(), 2*len(long))
	}
}

// At startup a NUL run in any segment, not only the newest, is cut with the
// torn line before it, by rewriting the segment; the lines around it stay.
func TestStartupCutsNULRunsInEverySegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	whole := func(id string) string {
		return `{"id":"` + id + `","time":"2017-01-01T00:00:01Z","data":"a","received":"2026-11-29T08:00:00Z"}` + "\n"
	}
	older := "20261129T070000.000000000Z.ndjson"
	newer := "20261129T080000.000000000Z.ndjson"
	olderBody := whole("o1") + `{"id":"o2","ti` + strings.Repeat("\x00", 4096) + whole("o3")
	if err := os.WriteFile(filepath.Join(dir, older), []byte(olderBody), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, newer), []byte(whole("n1")), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, older+repairSuffix), []byte("left by a crash"), 0o640); err != nil {
		t.Fatal(err)
	}
	var logs testutil.SyncBuffer
	s := newSink(t, Config{Dir: dir, Logger: newTextLogger(&logs)})
	closeSink(t, s)
	checkNoNUL(t, dir)
	lines, _ := readDir(t, dir)
	if got, want := ids(lines), []string{"o1", "o3", "n1"}; !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
	if st := s.Stats(); st.SegmentsRepaired != 1 || st.CutBytes != 14+4096 || st.CutLines != 1 {
		t.Errorf("stats = %+v; want 1 segment repaired, %d bytes and 1 line cut", st, 14+4096)
	}
	if _, err := os.Stat(filepath.Join(dir, older+repairSuffix)); !os.IsNotExist(err) {
		t.Errorf("a repair's temporary file left by a crash is still there (%v)", err)
	}
	if !strings.Contains(logs.String(), "segment="+older) || !strings.Contains(logs.String(), "bytes_cut=4110") {
		t.Errorf("log = %q; want a line naming the segment and the bytes cut", logs.String())
	}
}

// A data directory fastingest creates is fsynced into its parent, each
// level that did not exist.
func TestNewDataDirectorySynced(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "data")
	var synced []string
	if err := makeDir(dir, func(d string) error { synced = append(synced, d); return fsyncDir(d) }); err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(root, "a", "b"), filepath.Join(root, "a"), root}
	if !slices.Equal(synced, want) {
		t.Errorf("directories synced = %v, want %v", synced, want)
	}
	synced = nil
	if err := makeDir(dir, func(d string) error { synced = append(synced, d); return nil }); err != nil || len(synced) != 0 {
		t.Errorf("makeDir of an existing directory synced %v (%v); want nothing", synced, err)
	}
	s := newSink(t, Config{Dir: filepath.Join(root, "x", "y")})
	closeSink(t, s)
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// The sink's families are each described and typed, the lost parcels'
// among them. TestMetricsPrometheus (e2e) parses them with Prometheus' own
// parser and promlint.
func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	text := sinkMetrics(t)
	testutil.Described(t, text)
	testutil.Family(t, text, "fastingest_file_parcels_lost_total", "counter")
}

// sinkMetrics returns what a new sink writes to /metrics.
func sinkMetrics(t *testing.T) string {
	t.Helper()
	s := newSink(t, Config{})
	var b bytes.Buffer
	s.WriteMetrics(&b)
	return b.String()
}
