// Package filesink is fastingest's default sink: a durable local log. Each
// parcel becomes one NDJSON line in a segment file under a data directory;
// segments rotate by size and age, and the oldest are deleted past a
// retention bound.
//
// The segment on disk is the truth. Segments are opened with O_APPEND, and
// before a durable sink finishes a group's tasks (and at least every
// FsyncInterval in any case) it checks that the file it writes to is still
// the file at the segment's path, linked, and not shorter than what it
// wrote. A segment deleted, moved, replaced or truncated under it is lost:
// counted, logged, and replaced by a new segment in which the parcels not
// yet finished are written again, so that no acknowledgement is ever given
// for bytes that are not in a linked file. At startup every segment is
// checked, and torn lines and NUL runs are cut.
//
// Workers never write to the file themselves. Store encodes the parcel into
// the sink's current write group (a buffer and the tasks in it) under a
// mutex held for about a hundred nanoseconds, and returns; one writer
// goroutine takes the whole group, writes it with one system call and, for
// a durable sink, fsyncs it, then finishes its tasks. Concurrent requests
// therefore share one write and one fsync (group commit). Two groups bound
// the memory: while the writer is busy with one and the other is full,
// Store waits, and backpressure reaches the queue.
//
// A write that fails (a full disk, an I/O error) loses nothing: the group is
// cut off the file again and retried with backoff, the sink reports itself
// unhealthy meanwhile, and its tasks are finished only once written — or
// failed when Close's deadline passes. A durable sink treats a failed fsync
// the same way, rewriting the group, since after a failed fsync the data may
// not be on disk whatever a read shows. A sink that is not durable has
// already finished the tasks of what it syncs periodically: it retries the
// fsync, but what the kernel dropped after a failed fsync is lost on a power
// failure; ACK=enqueued promises no more than that.
package filesink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/sink"
)

const (
	segmentSuffix = ".ndjson"
	// segmentTimeLayout names segments by the UTC time they were opened:
	// fixed width, so names sort by time.
	segmentTimeLayout = "20060102T150405.000000000Z"

	// linger is how long the writer of a sink that is not durable lets a
	// group fill before writing it: on one CPU it would otherwise wake up
	// and write for nearly every parcel. Nobody waits for those writes, so
	// the delay costs no request any latency. A durable sink writes at
	// once: the time its fsync takes is what gathers the next group.
	linger = 2 * time.Millisecond
	// flushBytes ends the linger early.
	flushBytes = 256 << 10
)

// ErrClosed is returned by Store after Close.
var ErrClosed = errors.New("filesink: closed")

// Sink appends parcels to segment files. It is an ingest.DeferredSink.
type Sink struct {
	cfg       Config
	log       *slog.Logger
	syncDir   func(dir string) error // fsyncDir; tests make it fail
	fdatasync func(fd int) error     // syscall.Fdatasync; tests make it fail

	mu     sync.Mutex
	active *group        // being filled by Store
	spare  *group        // empty, or being written by the writer
	room   chan struct{} // closed when the writer takes the active group
	closed bool
	enc    sink.RecordEncoder

	wake    chan struct{} // cap 1: the active group became non-empty
	full    chan struct{} // cap 1: the active group reached flushBytes
	stop    chan struct{} // closed by Close
	abort   chan struct{} // closed when Close's context ends
	done    chan struct{} // closed when the writer has exited
	once    sync.Once
	aborted sync.Once // guards close(abort)

	health        atomic.Pointer[error] // nil when writes succeed
	retentionFull atomic.Bool           // RETAIN_BYTES full of segments not shipped
	reclaim       chan struct{}         // cap 1: the shipper shipped a segment

	// Owned by the writer goroutine.
	seg        *os.File
	segFd      int
	segName    string
	segPath    string // Dir/segName
	segID      fileID // the file created at segPath
	segSize    int64  // bytes written to it
	segParcels int64  // parcels written to it
	segOpened  time.Time
	unsynced   bool        // written since the last fsync
	syncDue    *time.Timer // armed when unsynced becomes true
	closedSeg  []segment   // closed segments, oldest first

	written atomic.Uint64 // parcels written
	writes  atomic.Uint64 // write system calls that succeeded
	synced  atomic.Uint64 // fsyncs done

	segmentsLost atomic.Uint64 // open segments deleted, moved, replaced or truncated
	parcelsLost  atomic.Uint64 // parcels written to those and not left in them
	repaired     atomic.Uint64 // segments repaired at startup
	cutBytes     atomic.Uint64 // bytes cut at startup: torn lines, NUL runs
	cutLines     atomic.Uint64 // pieces of lines cut at startup
}

