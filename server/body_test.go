package server

import (
	"bytes"
	"compress/flate"
	stdgzip "compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/ingest"
)

// gzipped, zlibbed, deflated and zstded compress s as clients do. The
// standard library's writers make the gzip and deflate bodies, so that the
// server's klauspost readers are checked against another implementation.
func gzipped(s string) string {
	var b bytes.Buffer
	w := stdgzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

func zlibbed(s string) string {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

// deflated is raw RFC 1951 deflate, without the zlib header.
func deflated(s string) string {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.DefaultCompression)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

// zstded compresses s in one frame that declares its size, as EncodeAll
// does.
func zstded(s string) string {
	return string(zstdEncoder.EncodeAll([]byte(s), nil))
}

// zstdStreamed compresses s as a stream: frames with an 8 MiB window and no
// size declared, as a client compressing on the fly sends them.
func zstdStreamed(s string) string {
	var b bytes.Buffer
	w, err := zstd.NewWriter(&b, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdMaxWindow))
	if err != nil {
		panic(err)
	}
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return b.String()
}

var zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))

// ndjsonOf encodes parcels as NDJSON lines.
func ndjsonOf(parcels ...ingest.Parcel) string {
	var b strings.Builder
	for _, p := range parcels {
		fmt.Fprintf(&b, `{"id":%q,"time":%q,"data":%q}`+"\n", p.ID, p.Time, p.Data)
	}
	return b.String()
}

var refNDJSON = ndjsonOf(refParcels...)

func encodingHeader(v string) [][2]string { return [][2]string{{"Content-Encoding", v}} }

// TestCompressedBodiesReachSink posts the reference parcels in every
// supported coding, as JSON and as NDJSON, and checks that exactly those
// parcels reach the sink.
func TestCompressedBodiesReachSink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ctype    string
		encoding string
		body     string
	}{
		{"gzip JSON", "application/json", "gzip", gzipped(refBody)},
		{"x-gzip JSON", "application/json", "x-gzip", gzipped(refBody)},
		{"deflate (zlib) JSON", "application/json", "deflate", zlibbed(refBody)},
		{"deflate (raw) JSON", "application/json", "deflate", deflated(refBody)},
		{"zstd JSON", "application/json", "zstd", zstded(refBody)},
		{"zstd streamed JSON", "application/json", "zstd", zstdStreamed(refBody)},
		{"identity NDJSON", "application/x-ndjson", "", refNDJSON},
		{"gzip NDJSON", "application/x-ndjson", "gzip", gzipped(refNDJSON)},
		{"deflate NDJSON", "application/x-ndjson", "deflate", zlibbed(refNDJSON)},
		{"zstd NDJSON", "application/x-ndjson", "zstd", zstded(refNDJSON)},
		{"gzip multistream JSON", "application/json", "gzip", gzipped(refBody[:100]) + gzipped(refBody[100:])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := startEnv(t, envOptions{})
			r := request{ctype: tt.ctype, body: tt.body}
			if tt.encoding != "" {
				r.headers = encodingHeader(tt.encoding)
			}
			resp := env.do(t, r)
			checkStatus(t, resp, fasthttp.StatusAccepted)
			if got, want := string(resp.Body()), `{"accepted":9}`; got != want {
				t.Fatalf("body: got %q, want %q", got, want)
			}
			waitFor(t, "9 completed parcels", func() bool { return env.disp.Stats().Completed >= 9 })
			got := env.sink.stored()
			slices.SortFunc(got, func(a, b ingest.Parcel) int { return strings.Compare(a.ID, b.ID) })
			if !slices.Equal(got, refParcels) {
				t.Errorf("stored parcels:\ngot  %+v\nwant %+v", got, refParcels)
			}
		})
	}
}

