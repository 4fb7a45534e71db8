package ingest

import (
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

// Batch is one request's parcels together with the memory their strings
// point into: a private copy of the request body. Batches are pooled: the
// handler acquires one, Dispatcher.ReserveBody counts the memory its copy
// will hold against MaxQueueBytes, Decode fills it, Submit hands it to the
// dispatcher, and whoever finishes its last task (a worker, a deferred
// sink's Finish, or a SubmitAndWait caller) releases it to the pool, which
// gives the reservation back. A request therefore costs no allocation for
// its body copy or its parcels.
//
// Because the memory is reused, a Parcel's strings are valid only until its
// task is finished: when the Sink's Store returns, or for a DeferredSink that
// took the task, when it calls Finish. A sink that keeps a parcel longer
// must copy it (strings.Clone).
type Batch struct {
	// Parcels are the decoded parcels, in request order.
	Parcels []Parcel

	buf     []byte       // copy of the body; fast-path strings point into it
	pending atomic.Int64 // unfinished tasks, plus waiterRef while a SubmitAndWait waits
	failed  atomic.Int64 // tasks finished with an error
	owner   finisher     // counts each task's outcome: the dispatcher it was submitted to
	pooled  bool         // came from AcquireBatch, so goes back to the pool
	// released is set by ReleaseBatch and cleared by AcquireBatch: a
	// second release of the same batch would hand it to two requests.
	released bool

	// The body bytes reserved for this batch by Dispatcher.ReserveBody,
	// in bodyRoom, given back when the batch is released; and how long
	// the reservation waited, which Submit's wait for places deducts
	// from ENQUEUE_TIMEOUT.
	bodyRoom     *room
	bodyReserved int64
	bodyWaited   time.Duration

	// finished receives one signal from the last task when a waiter is
	// registered; the waiter then releases the batch. Made once per batch.
	finished chan struct{}
}

// waiterRef is the waiter's share of Batch.pending: far above any task
// count, so that one atomic value says both how many tasks are unfinished
// and whether a SubmitAndWait still waits. Deciding who releases the batch
// and who signals whom then never needs two reads that could disagree.
const waiterRef = 1 << 40

// batchPool holds batches between requests. Like fasthttp's request pool it
// is a cache, not state: any batch is as good as a new one.
var batchPool = sync.Pool{New: func() any { return &Batch{pooled: true} }}

// Batches holding more than this are dropped rather than pooled, so that
// one large request does not pin its memory for the life of the process.
const (
	maxPooledBodyBytes = 64 << 10
	maxPooledParcels   = 1024
)

// AcquireBatch returns an empty Batch from the pool.
func AcquireBatch() *Batch {
	b := batchPool.Get().(*Batch)
	b.released = false
	return b
}

// ReleaseBatch returns b to the pool. Call it only for a batch that was not
// submitted (or whose Submit failed): a submitted batch is released by the
// worker that completes its last task.
//
// Releasing a pooled batch twice panics: the pool would hand it to two
// requests at once, each overwriting the other's parcels.
func ReleaseBatch(b *Batch) {
	if !b.pooled {
		b.giveBackBody(0)
		return
	}
	if b.released {
		panic("ingest: batch released twice")
	}
	b.released = true
	b.giveBackBody(0)
	if cap(b.buf) > maxPooledBodyBytes || cap(b.Parcels) > maxPooledParcels {
		return // let the GC have it
	}
	b.reset()
	batchPool.Put(b)
}

// BodyWait is how long ReserveBody waited for the batch's body bytes: 0
// when they were free at once.
func (b *Batch) BodyWait() time.Duration { return b.bodyWaited }

// giveBackBody keeps keep bytes of the body reservation, if there is one,
// and gives the rest back.
func (b *Batch) giveBackBody(keep int64) {
	if b.bodyRoom == nil || b.bodyReserved <= keep {
		return
	}
	b.bodyRoom.release(b.bodyReserved - keep)
	b.bodyReserved = keep
	if keep == 0 {
		b.bodyRoom, b.bodyWaited = nil, 0
	}
}

// copyBody replaces the batch's body copy with body. A reservation made
// for more (a compressed body's bound) shrinks to the memory the copy holds.
func (b *Batch) copyBody(body []byte) {
	b.fitPooled(len(body))
	if cap(b.buf) < len(body) {
		// Exactly the body's size, where append would round up by as
		// much as a quarter: the reservation was made for len(body).
		b.buf = make([]byte, 0, len(body))
	}
	b.buf = append(b.buf[:0], body...)
	b.giveBackBody(int64(cap(b.buf)))
}

// fitPooled lets go of pooled memory far larger than a body of n bytes
// needs. A pooled batch keeps the buffers of its largest earlier request (up
// to maxPooledBodyBytes and maxPooledParcels), and MAX_QUEUE_BYTES must count
// what a queued request really holds, not a 100-byte body in a 64 KiB
// buffer. Steady traffic of similar sizes keeps its buffers and allocates
// nothing.
func (b *Batch) fitPooled(n int) {
	limit := max(2*n, minKeptBytes)
	if cap(b.buf) > limit {
		b.buf = nil
	}
	if cap(b.Parcels)*parcelBytes > limit {
		b.Parcels = nil
	}
}

// minKeptBytes: pooled buffers up to this size are always kept.
const minKeptBytes = 4 << 10

// parcelBytes is the memory of one element of Batch.Parcels.
const parcelBytes = int(unsafe.Sizeof(Parcel{}))

func (b *Batch) reset() {
	b.dropParcels()
	b.buf = b.buf[:0]
	b.pending.Store(0)
	b.failed.Store(0)
	b.owner = nil
}

// dropParcels empties Parcels, clearing the old elements so that no string
// keeps the old buffer, or a decoded string, alive.
func (b *Batch) dropParcels() {
	clear(b.Parcels)
	b.Parcels = b.Parcels[:0]
}

// NewBatch returns a batch of the given parcels, not pooled: for tests and
// callers that build parcels themselves.
func NewBatch(parcels []Parcel) *Batch {
	return &Batch{Parcels: parcels}
}

// taskDone records that one task of the batch is finished. The last task
// releases the batch, or, while a waiter is registered, wakes the waiter,
// which releases it.
func (b *Batch) taskDone() {
	switch b.pending.Add(-1) {
	case 0:
		ReleaseBatch(b)
	case waiterRef:
		b.finished <- struct{}{} // cap 1; the waiter receives it before releasing
	}
}

// wait blocks until every task is finished or timer fires, and reports
// whether they all finished. In both cases the batch is no longer the
// caller's when wait returns: it is released now, or by the last task.
func (b *Batch) wait(timer <-chan time.Time) (finished bool, failed int64) {
	select {
	case <-b.finished:
	case <-timer:
		for {
			v := b.pending.Load()
			if v == waiterRef {
				// The last task has finished and is signalling (or has
				// signalled): take the signal, so that it cannot reach
				// a later use of this batch.
				<-b.finished
				break
			}
			if b.pending.CompareAndSwap(v, v-waiterRef) {
				return false, 0 // tasks remain; the last one releases the batch
			}
		}
	}
	failed = b.failed.Load()
	ReleaseBatch(b)
	return true, failed
}

// Decode copies body into the batch and parses it, replacing any parcels
// the batch held. It accepts the body whole or refuses it whole with a
// *DecodeError; the batch holds no parcels after an error. body is only read
// during the call.
//
// The common shape — an object whose only member is "Data", entries whose
// members are "id", "time" and "data" with plain string values — is parsed
// in place by a scanner that allocates nothing and points the parcels'
// strings into the batch's copy of the body. Anything else (escapes, unknown
// or non-string fields, errors) goes to go-json, whose result is the
// reference: the fast path only accepts what go-json would accept, with the
// same values (the differential fuzz target checks this).
func (b *Batch) Decode(body []byte) error {
	b.reset()
	b.copyBody(body)
	return b.decodeJSON()
}

// BodyBuffer empties b and returns its body buffer, empty, with room for at
// least n bytes, for the caller to read a request body into; the filled
// slice then goes to DecodeFilled or DecodeNDJSONFilled, which take it
// without a copy. n is the body's length when known (the buffer is made at
// exactly that size, the size ReserveBody reserved), else a first guess that
// the caller grows. The buffer is the batch's: the caller must not keep it
// past the decode call.
func (b *Batch) BodyBuffer(n int) []byte {
	b.reset()
	b.fitPooled(n)
	if cap(b.buf) < n {
		b.buf = make([]byte, 0, n)
	}
	return b.buf[:0]
}

// DecodeFilled is Decode for a body read into the buffer BodyBuffer
// returned (or a larger one the caller grew from it): the batch keeps body
// as its copy, and the parcels' strings point into it.
func (b *Batch) DecodeFilled(body []byte) error {
	b.adoptBody(body)
	return b.decodeJSON()
}

// adoptBody makes body the batch's copy of the request body, and shrinks
// a reservation made for more (an unknown length's bound) to the memory it
// holds.
func (b *Batch) adoptBody(body []byte) {
	b.dropParcels()
	b.buf = body
	b.giveBackBody(int64(cap(body)))
}

// decodeJSON decodes the batch's body copy as a JSON object: the fast
// path, else go-json.
func (b *Batch) decodeJSON() error {
	if b.scan() {
		return nil
	}
	b.dropParcels()
	parcels, err := decodeSlow(b.buf)
	if err != nil {
		return err
	}
	b.Parcels = append(b.Parcels, parcels...)
	return nil
}

// scan is the fast path of Decode. It returns false, leaving partial
// parcels behind, whenever the body is not in the common shape or is
// invalid; Decode then starts over with go-json.
func (b *Batch) scan() bool {
	s := b.buf
	i := skipSpace(s, 0)
	if i >= len(s) || s[i] != '{' {
		return false
	}
	i = skipSpace(s, i+1)
	key, i, ok := scanString(s, i)
	if !ok || !asciiEqualFold(key, "data") {
		return false
	}
	i = skipSpace(s, i)
	if i >= len(s) || s[i] != ':' {
		return false
	}
	if i, ok = b.scanEntries(s, skipSpace(s, i+1)); !ok {
		return false
	}
	i = skipSpace(s, i)
	if i >= len(s) || s[i] != '}' {
		return false // more members: unknown fields or a second "Data"
	}
	return skipSpace(s, i+1) == len(s)
}

// scanEntries parses the "Data" array starting at s[i] and returns the index
// after it.
func (b *Batch) scanEntries(s []byte, i int) (int, bool) {
	if i >= len(s) || s[i] != '[' {
		return i, false
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == ']' {
		return i + 1, true
	}
	for {
		var p Parcel
		var ok bool
		// A parcel validParcel refuses goes to the slow path too, which
		// explains what is wrong.
		if i, ok = scanEntry(s, i, &p); !ok || !validParcel(&p) {
			return i, false
		}
		b.Parcels = append(b.Parcels, p)
		i = skipSpace(s, i)
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case ']':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// scanEntry parses one {"id":"..","time":"..","data":".."} object. Members
// may come in any order and any letter case; a repeated member overwrites
// the earlier one, as with encoding/json.
func scanEntry(s []byte, i int, p *Parcel) (int, bool) {
	if i >= len(s) || s[i] != '{' {
		return i, false
	}
	i = skipSpace(s, i+1)
	if i < len(s) && s[i] == '}' {
		return i + 1, true
	}
	for {
		key, j, ok := scanString(s, i)
		if !ok {
			return j, false
		}
		i = skipSpace(s, j)
		if i >= len(s) || s[i] != ':' {
			return i, false
		}
		val, j, ok := scanString(s, skipSpace(s, i+1))
		if !ok {
			return j, false
		}
		switch {
		case asciiEqualFold(key, "id"):
			p.ID = bytesToString(val)
		case asciiEqualFold(key, "time"):
			p.Time = bytesToString(val)
		case asciiEqualFold(key, "data"):
			p.Data = bytesToString(val)
		default:
			return j, false
		}
		i = skipSpace(s, j)
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case ',':
			i = skipSpace(s, i+1)
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// scanString reads a JSON string starting at s[i] that needs no unescaping
// and is valid UTF-8, returning its contents (a view into s) and the index
// after the closing quote.
func scanString(s []byte, i int) ([]byte, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return nil, i, false
	}
	start := i + 1
	ascii := true
	for j := start; j < len(s); j++ {
		c := s[j]
		if plainStringByte[c] {
			continue
		}
		switch {
		case c == '"':
			v := s[start:j]
			if !ascii && !utf8.Valid(v) {
				return nil, j, false // encoding/json would substitute U+FFFD
			}
			return v, j + 1, true
		case c >= utf8.RuneSelf:
			ascii = false
		default:
			return nil, j, false // escapes are for go-json; control bytes are invalid
		}
	}
	return nil, len(s), false
}

// plainStringByte marks the bytes a string's contents can hold with nothing
// to check: printable ASCII but the quote and the backslash. One table
// lookup per byte is the scanner's inner loop.
var plainStringByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func skipSpace(s []byte, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// asciiEqualFold reports whether key equals name, a lower-case name made of
// letters a-z only, ignoring ASCII case. For such names c|0x20 == name[i]
// holds exactly when c is that letter in either case. Non-ASCII keys never
// match and go to go-json, whose Unicode case folding (e.g. the Kelvin sign
// K) is the reference.
func asciiEqualFold(key []byte, name string) bool {
	if len(key) != len(name) {
		return false
	}
	for i := range key {
		if key[i]|0x20 != name[i] {
			return false
		}
	}
	return true
}

// bytesToString views b as a string without copying. The string is valid as
// long as b's memory is not reused, that is until the batch is released.
func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
