package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/ingest"
)

// coding is a request body's Content-Encoding. klauspost/compress decodes
// all three compressed ones: its inflate is faster than the standard
// library's, its readers reset without allocating, and the standard library
// has no zstd.
type coding uint8

const (
	codingIdentity coding = iota // no Content-Encoding, or only "identity"
	codingGzip                   // "gzip" (or its alias "x-gzip"), RFC 1952
	codingDeflate                // "deflate": zlib (RFC 1950), or raw RFC 1951 without the zlib header
	codingZstd                   // "zstd", RFC 8878
)

// String returns the coding's Content-Encoding token.
func (c coding) String() string {
	switch c {
	case codingGzip:
		return "gzip"
	case codingDeflate:
		return "deflate"
	case codingZstd:
		return "zstd"
	default:
		return "identity"
	}
}

// parseCoding maps one Content-Encoding token, compared case-insensitively
// as RFC 9110 §8.4.1 asks, to a coding.
func parseCoding(token []byte) (coding, bool) {
	switch {
	case bytes.EqualFold(token, []byte("identity")):
		return codingIdentity, true
	case bytes.EqualFold(token, []byte("gzip")), bytes.EqualFold(token, []byte("x-gzip")):
		return codingGzip, true // RFC 9110 §8.4.1.3: x-gzip is gzip
	case bytes.EqualFold(token, []byte("deflate")):
		return codingDeflate, true
	case bytes.EqualFold(token, []byte("zstd")):
		return codingZstd, true
	}
	return codingIdentity, false
}

// bodyFormat is how a request body is read: undo its content coding, then
// decode it as one JSON object or as NDJSON.
type bodyFormat struct {
	coding coding
	ndjson bool
}

// zstdDecoderSlots is how many zstd decoders a server keeps and lends at
// once: at least 4, twice the CPUs. Decoding is CPU-bound, so more would
// not be faster, and each holds up to zstdMaxWindow: 4 × 8.3 MiB at most on
// a 2-CPU machine.
func zstdDecoderSlots() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// zstdMaxWindow bounds the window a zstd frame may ask for, and with it the
// history buffer a streaming decoder allocates for it. 8 MiB is what
// RFC 9659 sets for the "zstd" content coding (encoders must not exceed it;
// zstd's own levels up to 19 stay within it); larger windows get 400.
const zstdMaxWindow = 8 << 20

// Bodies of unknown length (chunked, or compressed) start in a buffer of
// at least this size and grow by doubling, so that memory follows the body.
const minBodyBuffer = 4 << 10

// bodyReader undoes a request's content coding while the body is read from
// the connection. It is pooled with its decoders, which are costly to make
// (a zstd decoder allocates tens of kilobytes of tables, a flate one its
// 32 KiB window) and cheap to reset: in the steady state a compressed
// request allocates nothing here.
type bodyReader struct {
	raw countingReader // the compressed body as it comes off the connection
	br  *bufio.Reader  // over raw; an io.ByteReader, so no decoder adds a bufio.Reader of its own
	gz  gzip.Reader    // usable from its zero value: Reset makes its flate reader
	zl  io.ReadCloser  // zlib, made on first use
	fl  io.ReadCloser  // raw flate, made on first use
	zs  *zstd.Decoder  // lent by the server for a zstd body (made on first use)
	mem bytes.Reader   // the body when it is in memory rather than on the connection
}

var bodyReaderPool = sync.Pool{New: func() any { return new(bodyReader) }}

func getBodyReader() *bodyReader { return bodyReaderPool.Get().(*bodyReader) }

// putBodyReader returns r to the pool. The request body it read is not
// referenced any more.
func putBodyReader(r *bodyReader) {
	r.reset()
	bodyReaderPool.Put(r)
}

func (r *bodyReader) reset() {
	r.raw = countingReader{}
	r.mem.Reset(nil)
	if r.br != nil {
		r.br.Reset(nil)
	}
}