// group is one write: the encoded lines and the tasks they belong to.
type group struct {
	buf   []byte
	tasks []ingest.Task
}

type segment struct {
	name   string
	size   int64
	closed time.Time
}

// New opens the data directory (creating it, and fsyncing it into its
// parent, if missing), checks every segment in it, cutting torn lines and NUL
// runs, opens a new segment and starts the writer.
func New(cfg Config) (*Sink, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		cfg:       cfg,
		log:       log,
		active:    &group{buf: make([]byte, 0, cfg.GroupBytes)},
		spare:     &group{buf: make([]byte, 0, cfg.GroupBytes)},
		room:      make(chan struct{}),
		wake:      make(chan struct{}, 1),
		full:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		abort:     make(chan struct{}),
		done:      make(chan struct{}),
		reclaim:   make(chan struct{}, 1),
		syncDue:   time.NewTimer(time.Hour),
		syncDir:   fsyncDir,
		fdatasync: syscall.Fdatasync,
	}
	s.syncDue.Stop()
	if err := makeDir(cfg.Dir, s.syncDir); err != nil {
		return nil, fmt.Errorf("filesink: cannot create the data directory: %w", err)
	}
	segs, err := s.checkSegments()
	if err != nil {
		return nil, err
	}
	s.closedSeg = segs
	if cfg.Shipper != nil {
		handed := make([]Segment, len(segs))
		for i, seg := range segs {
			handed[i] = Segment{Name: seg.name, Path: filepath.Join(cfg.Dir, seg.name), Size: seg.size, Closed: seg.closed}
		}
		if err := cfg.Shipper.Start(handed, s.shipped); err != nil {
			return nil, fmt.Errorf("filesink: cannot start shipping: %w", err)
		}
	}
	if err := s.openSegment(time.Now()); err != nil {
		if cfg.Shipper != nil {
			_ = cfg.Shipper.Close(context.Background()) // ships nothing: it has not begun
		}
		return nil, err
	}
	s.enforceRetention()
	go s.run()
	return s, nil
}

// checkSegments lists the data directory's segments, oldest first, after
// repairing each: a crash tears the last line of the segment being written,
// and a failed write that could not be cut off, a truncation by someone
// else or a file system's recovery may leave a torn line or a run of NUL
// bytes in any segment. It removes a repair's temporary file left by a
// crash.
func (s *Sink) checkSegments() ([]segment, error) {
	if stale, err := filepath.Glob(filepath.Join(s.cfg.Dir, "*"+segmentSuffix+repairSuffix)); err == nil {
		for _, p := range stale {
			_ = os.Remove(p)
		}
	}
	segs, err := listSegments(s.cfg.Dir)
	if err != nil {
		return nil, err
	}
	for i := range segs {
		seg := &segs[i]
		cut, lines, err := repairSegment(filepath.Join(s.cfg.Dir, seg.name), s.syncDir)
		if err != nil {
			return nil, fmt.Errorf("filesink: cannot check segment %s: %w", seg.name, err)
		}
		if cut == 0 {
			continue
		}
		seg.size -= cut
		s.repaired.Add(1)
		s.cutBytes.Add(uint64(cut))
		s.cutLines.Add(uint64(lines))
		s.log.Warn("cut torn lines and NUL runs from a segment (a crash, or a write or truncation by something else); "+
			"a torn line was never acknowledged as persisted",
			"segment", seg.name, "bytes_cut", cut, "lines_cut", lines)
	}
	return segs, nil
}

