package filesink

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// repairSuffix names the file a segment is rewritten into while NUL runs
// are cut out of it; listSegments does not see it, and New removes one a
// crash left behind (the segment itself is untouched until the rename).
const repairSuffix = ".repair"

// Why the open segment is lost: the file written to is no longer the file
// at its path, or holds less than was written to it. Something other than
// fastingest did it: an operator's rm, mv, truncate or copy-then-delete.
const (
	lostDeleted   = "deleted"   // unlinked: its link count is 0
	lostMoved     = "moved"     // still linked, but no file is at its path
	lostReplaced  = "replaced"  // another file is at its path
	lostTruncated = "truncated" // shorter than what was written
)

// fileID identifies a file: its device and inode.
type fileID struct{ dev, ino uint64 }

// checkOpenSegment returns why the open segment is lost, or "" while it is
// still the file at its path, linked, and at least as long as what the sink
// wrote to it. It costs two stat calls and one small allocation (the path
// for the kernel): once per group written, not per parcel.
func (s *Sink) checkOpenSegment() (string, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(s.segFd, &st); err != nil {
		return "", fmt.Errorf("cannot stat %s: %w", s.segName, err)
	}
	if st.Nlink == 0 {
		return lostDeleted, nil
	}
	var at syscall.Stat_t
	if err := syscall.Stat(s.segPath, &at); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return lostMoved, nil
		}
		return "", fmt.Errorf("cannot stat %s: %w", s.segPath, err)
	}
	if (fileID{uint64(at.Dev), uint64(at.Ino)}) != s.segID {
		return lostReplaced, nil
	}
	if st.Size < s.segSize {
		return lostTruncated, nil
	}
	return "", nil
}

// segmentLost gives up the open segment, which checkOpenSegment found lost
// for reason. The parcels written to it and not found in it any more are
// counted lost; unacked, the lines of a group whose tasks are not finished
// yet, is cut off the file if it ends with them, since the caller writes
// them again. What is left of a truncated segment (its whole lines) stays as
// a closed segment. With reopen, a new segment is opened.
func (s *Sink) segmentLost(reason string, unacked []byte, reopen bool) {
	lost := s.segParcels
	var kept int64
	if reason == lostTruncated {
		lines, size, err := salvage(s.segPath, s.segID, unacked)
		if err != nil {
			s.log.Error("cannot salvage what is left of a truncated segment", "segment", s.segName, "err", err)
		}
		lost = max(lost-lines, 0)
		kept = size
	}
	if err := s.seg.Close(); err != nil {
		s.log.Error("cannot close segment", "segment", s.segName, "err", err)
	}
	s.log.Error("the open segment was "+reason+" by something other than fastingest: the parcels written to it and no longer in it are lost; "+
		"parcels not yet acknowledged are written again in a new segment. Ship or move closed segments only",
		"segment", s.segName, "reason", reason, "parcels_lost", lost, "bytes_kept", kept)
	if reason == lostTruncated {
		if kept > 0 {
			seg := segment{name: s.segName, size: kept, closed: time.Now()}
			s.closedSeg = append(s.closedSeg, seg)
			s.handOver(seg)
		} else {
			_ = os.Remove(s.segPath) // ours, and empty
		}
	}
	s.seg, s.segSize, s.segParcels = nil, 0, 0
	if s.unsynced {
		s.unsynced = false
		s.syncDue.Stop()
	}
	if reopen {
		if err := s.openSegment(time.Now()); err != nil {
			// The next write opens one, retrying.
			s.log.Error("cannot open a new segment", "dir", s.cfg.Dir, "err", err)
		}
	}
	// Counted last, so that whoever sees the count sees the new segment.
	s.parcelsLost.Add(uint64(lost))
	s.segmentsLost.Add(1)
}

// salvage keeps what is left of a truncated segment: it cuts unacked off
// its end if the file ends with it, then a torn last line, fsyncs it, and
// returns how many lines are left and its size. It leaves alone a file
// that is no longer the segment id.
func salvage(path string, id fileID, unacked []byte) (lines, size int64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return 0, 0, err
	}
	if (fileID{uint64(st.Dev), uint64(st.Ino)}) != id {
		return 0, 0, errors.New("another file is at its path now")
	}
	size = st.Size
	if n := int64(len(unacked)); n > 0 && size >= n {
		tail := make([]byte, n)
		if _, err := f.ReadAt(tail, size-n); err == nil && bytes.Equal(tail, unacked) {
			size -= n
		}
	}
	keep, err := lastLineEnd(f, size)
	if err != nil {
		return 0, st.Size, err
	}
	if keep < st.Size {
		if err := f.Truncate(keep); err != nil {
			return 0, st.Size, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, keep, err
	}
	lines, err = countLines(io.NewSectionReader(f, 0, keep))
	return lines, keep, err
}