// countingReader reads at most limit bytes of a compressed body from the
// connection and remembers why it stopped: the decoders report a failed read
// of their source in their own words, and the answer depends on which it
// was (413 for too many bytes, 408 for a timeout, 400 for a broken body).
type countingReader struct {
	src   io.Reader
	n     int   // bytes read
	limit int   // most bytes allowed
	err   error // first error other than io.EOF, errBodyTooLarge past limit
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if left := c.limit + 1 - c.n; len(p) > left {
		p = p[:left] // one byte past the limit says it is exceeded
	}
	n, err := c.src.Read(p)
	c.n += n
	if c.n > c.limit {
		c.err = errBodyTooLarge
		return n, c.err
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// errTrailingData is returned when bytes follow the end of a deflate stream.
var errTrailingData = errors.New("data after the end of the compressed stream")

// errNoProgress guards the read loop against a decoder that returns no data
// and no error for ever.
var errNoProgress = errors.New("the decoder made no progress")

// decompress reads a body of content coding c from src and appends it,
// decompressed, to dst. It reads at most limit compressed bytes and at most
// limit+1 decompressed ones: a body that inflates past limit is refused with
// a 413 as soon as that is known, however far it would have gone on: a
// decompression bomb costs about 2 × limit bytes of allocations and the time
// to inflate limit bytes. (CVE-2024-36129: the OpenTelemetry collector
// bounded the compressed body but not what it inflated to.) Corrupt or
// truncated data gets a 400 naming the coding; a failed read of src, its own
// error (see errReadingBody).
func (r *bodyReader) decompress(c coding, src io.Reader, dst []byte, limit int) ([]byte, error) {
	r.raw = countingReader{src: src, limit: limit}
	if r.br == nil {
		r.br = bufio.NewReaderSize(&r.raw, 4<<10)
	} else {
		r.br.Reset(&r.raw)
	}
	head, err := r.br.Peek(zstd.HeaderMaxSize) // the headers below decide on these bytes
	switch {
	case len(head) == 0 && r.raw.err != nil:
		return nil, r.sourceError(c, limit)
	case len(head) == 0:
		return nil, errCorruptBody(c, io.ErrUnexpectedEOF)
	}
	var dec io.Reader
	switch c {
	case codingGzip:
		// Reset reads the header; multistream (the default) reads
		// concatenated members as one body, as gzip -d does, and
		// refuses anything after the last one as a bad header.
		if err := r.gz.Reset(r.br); err != nil {
			return nil, r.corrupt(c, limit, err)
		}
		dec = &r.gz
	case codingDeflate:
		// RFC 9110 says "deflate" is the zlib format, but some clients
		// have always sent raw deflate; like browsers, take a body whose
		// first two bytes are not a zlib header as raw deflate. A raw
		// stream whose first bytes happen to form a zlib header then
		// fails the zlib checksum: a 400, never a wrong body.
		var err error
		if isZlibHeader(head) {
			if r.zl == nil {
				r.zl, err = zlib.NewReader(r.br)
			} else {
				err = r.zl.(zlib.Resetter).Reset(r.br, nil)
			}
			dec = r.zl
		} else {
			if r.fl == nil {
				r.fl = flate.NewReader(r.br)
			} else {
				err = r.fl.(flate.Resetter).Reset(r.br, nil)
			}
			dec = r.fl
		}
		if err != nil {
			return nil, r.corrupt(c, limit, err)
		}
	case codingZstd:
		// A frame that declares its size says at once whether the
		// body fits.
		var h zstd.Header
		if h.Decode(head) == nil && h.HasFCS && h.FrameContentSize > uint64(limit) {
			return nil, errDecompressedTooLarge(c, limit)
		}
		if r.zs == nil {
			zs, err := zstd.NewReader(nil,
				// One synchronous decoder, no goroutines: the
				// request's own goroutine does the work, and a
				// pooled decoder that the GC drops leaks nothing.
				zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxWindow(zstdMaxWindow),
				// Never decode a whole in-memory input at once
				// (the default for inputs under 128 KiB): that
				// would inflate it all before we could count.
				zstd.WithDecodeBuffersBelow(0),
			)
			if err != nil {
				return nil, fmt.Errorf("cannot make a zstd decoder: %w", err)
			}
			r.zs = zs
		}
		if err := r.zs.Reset(r.br); err != nil {
			return nil, r.corrupt(c, limit, err)
		}
		dec = r.zs
	default:
		return nil, fmt.Errorf("decompress: no content coding to undo")
	}

	out, err := readLimited(dec, dst, limit)
	switch {
	case errors.Is(err, errBodyTooLarge) && r.raw.err == nil:
		return nil, errDecompressedTooLarge(c, limit)
	case err != nil:
		return nil, r.corrupt(c, limit, err)
	case c == codingDeflate:
		// gzip and zstd refuse trailing bytes themselves (as a bad
		// header or frame); zlib and flate stop at the stream's end.
		if _, err := r.br.ReadByte(); err != io.EOF {
			if r.raw.err != nil {
				return nil, r.sourceError(c, limit)
			}
			return nil, errCorruptBody(c, errTrailingData)
		}
	}
	return out, nil
}

// corrupt is the error for a decoder's err: the source's own failure when
// reading the connection failed (the decoder saw that as corrupt data),
// else a 400 for data that is not valid c.
func (r *bodyReader) corrupt(c coding, limit int, err error) error {
	if r.raw.err != nil {
		return r.sourceError(c, limit)
	}
	return errCorruptBody(c, err)
}

// sourceError is the error for a failed read of the compressed body.
func (r *bodyReader) sourceError(c coding, limit int) error {
	if r.raw.err == errBodyTooLarge {
		return &httpError{status: fasthttp.StatusRequestEntityTooLarge,
			msg: "the compressed body exceeds MAX_BODY_BYTES (" + strconv.Itoa(limit) + " bytes); send smaller batches"}
	}
	return errReadingBody(r.raw.err)
}

// isZlibHeader reports whether b starts with an RFC 1950 header: method 8
// (deflate), a window of at most 32 KiB, and a check value that makes the
// first two bytes a multiple of 31.
func isZlibHeader(b []byte) bool {
	return len(b) >= 2 && b[0]&0x0f == 8 && b[0]>>4 <= 7 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0
}

// errBodyTooLarge is readLimited's "more than limit bytes".
var errBodyTooLarge = errors.New("body too large")

// readLimited appends what dec produces to buf until dec ends, and returns
// errBodyTooLarge as soon as that is more than limit bytes. buf grows by
// doubling up to limit+1 bytes, so memory follows the real body size: a
// bomb costs at most about 2 × limit of allocations in all, whatever the
// compressed data claims.
func readLimited(dec io.Reader, buf []byte, limit int) ([]byte, error) {
	if cap(buf) == 0 {
		buf = make([]byte, 0, min(limit+1, minBodyBuffer))
	}
	for zeros := 0; ; {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return buf, errBodyTooLarge
			}
			size := 2 * cap(buf)
			if size >= limit {
				size = limit + 1 // not limit: a full buffer would then grow once more
			}
			grown := make([]byte, len(buf), size)
			copy(grown, buf)
			buf = grown
		}
		n, err := dec.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf, errBodyTooLarge
		}
		switch {
		case err == io.EOF:
			return buf, nil
		case err != nil:
			return buf, err
		case n == 0:
			if zeros++; zeros > 100 {
				return buf, errNoProgress
			}
		default:
			zeros = 0
		}
	}
}

