package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastingest/fastingest/internal/testutil"
)

// The end-to-end tests (build tag e2e) build the real binary once, run it on
// 127.0.0.1:0 and read its log from stderr. Every wait is bounded by one of
// these; none is a claim about speed, only a limit on how long a broken
// build may hang.
const (
	startTimeout = 20 * time.Second // until the startup line and a healthy /healthz
	exitTimeout  = 30 * time.Second // from SIGTERM, or from start for a bad config, until exit
	httpTimeout  = 10 * time.Second // one request
)

func wantContains(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s = %q; want it to contain %q", what, s, w)
		}
	}
}

// numberedBatch is the reference-shaped body of request r of client c in
// the load tests: 9 parcels whose ids, c<c>-r<r>-p<i>, say who sent them.
func numberedBatch(c, r int) (ids []string, body string) {
	return testutil.NumberedBatch("c"+strconv.Itoa(c)+"-r"+strconv.Itoa(r), 9)
}
