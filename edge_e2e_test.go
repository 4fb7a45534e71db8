//go:build linux && e2e

package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The connection edge end to end (issue 11, items 3 and 7): the binary run
// under a small open-file limit, flooded with idle connections.

// startUnderPrlimit runs the binary as startProcess does, under
// prlimit --nofile=nofile:nofile (util-linux), skipping the test without
// prlimit.
func startUnderPrlimit(t *testing.T, nofile int, env map[string]string) *process {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not found")
	}
	n := strconv.Itoa(nofile)
	return startCommand(t, exec.Command(prlimit, "--nofile="+n+":"+n, "--", fastingestBinary(t)), env)
}

// openIdle opens n connections to addr that send nothing, closed when the
// test ends unless closed before.
func openIdle(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.DialTimeout("tcp", addr, httpTimeout)
		if err != nil {
			t.Fatalf("dial idle connection %d: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	return conns
}

// waitAccepted posts the reference payload until it is accepted, failing
// the test if it is not within startTimeout or if the process exits.
func waitAccepted(t *testing.T, p *process, addr string) {
	t.Helper()
	client := &http.Client{Timeout: httpTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(startTimeout)
	var last string
	for {
		resp, err := client.Post("http://"+addr+"/", "application/json", strings.NewReader(referencePayload()))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				return
			}
			last = strconv.Itoa(resp.StatusCode) + " " + string(b)
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			t.Fatalf("fastingest exited (code %d); last POST: %s", p.cmd.ProcessState.ExitCode(), last)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST / not accepted within %v; last: %s", startTimeout, last)
		}
	}
}

// TestFileLimitLowersMaxConns: under prlimit --nofile=256:256 with the
// default MAX_CONNS (16384), startup says it lowers MAX_CONNS to what fits
// beside the reserve, and shows both in the startup line. 300 idle
// connections then never exhaust the descriptors (no accept error): those
// past the lowered MAX_CONNS are refused with the JSON 503, which a real
// client (net/http, curl) reads with Retry-After, and once the
// connections close a POST is served and the process drains cleanly.
func TestFileLimitLowersMaxConns(t *testing.T) {
	const nofile, idle = 256, 300
	p := startUnderPrlimit(t, nofile, map[string]string{"ADDR": "127.0.0.1:0", "SINK": "null", "SHUTDOWN_TIMEOUT": "10s"})
	addr := p.waitReady(&http.Client{Timeout: httpTimeout, Transport: &http.Transport{DisableKeepAlives: true}})
	wantConns := nofile - reservedFiles(config{Sink: "null"})

	var warn, startup string
	for _, line := range p.log() {
		switch {
		case strings.Contains(line, "MAX_CONNS lowered"):
			warn = line
		case strings.Contains(line, `msg="fastingest listening"`):
			startup = line
		}
	}
	wantContains(t, "WARN line", warn, "level=WARN", "LimitNOFILE", "max_conns="+strconv.Itoa(wantConns),
		"max_conns_configured=16384", "nofile=256", "nofile_needed="+strconv.Itoa(16384+reservedFiles(config{Sink: "null"})))
	if got := logValue(startup, "nofile"); got != "256" {
		t.Errorf("startup line nofile=%q; want 256: %s", got, startup)
	}
	if got := logValue(startup, "max_conns"); got != strconv.Itoa(wantConns) {
		t.Errorf("startup line max_conns=%q; want the effective %d: %s", got, wantConns, startup)
	}

	conns := openIdle(t, addr, idle)
	// The idle connections past the limit are answered, without a
	// request, once the server tires of waiting for one (or at once when
	// every gentle refuser is busy).
	var refused sync.WaitGroup
	var mu sync.Mutex
	answered := 0
	for _, c := range conns {
		refused.Go(func() {
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				// Closing frees the refuser waiting for this client's
				// end of the connection.
				c.Close()
			}
			if err == nil && resp.StatusCode == http.StatusServiceUnavailable {
				mu.Lock()
				answered++
				mu.Unlock()
			}
		})
	}
	refused.Wait()
	// A few more than idle-wantConns if the probes' connections were
	// still open when the flood came.
	if answered == 0 || answered > idle-wantConns+8 {
		t.Errorf("%d idle connections answered 503; want about the %d past MAX_CONNS", answered, idle-wantConns)
	}
	// A real client past the limit, once the flood is answered, gets the
	// JSON 503 with Retry-After.
	client := &http.Client{Timeout: httpTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz past MAX_CONNS: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var msg struct{ Error string }
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
		resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &msg) != nil ||
		!strings.Contains(msg.Error, "MAX_CONNS") {
		t.Errorf("GET /healthz past MAX_CONNS = %d %v %s; want a JSON 503 naming MAX_CONNS with Retry-After: 1",
			resp.StatusCode, resp.Header, b)
	}
	if curl, err := exec.LookPath("curl"); err == nil {
		out, err := exec.Command(curl, "-sS", "-i", "--max-time", "10", "http://"+addr+"/healthz").CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "HTTP/1.1 503") || !strings.Contains(string(out), "Retry-After: 1") ||
			!strings.Contains(string(out), `{"error":"too many connections`) {
			t.Errorf("curl past MAX_CONNS: %v\n%s", err, out)
		}
	}
	select {
	case <-p.exited:
		t.Fatalf("fastingest exited (code %d) under %d idle connections", p.cmd.ProcessState.ExitCode(), idle)
	default:
	}

	for _, c := range conns {
		c.Close()
	}
	waitAccepted(t, p, addr)
	if got := scrape(t, addr, "fastingest_accept_errors_total"); got != 0 {
		t.Errorf("fastingest_accept_errors_total = %d; want 0: the lowered MAX_CONNS keeps descriptors free", got)
	}
	if got := scrape(t, addr, "fastingest_connections_rejected_total"); got < int64(answered)+2 {
		t.Errorf("fastingest_connections_rejected_total = %d; want at least the %d answered", got, answered+2)
	}
	if code, _ := p.stop(); code != 0 {
		t.Errorf("exit code = %d; want 0", code)
	}
}