// Healthy returns nil while writes succeed, the last write error while
// they fail, and an error while RETAIN_BYTES is full of segments that are
// not shipped yet. It is cheap: fastingest calls it for every request.
func (s *Sink) Healthy() error {
	if p := s.health.Load(); p != nil {
		return *p
	}
	if s.retentionFull.Load() {
		return errRetentionFull
	}
	return nil
}

// Segment returns the path of the segment being written.
func (s *Sink) Segment() string {
	s.mu.Lock() // segName changes on the writer; a snapshot under mu is enough
	defer s.mu.Unlock()
	return filepath.Join(s.cfg.Dir, s.segName)
}

// Store adds t's parcel to the current write group, waiting while both
// groups are full. The parcel is copied before Store returns; the task is
// finished once its line is written (fsynced, when durable).
func (s *Sink) Store(ctx context.Context, t ingest.Task) error {
	var errs [1]error
	s.StoreRun(ctx, []ingest.Task{t}, errs[:])
	return errs[0]
}

// MaxRun is the most tasks the dispatcher hands the sink at once
// (ingest.RunSink): a worker that finds many parcels queued adds them all
// to the write group under one lock, rather than waking once per parcel.
func (s *Sink) MaxRun() int { return maxRun }

// maxRun is MaxRun's value: about as many reference parcels as fill a
// write group's first flush.
const maxRun = 64

var _ ingest.RunSink = (*Sink)(nil)

// StoreRun adds the parcels of run to the current write group, in order,
// taking the lock once for as many as the group has room for and waiting
// while both groups are full, as Store does for one. errs[i] is set for a
// task not taken: the sink closed, ctx ended while waiting, or its line
// could not be encoded.
func (s *Sink) StoreRun(ctx context.Context, run []ingest.Task, errs []error) {
	for i := 0; i < len(run); {
		s.mu.Lock()
		if err := s.waitRoomLocked(ctx); err != nil { // unlocked on error
			for ; i < len(run); i++ {
				errs[i] = err
			}
			return
		}
		var first, full bool
		// An empty group always takes a record, however large, so a
		// record bigger than GroupBytes cannot wait forever.
		for ; i < len(run) && (len(s.active.buf) < s.cfg.GroupBytes || len(s.active.tasks) == 0); i++ {
			f, fl, err := s.appendLocked(run[i])
			first, full, errs[i] = first || f, full || fl, err
		}
		s.mu.Unlock()
		if first {
			notify(s.wake)
		}
		if full {
			notify(s.full)
		}
	}
}

// waitRoomLocked waits, s.mu held, until the active group has room for a
// record, or returns why it cannot, with s.mu released.
func (s *Sink) waitRoomLocked(ctx context.Context) error {
	for {
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		if len(s.active.buf) < s.cfg.GroupBytes || len(s.active.tasks) == 0 {
			return nil
		}
		room := s.room
		s.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return fmt.Errorf("filesink: no room to write the parcel: %w", ctx.Err())
		}
		s.mu.Lock()
	}
}

// appendLocked adds t's line and t to the active group; s.mu is held. If
// encoding panics (a sink bug), the group is left as it was and the panic
// is returned as an error, so that it fails this one parcel without tearing
// the file, locking every other worker out, or failing parcels of the same
// run that the sink has taken (and will finish).
func (s *Sink) appendLocked(t ingest.Task) (first, full bool, err error) {
	g := s.active
	n := len(g.buf)
	defer func() {
		if r := recover(); r != nil {
			g.buf = g.buf[:n]
			err = fmt.Errorf("filesink: cannot encode the parcel: %v", r)
		}
	}()
	first = len(g.tasks) == 0
	g.buf = s.enc.Append(g.buf, t)
	g.buf = append(g.buf, '\n')
	g.tasks = append(g.tasks, t) // the sink owns t from here on
	return first, len(g.buf) >= flushBytes, nil
}

