package main

import (
	"runtime"
	"strconv"
	"unsafe"

	"github.com/fastingest/fastingest/ingest"
)

// memoryBound is the most memory a configuration lets fastingest hold,
// whatever its clients do, computed from the settings alone (issue 11: a
// tokenless client could pin a body buffer of its declared Content-Length
// per connection). Each term is bounded by a setting:
//
//   - connections: each holds fasthttp's read buffer (MAX_HEADER_BYTES), its
//     write buffer, request context and goroutine, never a body: the body is
//     read by the handler only once the request is authorized and its bytes
//     are reserved, and fasthttp reads at most one byte of it ahead.
//   - bodies: the body bytes reserved from MAX_QUEUE_BYTES, which requests
//     wait for before reading; decoding that leaves the fast path (escapes,
//     unknown fields) may hold decoded strings as large again.
//   - decompressors: a compressed request reserves MAX_BODY_BYTES, so at
//     most MAX_QUEUE_BYTES / MAX_BODY_BYTES decode at once, each with a
//     flate window or zstd tables and a read buffer; zstd decoders are lent
//     from a fixed set, each with a window of up to 8 MiB.
//   - the queue's tasks and the workers' goroutines.
//   - the sink's own buffers: the file sink's two write groups, and with
//     S3_BUCKET one multipart part and a compressor per upload; the nats
//     and kafka sinks' copies of the records they await acknowledgement
//     for, whose parcels' batches are held meanwhile, so at most
//     MAX_QUEUE_BYTES (and KAFKA_MAX_BUFFERED for kafka).
//
// Go's collector lets the heap grow to twice what is live (GOGC=100), so
// the live total counts twice, on top of a fixed base for the runtime,
// code and metrics.
type memoryBound struct {
	Connections, Bodies, Decompressors, Zstd, Queue, Workers, Sink int64
}

// Per-item costs of memoryBound, measured on linux/amd64 with Go 1.26 and
// rounded up: TestDeclaredBodiesCostNoMemory measures 13.7 KiB per idle
// connection with MAX_HEADER_BYTES at 8 KiB.
const (
	memBase         = 32 << 20 // runtime, code, metrics, pools at rest: 14 MiB measured
	memConnOverhead = 12 << 10 // write buffer, request context, goroutine stack
	memDecompressor = 48 << 10 // a flate window or zstd tables, and a 4 KiB read buffer
	memZstdDecoder  = 9 << 20  // an 8 MiB window (RFC 9659's limit) and its tables
	memWorker       = 8 << 10  // goroutine stack and task channel
	memFileGroups   = 2 << 20  // the file sink's two write groups of 1 MiB
	memS3Upload     = 9 << 20  // an 8 MiB multipart part and a compressor's state
)

func (c config) memoryBound() memoryBound {
	conns := int64(c.MaxConns)
	concurrentDecoders := min(c.MaxQueueBytes/int64(max(c.MaxBodyBytes, 1)), conns)
	return memoryBound{
		Connections:   conns * (c.MaxHeaderBytes + memConnOverhead),
		Bodies:        2 * c.MaxQueueBytes,
		Decompressors: concurrentDecoders * memDecompressor,
		Zstd:          int64(max(4, 2*runtime.GOMAXPROCS(0))) * memZstdDecoder, // server.zstdDecoderSlots
		Queue:         int64(c.MaxQueue) * int64(unsafe.Sizeof(ingest.Task{})),
		Workers:       int64(c.MaxWorkers) * memWorker,
		Sink:          c.sinkMemory(),
	}
}

// sinkMemory is the sink's term of memoryBound.
func (c config) sinkMemory() int64 {
	switch c.Sink {
	case "file":
		if c.S3Bucket != "" {
			return memFileGroups + int64(c.S3UploadConcurrency)*memS3Upload
		}
		return memFileGroups
	case "nats":
		return c.MaxQueueBytes
	case "kafka":
		return min(c.MaxQueueBytes, c.KafkaMaxBuffered)
	}
	return 0
}

// Live is the memory the terms hold at most together.
func (m memoryBound) Live() int64 {
	return m.Connections + m.Bodies + m.Decompressors + m.Zstd + m.Queue + m.Workers + m.Sink
}

// Total is the bound on the process's memory: the base, and the live
// terms twice over for the garbage collector's headroom.
func (m memoryBound) Total() int64 { return memBase + 2*m.Live() }

// memoryFormula spells out Total in terms of the settings, with the
// per-item costs above, for -h.
func memoryFormula() string {
	return formatSize(memBase) + " + 2 × (MAX_CONNS × (MAX_HEADER_BYTES + " + formatSize(memConnOverhead) + ")" +
		" + 2 × MAX_QUEUE_BYTES" +
		" + min(MAX_QUEUE_BYTES / MAX_BODY_BYTES, MAX_CONNS) × " + formatSize(memDecompressor) +
		" + max(4, 2 × GOMAXPROCS) × " + formatSize(memZstdDecoder) +
		" + MAX_QUEUE × " + strconv.Itoa(int(unsafe.Sizeof(ingest.Task{}))) +
		" + MAX_WORKERS × " + formatSize(memWorker) +
		" + the sink's buffers: file " + formatSize(memFileGroups) + " (+ S3_UPLOAD_CONCURRENCY × " + formatSize(memS3Upload) +
		" with S3_BUCKET), nats MAX_QUEUE_BYTES, kafka min(MAX_QUEUE_BYTES, KAFKA_MAX_BUFFERED))"
}

// formatMiB writes a byte count in MiB, rounded up, for log lines.
func formatMiB(n int64) string {
	return strconv.FormatInt((n+(1<<20)-1)>>20, 10) + "MiB"
}
