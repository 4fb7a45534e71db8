package ingest

import (
	"testing"
	"time"
)

var timeSeeds = []string{
	"2017-01-01T00:00:01Z", "2017-01-01T00:00:01.5Z", "2017-01-01T00:00:01.123456789Z",
	"2017-01-01T00:00:01.1234567891Z", "2017-01-01T01:00:01+01:00", "2017-01-01T01:00:01-23:59",
	"2016-02-29T00:00:00Z", "2017-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
	"2017-04-31T00:00:00Z", "2017-13-01T00:00:00Z", "2017-00-01T00:00:00Z", "2017-01-00T00:00:00Z",
	"2017-01-01T24:00:00Z", "2017-01-01T23:60:00Z", "2017-01-01T23:59:60Z", "2017-01-01t00:00:01z",
	"2017-01-01 00:00:01Z", "2017-01-01T00:00:01", "2017-01-01T00:00:01+24:00", "2017-01-01T00:00:01+01:60",
	"2017-01-01T00:00:01+0100", "2017-01-01T00:00:01.Z", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
	"+017-01-01T00:00:01Z", "2017-1-01T00:00:01Z", "2017-01-01T00:00:01ZZ", "", "yesterday",
}

func TestValidTimeAgreesWithTimeParse(t *testing.T) {
	t.Parallel()
	for _, s := range timeSeeds {
		_, err := time.Parse(time.RFC3339, s)
		if got, want := validTime(s), err == nil; got != want {
			t.Errorf("validTime(%q) = %v; time.Parse says %v (%v)", s, got, want, err)
		}
	}
	for _, s := range []string{"2017-01-01T00:00:01Z", "2017-01-01T01:00:01.25+01:00", "2016-02-29T23:59:59-05:30"} {
		if !plainRFC3339(s) {
			t.Errorf("plainRFC3339(%q) = false; want the common forms handled without time.Parse", s)
		}
	}
}

// FuzzValidTime checks that the hand-written check never accepts what
// time.Parse refuses.
func FuzzValidTime(f *testing.F) {
	for _, s := range timeSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := time.Parse(time.RFC3339, s)
		if plainRFC3339(s) && err != nil {
			t.Fatalf("plainRFC3339(%q) = true; time.Parse: %v", s, err)
		}
		if validTime(s) != (err == nil) {
			t.Fatalf("validTime(%q) = %v; time.Parse error %v", s, validTime(s), err)
		}
	})
}

func BenchmarkValidTime(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if !validTime("2017-01-01T00:00:01Z") {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkTimeParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := time.Parse(time.RFC3339, "2017-01-01T00:00:01Z"); err != nil {
			b.Fatal(err)
		}
	}
}