// notify sends on a channel of capacity 1 without blocking.
func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Close stops taking parcels, writes and fsyncs what the sink holds, and
// closes the segment. If ctx ends first — the disk is still failing — the
// tasks not yet written are finished with an error, and so counted as
// failed. Safe to call more than once.
func (s *Sink) Close(ctx context.Context) error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.room) // wake any Store waiting for room: it sees closed
		s.mu.Unlock()
		close(s.stop)
	})
	select {
	case <-s.done:
	case <-ctx.Done():
		s.abortOnce()
		<-s.done
	}
	if s.cfg.Shipper != nil {
		// Not an error when it cannot ship everything: what is left
		// ships after the next start.
		_ = s.cfg.Shipper.Close(ctx)
	}
	if p := s.health.Load(); p != nil {
		return fmt.Errorf("filesink: closed with write errors: %w", *p)
	}
	return nil
}

func (s *Sink) abortOnce() {
	s.aborted.Do(func() { close(s.abort) })
}

// run is the writer goroutine.
func (s *Sink) run() {
	defer close(s.done)
	var age <-chan time.Time
	if s.cfg.SegmentAge > 0 {
		tick := time.NewTicker(min(s.cfg.SegmentAge, time.Second))
		defer tick.Stop()
		age = tick.C
	}
	var lingerTimer *time.Timer
	if !s.cfg.Durable {
		lingerTimer = time.NewTimer(time.Hour)
		lingerTimer.Stop()
	}
	// A durable sink checks its segment after every group's fsync; this
	// catches a segment lost while nothing is written, or written without
	// a check, within FsyncInterval (a second when that is 0).
	checkEvery := s.cfg.FsyncInterval
	if checkEvery <= 0 {
		checkEvery = time.Second
	}
	check := time.NewTicker(checkEvery)
	defer check.Stop()
	for {
		stopping := false
		select {
		case <-s.wake:
			if lingerTimer != nil {
				lingerTimer.Reset(linger)
				select {
				case <-lingerTimer.C:
				case <-s.full:
					lingerTimer.Stop()
				case <-s.stop:
					lingerTimer.Stop()
				}
			}
		case <-s.full:
		case <-s.syncDue.C:
			if s.unsynced {
				s.syncRetrying()
			}
		case <-check.C:
			s.checkOrReplace()
		case <-s.reclaim:
			s.enforceRetention()
		case <-age:
			if s.seg != nil && s.segSize > 0 && time.Since(s.segOpened) >= s.cfg.SegmentAge {
				s.rotate(time.Now())
			}
		case <-s.stop:
			stopping = true
		}
		s.drain()
		if stopping {
			s.finishStop()
			return
		}
	}
}

// take swaps the active group for the empty spare and returns it, waking
// Stores that wait for room; nil when the active group is empty.
func (s *Sink) take() *group {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.active
	if len(g.tasks) == 0 {
		return nil
	}
	s.active, s.spare = s.spare, g
	if !s.closed {
		close(s.room)
		s.room = make(chan struct{})
	}
	return g
}

// drain writes groups until the active one is empty.
func (s *Sink) drain() {
	for g := s.take(); g != nil; g = s.take() {
		s.writeGroup(g)
	}
}

