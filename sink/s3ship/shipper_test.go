package s3ship

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/testutil"
	"github.com/fastingest/fastingest/sink/filesink"
)

const bucket = "fastingest-test"

// fakeS3 is gofakes3 in memory behind an httptest server.
type fakeS3 struct {
	url     string
	backend *s3mem.Backend
	parts   atomic.Int64 // UploadPart requests served
}

func newFakeS3(t *testing.T, withBucket bool) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	f := &fakeS3{backend: backend}
	fake := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Query().Has("partNumber") {
			f.parts.Add(1)
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	if withBucket {
		f.createBucket(t)
	}
	return f
}

func (f *fakeS3) createBucket(t *testing.T) {
	t.Helper()
	if err := f.backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
}

var testCredentials = credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", "")

// testConfig is a Config against f, with quick retries.
func (f *fakeS3) config(dir string) Config {
	return Config{Dir: dir, Bucket: bucket, Prefix: DefaultPrefix, Host: "test-host",
		Endpoint: f.url, Region: "us-east-1", Credentials: testCredentials,
		LookupEnv: func(string) (string, bool) { return "", false },
		RetryMin:  5 * time.Millisecond, RetryMax: 50 * time.Millisecond}
}

// client is an S3 client of the test's own, to read back what shipped.
func (f *fakeS3) client() *s3.Client {
	return s3.New(s3.Options{Region: "us-east-1", Credentials: testCredentials, BaseEndpoint: aws.String(f.url),
		UsePathStyle: true})
}

// objects returns every object under prefix: key -> decompressed body.
func (f *fakeS3) objects(t *testing.T, prefix string) map[string][]byte {
	t.Helper()
	c := f.client()
	out := map[string][]byte{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			obj, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[*o.Key] = decompress(t, *o.Key, raw)
		}
	}
	return out
}

func decompress(t *testing.T, key string, raw []byte) []byte {
	t.Helper()
	var r io.Reader
	switch {
	case strings.HasSuffix(key, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		r = zr
	case strings.HasSuffix(key, ".zst"):
		zr, err := zstd.NewReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		defer zr.Close()
		r = zr
	default:
		return raw
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return b
}

// idsIn counts the parcel ids of NDJSON objects; every line must be a
// whole record.
func idsIn(t *testing.T, objects map[string][]byte) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for key, body := range objects {
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec struct{ ID string }
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("%s: a line that is not a record: %q", key, sc.Text())
			}
			seen[rec.ID]++
		}
	}
	return seen
}

func newShipper(t *testing.T, cfg Config) *Shipper {
	t.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return s
}

func newFileSink(t *testing.T, cfg filesink.Config) *filesink.Sink {
	t.Helper()
	s, err := filesink.New(cfg)
	if err != nil {
		t.Fatalf("filesink.New() = %v", err)
	}
	testutil.CloseAtEnd(t, s, 100*time.Millisecond)
	return s
}

// storeParcels stores n parcels named prefix0.., ten at a time, waiting
// until each ten are written, so that the segments rotate between them.
func storeParcels(t *testing.T, s *filesink.Sink, prefix string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		p := ingest.Parcel{ID: fmt.Sprintf("%s%d", prefix, i), Time: "2017-01-01T00:00:01Z", Data: strings.Repeat("d", 60)}
		wg.Add(1)
		if err := s.Store(context.Background(), ingest.NewTask(&p, time.Now(), 1, func(err error) {
			if err != nil {
				t.Errorf("Finish(%v)", err)
			}
			wg.Done()
		})); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			wg.Wait()
		}
	}
	wg.Wait()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func closeSink(t *testing.T, s *filesink.Sink, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close() = %v", err)
	}
}

func wantExactlyOnce(t *testing.T, seen map[string]int, prefix string, n int) {
	t.Helper()
	var missing, twice []string
	for i := range n {
		id := fmt.Sprintf("%s%d", prefix, i)
		switch seen[id] {
		case 0:
			missing = append(missing, id)
		case 1:
		default:
			twice = append(twice, id)
		}
	}
	if len(missing) > 0 || len(twice) > 0 {
		t.Errorf("%s0..%d: %d missing (e.g. %v), %d more than once (e.g. %v)", prefix, n-1,
			len(missing), missing[:min(3, len(missing))], len(twice), twice[:min(3, len(twice))])
	}
}

var keyPattern = regexp.MustCompile(`^fastingest/dt=\d{4}-\d{2}-\d{2}/hour=\d{2}/test-host/\d{8}T\d{6}\.\d{9}Z\.ndjson(\.gz|\.zst)?$`)

