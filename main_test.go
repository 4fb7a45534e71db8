//go:build unix && e2e

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastingest/fastingest/ingest"
)

var (
	buildOnce sync.Once
	binDir    string // removed by TestMain
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// fastingestBinary builds the binary on first use and returns its path. Under
// -race the binary is built with the race detector too, so that the end-to-end
// tests also check the server itself: a race makes it exit 66 and write a
// report into the log the tests read.
func fastingestBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: not building and running the binary")
	}
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go") // go test puts GOROOT/bin first in PATH
		if err != nil {
			buildErr = fmt.Errorf("cannot find the go tool: %w", err)
			return
		}
		binDir, err = os.MkdirTemp("", "fastingest-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(binDir, "fastingest")
		args := []string{"build", "-o", binPath}
		if raceEnabled() {
			args = append(args, "-race")
		}
		out, err := exec.Command(goTool, append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// process is a running fastingest and the lines it has written to stderr.
type process struct {
	t         *testing.T
	cmd       *exec.Cmd
	listening chan string   // the listen= address of the startup line
	exited    chan struct{} // closed once stderr is read to EOF and the process is reaped

	mu    sync.Mutex
	lines []string
}

// startProcess runs the binary with args and env added to the test's
// environment, from which every fastingest variable is first removed so
// that the caller's shell cannot change a test's configuration.
func startProcess(t *testing.T, env map[string]string, args ...string) *process {
	t.Helper()
	return startCommand(t, exec.Command(fastingestBinary(t), args...), env)
}

// startCommand starts cmd, which runs the binary (perhaps through a
// wrapper such as prlimit), as startProcess does: in a temporary directory,
// with env added to the test's environment without its fastingest
// variables, its stderr read into the process's log, and killed when the
// test ends if it has not exited.
func startCommand(t *testing.T, cmd *exec.Cmd, env map[string]string) *process {
	t.Helper()
	cmd.Dir = t.TempDir() // the file sink's default ./data lands there
	for _, kv := range os.Environ() {
		if !isConfigVar(strings.SplitN(kv, "=", 2)[0]) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	p := &process{t: t, cmd: cmd, listening: make(chan string, 1), exited: make(chan struct{})}
	go p.read(stderr)

	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(exitTimeout):
				t.Errorf("fastingest (pid %d) still running after SIGKILL", cmd.Process.Pid)
			}
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", strings.Join(cmd.Args, " "), strings.Join(p.log(), "\n"))
		}
	})
	return p
}

func isConfigVar(name string) bool {
	for _, o := range options {
		if o.env == name {
			return true
		}
	}
	return false
}

// read collects stderr line by line until EOF, then reaps the process.
func (p *process) read(stderr io.Reader) {
	defer close(p.exited)
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.lines = append(p.lines, line)
		p.mu.Unlock()
		if !sent && strings.Contains(line, `msg="fastingest listening"`) {
			p.listening <- logValue(line, "listen")
			sent = true
		}
	}
	io.Copy(io.Discard, stderr) // a line over the limit: keep the pipe flowing
	p.cmd.Wait()
}

// log returns the lines written so far.
func (p *process) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// waitReady waits for the startup line and then for /healthz to answer 200,
// and returns the address the server listens on.
func (p *process) waitReady(client *http.Client) string {
	p.t.Helper()
	return p.waitReadyOver(client, "http")
}

// waitReadyOver is waitReady with the URL scheme given: "https" for a
// server with TLS_CERT.
func (p *process) waitReadyOver(client *http.Client, scheme string) string {
	p.t.Helper()
	deadline := time.After(startTimeout)
	var addr string
	select {
	case addr = <-p.listening:
	case <-p.exited:
		p.t.Fatalf("fastingest exited with code %d before it was listening", p.cmd.ProcessState.ExitCode())
	case <-deadline:
		p.t.Fatalf("no %q line after %v", "fastingest listening", startTimeout)
	}
	if addr == "" {
		p.t.Fatalf("startup line has no listen= address")
	}
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		resp, err := client.Get(scheme + "://" + addr + "/healthz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		select {
		case <-poll.C:
		case <-p.exited:
			p.t.Fatalf("fastingest exited with code %d before %s /healthz answered 200", p.cmd.ProcessState.ExitCode(), scheme)
		case <-deadline:
			p.t.Fatalf("GET %s /healthz not 200 after %v: last error %v", scheme, startTimeout, err)
		}
	}
}

