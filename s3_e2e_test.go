//go:build e2e

package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Shipping closed segments to S3, end to end, against moto's S3 server (not
// code of ours) and read back with the AWS CLI. The bucket is missing at
// start: uploads fail, the backlog grows and /readyz stays 200. Once the
// bucket is created everything ships. Then fastingest is killed with
// SIGKILL while it ships under load, restarted, and stopped: every parcel of
// every request answered 202 is in exactly one object.
func TestShipsToS3ThroughKillAndRestart(t *testing.T) {
	endpoint := startMoto(t)
	const bucket = "fastingest-e2e"
	dataDir := t.TempDir()
	env := map[string]string{
		"ADDR": "127.0.0.1:0", "SINK": "file", "ACK": "persisted", "DATA_DIR": dataDir,
		"SEGMENT_BYTES": "16KiB", "S3_BUCKET": bucket, "S3_UPLOAD_CONCURRENCY": "1", "SHUTDOWN_TIMEOUT": "20s",
		"AWS_ENDPOINT_URL_S3": endpoint,
	}
	for k, v := range awsTestEnv() {
		env[k] = v
	}

	p := startProcess(t, env)
	addr := p.waitReady(newClient(t))
	load := startS3Load(t, addr)
	load.waitAcked(t, 200)
	waitMetric(t, addr, "fastingest_s3_upload_errors_total", func(v float64) bool { return v >= 1 })
	waitMetric(t, addr, "fastingest_s3_backlog_segments", func(v float64) bool { return v >= 3 })
	if code := s3GetStatus(t, addr, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d while shipping lags with room on disk; want 200", code)
	}

	awsCLI(t, endpoint, "s3api", "create-bucket", "--bucket", bucket)
	waitMetric(t, addr, "fastingest_s3_segments_shipped_total", func(v float64) bool { return v >= 3 })
	load.waitAcked(t, 200) // segments close and ship meanwhile
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	load.stop()
	if load.acked() == 0 {
		t.Fatal("no parcel acknowledged")
	}

	p2 := startProcess(t, env)
	addr2 := p2.waitReady(newClient(t))
	waitMetric(t, addr2, "fastingest_s3_backlog_segments", func(v float64) bool { return v == 0 })
	code, log := p2.stop()
	if code != 0 {
		t.Fatalf("restart: exit code %d; log:\n%s", code, strings.Join(log, "\n"))
	}
	if !strings.Contains(strings.Join(log, "\n"), "segments not shipped yet") {
		t.Error("the restart did not find segments left unshipped by the kill; want them shipped after it")
	}
	summary := lastLine(t, log)
	if logValue(summary, "s3_backlog") != "0" {
		t.Errorf("summary %q: want s3_backlog=0, the last segment shipped at shutdown", summary)
	}

	// Read back with the AWS CLI.
	out := t.TempDir()
	awsCLI(t, endpoint, "s3", "cp", "--recursive", "--quiet", "s3://"+bucket+"/", out)
	seen, objects := readShipped(t, out)
	var missing, twice []string
	for id := range load.ids() {
		switch seen[id] {
		case 0:
			missing = append(missing, id)
		case 1:
		default:
			twice = append(twice, id)
		}
	}
	for id, n := range seen {
		if n > 1 && !load.ids()[id] {
			twice = append(twice, id) // stored, never acknowledged: once at most too
		}
	}
	t.Logf("%d parcels acknowledged; %d objects hold %d parcels", load.acked(), objects, len(seen))
	if len(missing) > 0 {
		t.Errorf("%d acknowledged parcels are in no object, e.g. %v", len(missing), first5(missing))
	}
	if len(twice) > 0 {
		t.Errorf("%d parcels are in more than one object or line, e.g. %v", len(twice), first5(twice))
	}
}

// awsTestEnv keeps the AWS SDK and CLI off any real account: moto's dummy
// credentials, no config or credentials file, no instance metadata.
func awsTestEnv() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
		"AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.DevNull, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
		"AWS_EC2_METADATA_DISABLED": "true",
	}
}

// startMoto runs moto's S3 server on a free port of 127.0.0.1 and returns
// its URL. Without moto or the AWS CLI the test is skipped, saying so.
func startMoto(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: not running moto")
	}
	if _, err := exec.LookPath("aws"); err != nil {
		t.Skip("the AWS CLI is not installed (no aws on PATH); .ci/run installs it")
	}
	py, err := exec.Command("python3", "-c", "import moto.server, sys; print(sys.executable)").Output()
	if err != nil {
		t.Skip("moto is not installed (python3 -m moto.server unavailable); .ci/run installs it")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var logs bytes.Buffer
	cmd := exec.Command(strings.TrimSpace(string(py)), "-m", "moto.server", "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/")
		if err == nil {
			resp.Body.Close()
			return url
		}
		select {
		case <-exited:
			t.Fatalf("moto exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto not answering on %s after 30s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// awsCLI runs the AWS CLI against moto.
func awsCLI(t *testing.T, endpoint string, args ...string) string {
	t.Helper()
	cmd := exec.Command("aws", append([]string{"--endpoint-url", endpoint}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range awsTestEnv() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// readShipped counts the parcel ids in the objects copied to dir,
// decompressing .gz ones; every line must be a whole record.
func readShipped(t *testing.T, dir string) (map[string]int, int) {
	t.Helper()
	seen := map[string]int{}
	objects := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		objects++
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		var r io.Reader = f
		if strings.HasSuffix(path, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			r = zr
		}
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var rec struct{ ID string }
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				return fmt.Errorf("%s: a line that is not a whole record: %q", path, sc.Text())
			}
			seen[rec.ID]++
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen, objects
}

// s3Load posts 9-parcel requests from 4 clients until stopped, and keeps
// the ids of every 202.
type s3Load struct {
	mu     sync.Mutex
	acks   map[string]bool
	n      atomic.Int64
	done   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

func startS3Load(t *testing.T, addr string) *s3Load {
	l := &s3Load{acks: map[string]bool{}, done: make(chan struct{})}
	for c := range 4 {
		l.wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			for r := 0; ; r++ {
				select {
				case <-l.done:
					return
				default:
				}
				ids, body := numberedBatch(c, r)
				resp, err := client.Post("http://"+addr+"/", "application/json", strings.NewReader(body))
				if err != nil {
					select {
					case <-l.done:
					default:
						time.Sleep(10 * time.Millisecond) // killed: the test stops the load
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					l.mu.Lock()
					for _, id := range ids {
						l.acks[id] = true
					}
					l.mu.Unlock()
					l.n.Add(1)
				}
			}
		})
	}
	t.Cleanup(l.stop)
	return l
}

func (l *s3Load) waitAcked(t *testing.T, requests int64) {
	t.Helper()
	target := l.n.Load() + requests
	deadline := time.Now().Add(60 * time.Second)
	for l.n.Load() < target {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests answered 202, want %d", l.n.Load(), target)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (l *s3Load) stop() {
	l.closed.Do(func() { close(l.done) })
	l.wg.Wait()
}

func (l *s3Load) ids() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acks
}

func (l *s3Load) acked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

// waitMetric polls /metrics until the series' value satisfies ok.
func waitMetric(t *testing.T, addr, series string, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	last := "no such series"
	for {
		body := scrapeAll(t, addr)
		for _, line := range strings.Split(body, "\n") {
			if v, found := strings.CutPrefix(line, series+" "); found {
				last = v
				if f, err := strconv.ParseFloat(v, 64); err == nil && ok(f) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %s after 60s", series, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func s3GetStatus(t *testing.T, addr, path string) int {
	t.Helper()
	resp, err := newClient(t).Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
