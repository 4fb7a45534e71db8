package stats

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// ProcTicks returns the user plus system CPU time, in clock ticks, from the
// contents of /proc/PID/stat (utime and stime, its 14th and 15th fields).
// Fields are counted after the last ") ": the 2nd field, the command name in
// parentheses, may itself hold spaces and parentheses.
func ProcTicks(stat string) (int64, error) {
	i := strings.LastIndex(stat, ") ")
	if i < 0 {
		return 0, fmt.Errorf("not a /proc/PID/stat line: %.60q", stat)
	}
	f := strings.Fields(stat[i+2:]) // f[0] is the 3rd field, state
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/PID/stat has %d fields after the command name, want at least 13", len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || utime < 0 || stime < 0 {
		return 0, fmt.Errorf("/proc/PID/stat: utime %q, stime %q are not tick counts", f[11], f[12])
	}
	return utime + stime, nil
}

// PeakRSSKiB returns the peak resident set size (VmHWM), in KiB, from the
// contents of /proc/PID/status.
func PeakRSSKiB(status string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/PID/status: unexpected VmHWM line %q", sc.Text())
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("/proc/PID/status has no VmHWM line")
}

// CPUList parses a Linux CPU list ("0-3,8,10-11", as in Cpus_allowed_list
// of /proc/self/status or taskset -pc) into the CPU numbers, in its order.
func CPUList(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("CPU list %q: %q is not a CPU number", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("CPU list %q: %q is not a range", s, part)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}
