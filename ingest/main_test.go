package ingest

import (
	"testing"

	"github.com/fastingest/fastingest/internal/testparallel"
)

// TestMain runs up to 8 parallel tests at once: most wait on a gated or
// sleeping sink rather than use the CPU.
func TestMain(m *testing.M) {
	testparallel.Main(m, 8)
}