// TestBodyStatusCodes covers content codings and NDJSON through the real
// handler: what is accepted, and the status and message of what is not.
func TestBodyStatusCodes(t *testing.T) {
	t.Parallel()
	atLimit := refBody + strings.Repeat(" ", testMaxBody-len(refBody))
	overLimit := atLimit + " "
	zeros := strings.Repeat("\x00", 64*testMaxBody) // a small bomb: 256 KiB from a few hundred bytes
	gz := gzipped(refBody)
	zs := zstded(refBody)
	// a zstd frame header declaring a 128 MiB window (not single-segment)
	// and an empty last raw block.
	bigWindow := "\x28\xb5\x2f\xfd\x00\x88\x01\x00\x00"
	const goodLine = `{"id":"1","time":"2017-01-01T00:00:01Z","data":"abc"}`

	tests := []struct {
		name   string
		req    request
		status int
		body   string   // for 202: the exact body wanted
		words  []string // for errors: words the message must contain
	}{
		// codings
		{name: "GZIP in capitals", req: request{body: gz, headers: encodingHeader("GZIP")},
			status: 202, body: `{"accepted":9}`},
		{name: "identity around gzip", req: request{body: gz, headers: encodingHeader(" identity , gzip, identity")},
			status: 202, body: `{"accepted":9}`},
		{name: "gzip in a second header", req: request{body: gz, headers: [][2]string{{"Content-Encoding", "identity"}, {"Content-Encoding", "gzip"}}},
			status: 202, body: `{"accepted":9}`},
		{name: "chunked gzip", req: request{body: gz, raw: true, chunked: true, headers: encodingHeader("gzip")},
			status: 202, body: `{"accepted":9}`},
		{name: "decompressed body of exactly MaxBodyBytes (gzip)", req: request{body: gzipped(atLimit), headers: encodingHeader("gzip")},
			status: 202, body: `{"accepted":9}`},
		{name: "decompressed body of exactly MaxBodyBytes (deflate)", req: request{body: zlibbed(atLimit), headers: encodingHeader("deflate")},
			status: 202, body: `{"accepted":9}`},
		{name: "decompressed body of exactly MaxBodyBytes (zstd)", req: request{body: zstded(atLimit), headers: encodingHeader("zstd")},
			status: 202, body: `{"accepted":9}`},
		{name: "decompressed body of exactly MaxBodyBytes (zstd stream)", req: request{body: zstdStreamed(atLimit), headers: encodingHeader("zstd")},
			status: 202, body: `{"accepted":9}`},

		{name: "one byte over MaxBodyBytes decompressed (gzip)", req: request{body: gzipped(overLimit), headers: encodingHeader("gzip")},
			status: 413, words: []string{"decompressed body exceeds MAX_BODY_BYTES", strconv.Itoa(testMaxBody), "after Content-Encoding gzip"}},
		{name: "one byte over MaxBodyBytes decompressed (deflate)", req: request{body: deflated(overLimit), headers: encodingHeader("deflate")},
			status: 413, words: []string{"MAX_BODY_BYTES", "deflate"}},
		{name: "one byte over MaxBodyBytes decompressed (zstd, size declared)", req: request{body: zstded(overLimit), headers: encodingHeader("zstd")},
			status: 413, words: []string{"MAX_BODY_BYTES", "zstd"}},
		{name: "one byte over MaxBodyBytes decompressed (zstd stream)", req: request{body: zstdStreamed(overLimit), headers: encodingHeader("zstd")},
			status: 413, words: []string{"MAX_BODY_BYTES", "zstd"}},
		{name: "gzip bomb", req: request{body: gzipped(zeros), headers: encodingHeader("gzip")},
			status: 413, words: []string{"MAX_BODY_BYTES", "decompressed"}},
		{name: "deflate bomb", req: request{body: zlibbed(zeros), headers: encodingHeader("deflate")},
			status: 413, words: []string{"MAX_BODY_BYTES", "decompressed"}},
		{name: "zstd bomb", req: request{body: zstdStreamed(zeros), headers: encodingHeader("zstd")},
			status: 413, words: []string{"MAX_BODY_BYTES", "decompressed"}},
		{name: "compressed body over MaxBodyBytes", req: request{body: strings.Repeat("x", testMaxBody+1), raw: true, headers: encodingHeader("gzip")},
			status: 413, words: []string{"MAX_BODY_BYTES"}},

		{name: "uncompressed body labelled gzip", req: request{body: refBody, headers: encodingHeader("gzip")},
			status: 400, words: []string{"cannot decompress", "gzip", "invalid header"}},
		{name: "truncated gzip", req: request{body: gz[:len(gz)/2], headers: encodingHeader("gzip")},
			status: 400, words: []string{"cannot decompress", "gzip", "unexpected EOF"}},
		{name: "gzip with a bad checksum", req: request{body: gz[:len(gz)-8] + "\x00\x00\x00\x00" + gz[len(gz)-4:], headers: encodingHeader("gzip")},
			status: 400, words: []string{"gzip", "checksum"}},
		{name: "gzip with trailing garbage", req: request{body: gz + "garbage", headers: encodingHeader("gzip")},
			status: 400, words: []string{"gzip"}},
		{name: "empty body labelled gzip", req: request{headers: encodingHeader("gzip")},
			status: 400, words: []string{"gzip", "unexpected EOF"}},
		{name: "truncated deflate", req: request{body: zlibbed(refBody)[:20], headers: encodingHeader("deflate")},
			status: 400, words: []string{"deflate", "unexpected EOF"}},
		{name: "deflate with trailing data", req: request{body: zlibbed(refBody) + "x", headers: encodingHeader("deflate")},
			status: 400, words: []string{"deflate", "data after the end"}},
		{name: "uncompressed body labelled deflate", req: request{body: refBody, headers: encodingHeader("deflate")},
			status: 400, words: []string{"deflate"}},
		{name: "uncompressed body labelled zstd", req: request{body: refBody, headers: encodingHeader("zstd")},
			status: 400, words: []string{"zstd", "magic"}},
		{name: "truncated zstd", req: request{body: zs[:len(zs)-6], headers: encodingHeader("zstd")},
			status: 400, words: []string{"zstd"}},
		{name: "zstd window over 8 MiB", req: request{body: bigWindow, headers: encodingHeader("zstd")},
			status: 400, words: []string{"zstd", "window", "RFC 9659"}},
		{name: "compressed body without Content-Encoding", req: request{body: gz},
			status: 400, words: []string{"malformed JSON"}},

		{name: "Content-Encoding br", req: request{body: refBody, headers: encodingHeader("br")},
			status: 415, words: []string{`unsupported Content-Encoding "br"`, "gzip, zstd, deflate or identity"}},
		{name: "Content-Encoding compress", req: request{body: refBody, headers: encodingHeader("compress")},
			status: 415, words: []string{`"compress"`}},
		{name: "stacked codings", req: request{body: gzipped(zlibbed(refBody)), headers: encodingHeader("deflate, gzip")},
			status: 415, words: []string{`"deflate" then "gzip"`, "only one coding"}},
		{name: "stacked codings in two headers", req: request{body: gz, headers: [][2]string{{"Content-Encoding", "gzip"}, {"Content-Encoding", "zstd"}}},
			status: 415, words: []string{`"gzip" then "zstd"`}},

		// NDJSON
		{name: "application/x-ndjson", req: request{ctype: "application/x-ndjson", body: refNDJSON},
			status: 202, body: `{"accepted":9}`},
		{name: "application/ndjson", req: request{ctype: "application/ndjson", body: refNDJSON},
			status: 202, body: `{"accepted":9}`},
		{name: "application/jsonl", req: request{ctype: "application/jsonl", body: refNDJSON},
			status: 202, body: `{"accepted":9}`},
		{name: "NDJSON media type in capitals with charset", req: request{ctype: "Application/X-NDJSON; charset=utf-8", body: refNDJSON},
			status: 202, body: `{"accepted":9}`},
		{name: "NDJSON with CRLF and blank lines", req: request{ctype: "application/x-ndjson", body: "\r\n" + goodLine + "\r\n\r\n" + goodLine + "\r\n"},
			status: 202, body: `{"accepted":2}`},
		{name: "NDJSON without a final newline", req: request{ctype: "application/x-ndjson", body: goodLine},
			status: 202, body: `{"accepted":1}`},
		{name: "empty NDJSON", req: request{ctype: "application/x-ndjson"},
			status: 202, body: `{"accepted":0}`},
		{name: "NDJSON of exactly MaxBodyBytes, gzipped",
			req:    request{ctype: "application/x-ndjson", body: gzipped(refNDJSON + strings.Repeat("\n", testMaxBody-len(refNDJSON))), headers: encodingHeader("gzip")},
			status: 202, body: `{"accepted":9}`},
		{name: "NDJSON one byte over MaxBodyBytes, gzipped",
			req:    request{ctype: "application/x-ndjson", body: gzipped(refNDJSON + strings.Repeat("\n", testMaxBody+1-len(refNDJSON))), headers: encodingHeader("gzip")},
			status: 413, words: []string{"MAX_BODY_BYTES"}},
		{name: "NDJSON bad time names the line", req: request{ctype: "application/x-ndjson", body: goodLine + "\n" + goodLine + "\n" + `{"id":"3","time":"yesterday"}` + "\n"},
			status: 400, words: []string{"line 3:", `"time"`, "yesterday"}},
		{name: "NDJSON malformed line", req: request{ctype: "application/x-ndjson", body: goodLine + "\n{\"id\":\n"},
			status: 400, words: []string{"line 2:", "malformed JSON"}},
		{name: "NDJSON line not an object", req: request{ctype: "application/x-ndjson", body: "[1]\n"},
			status: 400, words: []string{"line 1 must be a JSON object", "array"}},
		{name: "JSON body sent as NDJSON", req: request{ctype: "application/x-ndjson", body: refBody},
			status: 400, words: []string{"line 1:", "application/json"}},
		{name: "NDJSON sent as JSON", req: request{ctype: "application/json", body: refNDJSON},
			status: 400, words: []string{"malformed JSON"}},
		{name: "NDJSON error in a gzipped body", req: request{ctype: "application/x-ndjson", body: gzipped(goodLine + "\n" + `{"time":"2017-01-01T00:00:01Z"}`), headers: encodingHeader("gzip")},
			status: 400, words: []string{"line 2:", `"id" is missing`}},
		{name: "JSON text sequences are not NDJSON", req: request{ctype: "application/json-seq", body: refNDJSON},
			status: 415, words: []string{"Content-Type", "application/x-ndjson"}},
	}

	env := startEnv(t, envOptions{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.do(t, tt.req)
			if tt.status >= 400 {
				checkError(t, resp, tt.status, tt.words...)
				// A 415 for the coding says which codings work
				// (RFC 9110 §15.5.16); no other error does.
				wantAccept := ""
				if tt.status == 415 && strings.Contains(errorMessage(t, resp), "Content-Encoding") {
					wantAccept = "gzip, zstd, deflate"
				}
				checkHeader(t, resp, "Accept-Encoding", wantAccept)
				return
			}
			checkStatus(t, resp, tt.status)
			if got := string(resp.Body()); got != tt.body {
				t.Errorf("body: got %q, want %q", got, tt.body)
			}
		})
	}
}