// countLines counts the newlines r holds.
func countLines(r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		m, err := r.Read(buf)
		n += int64(bytes.Count(buf[:m], []byte{'\n'}))
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// repairSegment checks the segment at path as New finds it: a torn last
// line (a crash in the middle of a write) is cut, and so is every run of
// NUL bytes (what a write at an old offset after a truncation, or a file
// system after a power loss, leaves) together with the torn line before it.
// It returns the bytes and the pieces of lines cut. A segment without NUL
// bytes is only read; one with them is rewritten (into path+".repair",
// fsynced, renamed over it, the directory fsynced).
func repairSegment(path string, syncDir func(string) error) (cutBytes, cutLines int64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size := info.Size()
	hasNUL, err := containsNUL(f)
	if err != nil {
		return 0, 0, err
	}
	if !hasNUL {
		keep, err := lastLineEnd(f, size)
		if err != nil || keep == size {
			return 0, 0, err
		}
		if err := f.Truncate(keep); err != nil {
			return 0, 0, err
		}
		return size - keep, 1, f.Sync()
	}

	tmpPath := path + repairSuffix
	tmp, err := os.OpenFile(tmpPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return 0, 0, err
	}
	w := bufio.NewWriterSize(tmp, 1<<20)
	cutBytes, cutLines, err = filterSegment(io.NewSectionReader(f, 0, size), w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmpPath, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(tmpPath)
		return 0, 0, err
	}
	return cutBytes, cutLines, nil
}

// containsNUL reports whether f holds a NUL byte, reading it from the
// start.
func containsNUL(f *os.File) (bool, error) {
	buf := make([]byte, 1<<20)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		if bytes.IndexByte(buf[:n], 0) >= 0 {
			return true, nil
		}
		off += int64(n)
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// filterSegment copies the whole lines of a segment from r to w, leaving
// out every NUL byte and the pieces of lines around them: the bytes of a
// line before a NUL run (a torn line), and a line right after a run unless
// it is a whole JSON record (a write that resumed there starts a line; a
// run in the middle of a line leaves its tail). A last line without its
// newline is torn too. It returns the bytes and the pieces of lines cut.
func filterSegment(r io.Reader, w io.Writer) (cutBytes, cutLines int64, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var line []byte   // the current line so far, NUL-free
	afterNUL := false // the current line began right after a NUL run
	for {
		chunk, rerr := br.ReadSlice('\n')
		for len(chunk) > 0 {
			i := bytes.IndexByte(chunk, 0)
			if i < 0 {
				line = append(line, chunk...)
				break
			}
			if torn := len(line) + i; torn > 0 {
				cutBytes += int64(torn)
				cutLines++
			}
			line = line[:0]
			j := i
			for j < len(chunk) && chunk[j] == 0 {
				j++
			}
			cutBytes += int64(j - i)
			chunk = chunk[j:]
			afterNUL = true
		}
		if n := len(line); n > 0 && line[n-1] == '\n' {
			if afterNUL && !json.Valid(line[:n-1]) {
				cutBytes += int64(n)
				cutLines++
			} else if _, err := w.Write(line); err != nil {
				return cutBytes, cutLines, err
			}
			line, afterNUL = line[:0], false
		}
		switch {
		case rerr == nil, errors.Is(rerr, bufio.ErrBufferFull):
		case errors.Is(rerr, io.EOF):
			if len(line) > 0 {
				cutBytes += int64(len(line))
				cutLines++
			}
			return cutBytes, cutLines, nil
		default:
			return cutBytes, cutLines, rerr
		}
	}
}

// makeDir creates dir and its missing parents, and fsyncs the parent of
// each directory it created, so that the new directory's name survives a
// power loss as the segments in it do.
func makeDir(dir string, syncDir func(string) error) error {
	var missing []string // deepest first
	for d := filepath.Clean(dir); ; {
		_, err := os.Stat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	for _, d := range missing {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return fmt.Errorf("fsync of %s: %w", filepath.Dir(d), err)
		}
	}
	return nil
}