// stop sends SIGTERM and waits for the process to exit.
func (p *process) stop() (code int, log []string) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("cannot send SIGTERM: %v", err)
	}
	return p.wait()
}

// wait waits for the process to exit by itself and returns its exit code and
// its whole log.
func (p *process) wait() (code int, log []string) {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(exitTimeout):
		p.t.Fatalf("fastingest did not exit within %v", exitTimeout)
	}
	return p.cmd.ProcessState.ExitCode(), p.log()
}

// logValue returns the value of key in a slog text line, unquoted, or "".
func logValue(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if s, err := strconv.QuotedPrefix(v); err == nil {
			u, _ := strconv.Unquote(s)
			return u
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// newClient returns a keep-alive client of its own, so that shutdown is
// tested with an idle connection open, as real clients leave one.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: httpTimeout}
}

// referencePayload is the reference client's batch: parcels "1" to "9".
func referencePayload() string {
	var b strings.Builder
	b.WriteString(`{"Data":[`)
	for i := 1; i <= 9; i++ {
		if i > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%d","time":"2017-01-01T00:00:0%dZ","data":"abc"}`, i, i)
	}
	b.WriteString(`]}`)
	return b.String()
}

// post sends body to POST / as JSON and returns the status and the body.
func post(t *testing.T, client *http.Client, addr, body string) (int, string) {
	t.Helper()
	resp, err := client.Post("http://"+addr+"/", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST /: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST /: reading the response: %v", err)
	}
	return resp.StatusCode, string(b)
}

// postReference posts the reference payload and fails unless it is accepted
// whole.
func postReference(t *testing.T, client *http.Client, addr string) {
	t.Helper()
	status, body := post(t, client, addr, referencePayload())
	if status != http.StatusAccepted || body != `{"accepted":9}` {
		t.Fatalf("POST / = %d %s; want 202 {\"accepted\":9}", status, body)
	}
}

// lastLine returns the last line of log, failing the test if there is none.
// startupLine returns the line fastingest logs once it listens, failing
// the test when there is none.
func startupLine(t *testing.T, log []string) string {
	t.Helper()
	for _, line := range log {
		if strings.Contains(line, `msg="fastingest listening"`) {
			return line
		}
	}
	t.Fatalf("no startup line in:\n%s", strings.Join(log, "\n"))
	return ""
}

func lastLine(t *testing.T, log []string) string {
	t.Helper()
	if len(log) == 0 {
		t.Fatal("fastingest wrote nothing to stderr")
	}
	return log[len(log)-1]
}

func TestServeAndDrainReferencePayload(t *testing.T) {
	p := startProcess(t, map[string]string{"ADDR": "127.0.0.1:0", "SHUTDOWN_TIMEOUT": "10s"})
	client := newClient(t)
	addr := p.waitReady(client)

	postReference(t, client, addr)

	code, log := p.stop()
	if code != 0 {
		t.Errorf("exit code = %d; want 0", code)
	}
	wantContains(t, "last log line", lastLine(t, log),
		`msg="shutdown complete"`, "accepted=9 completed=9", "failed=0", "not_completed=0", "requests_accepted=1")
}

// TestShardsServeAndDrain: SHARDS=3 shows in the startup line, serves
// requests, drains every shard at SIGTERM, and accounts for every parcel;
// SHARDS=0 on this host shows the shards it chose.
func TestShardsServeAndDrain(t *testing.T) {
	p := startProcess(t, map[string]string{"ADDR": "127.0.0.1:0", "SHUTDOWN_TIMEOUT": "10s", "SHARDS": "3", "SINK": "sim"})
	client := newClient(t)
	addr := p.waitReady(client)
	for range 12 {
		postReference(t, client, addr)
	}
	code, log := p.stop()
	if code != 0 {
		t.Errorf("exit code = %d; want 0", code)
	}
	if line := startupLine(t, log); logValue(line, "shards") != "3" {
		t.Errorf("startup line shards=%q; want 3: %s", logValue(line, "shards"), line)
	}
	wantContains(t, "last log line", lastLine(t, log),
		`msg="shutdown complete"`, "accepted=108 completed=108", "failed=0", "not_completed=0", "requests_accepted=12")

	auto := startProcess(t, map[string]string{"ADDR": "127.0.0.1:0"})
	auto.waitReady(client)
	_, log = auto.stop()
	want := strconv.Itoa(min(ingest.DefaultShards(), ingest.MaxShards, ingest.DefaultMaxQueue, ingest.DefaultMaxWorkers))
	if line := startupLine(t, log); logValue(line, "shards") != want {
		t.Errorf("startup line with SHARDS=0: shards=%q; want %s: %s", logValue(line, "shards"), want, line)
	}
}

func TestDebugLogTracesEveryParcel(t *testing.T) {
	const workers = 4
	p := startProcess(t, map[string]string{
		"ADDR": "127.0.0.1:0", "LOG_LEVEL": "debug", "MAX_WORKERS": strconv.Itoa(workers), "SHUTDOWN_TIMEOUT": "10s",
	})
	client := newClient(t)
	addr := p.waitReady(client)

	postReference(t, client, addr)

	code, log := p.stop()
	if code != 0 {
		t.Errorf("exit code = %d; want 0", code)
	}
	// Where each parcel's lines are in the log. The handler logs a parcel
	// before queueing it and a worker logs it before and after storing
	// it, so the three lines of a parcel appear in this order.
	handler := regexp.MustCompile(`msg="Handler: Received Parcel (\d+)"`)
	worker := regexp.MustCompile(`msg="Worker (\d+): Received Task with Parcel (\d+)"`)
	done := regexp.MustCompile(`msg="Task: Completed for Parcel (\d+) \(`)
	received, taken, completed := map[string][]int{}, map[string][]int{}, map[string][]int{}
	for i, line := range log {
		if m := handler.FindStringSubmatch(line); m != nil {
			received[m[1]] = append(received[m[1]], i)
		}
		if m := worker.FindStringSubmatch(line); m != nil {
			if n, _ := strconv.Atoi(m[1]); n < 1 || n > workers {
				t.Errorf("log line %q: worker %d; want 1 to %d (MAX_WORKERS)", line, n, workers)
			}
			taken[m[2]] = append(taken[m[2]], i)
		}
		if m := done.FindStringSubmatch(line); m != nil {
			completed[m[1]] = append(completed[m[1]], i)
		}
	}
	for k := 1; k <= 9; k++ {
		id := strconv.Itoa(k)
		r, w, c := received[id], taken[id], completed[id]
		if len(r) != 1 || len(w) != 1 || len(c) != 1 {
			t.Errorf("parcel %s: %d Handler, %d Worker, %d Task lines; want one of each", id, len(r), len(w), len(c))
			continue
		}
		if !(r[0] < w[0] && w[0] < c[0]) {
			t.Errorf("parcel %s: Handler, Worker and Task lines at %d, %d, %d; want them in that order", id, r[0], w[0], c[0])
		}
	}
	if got, want := len(received)+len(taken)+len(completed), 27; got != want {
		t.Errorf("%d distinct parcel traces; want %d (Handler, Worker and Task for parcels 1 to 9)", got, want)
	}
	wantContains(t, "last log line", lastLine(t, log), "accepted=9 completed=9", "not_completed=0")
}

func TestShutdownTimeoutCountsUnfinishedParcels(t *testing.T) {
	p := startProcess(t, map[string]string{
		"ADDR": "127.0.0.1:0", "SINK": "sim", "SIM_LATENCY": "20s-20s", "SHUTDOWN_TIMEOUT": "300ms",
	})
	client := newClient(t)
	addr := p.waitReady(client)

	postReference(t, client, addr)

	code, log := p.stop()
	if code != 1 {
		t.Errorf("exit code = %d; want 1 (accepted parcels not completed)", code)
	}
	wantContains(t, "last log line", lastLine(t, log),
		"level=ERROR", `msg="shutdown incomplete`, "accepted=9", "completed=0", "not_completed=9",
		`error="ingest: 9 accepted parcels not completed`)
}

func TestInvalidConfigExits2(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want []string // in stderr: the setting, the value, what is accepted
	}{
		{"MAX_WORKERS=0", map[string]string{"MAX_WORKERS": "0"}, nil,
			[]string{"MAX_WORKERS", `"0"`, "an integer from 1 to 1000000"}},
		{"-sim-latency 55ms-5ms", nil, []string{"-sim-latency", "55ms-5ms"},
			[]string{"-sim-latency", `"55ms-5ms"`, "min <= max"}},
		{"unknown flag", nil, []string{"-max-wokers", "3"},
			[]string{"-max-wokers"}},
		{"argument", nil, []string{"serve"},
			[]string{`unexpected argument "serve"`}},
		// What the NATS sink would refuse is refused before it starts.
		{"NATS_SUBJECT=a..b", map[string]string{"SINK": "nats", "NATS_SUBJECT": "a..b"}, nil,
			[]string{"NATS_SUBJECT", `"a..b"`, "an empty token", "want a literal subject"}},
		{"NATS_URL=http://x", map[string]string{"SINK": "nats", "NATS_URL": "http://x"}, nil,
			[]string{"NATS_URL", `"http://x"`, `scheme "http"`, "want nats://"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"ADDR": "127.0.0.1:0"} // if it started anyway
			for k, v := range tc.env {
				env[k] = v
			}
			p := startProcess(t, env, tc.args...)
			code, log := p.wait()
			if code != 2 {
				t.Errorf("exit code = %d; want 2", code)
			}
			wantContains(t, "stderr", strings.Join(log, "\n"), tc.want...)
		})
	}
}