// bodyBound is the most bytes decodeBody can hold in a batch for a
// request whose Content-Length is length (-1: chunked): the body itself,
// or, chunked or compressed, the limit reading stops at.
func (s *Server) bodyBound(length int, f bodyFormat) int {
	if f.coding != codingIdentity || length < 0 {
		return s.cfg.MaxBodyBytes
	}
	return length
}

// decodeBody reads the request body from the connection into b, undoing
// its content coding, and decodes it as format f says, whole or not at all.
// It is called once the request is authorized and b holds a reservation of
// bodyBound bytes: until then the connection holds no more than fasthttp's
// read buffer and the first bytes of the body it reads ahead. A body of
// known length is read into a buffer of exactly its size, one of unknown
// length into one that grows by doubling up to MAX_BODY_BYTES; either way
// the batch keeps it, with no further copy. Panics are recovered, in the
// decompressor (see endDecompress) as in the JSON and NDJSON decoders (see
// recoverDecode).
func (s *Server) decodeBody(b *ingest.Batch, req *fasthttp.Request, f bodyFormat) (err error) {
	src := req.BodyStream()
	length := req.Header.ContentLength()
	var mem []byte
	if src == nil {
		// The body is in memory: set by a caller of the handler, or
		// none (neither Content-Length nor chunked).
		mem = req.Body()
		length = len(mem)
	}
	var body []byte
	switch {
	case f.coding == codingIdentity && src == nil:
		body = append(b.BodyBuffer(length), mem...)
	case f.coding == codingIdentity:
		if body, err = readBody(src, b, length, s.cfg.MaxBodyBytes); err != nil {
			return err
		}
	default:
		r := getBodyReader()
		if src == nil {
			r.mem.Reset(mem)
			src = &r.mem
		}
		if f.coding == codingZstd {
			// A zstd decoder holds a history buffer of up to the
			// 8 MiB window a frame declares, however small the body:
			// decoders are lent from a bounded set, so that
			// concurrent zstd requests cannot multiply that memory.
			r.zs = <-s.zstdDecoders
		}
		defer s.endDecompress(r, f.coding, &err)
		if body, err = r.decompress(f.coding, src, b.BodyBuffer(minBodyBuffer), s.cfg.MaxBodyBytes); err != nil {
			return err
		}
	}
	if f.ndjson {
		return s.recoverDecode((*ingest.Batch).DecodeNDJSONFilled, b, body)
	}
	return s.recoverDecode(s.decode, b, body)
}

