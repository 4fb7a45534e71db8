package ingest

import (
	"bytes"
	stdjson "encoding/json"
	"fmt"
	"strings"
	"testing"
)

// referenceNDJSONBody is the reference payload as NDJSON: nine lines.
func referenceNDJSONBody() []byte {
	var b strings.Builder
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, `{"id":"%d","time":"2017-01-01T00:00:0%dZ","data":"abc%d"}`+"\n", i, i, i)
	}
	return []byte(b.String())
}

// decodeNDJSON decodes body into a new, unpooled batch.
func decodeNDJSON(body []byte) ([]Parcel, error) {
	b := NewBatch(nil)
	if err := b.DecodeNDJSON(body); err != nil {
		if len(b.Parcels) != 0 {
			return nil, fmt.Errorf("batch holds %d parcels after error %w", len(b.Parcels), err)
		}
		return nil, err
	}
	return b.Parcels, nil
}

func TestDecodeNDJSONReferencePayload(t *testing.T) {
	t.Parallel()
	parcels, err := decodeNDJSON(referenceNDJSONBody())
	if err != nil {
		t.Fatalf("DecodeNDJSON() error = %v", err)
	}
	want, err := Decode(referencePayload())
	if err != nil {
		t.Fatal(err)
	}
	if !equalParcels(parcels, want) {
		t.Errorf("DecodeNDJSON: got %+v, want the JSON body's %+v", parcels, want)
	}
}

