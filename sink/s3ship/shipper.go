// Package s3ship ships the file sink's closed segments to S3, compressed,
// with aws-sdk-go-v2. It is the file sink's filesink.Shipper: the sink hands
// it each segment it closes, and deletes a segment only once it has shipped.
//
// Workers (S3_UPLOAD_CONCURRENCY) upload the oldest segments first, each to
// a key that depends only on the segment (Key), so that an upload retried,
// or repeated after a crash, overwrites the same object: every parcel is in
// S3 exactly once. A failed upload is retried after a capped exponential
// backoff, and errors are logged at a bounded rate and counted.
//
// Shipped state survives restarts as a marker file per segment,
// DATA_DIR/shipped/NAME, holding the object's key, written once the upload
// has completed; a segment without one ships (again) after a restart. A
// crash between an upload's completion and its marker re-uploads the same
// key: an idempotent overwrite, not a second copy.
package s3ship

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/fastingest/fastingest/internal/promtext"
	"github.com/fastingest/fastingest/sink/filesink"
)

// markerDir is the subdirectory of the data directory that holds the
// shipped markers.
const markerDir = "shipped"

// Shipper uploads closed segments to S3. It is a filesink.Shipper.
type Shipper struct {
	cfg       Config
	log       *slog.Logger
	client    *s3.Client
	host      string
	endpoint  string // "" for AWS itself
	checksums bool   // send CRC32 checksums (AWS itself; not an S3-compatible endpoint)

	mu        sync.Mutex
	pending   []filesink.Segment          // not shipped, not uploading; oldest first
	uploading map[string]filesink.Segment // being uploaded
	shipped   map[string]bool
	notify    func()

	wake    chan struct{} // cap 1: pending grew
	stop    chan struct{} // closed by Close: workers exit once nothing is pending
	ctx     context.Context
	cancel  context.CancelFunc // ends uploads when Close's ctx ends
	wg      sync.WaitGroup
	started atomic.Bool
	once    sync.Once

	// Counters and the upload latency.
	segmentsShipped atomic.Uint64
	bytesShipped    atomic.Uint64 // segment bytes
	bytesUploaded   atomic.Uint64 // object bytes, compressed
	uploadErrors    atomic.Uint64
	missing         atomic.Uint64 // segments gone before they shipped
	latency         *promtext.Histogram

	logMu      sync.Mutex
	lastLogged time.Time
	suppressed int
	failing    bool
}

// New builds a Shipper and its S3 client from cfg: region and credentials
// from the default AWS chain unless cfg sets them, the endpoint from cfg or
// the environment. It does not reach S3: a bucket missing or unreachable
// shows in the upload errors, and the backlog waits.
func New(ctx context.Context, cfg Config) (*Shipper, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	lookup := cfg.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	endpoint := cfg.Endpoint
	for _, name := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
		if v, ok := lookup(name); ok && v != "" && endpoint == "" {
			endpoint = v
		}
	}
	host := cfg.Host
	if host == "" {
		host, _ = os.Hostname()
	}

	var opts []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	} else if endpoint == "" {
		// On EC2 without AWS_REGION: the instance's region.
		opts = append(opts, awsconfig.WithEC2IMDSRegion())
	}
	if cfg.Credentials != nil {
		opts = append(opts, awsconfig.WithCredentialsProvider(cfg.Credentials))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3ship: cannot load the AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		if endpoint == "" {
			return nil, errors.New("s3ship: no AWS region: set AWS_REGION")
		}
		awsCfg.Region = "us-east-1" // what S3-compatible stores expect when none is given
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			// S3-compatible stores (MinIO, moto, Ceph...) serve buckets
			// as paths, and many refuse the checksums the SDK adds by
			// default (CRC32 trailers in aws-chunked bodies).
			o.UsePathStyle = true
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
	sctx, cancel := context.WithCancel(context.Background())
	ms := time.Millisecond
	return &Shipper{
		cfg: cfg, log: log, client: client, host: sanitizeHost(host), endpoint: endpoint, checksums: endpoint == "",
		uploading: map[string]filesink.Segment{}, shipped: map[string]bool{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), ctx: sctx, cancel: cancel,
		latency: promtext.NewHistogram("fastingest_s3_upload_duration_seconds", "",
			10*ms, 25*ms, 50*ms, 100*ms, 250*ms, 500*ms, time.Second, 2500*ms, 5*time.Second,
			10*time.Second, 30*time.Second, time.Minute, 2*time.Minute, 5*time.Minute),
	}, nil
}

