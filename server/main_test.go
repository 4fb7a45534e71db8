package server

import (
	"testing"

	"github.com/fastingest/fastingest/internal/testparallel"
)

// TestMain runs up to 32 parallel tests at once: most wait on connections
// and timeouts rather than use the CPU, and at 8 they still queued behind
// one another.
func TestMain(m *testing.M) {
	testparallel.Main(m, 32)
}