func TestDecodeNDJSONAccepts(t *testing.T) {
	t.Parallel()
	p := func(id, data string) Parcel { return Parcel{ID: id, Time: "2017-01-01T00:00:01Z", Data: data} }
	tests := []struct {
		name string
		body string
		want []Parcel
	}{
		{"one line, no newline", `{"id":"a","time":"2017-01-01T00:00:01Z","data":"x"}`, []Parcel{p("a", "x")}},
		{"trailing newline", `{"id":"a","time":"2017-01-01T00:00:01Z"}` + "\n", []Parcel{p("a", "")}},
		{"CRLF", "{\"id\":\"a\",\"time\":\"2017-01-01T00:00:01Z\"}\r\n{\"id\":\"b\",\"time\":\"2017-01-01T00:00:01Z\"}\r\n",
			[]Parcel{p("a", ""), p("b", "")}},
		{"blank and whitespace lines skipped", "\n  \n\t\r\n{\"id\":\"a\",\"time\":\"2017-01-01T00:00:01Z\"}\n\n\n",
			[]Parcel{p("a", "")}},
		{"empty body", "", []Parcel{}},
		{"only newlines", "\n\r\n\n", []Parcel{}},
		{"spaces around the object", "  {\"id\":\"a\",\"time\":\"2017-01-01T00:00:01Z\"}  \t", []Parcel{p("a", "")}},
		{"case-insensitive names", `{"ID":"a","TIME":"2017-01-01T00:00:01Z","Data":"x"}`, []Parcel{p("a", "x")}},
		{"unknown fields ignored", `{"id":"a","time":"2017-01-01T00:00:01Z","extra":{"n":[1,2]},"k":null}`, []Parcel{p("a", "")}},
		{"escapes (go-json path)", `{"id":"\u0061","time":"2017-01-01T00:00:01Z","data":"line\nbreak"}`, []Parcel{p("a", "line\nbreak")}},
		{"null data", `{"id":"a","time":"2017-01-01T00:00:01Z","data":null}`, []Parcel{p("a", "")}},
		{"fast and slow lines mixed", "{\"id\":\"a\",\"time\":\"2017-01-01T00:00:01Z\",\"data\":\"x\"}\n{\"id\":\"b\",\"time\":\"2017-01-01T00:00:01Z\",\"x\":1}\n{\"id\":\"c\",\"time\":\"2017-01-01T00:00:01Z\"}",
			[]Parcel{p("a", "x"), p("b", ""), p("c", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeNDJSON([]byte(tt.body))
			if err != nil {
				t.Fatalf("DecodeNDJSON(%q) error = %v", tt.body, err)
			}
			if !equalParcels(got, tt.want) {
				t.Errorf("DecodeNDJSON(%q):\ngot  %+v\nwant %+v", tt.body, got, tt.want)
			}
		})
	}
}

func TestDecodeNDJSONRefuses(t *testing.T) {
	t.Parallel()
	const good = `{"id":"1","time":"2017-01-01T00:00:01Z","data":"abc"}`
	tests := []struct {
		name  string
		body  string
		words []string // the message starts with the first
	}{
		{"malformed line", good + "\n" + `{"id":"2",` + "\n" + good, []string{"line 2:", "malformed JSON at byte", "of the line"}},
		{"blank lines still count", "\n\n" + `{"id":"2"` + "\n", []string{"line 3:", "malformed JSON"}},
		{"two objects on a line", good + " " + good, []string{"line 1:", "malformed JSON"}},
		{"pretty-printed object", "{\n\"id\":\"1\",\"time\":\"2017-01-01T00:00:01Z\"\n}", []string{"line 1:", "malformed JSON"}},
		{"JSON body sent as NDJSON", `{"Data":[` + good + `]}`, []string{`line 1: "data" must be a string, got array`, "application/json"}},
		{"array line", good + "\n[" + good + "]", []string{"line 2 must be a JSON object", "array"}},
		{"string line", `"x"`, []string{"line 1 must be a JSON object", "string"}},
		{"null line", good + "\nnull", []string{"line 2 must be a JSON object", "null"}},
		{"number line", `42`, []string{"line 1 must be a JSON object", "number"}},
		{"missing id", `{"time":"2017-01-01T00:00:01Z"}`, []string{`line 1: "id" is missing or empty`}},
		{"empty id", good + "\n" + `{"id":"","time":"2017-01-01T00:00:01Z"}`, []string{`line 2: "id" is missing or empty`}},
		{"missing time", `{"id":"1"}`, []string{`line 1: "time" is missing or empty`}},
		{"bad time", good + "\r\n" + good + "\r\n" + `{"id":"3","time":"yesterday"}` + "\r\n", []string{`line 3: "time" "yesterday" is not an RFC 3339 timestamp`}},
		{"id a number", `{"id":1,"time":"2017-01-01T00:00:01Z"}`, []string{`line 1: "id" must be a string, got number`}},
		{"data an object", `{"id":"1","time":"2017-01-01T00:00:01Z","data":{}}`, []string{`line 1: "data" must be a string, got object`}},
		{"time a boolean", `{"id":"1","time":true}`, []string{`line 1: "time" must be a string, got boolean`}},
		{"lone CR is not a line break", good + "\r" + good, []string{"line 1:", "malformed JSON"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeNDJSON([]byte(tt.body))
			if err == nil {
				t.Fatalf("DecodeNDJSON(%q) = %+v; want an error", tt.body, got)
			}
			de, ok := err.(*DecodeError)
			if !ok {
				t.Fatalf("DecodeNDJSON(%q) error is %T (%v); want *DecodeError", tt.body, err, err)
			}
			if !strings.HasPrefix(de.Msg, tt.words[0]) {
				t.Errorf("error %q: want it to start with %q", de.Msg, tt.words[0])
			}
			for _, w := range tt.words[1:] {
				if !strings.Contains(de.Msg, w) {
					t.Errorf("error %q: want it to contain %q", de.Msg, w)
				}
			}
		})
	}
}

// TestDecodeNDJSONReusesBatch checks that a pooled batch refused with an
// error, then reused, holds only the new body's parcels, and that the
// common shape allocates nothing in the steady state.
func TestDecodeNDJSONReusesBatch(t *testing.T) {
	b := AcquireBatch()
	defer ReleaseBatch(b)
	if err := b.DecodeNDJSON([]byte("{\"id\":\"x\",\"time\":\"2017-01-01T00:00:01Z\"}\n{\"id\":\"\"}")); err == nil {
		t.Fatal("DecodeNDJSON of a bad body: got nil error")
	}
	if len(b.Parcels) != 0 {
		t.Fatalf("after an error the batch holds %d parcels; want 0", len(b.Parcels))
	}
	body := referenceNDJSONBody()
	if err := b.DecodeNDJSON(body); err != nil || len(b.Parcels) != 9 || b.Parcels[8].Data != "abc9" {
		t.Fatalf("DecodeNDJSON(reference) = %+v, %v", b.Parcels, err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := b.DecodeNDJSON(body); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("DecodeNDJSON of the reference lines allocates %.1f times; want 0", allocs)
	}
}

// referenceNDJSON is DecodeNDJSON's behaviour written with encoding/json:
// split at "\n", skip lines of JSON whitespace only, decode every other line
// into a Parcel, which must be a JSON object, and validate it. It returns
// the parcels, or the number of the first line refused.
func referenceNDJSON(body []byte) ([]Parcel, int) {
	parcels := []Parcel{}
	for i, line := range bytes.Split(body, []byte("\n")) {
		if len(bytes.Trim(line, " \t\r")) == 0 {
			continue
		}
		var p Parcel
		if err := stdjson.Unmarshal(line, &p); err != nil || jsonKind(line) != "object" || validate(0, &p) != nil {
			return nil, i + 1
		}
		parcels = append(parcels, p)
	}
	return parcels, 0
}

// FuzzDecodeNDJSON checks DecodeNDJSON against referenceNDJSON: the same
// accept or refuse, the same parcels, the same first bad line, never a
// panic. Like FuzzDecode it feeds sequences: the input is split at NUL
// bytes into up to four bodies decoded in turn into one pooled batch, then
// the reference lines must still decode right.
//
// Seeds live in testdata/fuzz/FuzzDecodeNDJSON and run with every go test.
// Explore with: go test ./ingest -run '^$' -fuzz FuzzDecodeNDJSON -fuzztime 60s
func FuzzDecodeNDJSON(f *testing.F) {
	valid := referenceNDJSONBody()
	f.Fuzz(func(t *testing.T, input []byte) {
		b := AcquireBatch()
		defer ReleaseBatch(b)
		bodies := bytes.SplitN(input, []byte{0}, 4)
		for _, body := range bodies {
			gotErr := decodeNDJSONNoPanic(t, b, body)
			want, badLine := referenceNDJSON(body)
			if (gotErr == nil) != (badLine == 0) {
				t.Fatalf("DecodeNDJSON(%q): error %v; encoding/json refuses line %d (0: none)", body, gotErr, badLine)
			}
			if gotErr == nil {
				if !equalParcels(b.Parcels, want) {
					t.Fatalf("DecodeNDJSON(%q) = %+v; encoding/json gives %+v", body, b.Parcels, want)
				}
				continue
			}
			de, ok := gotErr.(*DecodeError)
			if !ok {
				t.Fatalf("DecodeNDJSON(%q) error is %T; want *DecodeError", body, gotErr)
			}
			if prefix := fmt.Sprintf("line %d", badLine); !strings.HasPrefix(de.Msg, prefix+":") && !strings.HasPrefix(de.Msg, prefix+" ") {
				t.Fatalf("DecodeNDJSON(%q) error %q; want it to name %s", body, de.Msg, prefix)
			}
			if len(b.Parcels) != 0 {
				t.Fatalf("DecodeNDJSON(%q) left %d parcels after an error", body, len(b.Parcels))
			}
		}
		if err := decodeNDJSONNoPanic(t, b, valid); err != nil || len(b.Parcels) != 9 || b.Parcels[0].ID != "1" || b.Parcels[8].Data != "abc9" {
			t.Fatalf("after %d fuzzed bodies, the reference lines decode to %+v, %v", len(bodies), b.Parcels, err)
		}
	})
}

func decodeNDJSONNoPanic(t *testing.T, b *Batch, body []byte) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("DecodeNDJSON(%q) panicked: %v", body, r)
		}
	}()
	return b.DecodeNDJSON(body)
}
