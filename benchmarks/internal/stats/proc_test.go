package stats

import (
	"slices"
	"testing"
)

func TestProcTicks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stat    string
		want    int64
		wantErr bool
	}{
		{
			name: "a server",
			stat: "4242 (fastingest) S 4200 4242 4200 0 -1 4194560 2071 0 0 0 812 188 0 0 20 0 3 0 123456 1262592000 3980 18446744073709551615",
			want: 812 + 188,
		},
		{
			name: "a command name with spaces and parentheses",
			stat: "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 0 0",
			want: 11,
		},
		{name: "no command name", stat: "7 bash S 1 2 3", wantErr: true},
		{name: "too few fields", stat: "7 (x) S 1 2 3 4 5 6 7 8 9 10", wantErr: true},
		{name: "not numbers", stat: "7 (x) S 1 2 3 4 5 6 7 8 9 10 u s 0", wantErr: true},
		{name: "empty", stat: "", wantErr: true},
	} {
		got, err := ProcTicks(tc.stat)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: ProcTicks = %d, %v; want %d, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestPeakRSSKiB(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  string
		want    int64
		wantErr bool
	}{
		{"status file", "Name:\tfastingest\nVmPeak:\t 1262592 kB\nVmHWM:\t   15872 kB\nVmRSS:\t   15400 kB\n", 15872, false},
		{"no VmHWM (a kernel thread)", "Name:\tkthreadd\nState:\tS (sleeping)\n", 0, true},
		{"other unit", "VmHWM:\t 15 MB\n", 0, true},
	} {
		got, err := PeakRSSKiB(tc.status)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s: PeakRSSKiB = %d, %v; want %d, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestCPUList(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"0-1", []int{0, 1}, false},
		{"0", []int{0}, false},
		{"0-3,8,10-11\n", []int{0, 1, 2, 3, 8, 10, 11}, false},
		{"3,1", []int{3, 1}, false},
		{"", nil, true},
		{"1-0", nil, true},
		{"a", nil, true},
		{"0,,1", nil, true},
	} {
		got, err := CPUList(tc.in)
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("CPUList(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}