// At the default level a request that succeeds writes nothing: the log holds
// the startup line, the shutdown line and the summary, however many
// requests were served.
//
// MAX_CONNS is low so that the host's open-file limit cannot make fdlimit
// add a WARN line at startup.
func TestInfoLevelLogsNothingPerRequest(t *testing.T) {
	p := startProcess(t, map[string]string{"ADDR": "127.0.0.1:0", "SHUTDOWN_TIMEOUT": "10s", "MAX_CONNS": "64"})
	client := newClient(t)
	addr := p.waitReady(client)

	const requests = 20
	for range requests {
		postReference(t, client, addr)
	}

	code, log := p.stop()
	if code != 0 {
		t.Errorf("exit code = %d; want 0", code)
	}
	want := [][]string{
		{"level=INFO", `msg="fastingest listening"`, "listen=" + addr, "version=", "max_conns=64",
			"memory_bound=" + startupMemoryBound(t, 64)},
		{"level=INFO", `msg="shutting down`, "signal=terminated"},
		{"level=INFO", `msg="shutdown complete"`, fmt.Sprintf("accepted=%d completed=%d", 9*requests, 9*requests),
			"not_completed=0", fmt.Sprintf("requests_accepted=%d", requests)},
	}
	if len(log) != len(want) {
		t.Fatalf("%d log lines; want %d (startup, shutting down, summary):\n%s", len(log), len(want), strings.Join(log, "\n"))
	}
	for i, line := range log {
		wantContains(t, fmt.Sprintf("log line %d", i+1), line, want[i]...)
	}
}

