package natssink

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastingest/fastingest/ingest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestAckError reads the replies JetStream gives a publish: the two shapes
// nats-server writes without decoding, anything else decoded, "no
// responders" as jetstream.ErrNoStreamResponse.
func TestAckError(t *testing.T) {
	noResponders := &nats.Msg{Header: nats.Header{"Status": []string{"503"}}}
	for _, tc := range []struct {
		name string
		msg  *nats.Msg
		want string // "" for nil
	}{
		{"acknowledgement", &nats.Msg{Data: []byte(`{"stream":"FASTINGEST","seq":42}`)}, ""},
		{"duplicate", &nats.Msg{Data: []byte(`{"stream":"FASTINGEST","seq":42,"duplicate":true}`)}, ""},
		{"with a domain", &nats.Msg{Data: []byte(`{"stream":"S","domain":"hub","seq":7}`)}, ""},
		{"other key order", &nats.Msg{Data: []byte(`{"seq":7,"stream":"S"}`)}, ""},
		{"a stream named error", &nats.Msg{Data: []byte(`{"stream":"error","seq":1}`)}, ""},
		{"refused", &nats.Msg{Data: []byte(`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"S","seq":0}`)},
			"JetStream refused the message: maximum messages exceeded (503)"},
		{"not JSON", &nats.Msg{Data: []byte(`hello`)}, "unexpected reply to a publish: hello"},
		{"JSON without a stream", &nats.Msg{Data: []byte(`{"seq":7}`)}, "unexpected reply"},
		{"empty", &nats.Msg{}, "empty reply"},
	} {
		err := ackError(tc.msg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: ackError = %v; want nil", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: ackError = %v; want an error saying %q", tc.name, err, tc.want)
		}
	}
	if err := ackError(noResponders); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Errorf("no responders: ackError = %v; want jetstream.ErrNoStreamResponse", err)
	}
}

// TestAckAllocations: reading an acknowledgement allocates nothing.
func TestAckAllocations(t *testing.T) {
	m := &nats.Msg{Data: []byte(`{"stream":"FASTINGEST","seq":42}`)}
	if n := testing.AllocsPerRun(100, func() { _ = ackError(m) }); n != 0 {
		t.Errorf("ackError allocates %v times per acknowledgement; want 0", n)
	}
}

// An acknowledgement that comes after its publish was completed (timed
// out, failed by a disconnect), or that answers no publish, is dropped: the
// parcel was finished once, by what completed it, and the retry's own
// acknowledgement finishes the retry.
func TestLateAcknowledgementIsDropped(t *testing.T) {
	t.Parallel()
	srv := runServer(t, -1, t.TempDir())
	s := newSink(t, testConfig(srv.ClientURL()))
	p := ingest.Parcel{ID: "late", Time: "2017-01-01T00:00:01Z", Data: "x"}
	finished := make(chan error, 2)
	s.slots <- struct{}{}
	s.held.Add(1)
	e := s.newEntry(ingest.NewTask(&p, received, 7, func(err error) { finished <- err }))
	// A publish that was completed without its acknowledgement, as a
	// timeout does: taken out of the pending ones.
	first := s.acks.add(e)
	if s.acks.take(first) != e {
		t.Fatal("pendingAcks.take did not return the entry added")
	}
	// Its acknowledgement, and one for a publish never made, find
	// nothing pending and are dropped.
	late := &nats.Msg{Subject: s.inbox + strconv.FormatUint(first, 10), Data: []byte(`{"stream":"FASTINGEST","seq":1}`)}
	s.onAck(late)
	s.onAck(&nats.Msg{Subject: s.inbox + "999999", Data: late.Data})
	s.onAck(&nats.Msg{Subject: s.inbox + "not-a-number", Data: late.Data})
	select {
	case err := <-e.result:
		t.Fatalf("a dropped acknowledgement completed the publish with %v", err)
	default:
	}
	// The timeout's retry: the first publish to reach the server (the
	// one before was only registered), acknowledged, finished once.
	s.publishFailed(e, errAckTimeout)
	retriedAndFinished(t, finished)
	select {
	case err := <-finished:
		t.Errorf("task finished twice, the second time with %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if msgs := readStream(t, srv.ClientURL(), DefaultStream); len(msgs) != 1 {
		t.Errorf("stream holds %d messages; want 1", len(msgs))
	}
}