// readBody reads an uncompressed body of Content-Length length (-1:
// chunked) from src into b's body buffer. The caller has refused a length
// over limit; a chunked body is cut off past it with a 413.
func readBody(src io.Reader, b *ingest.Batch, length, limit int) ([]byte, error) {
	if length >= 0 {
		body := b.BodyBuffer(length)[:length]
		if _, err := io.ReadFull(src, body); err != nil {
			return nil, errReadingBody(err)
		}
		return body, nil
	}
	body, err := readLimited(src, b.BodyBuffer(minBodyBuffer), limit)
	switch {
	case errors.Is(err, errBodyTooLarge):
		return nil, errBodyOverLimit(limit)
	case err != nil:
		return nil, errReadingBody(err)
	}
	return body, nil
}

// endDecompress ends a request's use of r, deferred by decodeBody. A panic
// in the decompressor becomes errDecoderPanic, as one in the JSON decoder
// does: a bug in a dependency, reached by one hostile body, must not take
// the process down with every queued parcel. A reader or zstd decoder that
// panicked may be in any state, so it is dropped rather than reused; the
// zstd slot goes back empty and gets a new decoder on its next use.
func (s *Server) endDecompress(r *bodyReader, c coding, err *error) {
	p := recover()
	if c == codingZstd {
		zs := r.zs
		if p != nil {
			zs = nil
		}
		s.zstdDecoders <- zs
		r.zs = nil
	}
	if p == nil {
		putBodyReader(r)
		return
	}
	s.notePanic("decompressor ("+c.String()+")", p, int64(r.raw.n))
	*err = errDecoderPanic
}

// notePanic counts a recovered decoder panic and logs it at most once per
// interval.
func (s *Server) notePanic(what string, p any, bodyBytes int64) {
	s.decoderPanics.Add(1)
	if ok, suppressed := s.panicLog.Allow(); ok {
		s.log.Error(what+" panicked; request answered 500, server keeps serving",
			"panic", fmt.Sprint(p), "body_bytes", bodyBytes, "suppressed_since_last", suppressed)
	}
}

// recoverDecode is decodeRecovering for a decoder given as an argument, so
// that NDJSON bodies, and tests, can use it: a panic becomes
// errDecoderPanic, counted and logged at most once per interval.
func (s *Server) recoverDecode(decode func(*ingest.Batch, []byte) error, b *ingest.Batch, body []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.notePanic("JSON decoder", r, int64(len(body)))
			err = errDecoderPanic
		}
	}()
	return decode(b, body)
}

// errBodyOverLimit is the 413 for a body over MAX_BODY_BYTES, by its
// Content-Length or as it was read.
func errBodyOverLimit(limit int) error {
	return &httpError{status: fasthttp.StatusRequestEntityTooLarge,
		msg: "body exceeds MAX_BODY_BYTES (" + strconv.Itoa(limit) + " bytes); send smaller batches"}
}

var (
	errBodyTimeout = &httpError{status: fasthttp.StatusRequestTimeout,
		msg: "timed out reading the request body (READ_TIMEOUT); nothing was accepted"}
	errBodyBroken = &httpError{status: fasthttp.StatusBadRequest,
		msg: "cannot read the request body: it ended before its Content-Length, or its chunked framing is invalid; nothing was accepted"}
)

// errReadingBody is the answer to a failed read of the request body: 408
// when READ_TIMEOUT passed, else 400. The message is fixed: fasthttp's
// errors can quote what the client sent, which is not for logs.
func errReadingBody(err error) error {
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		return errBodyTimeout
	}
	return errBodyBroken
}