// Through the file sink: every closed segment ships, the last one at
// Close, under its deterministic key, each parcel exactly once, in each
// compression.
func TestShipsEveryClosedSegment(t *testing.T) {
	t.Parallel()
	for _, compression := range []string{"gzip", "zstd", "none"} {
		t.Run(compression, func(t *testing.T) {
			f := newFakeS3(t, true)
			dir := t.TempDir()
			cfg := f.config(dir)
			cfg.Compression = compression
			ship := newShipper(t, cfg)
			s := newFileSink(t, filesink.Config{Dir: dir, SegmentBytes: 2048, Shipper: ship})
			storeParcels(t, s, "p", 200)
			closeSink(t, s, 10*time.Second)

			objects := f.objects(t, "")
			if len(objects) < 5 {
				t.Errorf("%d objects for ~24 KB in 2 KB segments; want one per segment", len(objects))
			}
			for key := range objects {
				if !keyPattern.MatchString(key) || !strings.HasSuffix(key, extensions[compression]) {
					t.Errorf("key %q does not have the form prefix/dt=/hour=/host/segment%s", key, extensions[compression])
				}
			}
			wantExactlyOnce(t, idsIn(t, objects), "p", 200)
			segs, _, _ := ship.backlog()
			if segs != 0 || ship.segmentsShipped.Load() != uint64(len(objects)) {
				t.Errorf("backlog %d, shipped %d; want 0 and %d", segs, ship.segmentsShipped.Load(), len(objects))
			}
			markers, _ := os.ReadDir(filepath.Join(dir, markerDir))
			if len(markers) != len(objects) {
				t.Errorf("%d shipped markers for %d objects", len(markers), len(objects))
			}
		})
	}
}

// A segment larger than a part goes up as a multipart upload, streamed,
// and reads back byte for byte.
func TestMultipartUpload(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t, true)
	dir := t.TempDir()
	name := "20261204T170000.000000000Z.ndjson"
	var body bytes.Buffer
	// Two parts: a whole one and the rest (S3's smallest multipart upload).
	for i := 0; body.Len() < MinPartBytes+12345; i++ {
		fmt.Fprintf(&body, `{"id":"m%d","time":"2017-01-01T00:00:01Z","data":"%x","received":"2026-12-04T17:00:00Z"}`+"\n", i, i*7919)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, body.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
	cfg := f.config(dir)
	cfg.Compression = "none"
	cfg.PartBytes = MinPartBytes
	ship := newShipper(t, cfg)
	if err := ship.Start([]filesink.Segment{{Name: name, Path: path, Size: int64(body.Len())}}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the segment to ship", func() bool { return ship.Shipped(name) })
	_ = ship.Close(context.Background())
	objects := f.objects(t, "")
	want := "fastingest/dt=2026-12-04/hour=17/test-host/20261204T170000.000000000Z.ndjson"
	if got, ok := objects[want]; !ok || !bytes.Equal(got, body.Bytes()) {
		t.Fatalf("objects %v; want %s holding the %d bytes of the segment", keysOf(objects), want, body.Len())
	}
	if n := f.parts.Load(); n != 2 {
		t.Errorf("%d parts uploaded; want 2 (a whole part and the rest)", n)
	}
	uploads, err := f.client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil || len(uploads.Uploads) != 0 {
		t.Errorf("multipart uploads left open: %v (%v)", uploads, err)
	}
}

func keysOf(m map[string][]byte) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// The bucket missing: uploads fail, are counted and retried, the backlog
// is visible and the sink stays healthy (it has room); once the bucket
// exists, everything ships.
func TestBucketMissingThenCreated(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t, false)
	dir := t.TempDir()
	var logs testutil.SyncBuffer
	cfg := f.config(dir)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cfg.LogEvery = time.Hour
	ship := newShipper(t, cfg)
	s := newFileSink(t, filesink.Config{Dir: dir, SegmentBytes: 2048, Shipper: ship})
	storeParcels(t, s, "b", 100)
	waitFor(t, "upload errors", func() bool { return ship.uploadErrors.Load() >= 5 })
	if segs, bytes, oldest := ship.backlog(); segs < 2 || bytes == 0 || oldest.IsZero() {
		t.Errorf("backlog = %d segments, %d bytes, oldest %v; want the closed segments", segs, bytes, oldest)
	}
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy() = %v while shipping lags with room on disk; want nil", err)
	}
	var m bytes.Buffer
	s.WriteMetrics(&m)
	for _, want := range []string{"fastingest_s3_backlog_segments ", "fastingest_s3_upload_errors_total "} {
		if !strings.Contains(m.String(), "\n"+want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if n := strings.Count(logs.String(), "cannot ship a segment"); n != 1 {
		t.Errorf("%d lines logging upload errors with LogEvery 1h; want 1", n)
	}

	f.createBucket(t)
	waitFor(t, "the backlog to ship", func() bool { segs, _, _ := ship.backlog(); return segs == 0 })
	if !strings.Contains(logs.String(), "shipping to S3 works again") {
		t.Error("no line saying shipping recovered")
	}
	closeSink(t, s, 10*time.Second)
	wantExactlyOnce(t, idsIn(t, f.objects(t, "")), "b", 100)
}

// RETAIN_BYTES full of segments not shipped: nothing is deleted, the sink
// reports itself unhealthy (503), and once shipping works the shipped
// segments are deleted down to the budget and the sink is healthy again.
func TestRetentionNeverDeletesUnshipped(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t, false)
	dir := t.TempDir()
	ship := newShipper(t, f.config(dir))
	s := newFileSink(t, filesink.Config{Dir: dir, SegmentBytes: 1024, RetainBytes: 4096, Shipper: ship})
	storeParcels(t, s, "r", 150) // ~18 KB: four times the budget
	waitFor(t, "the sink to report the budget full", func() bool { return s.Healthy() != nil })
	if err := s.Healthy(); !strings.Contains(err.Error(), "RETAIN_BYTES") {
		t.Errorf("Healthy() = %v; want the retention error", err)
	}
	if got := idsOnDisk(t, dir); len(got) != 150 {
		t.Errorf("%d parcels on disk while none shipped; want all 150 kept", len(got))
	}
	var m bytes.Buffer
	s.WriteMetrics(&m)
	if !strings.Contains(m.String(), "\nfastingest_file_retention_blocked 1\n") {
		t.Error("fastingest_file_retention_blocked is not 1")
	}

	f.createBucket(t)
	waitFor(t, "the sink to be healthy again", func() bool { return s.Healthy() == nil })
	waitFor(t, "retention to delete shipped segments", func() bool { return diskBytes(t, dir) <= 4096+1024 })
	storeParcels(t, s, "after", 10)
	closeSink(t, s, 10*time.Second)
	seen := idsIn(t, f.objects(t, ""))
	wantExactlyOnce(t, seen, "r", 150)
	wantExactlyOnce(t, seen, "after", 10)
}

