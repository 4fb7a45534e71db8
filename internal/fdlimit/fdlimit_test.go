package fdlimit

import (
	"bytes"
	"log/slog"
	"strconv"
	"strings"
	"testing"
)

func TestFit(t *testing.T) {
	for _, c := range []struct {
		name             string
		nofile           uint64
		maxConns         int
		reserve          int
		wantConns        int
		wantErr, wantLog bool
	}{
		{name: "fits", nofile: 1 << 20, maxConns: 16384, reserve: 100, wantConns: 16384},
		{name: "fits exactly", nofile: 16484, maxConns: 16384, reserve: 100, wantConns: 16384},
		{name: "unlimited", nofile: Unlimited, maxConns: 16384, reserve: 100, wantConns: 16384},
		{name: "one short", nofile: 16483, maxConns: 16384, reserve: 100, wantConns: 16383, wantLog: true},
		{name: "container default", nofile: 1024, maxConns: 16384, reserve: 104, wantConns: 920, wantLog: true},
		{name: "one connection", nofile: 105, maxConns: 16384, reserve: 104, wantConns: 1, wantLog: true},
		{name: "none fits", nofile: 104, maxConns: 16384, reserve: 104, wantConns: 16384, wantErr: true},
		{name: "far too low", nofile: 16, maxConns: 10, reserve: 104, wantConns: 10, wantErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			got, err := fit(c.nofile, c.maxConns, c.reserve, log)
			if (err != nil) != c.wantErr {
				t.Fatalf("fit(%d, %d, %d) error = %v; want error %v", c.nofile, c.maxConns, c.reserve, err, c.wantErr)
			}
			if err != nil {
				for _, want := range []string{"RLIMIT_NOFILE", "LimitNOFILE"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not name %s", err, want)
					}
				}
			}
			if got.MaxConns != c.wantConns || got.NoFile != c.nofile || got.Needed != uint64(c.maxConns+c.reserve) {
				t.Errorf("fit(%d, %d, %d) = %+v; want MaxConns %d, NoFile %d, Needed %d",
					c.nofile, c.maxConns, c.reserve, got, c.wantConns, c.nofile, c.maxConns+c.reserve)
			}
			line := buf.String()
			if (line != "") != c.wantLog {
				t.Fatalf("log %q; want a WARN line: %v", line, c.wantLog)
			}
			if c.wantLog {
				for _, want := range []string{"level=WARN", "LimitNOFILE", "lower MAX_CONNS",
					"max_conns=" + strconv.Itoa(c.wantConns), "max_conns_configured=" + strconv.Itoa(c.maxConns),
					"nofile_needed=" + strconv.Itoa(c.maxConns+c.reserve)} {
					if !strings.Contains(line, want) {
						t.Errorf("WARN line %q does not contain %q", line, want)
					}
				}
			}
		})
	}
}
