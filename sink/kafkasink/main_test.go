package kafkasink

import (
	"testing"

	"github.com/fastingest/fastingest/internal/testparallel"
)

// TestMain runs up to 32 parallel tests at once (all of them): each starts a
// kfake cluster of its own and mostly waits on it.
func TestMain(m *testing.M) {
	testparallel.Main(m, 32)
}
