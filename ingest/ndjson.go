package ingest

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"
)

// DecodeNDJSON copies body into the batch and parses it as newline-delimited
// JSON (NDJSON, JSON Lines): one parcel object per line, such as
// {"id":"1","time":"2017-01-01T00:00:01Z","data":"abc"}. It replaces any
// parcels the batch held. Each line is decoded and validated as an entry of
// a JSON body's "Data" array is (case-insensitive names, unknown fields
// ignored, "id" and an RFC 3339 "time" required), and the body is accepted
// whole or refused whole with a *DecodeError naming the line, counting from
// 1; the batch holds no parcels after an error.
//
// Lines end with "\n"; a "\r" before it is JSON whitespace and so ignored.
// Empty and whitespace-only lines are skipped (a trailing newline, or none,
// are both fine) but still counted, so that "line N" is the line an editor
// shows. A body with no parcel at all is accepted with none, as {"Data":[]}
// is. body is only read during the call.
//
// Lines in the common shape (see Decode) are parsed in place, their strings
// pointing into the batch's copy of the body; any other line goes to go-json
// alone, and the result is the same (FuzzDecodeNDJSON checks it against
// encoding/json).
func (b *Batch) DecodeNDJSON(body []byte) error {
	b.reset()
	b.copyBody(body)
	return b.decodeNDJSON()
}

// DecodeNDJSONFilled is DecodeNDJSON for a body read into the buffer
// BodyBuffer returned (see DecodeFilled): no copy is made.
func (b *Batch) DecodeNDJSONFilled(body []byte) error {
	b.adoptBody(body)
	return b.decodeNDJSON()
}

// decodeNDJSON decodes the batch's body copy, one parcel per line.
func (b *Batch) decodeNDJSON() error {
	s := b.buf
	for n, start := 1, 0; start < len(s); n++ {
		end := len(s)
		if i := bytes.IndexByte(s[start:], '\n'); i >= 0 {
			end = start + i
		}
		line := s[start:end]
		start = end + 1
		i := skipSpace(line, 0)
		if i == len(line) {
			continue // blank
		}
		var p Parcel
		if j, ok := scanEntry(line, i, &p); !ok || skipSpace(line, j) != len(line) || !validParcel(&p) {
			var err error
			if p, err = decodeLine(n, line); err != nil {
				b.dropParcels()
				return err
			}
		}
		b.Parcels = append(b.Parcels, p)
	}
	return nil
}

// decodeLine decodes line n of an NDJSON body with go-json: every line the
// in-place scanner leaves alone, and every error message. The parcel's
// strings are go-json's, not views into the line. (It returns the parcel
// rather than filling one: go-json's argument escapes, and DecodeNDJSON's
// own parcel must stay on the stack.)
func decodeLine(n int, line []byte) (Parcel, error) {
	var p Parcel
	if err := json.Unmarshal(line, &p); err != nil {
		if de := diagnoseLine(n, line); de != nil {
			return p, de
		}
		return p, decodeErrorf("line %d: cannot decode: %s", n, strings.TrimPrefix(err.Error(), "json: "))
	}
	// go-json leaves p alone for a null line, as encoding/json does.
	if kind := jsonKind(line); kind != "object" {
		return p, decodeErrorf("line %d must be a JSON object like %s, got %s", n, exampleLine, kind)
	}
	return p, validateLine(n, &p)
}

// exampleLine shows a parcel line in error messages.
const exampleLine = `{"id":"1","time":"2017-01-01T00:00:01Z","data":"abc"}`

// validateLine is validate, naming the line instead of the entry.
func validateLine(n int, p *Parcel) error {
	if validParcel(p) {
		return nil
	}
	return parcelError("line "+strconv.Itoa(n), p)
}

// diagnoseLine explains what is wrong with the structure of line n: its
// syntax, its JSON type, or the type of a field, as diagnose does for a
// JSON body; nil when it finds nothing. Error path only.
func diagnoseLine(n int, line []byte) *DecodeError {
	var fields map[string]stdjson.RawMessage
	if err := stdjson.Unmarshal(line, &fields); err != nil {
		var syn *stdjson.SyntaxError
		var typ *stdjson.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return decodeErrorf("line %d: malformed JSON at byte %d of the line: %s", n, syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
		case errors.As(err, &typ):
			return decodeErrorf("line %d must be a JSON object like %s, got %s", n, exampleLine, typ.Value)
		default:
			return decodeErrorf("line %d: malformed JSON: %s", n, strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	if fields == nil {
		return decodeErrorf("line %d must be a JSON object like %s, got null", n, exampleLine)
	}
	switch name, kind := nonStringField(fields); {
	case name == "data" && kind == "array":
		// {"Data":[...]}: a JSON body sent as NDJSON.
		return decodeErrorf(`line %d: "data" must be a string, got array (a body like {"Data":[...]} is sent as Content-Type application/json)`, n)
	case name != "":
		return decodeErrorf("line %d: %q must be a string, got %s", n, name, kind)
	}
	return nil
}
