package s3ship

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/fastingest/fastingest/sink/filesink"
)

// requestTimeout bounds one S3 request (a part, or a whole small object),
// so that a connection that hangs does not hold a worker forever.
const requestTimeout = 2 * time.Minute

// extensions are the object keys' endings, by compression.
var extensions = map[string]string{"gzip": ".ndjson.gz", "zstd": ".ndjson.zst", "none": ".ndjson"}

var contentTypes = map[string]string{"gzip": "application/gzip", "zstd": "application/zstd", "none": "application/x-ndjson"}

// Key returns the object key of a segment: the prefix, a UTC date and hour
// partition (of when the segment was opened, which its name says), the
// host, and the segment's name with the compression's extension:
//
//	fastingest/dt=2026-12-04/hour=17/ip-10-0-1-5/20261204T170000.123456789Z.ndjson.gz
//
// The same segment always has the same key, so a retried upload overwrites
// the same object.
func (s *Shipper) Key(seg filesink.Segment) string {
	opened, err := filesink.SegmentOpened(seg.Name)
	if err != nil {
		opened = seg.Closed // not a name the sink gives; still deterministic per file
	}
	opened = opened.UTC()
	base := strings.TrimSuffix(seg.Name, ".ndjson")
	return s.cfg.Prefix + "dt=" + opened.Format("2006-01-02") + "/hour=" + opened.Format("15") + "/" +
		s.host + "/" + base + extensions[s.cfg.Compression]
}

// sanitizeHost keeps a host name usable as one path segment of a key.
func sanitizeHost(h string) string {
	b := []byte(h)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "unknown-host"
	}
	return string(b)
}

// encoder is a worker's compressor, reused from segment to segment.
type encoder struct {
	gz  *gzip.Writer
	zst *zstd.Encoder
	buf []byte // a part being filled
}

// upload compresses the segment into its object: one PutObject when it
// fits in one part, else a multipart upload, streamed part by part so that
// a worker holds one part in memory. It returns the object's size.
func (s *Shipper) upload(ctx context.Context, enc *encoder, seg filesink.Segment, key string) (int64, error) {
	f, err := os.Open(seg.Path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	pw := &partWriter{s: s, ctx: ctx, key: key, buf: enc.buf[:0]}
	defer func() { enc.buf = pw.buf[:0] }()
	var w io.WriteCloser
	switch s.cfg.Compression {
	case "gzip":
		if enc.gz == nil {
			// BestSpeed: about 800 MB/s on NDJSON, a tenth of its size;
			// the CPU it takes is the request path's.
			enc.gz, _ = gzip.NewWriterLevel(pw, gzip.BestSpeed)
		} else {
			enc.gz.Reset(pw)
		}
		w = enc.gz
	case "zstd":
		if enc.zst == nil {
			enc.zst, err = zstd.NewWriter(pw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
			if err != nil {
				return 0, err
			}
		} else {
			enc.zst.Reset(pw)
		}
		w = enc.zst
	default:
		w = nopCloser{pw}
	}
	_, err = io.Copy(w, f)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = pw.finish()
	}
	if err != nil {
		pw.abort()
		return 0, err
	}
	return pw.size, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// partWriter takes the compressed stream and uploads it: parts of at least
// PartBytes while it flows, then the last part, or the whole object with
// one PutObject when it never filled a part.
type partWriter struct {
	s        *Shipper
	ctx      context.Context
	key      string
	buf      []byte
	uploadID *string
	parts    []types.CompletedPart
	size     int64
}

func (p *partWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	if len(p.buf) >= p.s.cfg.PartBytes {
		if err := p.uploadPart(); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// uploadPart uploads the buffer as the next part, starting the multipart
// upload first if need be.
func (p *partWriter) uploadPart() error {
	s := p.s
	if p.uploadID == nil {
		in := &s3.CreateMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &p.key,
			ContentType: aws.String(contentTypes[s.cfg.Compression])}
		if s.checksums {
			in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
		}
		ctx, cancel := context.WithTimeout(p.ctx, requestTimeout)
		out, err := s.client.CreateMultipartUpload(ctx, in)
		cancel()
		if err != nil {
			return fmt.Errorf("cannot start a multipart upload: %w", err)
		}
		p.uploadID = out.UploadId
	}
	n := aws.Int32(int32(len(p.parts) + 1))
	in := &s3.UploadPartInput{Bucket: &s.cfg.Bucket, Key: &p.key, UploadId: p.uploadID, PartNumber: n,
		Body: bytes.NewReader(p.buf), ContentLength: aws.Int64(int64(len(p.buf)))}
	if s.checksums {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	ctx, cancel := context.WithTimeout(p.ctx, requestTimeout)
	out, err := s.client.UploadPart(ctx, in)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot upload part %d: %w", *n, err)
	}
	p.parts = append(p.parts, types.CompletedPart{PartNumber: n, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	p.size += int64(len(p.buf))
	p.buf = p.buf[:0]
	return nil
}

// finish uploads what is left: the whole object, or the last part and the
// completion of the multipart upload.
func (p *partWriter) finish() error {
	s := p.s
	if p.uploadID == nil {
		ctx, cancel := context.WithTimeout(p.ctx, requestTimeout)
		defer cancel()
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.cfg.Bucket, Key: &p.key,
			Body: bytes.NewReader(p.buf), ContentLength: aws.Int64(int64(len(p.buf))),
			ContentType: aws.String(contentTypes[s.cfg.Compression])})
		if err != nil {
			return fmt.Errorf("cannot put the object: %w", err)
		}
		p.size = int64(len(p.buf))
		return nil
	}
	if len(p.buf) > 0 {
		if err := p.uploadPart(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(p.ctx, requestTimeout)
	defer cancel()
	_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &s.cfg.Bucket,
		Key: &p.key, UploadId: p.uploadID, MultipartUpload: &types.CompletedMultipartUpload{Parts: p.parts}})
	if err != nil {
		return fmt.Errorf("cannot complete the multipart upload: %w", err)
	}
	p.uploadID = nil
	return nil
}

// abort abandons a multipart upload that was started and not completed,
// so that its parts do not stay billed; best effort, also after ctx ended.
func (p *partWriter) abort() {
	if p.uploadID == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), 10*time.Second)
	defer cancel()
	_, err := p.s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &p.s.cfg.Bucket,
		Key: &p.key, UploadId: p.uploadID})
	if err != nil && !errors.Is(err, context.Canceled) {
		p.s.log.Warn("cannot abort a multipart upload; a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes its parts",
			"key", p.key, "err", err)
	}
}