func idsOnDisk(t *testing.T, dir string) map[string]int {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	objects := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		objects[n] = b
	}
	return idsIn(t, objects)
}

func diskBytes(t *testing.T, dir string) int64 {
	names, _ := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	var total int64
	for _, n := range names {
		if info, err := os.Stat(n); err == nil {
			total += info.Size()
		}
	}
	return total
}

// Shipped state survives a restart: a new Shipper on the same directory
// does not upload what shipped before, and ships what did not.
func TestShippedStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t, true)
	dir := t.TempDir()
	s := newFileSink(t, filesink.Config{Dir: dir, SegmentBytes: 2048, Shipper: newShipper(t, f.config(dir))})
	storeParcels(t, s, "a", 100)
	closeSink(t, s, 10*time.Second)
	before := f.objects(t, "")

	// A segment left by a crash, never shipped, and a marker whose
	// segment is gone.
	orphan := filepath.Join(dir, markerDir, "20200101T000000.000000000Z.ndjson")
	if err := os.WriteFile(orphan, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	left := "20991231T230000.000000000Z.ndjson"
	if err := os.WriteFile(filepath.Join(dir, left), []byte(`{"id":"left0"}`+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	ship := newShipper(t, f.config(dir))
	s2 := newFileSink(t, filesink.Config{Dir: dir, SegmentBytes: 2048, Shipper: ship})
	waitFor(t, "the segment left to ship", func() bool { return ship.Shipped(left) })
	closeSink(t, s2, 10*time.Second)
	if got := ship.segmentsShipped.Load(); got != 1 {
		t.Errorf("the restarted shipper uploaded %d segments; want only the 1 not shipped before", got)
	}
	after := f.objects(t, "")
	if len(after) != len(before)+1 {
		t.Errorf("%d objects after the restart, %d before; want one more", len(after), len(before))
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("a marker without its segment is still there (%v)", err)
	}
	seen := idsIn(t, after)
	wantExactlyOnce(t, seen, "a", 100)
	wantExactlyOnce(t, seen, "left", 1)
}

// Close with S3 down returns without waiting for the deadline once the
// uploads have failed, and what is left stays on disk.
func TestCloseWhileS3IsDown(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t, false)
	dir := t.TempDir()
	ship := newShipper(t, f.config(dir))
	s := newFileSink(t, filesink.Config{Dir: dir, SegmentBytes: 2048, Shipper: ship})
	storeParcels(t, s, "d", 50)
	start := time.Now()
	closeSink(t, s, time.Minute)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Close took %v with S3 down", took)
	}
	if got := idsOnDisk(t, dir); len(got) != 50 {
		t.Errorf("%d parcels on disk after Close; want all 50, for the next start", len(got))
	}
	if segs, _, _ := ship.backlog(); segs == 0 {
		t.Error("backlog 0 with nothing shipped")
	}
}

