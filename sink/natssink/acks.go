package natssink

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The sink publishes with the core NATS client and reads JetStream's
// acknowledgements itself, rather than through jetstream's PublishMsgAsync:
// that one builds a future (a struct and two channels) per message, and
// decodes every acknowledgement with encoding/json, which together cost
// more CPU than the rest of fastingest's request path (issue 15). Here every
// publish carries a reply subject under one inbox the sink subscribes to
// once; the reply's last token numbers the publish, a map finds its entry,
// and a hand-written check reads the acknowledgement.

// pendingAcks holds the entries whose publish awaits its acknowledgement,
// by the number in their reply subject. Whoever takes an entry out (the
// acknowledgement, the collector's timeout, a disconnect) is the one that
// completes that publish: each publish gets exactly one result.
type pendingAcks struct {
	mu      sync.Mutex
	next    uint64
	entries map[uint64]*entry
}

// add registers e and returns the number of its publish.
func (p *pendingAcks) add(e *entry) uint64 {
	p.mu.Lock()
	p.next++
	n := p.next
	p.entries[n] = e
	p.mu.Unlock()
	return n
}

// take removes and returns the entry of publish n; nil if another took it.
func (p *pendingAcks) take(n uint64) *entry {
	p.mu.Lock()
	e := p.entries[n]
	delete(p.entries, n)
	p.mu.Unlock()
	return e
}

// takeAll removes and returns every pending entry.
func (p *pendingAcks) takeAll() []*entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	all := make([]*entry, 0, len(p.entries))
	for n, e := range p.entries {
		all = append(all, e)
		delete(p.entries, n)
	}
	return all
}

// onAck receives an acknowledgement (or a "no responders" status) on the
// sink's inbox and completes the publish it answers. One that comes after
// its publish was completed otherwise (timed out, failed by a disconnect) is
// dropped: the publish is retried with the same Nats-Msg-Id, which
// JetStream acknowledges as a duplicate.
func (s *Sink) onAck(m *nats.Msg) {
	n, err := strconv.ParseUint(m.Subject[len(s.inbox):], 10, 64)
	if err != nil {
		return
	}
	if e := s.acks.take(n); e != nil {
		e.result <- ackError(m)
	}
}

// failPending completes every publish awaiting its acknowledgement with
// err, so that the retrier publishes them again: after a disconnect their
// acknowledgements may never come.
func (s *Sink) failPending(err error) {
	for _, e := range s.acks.takeAll() {
		e.result <- err
	}
}

var (
	ackPrefix = []byte(`{"stream":`)
	ackSeq    = []byte(`"seq":`)
)

// ackError reads JetStream's answer to a publish: nil for an
// acknowledgement (a duplicate's too: the message is stored),
// jetstream.ErrNoStreamResponse when no stream captures the subject, or
// the error JetStream gave. nats-server writes an acknowledgement as
// {"stream":...,"seq":...} and an error as {"error":{...}}; those two
// shapes are read without decoding, anything else is decoded in full.
func ackError(m *nats.Msg) error {
	data := m.Data
	if len(data) == 0 {
		// The server's "no responders" status, as nats.go reads it.
		if m.Header.Get("Status") == "503" {
			return jetstream.ErrNoStreamResponse
		}
		return errEmptyAck
	}
	if bytes.HasPrefix(data, ackPrefix) && bytes.Contains(data, ackSeq) {
		return nil
	}
	var ack struct {
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
		Stream string `json:"stream"`
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return &AckError{Reply: truncate(data)}
	}
	if ack.Error != nil {
		return &AckError{Code: ack.Error.Code, Description: ack.Error.Description}
	}
	if ack.Stream == "" {
		return &AckError{Reply: truncate(data)}
	}
	return nil
}

// errEmptyAck is an empty reply without a status: not an acknowledgement.
var errEmptyAck = errors.New("natssink: empty reply to a publish")

// AckError is JetStream's refusal of a message, or a reply to a publish
// that is not an acknowledgement.
type AckError struct {
	Code        int    // JetStream's error code, when it gave one
	Description string // its description
	Reply       string // the reply, when it was not an acknowledgement
}

func (e *AckError) Error() string {
	if e.Reply != "" {
		return "natssink: unexpected reply to a publish: " + e.Reply
	}
	return "natssink: JetStream refused the message: " + e.Description + " (" + strconv.Itoa(e.Code) + ")"
}

// truncate returns the start of a reply, for an error message.
func truncate(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// errAckTimeout completes a publish whose acknowledgement did not come
// within AckWait.
var errAckTimeout = errors.New("natssink: no acknowledgement from JetStream within AckWait")