// writeGroup writes g (and fsyncs it when durable), retrying until it
// succeeds or the sink is aborted, then finishes its tasks and empties it.
func (s *Sink) writeGroup(g *group) {
	syncNow := s.cfg.Durable || s.cfg.FsyncInterval == 0
	err := s.retry(func() error { return s.write(g.buf, len(g.tasks), syncNow) })
	for i := range g.tasks {
		g.tasks[i].Finish(err)
	}
	if err == nil {
		s.written.Add(uint64(len(g.tasks)))
	}
	clear(g.tasks) // drop the batches
	g.tasks = g.tasks[:0]
	g.buf = g.buf[:0]
	if cap(g.buf) > 2*s.cfg.GroupBytes {
		// A huge record grew the buffer (an empty group takes one of
		// any size): do not keep that memory for the life of the
		// process.
		g.buf = make([]byte, 0, s.cfg.GroupBytes)
	}
	if s.seg != nil && s.segSize >= s.cfg.SegmentBytes {
		s.rotate(time.Now())
	}
}

// maxLostInARow bounds how often write finds its new segment lost again at
// once before it leaves the group to retry's backoff.
const maxLostInARow = 3

// write appends b, the lines of parcels parcels, to the segment, and fsyncs
// it when syncNow. Then, when syncNow, it checks that the segment is still
// the file at its path and holds what was written: if not, the segment is
// lost (segmentLost) and b is written again in a new one. So a task is
// never finished for a line that is not in a linked file.
func (s *Sink) write(b []byte, parcels int, syncNow bool) error {
	for range maxLostInARow {
		if err := s.writeOnce(b, syncNow); err != nil {
			return err
		}
		if !syncNow {
			s.segParcels += int64(parcels)
			return nil
		}
		reason, err := s.checkOpenSegment()
		if err != nil {
			return s.undo(s.segSize-int64(len(b)), b, err)
		}
		if reason == "" {
			s.segParcels += int64(parcels)
			return nil
		}
		s.segmentLost(reason, b, true)
		if s.seg == nil {
			return errors.New("the segment was lost and no new one could be opened")
		}
	}
	return fmt.Errorf("segment lost %d times in a row", maxLostInARow)
}

// writeOnce appends b to the segment, and fsyncs it when syncNow. On an
// error it cuts the file back to where b began, so that a retry neither
// tears a line nor writes one twice. After a failed fsync the data written
// may not be on disk whatever a read shows, so it is written again too.
func (s *Sink) writeOnce(b []byte, syncNow bool) error {
	start := s.segSize
	n, err := s.seg.Write(b) // O_APPEND: at the file's end, wherever that is
	if err == nil {
		s.writes.Add(1)
		s.segSize += int64(len(b))
		if !s.unsynced {
			s.unsynced = true
			s.syncDue.Reset(s.cfg.FsyncInterval)
		}
		if !syncNow {
			return nil
		}
		if err = s.sync(); err == nil {
			return nil
		}
		n = len(b)
	} else {
		err = fmt.Errorf("cannot write to %s: %w", s.segName, err)
	}
	return s.undo(start, b[:n], err)
}

// undo cuts written, the part of a write that reached the file before cause
// (an error) stopped it, off the segment, which held start bytes before, and
// returns cause. A segment found lost meanwhile is given up instead (it
// would not be cut back to where the sink thinks it was): the retry goes to
// a new segment.
func (s *Sink) undo(start int64, written []byte, cause error) error {
	s.segSize = start
	reason, err := s.checkOpenSegment()
	if err == nil && reason != "" {
		s.segmentLost(reason, written, true)
		return cause
	}
	if terr := s.seg.Truncate(start); terr != nil {
		// The file may now end with part of b. Leave it to the startup
		// repair and the readers: the retry goes to a new segment, and
		// none of b's parcels has been acknowledged yet.
		return errors.Join(cause, s.switchSegment(terr))
	}
	return cause
}

// checkOrReplace checks the open segment, and gives it up and opens a new
// one if it was lost. The writer calls it every FsyncInterval.
func (s *Sink) checkOrReplace() {
	if s.seg == nil {
		return
	}
	reason, err := s.checkOpenSegment()
	if err != nil {
		s.log.Error("cannot check the open segment", "segment", s.segName, "err", err)
		return
	}
	if reason != "" {
		s.segmentLost(reason, nil, true)
	}
}