// TestNDJSONAllOrNothing checks that one bad line refuses the whole body,
// compressed or not, and that nothing of it is queued.
func TestNDJSONAllOrNothing(t *testing.T) {
	t.Parallel()
	env := startEnv(t, envOptions{})
	bad := make([]ingest.Parcel, 9)
	for i := range bad {
		bad[i] = ingest.Parcel{ID: strconv.Itoa(11 + i), Time: "2017-01-01T00:00:01Z", Data: "bad batch"}
	}
	bad[8].Time = "yesterday"
	body := ndjsonOf(bad...)

	resp := env.do(t, request{ctype: "application/x-ndjson", body: body})
	checkError(t, resp, fasthttp.StatusBadRequest, "line 9:", `"time"`, "yesterday")
	resp = env.do(t, request{ctype: "application/x-ndjson", body: zstded(body), headers: encodingHeader("zstd")})
	checkError(t, resp, fasthttp.StatusBadRequest, "line 9:")
	if got := env.disp.Stats().Accepted; got != 0 {
		t.Fatalf("dispatcher accepted %d parcels of refused bodies, want 0", got)
	}

	resp = env.do(t, request{ctype: "application/x-ndjson", body: gzipped(refNDJSON), headers: encodingHeader("gzip")})
	checkStatus(t, resp, fasthttp.StatusAccepted)
	waitFor(t, "9 completed parcels", func() bool { return env.disp.Stats().Completed >= 9 })
	got := env.sink.stored()
	slices.SortFunc(got, func(a, b ingest.Parcel) int { return strings.Compare(a.ID, b.ID) })
	if !slices.Equal(got, refParcels) {
		t.Errorf("stored parcels:\ngot  %+v\nwant only the valid batch %+v", got, refParcels)
	}
}

