package ingest

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"
)

// DecodeError says why a request body was refused. Its message is meant for
// the client: it names the entry (as Data[N], counting from 0) and the field
// at fault.
type DecodeError struct {
	Msg string
}

func (e *DecodeError) Error() string { return e.Msg }

func decodeErrorf(format string, args ...any) *DecodeError {
	return &DecodeError{Msg: fmt.Sprintf(format, args...)}
}

// requestBody is the shape of a POST body. Data is a pointer so that a missing
// or null "Data" can be told apart from an empty array.
type requestBody struct {
	Data *[]Parcel `json:"Data"`
}

// Decode parses and validates a whole request body. It returns every parcel,
// or none and a *DecodeError: a body is accepted whole or refused whole.
// Field names match case-insensitively, as with encoding/json, and unknown
// fields are ignored.
//
// body is only read during the call; the returned parcels own their memory.
// The request path uses Batch.Decode, which reuses pooled memory instead.
func Decode(body []byte) ([]Parcel, error) {
	b := NewBatch(nil)
	if err := b.Decode(body); err != nil {
		return nil, err
	}
	return b.Parcels, nil
}

// decodeSlow decodes body with go-json: every shape the fast path leaves
// alone, and every error message.
func decodeSlow(body []byte) ([]Parcel, error) {
	var req requestBody
	if err := json.Unmarshal(body, &req); err != nil {
		if de := diagnose(body); de != nil {
			return nil, de
		}
		return nil, decodeErrorf("cannot decode body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if req.Data == nil {
		if de := diagnose(body); de != nil {
			return nil, de // missing, or null
		}
		return nil, decodeErrorf(`"Data" must be an array, got null`)
	}
	parcels := *req.Data
	for i := range parcels {
		if err := validate(i, &parcels[i]); err != nil {
			// A null entry decodes as an empty parcel; diagnose names
			// it as what it is rather than as a missing "id".
			if de := diagnose(body); de != nil {
				return nil, de
			}
			return nil, err
		}
	}
	return parcels, nil
}

// validate checks what the JSON types alone cannot: required fields and the
// timestamp format.
func validate(i int, p *Parcel) error {
	if validParcel(p) {
		return nil
	}
	return parcelError("Data["+strconv.Itoa(i)+"]", p)
}

// validParcel reports whether p has what every parcel needs: an id and an
// RFC 3339 time. The decoders' fast paths ask only this, which builds no
// message; parcelError explains a refusal.
func validParcel(p *Parcel) bool {
	return p.ID != "" && p.Time != "" && validTime(p.Time)
}

// parcelError says why validParcel refuses p, naming it as where ("Data[3]",
// "line 4").
func parcelError(where string, p *Parcel) error {
	switch {
	case p.ID == "":
		return decodeErrorf(`%s: "id" is missing or empty`, where)
	case p.Time == "":
		return decodeErrorf(`%s: "time" is missing or empty`, where)
	default:
		return decodeErrorf(`%s: "time" %s is not an RFC 3339 timestamp (want e.g. "2017-01-01T00:00:01Z")`, where, quoteShort(p.Time))
	}
}

// diagnose explains what is wrong with the structure of body: its syntax, its
// shape, or the JSON type of a field. It returns nil when it finds nothing.
// It runs only on the error path, so it favours clear messages over speed:
// it walks the body again with encoding/json, whose errors carry byte
// offsets, and names the first entry and field that is wrong.
func diagnose(body []byte) *DecodeError {
	var top map[string]stdjson.RawMessage
	if err := stdjson.Unmarshal(body, &top); err != nil {
		var syn *stdjson.SyntaxError
		var typ *stdjson.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return decodeErrorf("malformed JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
		case errors.As(err, &typ):
			return decodeErrorf(`body must be a JSON object like {"Data":[...]}, got %s`, typ.Value)
		default:
			return decodeErrorf("malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	if top == nil {
		return decodeErrorf(`body must be a JSON object like {"Data":[...]}, got null`)
	}
	data, ok := lookupFold(top, "Data")
	if !ok {
		return decodeErrorf(`"Data" is missing: want {"Data":[...]}`)
	}
	if kind := jsonKind(data); kind != "array" {
		return decodeErrorf(`"Data" must be an array, got %s`, kind)
	}
	var entries []stdjson.RawMessage
	if err := stdjson.Unmarshal(data, &entries); err != nil {
		return decodeErrorf(`"Data": %s`, strings.TrimPrefix(err.Error(), "json: "))
	}
	for i, entry := range entries {
		if kind := jsonKind(entry); kind != "object" {
			return decodeErrorf("Data[%d] must be an object, got %s", i, kind)
		}
		var fields map[string]stdjson.RawMessage
		if err := stdjson.Unmarshal(entry, &fields); err != nil {
			return decodeErrorf("Data[%d]: %s", i, strings.TrimPrefix(err.Error(), "json: "))
		}
		if name, kind := nonStringField(fields); name != "" {
			return decodeErrorf("Data[%d]: %q must be a string, got %s", i, name, kind)
		}
	}
	return nil
}

// nonStringField returns the first parcel field of an entry whose value is
// neither a string nor null, and that value's JSON type; "" when all are
// fine.
func nonStringField(fields map[string]stdjson.RawMessage) (name, kind string) {
	for _, name := range [...]string{"id", "time", "data"} {
		if v, ok := lookupFold(fields, name); ok {
			if kind := jsonKind(v); kind != "string" && kind != "null" {
				return name, kind
			}
		}
	}
	return "", ""
}

// lookupFold finds key in m as encoding/json matches struct fields: an exact
// match first, otherwise any case-insensitive one.
func lookupFold(m map[string]stdjson.RawMessage, key string) (stdjson.RawMessage, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// jsonKind names the type of a syntactically valid JSON value.
func jsonKind(v []byte) string {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// quoteShort quotes s for an error message, cut to a length that keeps a
// hostile client from making the server echo megabytes back.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// warmupBody is a small valid body used by WarmDecoder.
const warmupBody = `{"Data":[{"id":"1","time":"2017-01-01T00:00:01Z","data":"abc"}]}`

// WarmDecoder compiles the decoder for the request type before the first
// request arrives. go-json builds its per-type decoder lazily and caches it;
// doing that once at startup keeps the first requests fast and keeps the
// cache's first fill away from concurrent handlers (goccy/go-json#495).
func WarmDecoder() error {
	// decodeSlow, not Decode: the fast path would take this body and leave
	// go-json cold.
	_, err := decodeSlow([]byte(warmupBody))
	return err
}