// switchSegment opens a new segment after the current one could not be
// repaired.
func (s *Sink) switchSegment(cause error) error {
	// Not handed to a shipper: the segment may end with a torn line,
	// which the next start cuts; it ships after that.
	s.log.Error("cannot cut a failed write off the segment; continuing in a new one",
		"segment", s.segName, "err", cause)
	_ = s.seg.Close()
	s.closedSeg = append(s.closedSeg, segment{name: s.segName, size: s.segSize, closed: time.Now()})
	if err := s.openSegment(time.Now()); err != nil {
		s.seg, s.segSize, s.segParcels = nil, 0, 0 // as in rotate
		return err
	}
	return nil
}

func (s *Sink) sync() error {
	// fdatasync: the data and the file size, not the timestamps, which
	// saves a journal write per sync on ext4 and XFS.
	if err := s.fdatasync(s.segFd); err != nil {
		return fmt.Errorf("cannot fsync %s: %w", s.segName, err)
	}
	s.unsynced = false
	s.syncDue.Stop()
	s.synced.Add(1)
	return nil
}

// syncRetrying fsyncs with retries; a failure past Close's deadline is
// left in the health status.
func (s *Sink) syncRetrying() {
	_ = s.retry(s.sync)
}

// retry runs op until it succeeds, backing off after each failure and
// marking the sink unhealthy until it recovers. It gives up only when Close's
// context has ended.
func (s *Sink) retry(op func() error) error {
	wait := s.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		var err error
		if s.seg == nil {
			err = s.openSegment(time.Now())
		}
		if err == nil {
			err = op()
		}
		if err == nil {
			if attempt > 0 {
				s.health.Store(nil)
				s.log.Info("file sink recovered; writing again", "segment", s.segName, "attempts", attempt+1)
			}
			return nil
		}
		if attempt == 0 {
			s.health.Store(&err)
			s.log.Error("file sink cannot write; parcels wait and are retried, new requests get 503",
				"dir", s.cfg.Dir, "err", err)
		} else {
			s.health.Store(&err)
		}
		select {
		case <-s.abort:
			return fmt.Errorf("filesink: gave up at shutdown: %w", err)
		case <-s.reclaim:
			// A segment shipped: deleting it may be what makes room.
			s.enforceRetention()
		case <-time.After(wait):
		}
		wait = min(2*wait, RetryBackoffMax)
	}
}

// finishStop writes what is left after Close and closes the segment.
func (s *Sink) finishStop() {
	s.drain()
	if s.seg == nil {
		return
	}
	if s.unsynced {
		s.syncRetrying()
	}
	if reason, err := s.checkOpenSegment(); err == nil && reason != "" {
		s.segmentLost(reason, nil, false)
		return
	}
	if err := s.seg.Close(); err != nil {
		s.log.Error("cannot close segment", "segment", s.segName, "err", err)
	}
	if s.segSize == 0 {
		_ = os.Remove(s.segPath)
		return
	}
	seg := segment{name: s.segName, size: s.segSize, closed: time.Now()}
	s.closedSeg = append(s.closedSeg, seg)
	s.handOver(seg)
}

// rotate closes the current segment, opens the next and applies retention.
func (s *Sink) rotate(now time.Time) {
	if s.unsynced {
		// Retried like every fsync: a segment is closed only once what
		// it holds is durable.
		s.syncRetrying()
	}
	// A segment is closed only once it is known to hold what was written.
	if reason, err := s.checkOpenSegment(); err == nil && reason != "" {
		s.segmentLost(reason, nil, true)
		s.enforceRetention()
		return
	}
	if err := s.seg.Close(); err != nil {
		s.log.Error("cannot close segment", "segment", s.segName, "err", err)
	}
	seg := segment{name: s.segName, size: s.segSize, closed: now}
	s.closedSeg = append(s.closedSeg, seg)
	s.handOver(seg)
	if err := s.openSegment(now); err != nil {
		// No current segment until the next write opens one: its
		// bytes are the closed segment's now, not to be counted twice.
		s.seg, s.segSize, s.segParcels = nil, 0, 0
		s.log.Error("cannot open a new segment", "dir", s.cfg.Dir, "err", err)
	}
	s.enforceRetention()
}

