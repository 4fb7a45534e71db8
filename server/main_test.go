package server

import (
	"os"
	"testing"

	"github.com/fastingest/fastingest/internal/testparallel"
)

// TestMain runs up to 8 parallel tests at once: most wait on connections
// and timeouts rather than use the CPU.
func TestMain(m *testing.M) {
	testparallel.Raise(8)
	os.Exit(m.Run())
}