func TestKey(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t, true)
	for _, tc := range []struct {
		prefix, compression, host, want string
	}{
		{"fastingest/", "gzip", "ip-10-0-1-5", "fastingest/dt=2026-12-04/hour=07/ip-10-0-1-5/20261204T070809.123456789Z.ndjson.gz"},
		{"", "zstd", "h", "dt=2026-12-04/hour=07/h/20261204T070809.123456789Z.ndjson.zst"},
		{"a/b-", "none", "we ird/host", "a/b-dt=2026-12-04/hour=07/we-ird-host/20261204T070809.123456789Z.ndjson"},
	} {
		cfg := f.config(t.TempDir())
		cfg.Prefix, cfg.Compression, cfg.Host = tc.prefix, tc.compression, tc.host
		s := newShipper(t, cfg)
		seg := filesink.Segment{Name: "20261204T070809.123456789Z.ndjson", Closed: time.Now()}
		if got := s.Key(seg); got != tc.want || s.Key(seg) != got {
			t.Errorf("Key() = %q; want %q, the same every time", got, tc.want)
		}
	}
}

func TestValidators(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		ok   bool
	}{
		{"bucket empty", ValidateBucket(""), true},
		{"bucket", ValidateBucket("my-bucket.logs"), true},
		{"bucket short", ValidateBucket("ab"), false},
		{"bucket upper", ValidateBucket("MyBucket"), false},
		{"bucket underscore", ValidateBucket("my_bucket"), false},
		{"bucket ends with hyphen", ValidateBucket("bucket-"), false},
		{"bucket ip", ValidateBucket("192.168.1.1"), false},
		{"bucket dots", ValidateBucket("a..b"), false},
		{"prefix", ValidatePrefix("fastingest/"), true},
		{"prefix empty", ValidatePrefix(""), true},
		{"prefix slash", ValidatePrefix("/x"), false},
		{"prefix double slash", ValidatePrefix("a//b"), false},
		{"prefix control", ValidatePrefix("a\nb"), false},
		{"prefix long", ValidatePrefix(strings.Repeat("a", 513)), false},
		{"gzip", ValidateCompression("gzip"), true},
		{"zstd", ValidateCompression("zstd"), true},
		{"none", ValidateCompression("none"), true},
		{"lz4", ValidateCompression("lz4"), false},
		{"concurrency", ValidateConcurrency(4), true},
		{"concurrency 0", ValidateConcurrency(0), false},
		{"concurrency 65", ValidateConcurrency(65), false},
	} {
		if (tc.err == nil) != tc.ok {
			t.Errorf("%s: error %v; want ok=%v", tc.name, tc.err, tc.ok)
		}
	}
}

// The endpoint comes from AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL.
func TestEndpointFromEnvironment(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_S3": "http://s3:2"}, "http://s3:2"},
		{map[string]string{"AWS_ENDPOINT_URL": "http://a:1"}, "http://a:1"},
	} {
		cfg := Config{Dir: t.TempDir(), Bucket: bucket, Credentials: testCredentials,
			LookupEnv: func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }}
		s := newShipper(t, cfg)
		if s.endpoint != tc.want || s.checksums {
			t.Errorf("env %v: endpoint %q, checksums %v; want %q and none", tc.env, s.endpoint, s.checksums, tc.want)
		}
	}
}

// The shipper's families are each described and typed.
// TestMetricsPrometheus (e2e) parses them with Prometheus' own parser and
// promlint.
func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	text := shipperMetrics(t)
	testutil.Described(t, text)
	testutil.Family(t, text, "fastingest_s3_segments_shipped_total", "counter")
	testutil.Family(t, text, "fastingest_s3_backlog_oldest_age_seconds", "gauge")
	testutil.Family(t, text, "fastingest_s3_upload_duration_seconds", "histogram")
}

// shipperMetrics returns what a new shipper writes to /metrics.
func shipperMetrics(t *testing.T) string {
	t.Helper()
	f := newFakeS3(t, true)
	s := newShipper(t, f.config(t.TempDir()))
	var b bytes.Buffer
	s.WriteMetrics(&b)
	return b.String()
}