// TestNDJSONDecoderPanic checks that a panic in the NDJSON decoder is
// recovered, answered 500 and counted, as for JSON.
func TestNDJSONDecoderPanic(t *testing.T) {
	t.Parallel()
	srv, err := New(Config{MaxBodyBytes: testMaxBody}, queueFunc(func(time.Time, *ingest.Batch) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	b := ingest.AcquireBatch()
	defer ingest.ReleaseBatch(b)
	err = srv.recoverDecode(func(*ingest.Batch, []byte) error { panic("decoder bug") }, b, []byte(refNDJSON))
	if !errors.Is(err, errDecoderPanic) {
		t.Fatalf("recoverDecode of a panicking decoder = %v; want errDecoderPanic", err)
	}
	if got := srv.Stats().DecoderPanics; got != 1 {
		t.Errorf("DecoderPanics: got %d, want 1", got)
	}
	if err := srv.recoverDecode((*ingest.Batch).DecodeNDJSON, b, []byte(refNDJSON)); err != nil || len(b.Parcels) != 9 {
		t.Errorf("recoverDecode(DecodeNDJSON) = %v with %d parcels; want nil and 9", err, len(b.Parcels))
	}
}

// bombMiB is the inflated size of the decompression bombs below, in MiB.
const bombMiB = 1024

// gzipBomb returns mib MiB of zeros as one gzip member of about mib KiB,
// without compressing them all (that takes seconds, more under -race): it
// compresses 1 MiB of zeros after 1 MiB of zeros once, ending at a sync
// flush, and repeats that piece. Deflate blocks carry no state but the
// 32 KiB window, which is zeros before every piece, so the stream is what
// compressing all the zeros would give (TestBombsAreValid checks it).
func gzipBomb(mib int) []byte {
	zeros := make([]byte, 1<<20)
	var d bytes.Buffer
	w, _ := flate.NewWriter(&d, flate.BestCompression)
	_, _ = w.Write(zeros)
	_ = w.Flush()
	first := d.Len()
	_, _ = w.Write(zeros)
	_ = w.Flush()
	piece := bytes.Clone(d.Bytes()[first:])
	_ = w.Close()
	final := bytes.Clone(d.Bytes()[first+len(piece):])

	b := bytes.NewBuffer([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}) // gzip header: deflate, no name, no time
	b.Write(d.Bytes()[:first])
	crc := crc32.ChecksumIEEE(zeros)
	for range mib - 1 {
		b.Write(piece)
		crc = crc32.Update(crc, crc32.IEEETable, zeros)
	}
	b.Write(final)
	b.Write(binary.LittleEndian.AppendUint32(nil, crc))
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(mib<<20)))
	return b.Bytes()
}

