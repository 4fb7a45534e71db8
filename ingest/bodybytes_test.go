package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// newByteBoundDispatcher starts a dispatcher whose queue holds at most
// maxBytes of body bytes, with one worker storing into sink.
func newByteBoundDispatcher(t *testing.T, maxBytes int64, timeout time.Duration, sink Sink) *Dispatcher {
	t.Helper()
	d, err := New(Config{MaxQueue: 1000, MaxQueueBytes: maxBytes, MaxWorkers: 1, Sink: sink, EnqueueTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	return d
}

func freeBodyBytes(d *Dispatcher) int64 { return d.bodyRoom.free.Load() }

// admit reserves body's bytes for a pooled batch, decodes body into it and
// submits it, as the HTTP handler does. It returns the bytes the batch holds
// reserved once decoded.
func admit(t *testing.T, d *Dispatcher, body []byte) (reserved int64, err error) {
	t.Helper()
	b := AcquireBatch()
	if err := d.ReserveBody(b, len(body)); err != nil {
		ReleaseBatch(b)
		return 0, err
	}
	if err := b.Decode(body); err != nil {
		ReleaseBatch(b)
		t.Fatalf("Decode: %v", err)
	}
	reserved = b.bodyReserved
	// At least the body and the buffer it is in, but for the rounding
	// of a new buffer up to the allocator's size class (under 1/8).
	if reserved < int64(len(body)) || int64(cap(b.buf)) > reserved+reserved/8 {
		t.Fatalf("reserved %d bytes for a body of %d in a buffer of %d", reserved, len(body), cap(b.buf))
	}
	if err := d.Submit(time.Now(), b); err != nil { // b is the dispatcher's either way
		return 0, err
	}
	return reserved, nil
}

func TestMaxQueueBytesBoundsTheBodiesHeld(t *testing.T) {
	t.Parallel()
	body := referencePayload()
	n := int64(len(body))
	sink := newGatedSink()
	d := newByteBoundDispatcher(t, 2*n+n/2, 20*time.Millisecond, sink)

	// Two bodies fit while the sink holds everything; a third waits
	// for bytes and gives up, having queued nothing.
	var held int64
	for i := range 2 {
		r, err := admit(t, d, body)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		held += r
	}
	_, err := admit(t, d, body)
	var full *QueueFullError
	if !errors.As(err, &full) || full.Bytes != len(body) {
		t.Fatalf("third request: error = %v; want a *QueueFullError for %d bytes", err, len(body))
	}
	if got, want := d.Stats().Accepted, uint64(18); got != want {
		t.Errorf("accepted = %d; want %d (nothing of the refused request)", got, want)
	}
	if got, want := freeBodyBytes(d), 2*n+n/2-held; got != want {
		t.Errorf("free body bytes = %d; want %d", got, want)
	}

	// Once the parcels are stored, their batches give the bytes back.
	close(sink.release)
	waitFor(t, "the bytes of stored batches given back", func() bool { return freeBodyBytes(d) == 2*n+n/2 })
	if _, err := admit(t, d, body); err != nil {
		t.Fatalf("after the sink caught up: %v", err)
	}
	shutdown(t, d)
	if got, want := freeBodyBytes(d), 2*n+n/2; got != want {
		t.Errorf("free body bytes after shutdown = %d; want %d", got, want)
	}
}

func TestReserveBodyWaitsForBytesFirstComeFirstServed(t *testing.T) {
	t.Parallel()
	body := referencePayload()
	n := int64(len(body))
	sink := newGatedSink()
	d := newByteBoundDispatcher(t, 2*n-1, 0, sink) // 0: wait as long as it takes
	if _, err := admit(t, d, body); err != nil {
		t.Fatal(err)
	}
	admitted := make(chan error, 1)
	go func() {
		b := AcquireBatch()
		err := d.ReserveBody(b, len(body))
		ReleaseBatch(b)
		admitted <- err
	}()
	waitFor(t, "the second request waiting for bytes", func() bool { return d.RecentQueueWait() > 0 })
	select {
	case err := <-admitted:
		t.Fatalf("second reservation returned %v while the first held every byte", err)
	default:
	}
	close(sink.release)
	select {
	case err := <-admitted:
		if err != nil {
			t.Fatalf("second reservation: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second reservation still waiting after the first batch was stored")
	}
	shutdown(t, d)
}

func TestReserveBodyShrinksToTheCopy(t *testing.T) {
	t.Parallel()
	body := referencePayload()
	d := newByteBoundDispatcher(t, 4096, time.Second, &recordingSink{})
	b := AcquireBatch()
	// A compressed body reserves the decompressed bound, then keeps
	// what its copy holds.
	if err := d.ReserveBody(b, 4096); err != nil {
		t.Fatal(err)
	}
	if err := b.Decode(body); err != nil {
		t.Fatal(err)
	}
	if got, want := freeBodyBytes(d), int64(4096-cap(b.buf)); got != want {
		t.Errorf("free body bytes after decoding = %d; want %d", got, want)
	}
	ReleaseBatch(b)
	if got := freeBodyBytes(d); got != 4096 {
		t.Errorf("free body bytes after release = %d; want 4096", got)
	}
	shutdown(t, d)
}

func TestReserveBodyReleasedOnEveryPath(t *testing.T) {
	t.Parallel()
	body := referencePayload()
	const capacity = 1 << 20
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, d *Dispatcher, b *Batch)
	}{
		{"decode error", func(t *testing.T, d *Dispatcher, b *Batch) {
			if err := b.Decode([]byte(`{"Data":[{"id":""}]}`)); err == nil {
				t.Fatal("Decode accepted a parcel without id")
			}
			ReleaseBatch(b)
		}},
		{"NDJSON", func(t *testing.T, d *Dispatcher, b *Batch) {
			if err := b.DecodeNDJSON([]byte(`{"id":"1","time":"2017-01-01T00:00:01Z","data":"x"}` + "\n")); err != nil {
				t.Fatal(err)
			}
			if err := d.Submit(time.Now(), b); err != nil {
				t.Fatal(err)
			}
		}},
		{"empty batch", func(t *testing.T, d *Dispatcher, b *Batch) {
			if err := b.Decode([]byte(`{"Data":[]}`)); err != nil {
				t.Fatal(err)
			}
			if err := d.Submit(time.Now(), b); err != nil {
				t.Fatal(err)
			}
		}},
		{"SubmitAndWait stored", func(t *testing.T, d *Dispatcher, b *Batch) {
			if err := b.Decode(body); err != nil {
				t.Fatal(err)
			}
			if err := d.SubmitAndWait(time.Now(), b, 10*time.Second); err != nil {
				t.Fatal(err)
			}
		}},
		{"refused after shutdown", func(t *testing.T, d *Dispatcher, b *Batch) {
			if err := b.Decode(body); err != nil {
				t.Fatal(err)
			}
			shutdown(t, d)
			if err := d.Submit(time.Now(), b); !errors.Is(err, ErrClosed) {
				t.Fatalf("Submit after Shutdown: %v; want ErrClosed", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newByteBoundDispatcher(t, capacity, time.Second, &recordingSink{})
			b := AcquireBatch()
			if err := d.ReserveBody(b, len(body)); err != nil {
				t.Fatal(err)
			}
			tc.run(t, d, b)
			waitFor(t, "every body byte given back", func() bool { return freeBodyBytes(d) == capacity })
			shutdown(t, d)
		})
	}
}

func TestReserveBodyTimedOutWaiterGetsItsBytesBackLater(t *testing.T) {
	t.Parallel()
	// ACK=persisted: the request stops waiting, its tasks carry on, and
	// the last of them gives the bytes back.
	body := referencePayload()
	sink := newGatedSink()
	d := newByteBoundDispatcher(t, 1<<20, time.Second, sink)
	b := AcquireBatch()
	if err := d.ReserveBody(b, len(body)); err != nil {
		t.Fatal(err)
	}
	if err := b.Decode(body); err != nil {
		t.Fatal(err)
	}
	held := b.bodyReserved
	var notStored *NotStoredError
	if err := d.SubmitAndWait(time.Now(), b, 10*time.Millisecond); !errors.As(err, &notStored) {
		t.Fatalf("SubmitAndWait: %v; want a *NotStoredError", err)
	}
	if got, want := freeBodyBytes(d), 1<<20-held; got != want {
		t.Errorf("free body bytes while the tasks are unfinished = %d; want %d", got, want)
	}
	close(sink.release)
	waitFor(t, "the bytes given back by the last task", func() bool { return freeBodyBytes(d) == 1<<20 })
	shutdown(t, d)
}

func TestReserveBodyTooLarge(t *testing.T) {
	t.Parallel()
	d := newByteBoundDispatcher(t, 1000, time.Second, &recordingSink{})
	b := AcquireBatch()
	err := d.ReserveBody(b, 1001)
	var large *TooLargeError
	if !errors.As(err, &large) || large.Bytes != 1001 || large.MaxBytes != 1000 {
		t.Fatalf("ReserveBody(1001) = %v; want a *TooLargeError for 1001 of 1000 bytes", err)
	}
	ReleaseBatch(b)
	if got := freeBodyBytes(d); got != 1000 {
		t.Errorf("free body bytes = %d; want 1000", got)
	}
	shutdown(t, d)
}

func TestNoByteLimitReservesNothing(t *testing.T) {
	t.Parallel()
	d := newDispatcher(t, 10, 1, &recordingSink{}) // MaxQueueBytes 0
	b := AcquireBatch()
	if err := d.ReserveBody(b, 1<<30); err != nil {
		t.Fatalf("ReserveBody without a limit: %v", err)
	}
	ReleaseBatch(b)
	shutdown(t, d)
}

// TestReservationCountsPooledBuffers: a pooled batch keeps the buffers of
// its largest earlier request; a small body must not hide in one of them
// from MAX_QUEUE_BYTES. Found by review: 50 small requests reserved 3,100
// bytes while holding 3,276,800.
func TestReservationCountsPooledBuffers(t *testing.T) {
	t.Parallel()
	big := []byte(`{"Data":[{"id":"1","time":"2017-01-01T00:00:01Z","data":"` + strings.Repeat("x", 60<<10) + `"}]}`)
	small := []byte(`{"Data":[{"id":"1","time":"2017-01-01T00:00:01Z","data":"x"}]}`)
	var warm []*Batch
	for range 50 {
		b := AcquireBatch()
		if err := b.Decode(big); err != nil {
			t.Fatal(err)
		}
		warm = append(warm, b)
	}
	for _, b := range warm {
		ReleaseBatch(b) // earlier requests, with ~60 KiB bodies
	}
	sink := newGatedSink()
	d := newByteBoundDispatcher(t, 1<<20, time.Second, sink)
	var held int64
	for range 50 {
		b := AcquireBatch()
		if err := d.ReserveBody(b, len(small)); err != nil {
			t.Fatal(err)
		}
		if err := b.Decode(small); err != nil {
			t.Fatal(err)
		}
		held += int64(cap(b.buf) + cap(b.Parcels)*parcelBytes)
		if err := d.Submit(time.Now(), b); err != nil {
			t.Fatal(err)
		}
	}
	reserved := 1<<20 - freeBodyBytes(d)
	if held > 2*reserved+50*minKeptBytes {
		t.Errorf("queued batches hold %d bytes of buffers; MAX_QUEUE_BYTES counts %d of them", held, reserved)
	}
	close(sink.release)
	shutdown(t, d)
}

// TestReleaseBatchTwicePanics: a batch released twice would be handed to
// two requests by the pool; the second release panics instead. Not
// parallel: between the two releases the pool may hand the batch to
// another test.
func TestReleaseBatchTwicePanics(t *testing.T) {
	b := AcquireBatch()
	ReleaseBatch(b)
	defer func() {
		if recover() == nil {
			t.Errorf("a second ReleaseBatch did not panic")
		}
	}()
	ReleaseBatch(b)
}

// TestSubmitOwnsTheBatchOnFailure: a refused Submit or SubmitAndWait has
// released the batch itself, so that the caller has nothing to release.
func TestSubmitOwnsTheBatchOnFailure(t *testing.T) {
	// Not parallel: it looks at a batch once the pool has it back, when
	// another test may have taken it.
	d := newByteBoundDispatcher(t, 1<<20, time.Second, &recordingSink{})
	shutdown(t, d)
	for name, submit := range map[string]func(*Batch) error{
		"Submit":        func(b *Batch) error { return d.Submit(time.Now(), b) },
		"SubmitAndWait": func(b *Batch) error { return d.SubmitAndWait(time.Now(), b, time.Second) },
	} {
		b := AcquireBatch()
		if err := b.Decode([]byte(`{"Data":[{"id":"1","time":"2017-01-01T00:00:01Z","data":"x"}]}`)); err != nil {
			t.Fatal(err)
		}
		if err := submit(b); !errors.Is(err, ErrClosed) {
			t.Fatalf("%s after Shutdown: %v; want ErrClosed", name, err)
		}
		if !b.released {
			t.Errorf("%s refused the batch without releasing it", name)
		}
	}
}
