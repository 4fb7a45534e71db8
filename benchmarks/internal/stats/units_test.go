package stats

import "testing"

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int
		wantErr bool
	}{
		{"10s", 10, false},
		{"10", 10, false},
		{"2m", 120, false},
		{"1h", 3600, false},
		{"0s", 0, false},
		{"1.5s", 0, true},
		{"-1s", 0, true},
		{"+1s", 0, true},
		{"s", 0, true},
		{"", 0, true},
		{"10ms", 0, true},
		{"1d", 0, true},
	} {
		got, err := Seconds(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("Seconds(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestMeanLatency(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"5ms-55ms", 0.030, false},
		{"30ms", 0.030, false},
		{"500us-1.5ms", 0.001, false},
		{"500µs-1500µs", 0.001, false},
		{"1s-1m", 30.5, false},
		{"0s", 0, false},
		{"55ms-5ms", 0, true},
		{"5-55", 0, true},
		{"5ms-", 0, true},
		{"-5ms", 0, true},
		{"5ms-10ms-20ms", 0, true},
		{"", 0, true},
	} {
		got, err := MeanLatency(tc.in)
		if (err != nil) != tc.wantErr || !same(got, tc.want) {
			t.Errorf("MeanLatency(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestWrkLatency(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"255.00us", 0.255, false},
		{"0.86ms", 0.86, false},
		{"106.78ms", 106.78, false},
		{"1.20s", 1200, false},
		{"2.00m", 120000, false},
		{"1.00h", 3600000, false},
		{"12", 0, true},
		{"ms", 0, true},
		{"-1ms", 0, true},
		{"1.0xs", 0, true},
	} {
		got, err := WrkLatency(tc.in)
		if (err != nil) != tc.wantErr || !same(got, tc.want) {
			t.Errorf("WrkLatency(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}