// zstdBomb returns frames × frameMiB MiB of zeros as zstd frames of
// frameMiB MiB each, streamed (no size declared, an 8 MiB window), made by
// compressing one frame and repeating it: a zstd body may hold any number
// of frames.
func zstdBomb(frames, frameMiB int) []byte {
	var f bytes.Buffer
	w, _ := zstd.NewWriter(&f, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdMaxWindow))
	zeros := make([]byte, 1<<20)
	for range frameMiB {
		_, _ = w.Write(zeros)
	}
	_ = w.Close()
	return bytes.Repeat(f.Bytes(), frames)
}

// TestBombsAreValid checks that the bombs' construction gives valid streams
// of zeros, decoded by the standard library's gzip and by zstd, on small
// ones.
func TestBombsAreValid(t *testing.T) {
	t.Parallel()
	zr, err := stdgzip.NewReader(bytes.NewReader(gzipBomb(3)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, make([]byte, 3<<20)) {
		t.Errorf("gzipBomb(3) inflates to %d bytes (want %d zeros), %v", len(got), 3<<20, err)
	}
	zd, err := zstd.NewReader(bytes.NewReader(zstdBomb(3, 1)), zstd.WithDecoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer zd.Close()
	got, err = io.ReadAll(zd)
	if err != nil || !bytes.Equal(got, make([]byte, 3<<20)) {
		t.Errorf("zstdBomb(3, 1) inflates to %d bytes (want %d zeros), %v", len(got), 3<<20, err)
	}
}

// TestDecompressionBomb posts 1 GiB of zeros, compressed, to a server whose
// MaxBodyBytes (2 MiB) lets the compressed body in: it must answer 413 at
// once, having allocated a few MAX_BODY_BYTES at most, never the 1 GiB
// (CVE-2024-36129).
func TestDecompressionBomb(t *testing.T) {
	const limit = 2 << 20
	srv, err := New(Config{MaxBodyBytes: limit}, newNullDispatcher(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		coding string
		body   []byte
		// allocation allowed beyond 4 × limit: a zstd decoder's window
		// (made once per pooled decoder, then reused)
		extra uint64
	}{
		{"gzip", gzipBomb(bombMiB), 0},
		{"zstd", zstdBomb(bombMiB/16, 16), zstdMaxWindow + 1<<20},
	}
	for _, tt := range tests {
		t.Run(tt.coding, func(t *testing.T) {
			if len(tt.body) > limit {
				t.Fatalf("the bomb is %d bytes compressed, more than the %d the test server takes", len(tt.body), limit)
			}
			var ctx fasthttp.RequestCtx
			ctx.Request.Header.SetMethod(fasthttp.MethodPost)
			ctx.Request.SetRequestURI("/")
			ctx.Request.Header.Set("Content-Encoding", tt.coding)
			ctx.Request.SetBodyRaw(tt.body)

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			srv.handle(&ctx)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)

			checkError(t, &ctx.Response, fasthttp.StatusRequestEntityTooLarge, "decompressed body exceeds MAX_BODY_BYTES")
			allocated := after.TotalAlloc - before.TotalAlloc
			t.Logf("%s: %d compressed bytes of a %d-byte bomb refused in %v, allocating %d KiB",
				tt.coding, len(tt.body), bombMiB<<20, elapsed, allocated>>10)
			if budget := 4*uint64(limit) + tt.extra; allocated > budget {
				t.Errorf("the handler allocated %d bytes for the bomb; want at most %d", allocated, budget)
			}
			// Inflating the whole gigabyte takes seconds; the first
			// 2 MiB take milliseconds. The bound is loose for -race.
			if elapsed > 2*time.Second {
				t.Errorf("the handler took %v to refuse the bomb; it should stop after MaxBodyBytes", elapsed)
			}
		})
	}
}

// TestDecompressLimit checks the limit itself on the body reader: at most
// limit bytes come out, and a body of exactly limit bytes is whole.
func TestDecompressLimit(t *testing.T) {
	t.Parallel()
	const limit = 10000
	payload := strings.Repeat("0123456789", limit/10) // exactly limit bytes
	for _, c := range []coding{codingGzip, codingDeflate, codingZstd} {
		for _, extra := range []int{-1, 0, 1, 1000} {
			body := compress(t, c, []byte(payload + strings.Repeat("x", max(extra, 0)))[:limit+extra])
			r := getBodyReader()
			out, err := r.decompress(c, bytes.NewReader(body), nil, limit)
			switch {
			case extra <= 0 && (err != nil || string(out) != payload[:limit+extra]):
				t.Errorf("%s, %d bytes: got %d bytes, %v; want them all", c, limit+extra, len(out), err)
			case extra > 0 && !isStatus(err, fasthttp.StatusRequestEntityTooLarge):
				t.Errorf("%s, %d bytes: got %d bytes, %v; want a 413", c, limit+extra, len(out), err)
			}
			putBodyReader(r)
		}
	}
}

// compress encodes p with coding c; deflate is zlib-wrapped.
func compress(t testing.TB, c coding, p []byte) []byte {
	t.Helper()
	switch c {
	case codingGzip:
		return []byte(gzipped(string(p)))
	case codingDeflate:
		return []byte(zlibbed(string(p)))
	case codingZstd:
		return zstdEncoder.EncodeAll(p, nil)
	}
	t.Fatalf("no compressor for %s", c)
	return nil
}

func isStatus(err error, status int) bool {
	var he *httpError
	return errors.As(err, &he) && he.status == status
}

// FuzzDecompress feeds arbitrary bytes to the body reader as gzip,
// deflate or zstd, with a small limit: it must never panic, never return
// more than the limit, and refuse only with a 400 or a 413. Then the same
// bytes, compressed with that coding, must come back exactly (or get a
// 413 if they are longer than the limit), from the same pooled reader.
//
// Seeds live in testdata/fuzz/FuzzDecompress and run with every go test.
// Explore with: go test ./server -run '^$' -fuzz FuzzDecompress -fuzztime 60s
func FuzzDecompress(f *testing.F) {
	f.Fuzz(func(t *testing.T, sel uint8, data []byte, limit uint16) {
		c := []coding{codingGzip, codingDeflate, codingZstd}[int(sel)%3]
		max := int(limit)%(16<<10) + 1
		r := getBodyReader()
		defer putBodyReader(r)

		out, err := decompressNoPanic(t, r, c, data, max)
		if err == nil && len(out) > max {
			t.Fatalf("%s: %d bytes out with a limit of %d", c, len(out), max)
		}
		if err != nil && !isStatus(err, fasthttp.StatusBadRequest) && !isStatus(err, fasthttp.StatusRequestEntityTooLarge) {
			t.Fatalf("%s: error %v (%T); want a 400 or a 413", c, err, err)
		}

		if len(data) == 0 {
			return // every coding's empty output is an empty body, refused
		}
		var body []byte
		switch {
		case c == codingDeflate && sel&0x80 != 0:
			body = []byte(deflated(string(data)))
		case c == codingZstd && sel&0x80 != 0:
			body = []byte(zstdStreamed(string(data)))
		default:
			body = compress(t, c, data)
		}
		r.reset() // as between two requests
		out, err = decompressNoPanic(t, r, c, body, max)
		switch {
		case len(data) > max || len(body) > max: // the limit bounds the compressed body too
			if !isStatus(err, fasthttp.StatusRequestEntityTooLarge) {
				t.Fatalf("%s: %d bytes (%d compressed) with a limit of %d: got %d bytes, %v; want a 413", c, len(data), len(body), max, len(out), err)
			}
		case err != nil || !bytes.Equal(out, data):
			t.Fatalf("%s round trip of %q: got %q, %v", c, data, out, err)
		}
	})
}

func decompressNoPanic(t *testing.T, r *bodyReader, c coding, body []byte, limit int) (out []byte, err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("decompress(%s, %q, %d) panicked: %v", c, body, limit, p)
		}
	}()
	return r.decompress(c, bytes.NewReader(body), nil, limit)
}

