package sink

import (
	"time"
	"unicode/utf8"

	"github.com/fastingest/fastingest/ingest"
)

// AppendRecord appends t's parcel as the JSON object the storing sinks
// write, without a trailing newline:
//
//	{"id":"1","time":"2017-01-01T00:00:01Z","data":"abc","received":"2026-11-29T08:00:00.123456789Z"}
//
// id, time and data are the parcel's values exactly as decoded; received is
// when the server read the request, in UTC with nanoseconds. The result
// holds copies, so it outlives the parcel.
func AppendRecord(dst []byte, t ingest.Task) []byte {
	var e RecordEncoder
	return e.Append(dst, t)
}

// RecordEncoder appends records like AppendRecord, formatting each receive
// time only once for consecutive tasks that share it, as the parcels of
// one request do: formatting the time was the largest part of encoding a
// record. It is not safe for concurrent use.
type RecordEncoder struct {
	received time.Time
	stamp    []byte // received, formatted
}

// Append appends t's record to dst.
func (e *RecordEncoder) Append(dst []byte, t ingest.Task) []byte {
	if e.stamp == nil || !t.Received.Equal(e.received) {
		e.received = t.Received
		e.stamp = t.Received.UTC().AppendFormat(e.stamp[:0], time.RFC3339Nano)
	}
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, t.Parcel.ID)
	dst = append(dst, `,"time":`...)
	dst = appendString(dst, t.Parcel.Time)
	dst = append(dst, `,"data":`...)
	dst = appendString(dst, t.Parcel.Data)
	dst = append(dst, `,"received":"`...)
	dst = append(dst, e.stamp...)
	return append(dst, `"}`...)
}

// appendString appends s as a JSON string. It escapes what JSON requires
// and, like encoding/json, <, > and & (so records are safe to embed in
// HTML) and U+2028/U+2029; invalid UTF-8 cannot occur, since the decoder
// only produces valid strings, but would be replaced by U+FFFD.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plainByte[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// plainByte marks the ASCII bytes a JSON string holds unescaped.
var plainByte = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
