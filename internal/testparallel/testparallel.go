// Package testparallel lets a package's tests run more of their parallel
// tests at once than go test's default, GOMAXPROCS (2 on the CI machines):
// tests that mostly wait on timers, connections and servers would
// otherwise queue behind one another, and the test loop would take many
// seconds where it needs a few.
package testparallel

import (
	"flag"
	"strconv"
)

// Raise sets -test.parallel to n unless the command line set it. Call it
// from TestMain before m.Run.
func Raise(n int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", strconv.Itoa(n))
	}
}