// BenchmarkHandlerGzip is BenchmarkHandler with the reference payload
// gzipped: the cost of inflating it on top of the request path.
func BenchmarkHandlerGzip(b *testing.B) {
	benchmarkHandlerBody(b, "application/json", "gzip", gzipped(refBody))
}

// BenchmarkHandlerZstd is the same with zstd.
func BenchmarkHandlerZstd(b *testing.B) {
	benchmarkHandlerBody(b, "application/json", "zstd", zstded(refBody))
}

// BenchmarkHandlerNDJSON posts the reference parcels as NDJSON lines.
func BenchmarkHandlerNDJSON(b *testing.B) {
	benchmarkHandlerBody(b, "application/x-ndjson", "", refNDJSON)
}

// BenchmarkHandlerGzipNetHTTP is BenchmarkHandlerGzip's twin on net/http,
// with the standard library's gzip reader made for each request and
// io.LimitReader for the limit, as a net/http server commonly does it.
func BenchmarkHandlerGzipNetHTTP(b *testing.B) {
	benchmarkNetHTTP(b, "gzip", gzipped(refBody), func(r *http.Request) ([]byte, error) {
		zr, err := stdgzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(zr, testMaxBody+1))
		if err == nil && len(body) > testMaxBody {
			err = errors.New("decompressed body too large")
		}
		return body, err
	})
}

