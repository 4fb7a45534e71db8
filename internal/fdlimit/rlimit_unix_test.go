//go:build unix

package fdlimit

import (
	"syscall"
	"testing"
)

// TestFitRaisesSoftLimit: after Fit the soft limit is the hard limit, and
// Fit reports it.
func TestFitRaisesSoftLimit(t *testing.T) {
	var before syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &before); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	got, err := Fit(1, Reserve, nil)
	if err != nil {
		t.Fatalf("Fit: %v", err)
	}
	var after syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &after); err != nil {
		t.Fatal(err)
	}
	if after.Cur != after.Max || after.Max != before.Max {
		t.Errorf("RLIMIT_NOFILE after Fit = %d/%d (soft/hard); want %d/%d", after.Cur, after.Max, before.Max, before.Max)
	}
	if got.NoFile != uint64(after.Cur) {
		t.Errorf("Fit NoFile = %d; want the soft limit %d", got.NoFile, after.Cur)
	}
}