// StartupAttrs describes the shipper for fastingest's startup line.
func (s *Shipper) StartupAttrs() []any {
	endpoint := s.endpoint
	if endpoint == "" {
		endpoint = "aws"
	}
	return []any{"s3_bucket", s.cfg.Bucket, "s3_prefix", s.cfg.Prefix, "s3_compression", s.cfg.Compression,
		"s3_upload_concurrency", s.cfg.Concurrency, "s3_endpoint", endpoint, "s3_host", s.host}
}

// Start reads the shipped markers, queues every segment without one, and
// starts the workers. Markers of segments no longer there are removed.
func (s *Shipper) Start(segs []filesink.Segment, shipped func()) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("s3ship: started twice")
	}
	dir := filepath.Join(s.cfg.Dir, markerDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	marked := map[string]bool{}
	for _, e := range entries {
		marked[e.Name()] = true
	}
	s.mu.Lock()
	s.notify = shipped
	for _, seg := range segs {
		if marked[seg.Name] {
			s.shipped[seg.Name] = true
			delete(marked, seg.Name)
		} else {
			s.pending = append(s.pending, seg)
		}
	}
	n := len(s.pending)
	s.mu.Unlock()
	for name := range marked { // the segment is gone: deleted after it shipped
		_ = os.Remove(filepath.Join(dir, name))
	}
	if n > 0 {
		s.log.Info("segments not shipped yet: shipping them", "segments", n)
		notify(s.wake)
	}
	for range s.cfg.Concurrency {
		s.wg.Go(s.work)
	}
	return nil
}

// Add queues a closed segment.
func (s *Shipper) Add(seg filesink.Segment) {
	s.mu.Lock()
	s.pending = append(s.pending, seg)
	s.mu.Unlock()
	notify(s.wake)
}

// Shipped reports whether the named segment has shipped.
func (s *Shipper) Shipped(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shipped[name]
}

// Forget drops a deleted segment's shipped state.
func (s *Shipper) Forget(name string) {
	s.mu.Lock()
	delete(s.shipped, name)
	s.mu.Unlock()
	_ = os.Remove(filepath.Join(s.cfg.Dir, markerDir, name))
}

// Close lets the workers ship what is queued until ctx ends, then cancels
// the uploads in progress. What has not shipped ships after the next
// Start; Close logs how much that is and returns nil. Safe to call twice.
func (s *Shipper) Close(ctx context.Context) error {
	s.once.Do(func() { close(s.stop) })
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel()
		<-done
	}
	s.cancel()
	if segs, bytes, _ := s.backlog(); segs > 0 {
		s.log.Warn("segments not shipped at shutdown: they ship after the next start", "segments", segs, "bytes", bytes)
	}
	return nil
}

// Backlog returns the segments not shipped yet (queued or uploading),
// their bytes, and when the oldest of them was closed.
func (s *Shipper) backlog() (segments int, bytes int64, oldest time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.pending {
		segments++
		bytes += seg.Size
		if oldest.IsZero() || seg.Closed.Before(oldest) {
			oldest = seg.Closed
		}
	}
	for _, seg := range s.uploading {
		segments++
		bytes += seg.Size
		if oldest.IsZero() || seg.Closed.Before(oldest) {
			oldest = seg.Closed
		}
	}
	return segments, bytes, oldest
}

// work is a worker: it ships the oldest pending segment, again and again,
// backing off after a failure, until Close and nothing is pending, or
// Close's deadline.
func (s *Shipper) work() {
	var enc encoder
	wait := s.cfg.RetryMin
	for {
		seg, ok := s.next()
		if !ok {
			return
		}
		err := s.ship(&enc, seg)
		if err == nil {
			wait = s.cfg.RetryMin
			continue
		}
		select {
		case <-s.stop:
			// Shutting down while uploads fail: what is left ships
			// after the next start, rather than hold the shutdown.
			return
		default:
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, s.cfg.RetryMax)
	}
}