func TestIsNDJSONMediaType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ct   string
		want bool
	}{
		{"application/x-ndjson", true},
		{"application/ndjson", true},
		{"application/jsonl", true},
		{"Application/X-NDJSON; charset=utf-8", true},
		{" application/jsonl ;q=1", true},
		{"application/json", false},
		{"application/json-seq", false},
		{"application/x-ndjson+json", false},
		{"text/x-ndjson", false},
		{"application/", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isNDJSONMediaType([]byte(tt.ct)); got != tt.want {
			t.Errorf("isNDJSONMediaType(%q): got %v, want %v", tt.ct, got, tt.want)
		}
	}
}

// A zstd frame may declare an 8 MiB window for a body of a few bytes, and
// the decoder allocates its history for the window. Decoders are lent from
// a bounded set, so concurrent requests cannot multiply that memory.
func TestZstdDecoderMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	// Magic, no single-segment flag and no size, an 8 MiB window
	// (exponent 23-10), then one empty last raw block.
	frame := "\x28\xb5\x2f\xfd\x00\x68\x01\x00\x00"
	env := startEnv(t, envOptions{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const requests = 48
	var wg sync.WaitGroup
	for range requests {
		wg.Go(func() {
			// The body decodes to nothing, which is not JSON: 400.
			checkStatus(t, env.do(t, request{body: frame, headers: encodingHeader("zstd")}), fasthttp.StatusBadRequest)
		})
	}
	wg.Wait()
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapInuse) - int64(before.HeapInuse)
	limit := int64(zstdDecoderSlots()+4) * 9 << 20
	t.Logf("%d concurrent 8 MiB-window frames: heap in use grew %d MiB (bound %d MiB, %d decoder slots)",
		requests, grown>>20, limit>>20, zstdDecoderSlots())
	if grown > limit {
		t.Errorf("heap in use grew %d MiB for %d zstd requests; want at most %d MiB", grown>>20, requests, limit>>20)
	}
}

