package ingest

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode feeds the decoder sequences of bodies, not only single ones:
// go-json has had panics that only a sequence of different malformed inputs
// triggers, through state pooled between calls (goccy/go-json#604). The
// input is split at NUL bytes into up to eight bodies decoded in turn, and a
// valid body decoded after them must still come out right.
//
// Each body must be accepted or refused exactly as encoding/json with the
// same validation would (differential check), and must never panic.
//
// Seeds live in testdata/fuzz/FuzzDecode and run with every go test.
// Explore with: go test ./ingest -run '^$' -fuzz FuzzDecode -fuzztime 60s
func FuzzDecode(f *testing.F) {
	valid := referencePayload()
	f.Fuzz(func(t *testing.T, input []byte) {
		bodies := bytes.SplitN(input, []byte{0}, 8)
		for _, body := range bodies {
			got, gotErr := decodeNoPanic(t, body)
			want, wantErr := referenceDecode(body)
			if (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("Decode(%q): error %v; encoding/json: error %v", body, gotErr, wantErr)
			}
			if gotErr == nil && !equalParcels(got, want) {
				t.Fatalf("Decode(%q) = %+v; encoding/json gives %+v", body, got, want)
			}
			if gotErr != nil {
				if _, ok := gotErr.(*DecodeError); !ok {
					t.Fatalf("Decode(%q) error is %T; want *DecodeError", body, gotErr)
				}
			}
		}
		parcels, err := decodeNoPanic(t, valid)
		if err != nil || len(parcels) != 9 || parcels[0].ID != "1" || parcels[8].Data != "abc9" {
			t.Fatalf("after %d fuzzed bodies, the reference payload decodes to %+v, %v", len(bodies), parcels, err)
		}
	})
}

func decodeNoPanic(t *testing.T, body []byte) (parcels []Parcel, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Decode(%q) panicked: %v", body, r)
		}
	}()
	return Decode(body)
}

func equalParcels(a, b []Parcel) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}
