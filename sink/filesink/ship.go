package filesink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Segment is a closed segment, as the sink hands it to a Shipper.
type Segment struct {
	Name   string    // file name in the data directory, e.g. 20261204T170000.123456789Z.ndjson
	Path   string    // Dir/Name
	Size   int64     // bytes
	Closed time.Time // when it was closed; at startup, its modification time
}

// Shipper takes closed segments elsewhere (S3: package s3ship). The sink
// hands it every segment it closes and, while a Shipper is set, retention
// deletes only the segments it has shipped: when RETAIN_BYTES is full of
// segments not shipped yet, the sink reports itself unhealthy (new requests
// get 503) rather than delete them.
type Shipper interface {
	// Start is called once, by New, with the closed segments found in the
	// data directory, oldest first, and a function to call after a segment
	// has shipped, which has the sink apply retention again. Start must
	// not call it before returning. An error stops New.
	Start(segs []Segment, shipped func()) error
	// Add hands over a segment just closed. It must not block.
	Add(seg Segment)
	// Shipped reports whether the named segment has shipped.
	Shipped(name string) bool
	// Forget is called once a shipped segment is deleted.
	Forget(name string)
	// Close ships what it can until ctx ends; the rest ships after the
	// next Start. Close is called by the sink's Close, after the last
	// segment is closed and handed over.
	Close(ctx context.Context) error
}

// SegmentOpened returns when the segment named name was opened: segments
// are named by that time, in UTC.
func SegmentOpened(name string) (time.Time, error) {
	base, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok {
		return time.Time{}, fmt.Errorf("filesink: %q is not a segment name", name)
	}
	return time.Parse(segmentTimeLayout, base)
}

// errRetentionFull is Healthy's answer while RETAIN_BYTES is full of
// segments not yet shipped.
var errRetentionFull = errors.New("filesink: RETAIN_BYTES is full of segments not yet shipped; " +
	"new parcels wait until shipping catches up (see the S3 upload errors), or raise RETAIN_BYTES")

// handOver gives a segment just closed to the shipper, if there is one.
func (s *Sink) handOver(seg segment) {
	if s.cfg.Shipper == nil {
		return
	}
	s.cfg.Shipper.Add(Segment{Name: seg.name, Path: filepath.Join(s.cfg.Dir, seg.name), Size: seg.size, Closed: seg.closed})
}

// shipped is the function the shipper calls after a segment has shipped: it
// wakes the writer, which applies retention.
func (s *Sink) shipped() { notify(s.reclaim) }

// enforceRetention deletes the oldest closed segments while the segments
// together exceed RetainBytes; with a shipper, only those it has shipped.
// If that is not enough, the sink reports itself unhealthy until it is.
func (s *Sink) enforceRetention() {
	total := s.segSize
	for _, seg := range s.closedSeg {
		total += seg.size
	}
	ship := s.cfg.Shipper
	for i := 0; i < len(s.closedSeg) && total > s.cfg.RetainBytes; {
		old := s.closedSeg[i]
		if ship != nil && !ship.Shipped(old.name) {
			i++
			continue
		}
		err := os.Remove(filepath.Join(s.cfg.Dir, old.name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Error("cannot delete an old segment", "segment", old.name, "err", err)
			break
		}
		if ship != nil {
			ship.Forget(old.name)
		}
		s.log.Info("deleted the oldest segment: RETAIN_BYTES reached", "segment", old.name, "bytes", old.size)
		total -= old.size
		s.closedSeg = append(s.closedSeg[:i], s.closedSeg[i+1:]...)
	}
	full := ship != nil && total > s.cfg.RetainBytes
	switch wasFull := s.retentionFull.Load(); {
	case full && !wasFull:
		s.retentionFull.Store(true)
		s.log.Error("RETAIN_BYTES is full of segments not yet shipped: new requests get 503 until shipping catches up",
			"retain_bytes", s.cfg.RetainBytes, "bytes", total)
	case !full && wasFull:
		s.retentionFull.Store(false)
		s.log.Info("shipping caught up: RETAIN_BYTES has room again, taking new requests", "bytes", total)
	}
}