// TestDecompressorPanic: a panic inside the decompressor is answered 500
// and counted like a JSON decoder's, the server keeps serving, and the zstd
// decoder that panicked is not lent again. A zero zstd.Decoder, never made
// by zstd.NewReader, stands in for a decoder left in a broken state: using
// it panics.
func TestDecompressorPanic(t *testing.T) {
	t.Parallel()
	env := startEnv(t, envOptions{})
	slots := cap(env.srv.zstdDecoders)
	for range slots {
		<-env.srv.zstdDecoders
		env.srv.zstdDecoders <- new(zstd.Decoder)
	}
	zstdReq := request{ctype: "application/json", body: zstded(refBody), headers: [][2]string{{"Content-Encoding", "zstd"}}}

	resp := env.do(t, zstdReq)
	checkError(t, resp, fasthttp.StatusInternalServerError, "internal error")
	if got, want := env.srv.Stats(), (Stats{ServerErrors: 1, DecoderPanics: 1}); got != want {
		t.Errorf("Stats after a decompressor panic: got %+v, want %+v", got, want)
	}
	if got := len(env.srv.zstdDecoders); got != slots {
		t.Fatalf("%d zstd decoder slots free after the panic; want all %d back", got, slots)
	}
	// The slots are lent in turn: each broken decoder panics once, then
	// its slot gets a new decoder, and zstd requests succeed again.
	for range slots - 1 {
		checkError(t, env.do(t, zstdReq), fasthttp.StatusInternalServerError, "internal error")
	}
	for range slots {
		checkAccepted(t, env.do(t, zstdReq), `{"accepted":9}`)
	}
	if got := env.srv.Stats().DecoderPanics; got != uint64(slots) {
		t.Errorf("decoder panics = %d; want %d, one per broken decoder", got, slots)
	}
	if got := env.disp.Stats().Accepted; got != uint64(9*slots) {
		t.Errorf("dispatcher accepted %d parcels; want %d", got, 9*slots)
	}
}