// TestAcceptErrorsDoNotStopTheServer: with its open-file limit lowered
// under it after startup (so that MAX_CONNS no longer fits), a flood of
// idle connections makes accept fail with EMFILE. The server logs it,
// counts it, backs off and retries, and once the connections close it
// serves again and drains cleanly: on d353d7e fasthttp took EMFILE for a
// permanent error and fastingest exited 1.
func TestAcceptErrorsDoNotStopTheServer(t *testing.T) {
	p := startUnderPrlimit(t, 256, map[string]string{"ADDR": "127.0.0.1:0", "SINK": "null", "SHUTDOWN_TIMEOUT": "10s"})
	addr := p.waitReady(&http.Client{Timeout: httpTimeout, Transport: &http.Transport{DisableKeepAlives: true}})
	pid := strconv.Itoa(p.cmd.Process.Pid)
	if out, err := exec.Command("prlimit", "--pid", pid, "--nofile=48:48").CombinedOutput(); err != nil {
		t.Skipf("cannot lower the running server's open-file limit: %v %s", err, out)
	}

	conns := openIdle(t, addr, 100) // the kernel completes them; accept runs out of descriptors
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(strings.Join(p.log(), "\n"), "out of file descriptors") {
		select {
		case <-p.exited:
			t.Fatalf("fastingest exited (code %d) on EMFILE", p.cmd.ProcessState.ExitCode())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no accept error logged within %v with 100 connections under a limit of 48", startTimeout)
		}
	}
	for _, c := range conns {
		c.Close()
	}
	waitAccepted(t, p, addr)
	if got := scrape(t, addr, "fastingest_accept_errors_total"); got < 1 {
		t.Errorf("fastingest_accept_errors_total = %d; want the EMFILE errors counted", got)
	}
	code, log := p.stop()
	if code != 0 {
		t.Errorf("exit code = %d; want 0", code)
	}
	for _, line := range log {
		if strings.Contains(line, "stopped unexpectedly") {
			t.Errorf("the server stopped: %s", line)
		}
	}
}
