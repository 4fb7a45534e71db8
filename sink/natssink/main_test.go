package natssink

import (
	"testing"

	"github.com/fastingest/fastingest/internal/testparallel"
)

// TestMain runs up to 8 parallel tests at once: each starts NATS servers of
// its own and mostly waits on them.
func TestMain(m *testing.M) {
	testparallel.Main(m, 8)
}