// A startup that fails after the sink was opened (here: the address is
// taken) exits 1 and leaves no empty segment behind.
func TestListenFailureReleasesTheSink(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dataDir := t.TempDir()
	p := startProcess(t, map[string]string{"ADDR": taken.Addr().String(), "SINK": "file", "DATA_DIR": dataDir})
	code, log := p.wait()
	if code != 1 || !strings.Contains(strings.Join(log, "\n"), "cannot listen") {
		t.Fatalf("exit %d, log:\n%s\nwant 1 and a line saying it cannot listen", code, strings.Join(log, "\n"))
	}
	if segs, _ := filepath.Glob(filepath.Join(dataDir, "*.ndjson")); len(segs) != 0 {
		t.Errorf("segments left behind: %v", segs)
	}
}

// TestDrainDelayKeepsServing: with DRAIN_DELAY, SIGTERM turns /readyz to
// 503 at once while POST / is still served, so that a load balancer can
// take the instance out of rotation before the listener closes; then the
// usual drain runs and the process exits 0.
func TestDrainDelayKeepsServing(t *testing.T) {
	p := startProcess(t, map[string]string{"ADDR": "127.0.0.1:0", "DRAIN_DELAY": "5s", "SHUTDOWN_TIMEOUT": "10s"})
	client := newClient(t)
	addr := p.waitReady(client)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz during DRAIN_DELAY: %v; want the server still listening", err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after SIGTERM", resp.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	postReference(t, client, addr) // not ready, still serving

	code, log := p.wait()
	if code != 0 {
		t.Errorf("exit code = %d; want 0", code)
	}
	wantContains(t, "log", strings.Join(log, "\n"), `msg="still serving for DRAIN_DELAY`, "drain_delay=5s")
	wantContains(t, "last log line", lastLine(t, log),
		`msg="shutdown complete"`, "accepted=9 completed=9", "not_completed=0", "requests_accepted=1")
}

