// Command loadtest load-tests a fastingest URL (a local server or a deployed
// load balancer) with wrk and hey, POSTing the reference payload, and prints
// requests/min and latency percentiles for each tool. scripts/loadtest.sh
// builds and runs it.
//
// Exit status: 0 when every tool ran and every response was 2xx; 1 when a
// tool is missing or failed, or some responses were errors or not 2xx (the
// figures are still printed); 2 for a usage error.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fastingest/fastingest/benchmarks/internal/tools"
)

// loadtest is one run: its settings and what it found.
type loadtest struct {
	cfg      config
	payload  string // absolute path
	lua      string
	parcels  int
	rows     []string
	problems int
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg, note, err := parseArgs(args, os.Getenv)
	var ue usageError
	switch {
	case errors.Is(err, errHelp):
		fmt.Print(usageText)
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "loadtest: %s\nTry: bash scripts/loadtest.sh --help\n", ue.msg)
		return 2
	}
	if note != "" {
		fmt.Fprintf(os.Stderr, "loadtest: note: %s\n", note)
	}
	lt, err := newLoadtest(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: %v\n", err)
		return 1
	}
	lt.preflight()
	for _, t := range cfg.tools {
		if t == "wrk" {
			lt.runWrk()
		} else {
			lt.runHey()
		}
	}
	lt.summary(os.Stdout)
	if lt.problems > 0 {
		fmt.Fprintf(os.Stderr, "loadtest: %d problem(s), see the messages above\n", lt.problems)
		return 1
	}
	return 0
}

// newLoadtest finds the payload and wrk's script in the repository the
// working directory is in.
func newLoadtest(cfg config) (*loadtest, error) {
	root, err := tools.RepoRoot()
	if err != nil {
		return nil, err
	}
	lt := &loadtest{cfg: cfg, payload: or(cfg.payload, filepath.Join(root, "scripts", "payload.json")),
		lua: filepath.Join(root, "scripts", "post.lua")}
	if lt.payload, err = filepath.Abs(lt.payload); err != nil {
		return nil, err
	}
	body, err := os.ReadFile(lt.payload)
	if err != nil {
		return nil, fmt.Errorf("payload file not found: %s", lt.payload)
	}
	if _, err := os.Stat(lt.lua); err != nil {
		return nil, fmt.Errorf("missing %s", lt.lua)
	}
	lt.parcels = bytes.Count(body, []byte(`"id"`))
	fmt.Printf("target:   %s\n", cfg.url)
	fmt.Printf("payload:  %s (%d parcels, %d bytes)\n", lt.payload, lt.parcels, len(body))
	fmt.Printf("load:     %s per tool, %d connections (wrk: %d threads)\n", cfg.duration, cfg.conns, cfg.threads)
	return lt, nil
}

// problem reports something that makes the run fail, going on.
func (lt *loadtest) problem(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadtest: %s\n", fmt.Sprintf(format, args...))
	lt.problems++
}

// preflight sends one request first: a wrong URL or path shows here, not as
// a run of errors.
func (lt *loadtest) preflight() {
	body, err := os.ReadFile(lt.payload)
	if err != nil {
		lt.problem("preflight: %v", err)
		return
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Post(lt.cfg.url, "application/json", bytes.NewReader(body))
	if err != nil {
		lt.problem("preflight: POST %s failed: %.300v (running the load anyway)", lt.cfg.url, err)
		return
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	if resp.StatusCode/100 == 2 {
		fmt.Printf("preflight: POST answered %d %s\n", resp.StatusCode, answer)
		return
	}
	lt.problem("preflight: POST %s answered %d: %s (running the load anyway)", lt.cfg.url, resp.StatusCode, answer)
}

// summary prints every tool's row.
func (lt *loadtest) summary(w io.Writer) {
	c := lt.cfg
	fmt.Fprintf(w, "\n== summary: %s, %s per tool, %d connections, %d parcels per request\n", c.url, c.duration, c.conns, lt.parcels)
	fmt.Fprintf(w, "%-4s %12s %14s %10s %10s %10s %9s %8s\n", "tool", "requests", "requests/min", "p50_ms", "p90_ms", "p99_ms", "not 2xx", "errors")
	for _, r := range lt.rows {
		fmt.Fprintln(w, r)
	}
}
