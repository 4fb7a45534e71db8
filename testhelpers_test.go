package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
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
// the load tests: 9 parcels whose ids, c<c>-r<r>-p<i>, say who sent them,
// so that every acknowledged parcel can be looked for afterwards.
func numberedBatch(c, r int) (ids []string, body string) {
	ids = make([]string, 9)
	var b strings.Builder
	b.WriteString(`{"Data":[`)
	for i := range ids {
		ids[i] = fmt.Sprintf("c%d-r%d-p%d", c, r, i)
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%q,"time":"2017-01-01T00:00:01Z","data":"payload %d"}`, ids[i], i)
	}
	b.WriteString(`]}`)
	return ids, b.String()
}
