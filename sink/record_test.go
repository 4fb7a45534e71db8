package sink

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/fastingest/fastingest/ingest"
)

// The record must read back as exactly the parcel that was sent, whatever
// its strings hold, and match encoding/json's escaping byte for byte.
func TestAppendRecordRoundTrips(t *testing.T) {
	received := time.Date(2026, 11, 29, 8, 0, 0, 123456789, time.FixedZone("X", 3600))
	for _, data := range []string{
		"abc", "", `quote " backslash \ slash /`, "tab\tnl\nret\r", "\x00\x01\x1f\x7f",
		"<html>&amp;", "héllo wörld ✓ 𝄞", "line\u2028para\u2029", "\xff\xfe invalid",
	} {
		p := ingest.Parcel{ID: "id-" + data, Time: "2017-01-01T00:00:01Z", Data: data}
		task := ingest.NewTask(&p, received, 1, func(error) {})
		got := AppendRecord([]byte("prefix"), task)
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("AppendRecord did not append: %q", got)
		}
		got = got[len("prefix"):]

		want, err := json.Marshal(struct {
			ID       string `json:"id"`
			Time     string `json:"time"`
			Data     string `json:"data"`
			Received string `json:"received"`
		}{p.ID, p.Time, p.Data, "2026-11-29T07:00:00.123456789Z"})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("AppendRecord(data %q)\n got %s\nwant %s", data, got, want)
		}
	}
}

// The encoder's cached receive time must follow the task's.
func TestRecordEncoderFollowsReceiveTime(t *testing.T) {
	var e RecordEncoder
	p := ingest.Parcel{ID: "1", Time: "2017-01-01T00:00:01Z"}
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, received := range []time.Time{t1, t1, t1.Add(time.Nanosecond), t1, {}} {
		task := ingest.NewTask(&p, received, 1, func(error) {})
		if got, want := string(e.Append(nil, task)), string(AppendRecord(nil, task)); got != want {
			t.Errorf("record %d = %s, want %s", i, got, want)
		}
	}
}

func BenchmarkAppendRecord(b *testing.B) {
	p := ingest.Parcel{ID: "1", Time: "2017-01-01T00:00:01Z", Data: "abc"}
	task := ingest.NewTask(&p, time.Now(), 1, func(error) {})
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRecord(buf[:0], task)
	}
	b.SetBytes(int64(len(buf)))
}