// startupMemoryBound is the memory_bound= the startup line should show for
// the default settings with maxConns connections: that of the MAX_CONNS
// served, once fitted to the open-file limit.
func startupMemoryBound(t *testing.T, maxConns int) string {
	t.Helper()
	c, err := loadConfig(nil, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c.MaxConns = maxConns
	return formatMiB(c.memoryBound().Total())
}

// /metrics carries fastingest_build_info, described and typed, with the
// version the startup line gives.
func TestBuildInfoMetric(t *testing.T) {
	p := startProcess(t, map[string]string{"ADDR": "127.0.0.1:0", "SINK": "null", "MAX_CONNS": "64"})
	client := newClient(t)
	addr := p.waitReady(client)
	version := logValue(startupLine(t, p.log()), "version")
	if version == "" {
		t.Fatalf("startup line without version=: %s", strings.Join(p.log(), "\n"))
	}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d, %v", resp.StatusCode, err)
	}
	wantContains(t, "/metrics", string(b),
		"# HELP fastingest_build_info ", "# TYPE fastingest_build_info gauge\n",
		`fastingest_build_info{version="`+version+`",revision="`, `",goversion="`+runtime.Version()+`"} 1`+"\n")
	if code, _ := p.stop(); code != 0 {
		t.Errorf("exit code = %d; want 0", code)
	}
}

// runToExit runs the binary with args and env (and no other fastingest
// variable) until it exits by itself, and returns its exit code and output.
func runToExit(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, fastingestBinary(t), args...)
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !isConfigVar(strings.SplitN(kv, "=", 2)[0]) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("fastingest %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// -h and -version print to stdout, for a pager or a script, and exit 0,
// whatever the environment holds.
func TestHelpAndVersionExit0(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-h"}, []string{"Usage: fastingest", "-max-workers int (env MAX_WORKERS, default 1000)",
			"accepts an integer from 1 to 1000000", "-version", "Memory bound"}},
		{[]string{"-help"}, []string{"Usage: fastingest"}},
		{[]string{"-version"}, []string{"fastingest ", "(revision ", runtime.Version()}},
		{[]string{"--version"}, []string{"fastingest ", "(revision "}},
	} {
		code, stdout, stderr := runToExit(t, map[string]string{"MAX_WORKERS": "0"}, tc.args...)
		if code != 0 || stderr != "" {
			t.Errorf("%s: exit %d, stderr %q; want 0 and nothing", tc.args, code, stderr)
		}
		wantContains(t, strings.Join(tc.args, " ")+" stdout", stdout, tc.want...)
	}
}
