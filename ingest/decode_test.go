package ingest

import (
	stdjson "encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// referencePayload is the reference client's body: nine parcels.
func referencePayload() []byte {
	var b strings.Builder
	b.WriteString(`{"Data":[`)
	for i := 1; i <= 9; i++ {
		if i > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%d","time":"2017-01-01T00:00:0%dZ","data":"abc%d"}`, i, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func TestDecodeReferencePayload(t *testing.T) {
	t.Parallel()
	parcels, err := Decode(referencePayload())
	if err != nil {
		t.Fatalf("Decode() error = %v", err)
	}
	if len(parcels) != 9 {
		t.Fatalf("len(parcels) = %d; want 9", len(parcels))
	}
	for i, p := range parcels {
		want := Parcel{ID: fmt.Sprint(i + 1), Time: fmt.Sprintf("2017-01-01T00:00:0%dZ", i+1), Data: fmt.Sprintf("abc%d", i+1)}
		if p != want {
			t.Errorf("parcels[%d] = %+v; want %+v", i, p, want)
		}
	}
}

func TestDecodeAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want []Parcel
	}{
		{"empty batch", `{"Data":[]}`, []Parcel{}},
		{"case-insensitive names", `{"data":[{"ID":"a","TIME":"2017-01-01T00:00:01Z","Data":"x"}]}`,
			[]Parcel{{ID: "a", Time: "2017-01-01T00:00:01Z", Data: "x"}}},
		{"unknown fields ignored", `{"Data":[{"id":"a","time":"2017-01-01T00:00:01Z","extra":{"n":[1,2]}}],"other":true}`,
			[]Parcel{{ID: "a", Time: "2017-01-01T00:00:01Z"}}},
		{"data optional", `{"Data":[{"id":"a","time":"2017-01-01T00:00:01Z"}]}`,
			[]Parcel{{ID: "a", Time: "2017-01-01T00:00:01Z"}}},
		{"offset and fraction kept verbatim", `{"Data":[{"id":"a","time":"2017-01-01T01:00:01.123456+01:00","data":""}]}`,
			[]Parcel{{ID: "a", Time: "2017-01-01T01:00:01.123456+01:00"}}},
		{"escapes decoded", `{"Data":[{"id":"\u00e9\n","time":"2017-01-01T00:00:01Z","data":"\"q\""}]}`,
			[]Parcel{{ID: "é\n", Time: "2017-01-01T00:00:01Z", Data: `"q"`}}},
		{"whitespace", " \n{ \"Data\" : [ ] }\n", []Parcel{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.body))
			if err != nil {
				t.Fatalf("Decode(%s) error = %v; want nil", tt.body, err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("Decode(%s) = %d parcels; want %d", tt.body, len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("parcel %d = %+v; want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	t.Parallel()
	const ok = `{"id":"1","time":"2017-01-01T00:00:01Z","data":"abc"}`
	tests := []struct {
		name, body, wantMsg string
	}{
		{"empty body", ``, "malformed JSON at byte 0"},
		{"truncated", `{"Data":[` + ok, "malformed JSON at byte"},
		{"trailing garbage", `{"Data":[]} x`, "malformed JSON at byte 13"},
		{"not an object", `[1,2]`, "body must be a JSON object"},
		{"null body", `null`, "got null"},
		{"Data missing", `{"Parcels":[]}`, `"Data" is missing`},
		{"Data null", `{"Data":null}`, `"Data" must be an array, got null`},
		{"Data an object", `{"Data":{}}`, `"Data" must be an array, got object`},
		{"Data a string", `{"Data":"x"}`, `"Data" must be an array, got string`},
		{"entry not an object", `{"Data":[` + ok + `,7]}`, "Data[1] must be an object, got number"},
		{"entry null", `{"Data":[null]}`, "Data[0] must be an object, got null"},
		{"id missing", `{"Data":[` + ok + `,{"time":"2017-01-01T00:00:01Z"}]}`, `Data[1]: "id" is missing or empty`},
		{"id empty", `{"Data":[{"id":"","time":"2017-01-01T00:00:01Z"}]}`, `Data[0]: "id" is missing or empty`},
		{"id a number", `{"Data":[{"id":1,"time":"2017-01-01T00:00:01Z"}]}`, `Data[0]: "id" must be a string, got number`},
		{"time missing", `{"Data":[{"id":"1"}]}`, `Data[0]: "time" is missing or empty`},
		{"time not RFC 3339", `{"Data":[{"id":"1","time":"2017-01-01 00:00:01"}]}`, `Data[0]: "time" "2017-01-01 00:00:01" is not an RFC 3339 timestamp`},
		{"time a number", `{"Data":[{"id":"1","time":1483228801}]}`, `Data[0]: "time" must be a string, got number`},
		{"data an object", `{"Data":[{"id":"1","time":"2017-01-01T00:00:01Z","data":{}}]}`, `Data[0]: "data" must be a string, got object`},
		{"wrong type in a later entry", `{"Data":[` + ok + `,` + ok + `,{"id":"3","time":"2017-01-01T00:00:01Z","data":true}]}`, `Data[2]: "data" must be a string, got boolean`},
		{"long time value cut", `{"Data":[{"id":"1","time":"` + strings.Repeat("x", 1000) + `"}]}`, `"... is not`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.body))
			if err == nil {
				t.Fatalf("Decode(%.60s) = %d parcels, nil error; want an error", tt.body, len(got))
			}
			if got != nil {
				t.Errorf("Decode(%.60s) returned %d parcels with its error; want none", tt.body, len(got))
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is a %T; want *DecodeError", err, err)
			}
			if !strings.Contains(de.Msg, tt.wantMsg) {
				t.Errorf("error = %q; want it to contain %q", de.Msg, tt.wantMsg)
			}
			if len(de.Msg) > 300 {
				t.Errorf("error message is %d bytes; want it short", len(de.Msg))
			}
		})
	}
}

// TestDecodeEachParcelDistinct guards against the range-variable aliasing
// trap: every task of a request must point at its own parcel.
func TestDecodeEachParcelDistinct(t *testing.T) {
	t.Parallel()
	parcels, err := Decode(referencePayload())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[*Parcel]bool{}
	for i := range parcels {
		p := &parcels[i]
		if seen[p] {
			t.Fatalf("parcel %d shares its address with another", i)
		}
		seen[p] = true
	}
}

// TestDecodeMalformedSequences replays sequences of malformed bodies that
// made go-json panic or corrupt its pooled state (goccy/go-json#604, #575,
// #429), then checks that a valid body still decodes correctly.
func TestDecodeMalformedSequences(t *testing.T) {
	t.Parallel()
	malformed := []string{`[{"x":1},{"y":`, `{"\`, `{"\29\`, `{"\u`, `{"Data":[{"id":"\`, `{"Data":[{"\u12`}
	valid := referencePayload()
	for round := 0; round < 50; round++ {
		for _, m := range malformed {
			if _, err := Decode([]byte(m)); err == nil {
				t.Fatalf("Decode(%q) = nil error; want an error", m)
			}
		}
		parcels, err := Decode(valid)
		if err != nil || len(parcels) != 9 || parcels[8].ID != "9" {
			t.Fatalf("round %d: Decode(valid) = %d parcels, %v; want the 9 reference parcels", round, len(parcels), err)
		}
	}
}

// referenceDecode is Decode's behaviour written with encoding/json, the
// standard the fast path must agree with (see FuzzDecode).
func referenceDecode(body []byte) ([]Parcel, error) {
	var req requestBody
	if err := stdjson.Unmarshal(body, &req); err != nil {
		return nil, err
	}
	if req.Data == nil {
		return nil, errors.New("no Data")
	}
	for i := range *req.Data {
		if err := validate(i, &(*req.Data)[i]); err != nil {
			return nil, err
		}
	}
	return *req.Data, nil
}

func TestWarmDecoder(t *testing.T) {
	t.Parallel()
	if err := WarmDecoder(); err != nil {
		t.Fatalf("WarmDecoder() = %v", err)
	}
}

// TestFastPathTakesTheCommonShape checks which bodies the in-place scanner
// accepts; everything else must fall back to go-json (and so still decode).
func TestFastPathTakesTheCommonShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body string
		fast bool
	}{
		{string(referencePayload()), true},
		{`{"Data":[]}`, true},
		{` { "data" : [ { "TIME" : "2017-01-01T00:00:01Z" , "Id" : "é" } ] } `, true},
		{`{"Data":[{"id":"1","time":"2017-01-01T00:00:01Z","id":"2"}]}`, true},
		{`{"Data":[{"id":"\u0031","time":"2017-01-01T00:00:01Z"}]}`, false},         // escape
		{`{"Data":[{"id":"1","time":"2017-01-01T00:00:01Z","x":1}]}`, false},        // unknown field
		{`{"Data":[],"other":1}`, false},                                            // unknown top-level field
		{`{"Data":[{"id":null,"time":"2017-01-01T00:00:01Z"}]}`, false},             // null
		{"{\"Data\":[{\"id\":\"\xff\",\"time\":\"2017-01-01T00:00:01Z\"}]}", false}, // invalid UTF-8
		{`{"Data":[{"id":"1","time":"yesterday"}]}`, false},                         // invalid: go-json explains
	}
	for _, tt := range tests {
		b := NewBatch(nil)
		b.buf = append(b.buf, tt.body...)
		if got := b.scan(); got != tt.fast {
			t.Errorf("scan(%s) = %v; want %v", tt.body, got, tt.fast)
		}
		// Whichever path, the result is encoding/json's.
		got, gotErr := Decode([]byte(tt.body))
		want, wantErr := referenceDecode([]byte(tt.body))
		if (gotErr == nil) != (wantErr == nil) || !equalParcels(got, want) {
			t.Errorf("Decode(%s) = %+v, %v; encoding/json gives %+v, %v", tt.body, got, gotErr, want, wantErr)
		}
	}
}
