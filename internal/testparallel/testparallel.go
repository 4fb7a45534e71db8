// Package testparallel lets a package's tests run more of their parallel
// tests at once than go test's default, GOMAXPROCS (2 on the CI machines):
// tests that mostly wait on timers, connections and servers would
// otherwise queue behind one another, and the test loop would take many
// seconds where it needs a few.
package testparallel

import (
	"flag"
	"os"
	"strconv"
	"testing"
)

// Main runs a package's tests with up to n parallel tests at once, unless
// the command line set -test.parallel, and exits with their result. A
// TestMain calls it: func TestMain(m *testing.M) { testparallel.Main(m, 8) }.
func Main(m *testing.M, n int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", strconv.Itoa(n))
	}
	os.Exit(m.Run())
}