// openSegment creates a new segment named after now, later than every
// existing one.
func (s *Sink) openSegment(now time.Time) error {
	name := now.UTC().Format(segmentTimeLayout) + segmentSuffix
	last := s.segName
	if n := len(s.closedSeg); n > 0 && s.closedSeg[n-1].name > last {
		last = s.closedSeg[n-1].name
	}
	if name <= last { // a clock step back, or two segments in one nanosecond
		// Named just after the last, however far ahead that is (a
		// segment from a clock set years ahead once): stepping up a
		// nanosecond at a time from now would never get there.
		if t, err := SegmentOpened(last); err == nil {
			now = t
		}
		for name <= last {
			now = now.Add(time.Nanosecond)
			name = now.UTC().Format(segmentTimeLayout) + segmentSuffix
		}
	}
	path := filepath.Join(s.cfg.Dir, name)
	// O_APPEND: a write lands at the file's end even if the file was
	// truncated meanwhile, instead of at the old offset, which would leave
	// a run of NUL bytes before it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("cannot create segment: %w", err)
	}
	fd := int(f.Fd())
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("cannot create segment: %w", err)
	}
	// fdatasync makes a segment's lines durable, not its name: until the
	// directory is synced, a power loss may lose the new file, and every
	// parcel acknowledged in it with ACK=persisted. Once per segment.
	if err := s.syncDir(s.cfg.Dir); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("cannot create segment: fsync of the data directory: %w", err)
	}
	s.mu.Lock()
	s.segName = name
	s.mu.Unlock()
	s.seg, s.segFd, s.segPath = f, fd, path
	s.segID = fileID{uint64(st.Dev), uint64(st.Ino)}
	s.segSize, s.segParcels = 0, 0
	s.segOpened = now
	s.unsynced = false
	return nil
}

// fsyncDir makes the names in dir durable: the segments created in it.
func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// listSegments returns the directory's segments, oldest first.
func listSegments(dir string) ([]segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("filesink: cannot read the data directory: %w", err)
	}
	var segs []segment
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), segmentSuffix) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("filesink: %w", err)
		}
		segs = append(segs, segment{name: e.Name(), size: info.Size(), closed: info.ModTime()})
	}
	slices.SortFunc(segs, func(a, b segment) int { return strings.Compare(a.name, b.name) })
	return segs, nil
}

// lastLineEnd returns the offset just past the file's last newline (0 if it
// has none), reading backwards in chunks.
func lastLineEnd(f *os.File, size int64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		start := max(end-chunk, 0)
		b := buf[:end-start]
		if _, err := f.ReadAt(b, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// Stats counts what the sink has done.
type Stats struct {
	Written uint64 // parcels written to a segment
	Writes  uint64 // write system calls, one per group
	Fsyncs  uint64 // fsyncs done
	// SegmentsLost counts open segments deleted, moved, replaced or
	// truncated by something else; ParcelsLost the parcels written to them
	// and no longer in them.
	SegmentsLost, ParcelsLost uint64
	// SegmentsRepaired counts the segments New cut torn lines or NUL runs
	// from; CutBytes and CutLines what it cut.
	SegmentsRepaired, CutBytes, CutLines uint64
}

// Stats returns the sink's counters.
func (s *Sink) Stats() Stats {
	return Stats{Written: s.written.Load(), Writes: s.writes.Load(), Fsyncs: s.synced.Load(),
		SegmentsLost: s.segmentsLost.Load(), ParcelsLost: s.parcelsLost.Load(),
		SegmentsRepaired: s.repaired.Load(), CutBytes: s.cutBytes.Load(), CutLines: s.cutLines.Load()}
}
