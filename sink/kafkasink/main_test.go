package kafkasink

import (
	"os"
	"testing"

	"github.com/fastingest/fastingest/internal/testparallel"
)

// TestMain runs up to 8 parallel tests at once: each starts a kfake cluster
// of its own and mostly waits on it.
func TestMain(m *testing.M) {
	testparallel.Raise(8)
	os.Exit(m.Run())
}