// next takes the oldest pending segment, waiting for one; false once Close
// was called and nothing is pending, or its deadline passed.
func (s *Shipper) next() (filesink.Segment, bool) {
	for {
		s.mu.Lock()
		if len(s.pending) > 0 {
			seg := s.pending[0]
			s.pending = s.pending[1:]
			s.uploading[seg.Name] = seg
			more := len(s.pending) > 0
			s.mu.Unlock()
			if more {
				notify(s.wake) // another worker may take the next
			}
			return seg, true
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-s.stop:
			s.mu.Lock()
			empty := len(s.pending) == 0
			s.mu.Unlock()
			if empty {
				return filesink.Segment{}, false
			}
		case <-s.ctx.Done():
			return filesink.Segment{}, false
		}
	}
}

// ship uploads seg and marks it shipped; on failure it puts seg back at
// the head of the queue, counts and logs the error.
func (s *Shipper) ship(enc *encoder, seg filesink.Segment) error {
	key := s.Key(seg)
	start := time.Now()
	size, err := s.upload(s.ctx, enc, seg, key)
	if err == nil {
		s.latency.Observe(time.Since(start))
		err = s.mark(seg.Name, key)
	}
	s.mu.Lock()
	delete(s.uploading, seg.Name)
	switch {
	case err == nil:
		s.shipped[seg.Name] = true
	case errors.Is(err, os.ErrNotExist):
		// The segment is gone (deleted by someone else): nothing to ship.
	default:
		s.pending = append(s.pending, filesink.Segment{})
		copy(s.pending[1:], s.pending)
		s.pending[0] = seg
	}
	notifyFn := s.notify
	s.mu.Unlock()

	switch {
	case err == nil:
		s.segmentsShipped.Add(1)
		s.bytesShipped.Add(uint64(seg.Size))
		s.bytesUploaded.Add(uint64(size))
		s.recovered()
		if notifyFn != nil {
			notifyFn()
		}
		return nil
	case errors.Is(err, os.ErrNotExist):
		s.missing.Add(1)
		s.log.Error("a segment was deleted before it shipped: its parcels are not in S3", "segment", seg.Name)
		return nil
	}
	if s.ctx.Err() != nil {
		return err // cancelled at shutdown: it ships after the next start
	}
	s.uploadErrors.Add(1)
	s.failed(seg, key, err)
	return err
}

// mark records that a segment has shipped to key.
func (s *Shipper) mark(name, key string) error {
	dir := filepath.Join(s.cfg.Dir, markerDir)
	err := os.MkdirAll(dir, 0o750) // in case someone removed it
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name), []byte(key+"\n"), 0o640)
	}
	if err != nil {
		// Not ErrNotExist, which would say the segment is gone.
		return fmt.Errorf("cannot record the segment as shipped: %v", err)
	}
	return nil
}

// failed logs an upload error: the first of a run at once, then at most
// one line per LogEvery with the count of those not logged.
func (s *Shipper) failed(seg filesink.Segment, key string, err error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	now := time.Now()
	if s.failing && now.Sub(s.lastLogged) < s.cfg.LogEvery {
		s.suppressed++
		return
	}
	s.log.Error("cannot ship a segment to S3; it stays on disk and is retried with backoff",
		"segment", seg.Name, "bucket", s.cfg.Bucket, "key", key, "err", err, "errors_not_logged", s.suppressed)
	s.failing, s.lastLogged, s.suppressed = true, now, 0
}

// recovered logs the end of a run of upload errors.
func (s *Shipper) recovered() {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if s.failing {
		s.log.Info("shipping to S3 works again", "bucket", s.cfg.Bucket, "errors_not_logged", s.suppressed)
		s.failing, s.suppressed = false, 0
	}
}

// notify sends on a channel of capacity 1 without blocking.
func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
