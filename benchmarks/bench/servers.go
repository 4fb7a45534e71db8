package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// server is a server under test, started by launch.
type server struct {
	*proc
	port int
}

// launchError says why a server did not come up.
type launchError struct {
	msg    string
	status int    // its exit status; -1 if it was running and had to be killed
	log    []byte // its output
}

func (e *launchError) Error() string { return e.msg }

// clearEnv are the settings a server would take from the environment: the
// servers' settings come from the harness only, not from its caller. Every
// setting of fastingest's options table is here (TestBenchClearsEverySetting
// in the repository's root package checks it), and GOMAXPROCS.
var clearEnv = []string{
	"ADDR", "MAX_WORKERS", "MAX_QUEUE", "MAX_QUEUE_BYTES", "SINK", "SIM_LATENCY", "MAX_BODY_BYTES", "LOG_LEVEL",
	"SHUTDOWN_TIMEOUT", "DRAIN_DELAY", "GOMAXPROCS", "ACK", "ACK_TIMEOUT", "DATA_DIR", "SEGMENT_BYTES", "SEGMENT_AGE",
	"RETAIN_BYTES", "FSYNC_INTERVAL", "NATS_URL", "NATS_SUBJECT", "NATS_STREAM", "NATS_REPLICAS", "ENQUEUE_TIMEOUT",
	"READY_MAX_QUEUE_WAIT", "MAX_CONNS", "READ_TIMEOUT", "WRITE_TIMEOUT", "IDLE_TIMEOUT", "MAX_HEADER_BYTES",
	"AUTH_TOKEN", "AUTH_TOKEN_FILE", "METRICS_PUBLIC", "TLS_CERT", "TLS_KEY", "SHARDS", "S3_BUCKET", "S3_PREFIX",
	"S3_COMPRESSION", "S3_UPLOAD_CONCURRENCY", "KAFKA_BROKERS", "KAFKA_TOPIC", "KAFKA_COMPRESSION", "KAFKA_LINGER",
	"KAFKA_MAX_BUFFERED", "KAFKA_TLS", "KAFKA_TLS_CA", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USER",
	"KAFKA_SASL_PASSWORD_FILE", "KAFKA_CREATE_TOPIC", "KAFKA_PARTITIONS", "KAFKA_REPLICATION",
}

// serverEnv returns environ without the variables of clearEnv, plus set.
func serverEnv(environ, set []string) []string {
	env := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(clearEnv, k) {
			env = append(env, kv)
		}
	}
	return append(env, set...)
}

// listening finds the port in the line a server logs when it listens:
// fastingest's "listen=127.0.0.1:PORT", classic's and noop's
// "listening on 127.0.0.1:PORT".
var listening = regexp.MustCompile(`(?:listen=|listening on )127\.0\.0\.1:([0-9]+)`)

// launch starts the binary name of the work directory on 127.0.0.1 with a
// free port and settings (VAR=VALUE), pinned, and waits until it answers
// HTTP. A server that does not come up is stopped, its log kept, and the
// error is a *launchError.
func (b *bench) launch(name string, settings ...string) (*server, error) {
	b.seq++
	logPath := filepath.Join(b.work, fmt.Sprintf("%s.%d.log", name, b.seq))
	argv := append(slices.Clone(b.pin.server), filepath.Join(b.work, name))
	set := append(append([]string{"ADDR=127.0.0.1:0"}, b.pin.serverEnv...), settings...)
	p, err := startProc(&b.procs, name, argv, serverEnv(os.Environ(), set), logPath)
	if err != nil {
		return nil, err
	}
	s := &server{proc: p}
	var reason string
	if poll(10*time.Second, 100*time.Millisecond, func() bool { s.port = logPort(logPath); return s.port > 0 || !p.alive() }) && s.port > 0 {
		if poll(5*time.Second, 100*time.Millisecond, func() bool { return httpPing(s.port) || !p.alive() }) && p.alive() {
			return s, nil
		}
		reason = fmt.Sprintf("%s (pid %d) does not answer HTTP on 127.0.0.1:%d", name, p.pid(), s.port)
	} else {
		reason = fmt.Sprintf("%s (%s) did not log its address within 10 s", name, strings.Join(settings, " "))
	}
	le := &launchError{msg: reason, status: -1}
	if p.alive() {
		p.kill()
	} else {
		le.status = p.status()
		le.msg = fmt.Sprintf("%s (%s) exited with status %d before answering HTTP", name, strings.Join(settings, " "), le.status)
	}
	b.procs.forget(p)
	le.log, _ = os.ReadFile(logPath)
	b.rawLog(fmt.Sprintf("%s log (did not start: %s)", name, le.msg), le.log)
	return nil, le
}

// start is launch, with the server's log on stderr if it does not come up.
func (b *bench) start(name string, settings ...string) (*server, error) {
	s, err := b.launch(name, settings...)
	var le *launchError
	if errors.As(err, &le) {
		os.Stderr.Write(le.log)
	}
	return s, err
}

// stopServer sends SIGTERM, waits 40 s at most (fastingest drains its
// queue), and checks that the server exited 0; its log goes to the raw
// output under label.
func (b *bench) stopServer(s *server, label string) {
	if s.stop(40 * time.Second) {
		b.warn("%s did not exit within 40 s of SIGTERM; killed", label)
	}
	status := s.status()
	b.procs.forget(s.proc)
	out, _ := os.ReadFile(s.log)
	b.rawLog(fmt.Sprintf("%s log (exit status %d)", label, status), out)
	if status != 0 {
		fmt.Fprintln(os.Stderr, tail(out, 5))
		b.warn("%s exited with status %d after SIGTERM", label, status)
	}
}

// logPort returns the port a server logged, 0 if none yet.
func logPort(logPath string) int {
	f, err := os.Open(logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			port, _ := strconv.Atoi(m[1])
			return port
		}
	}
	return 0
}

// httpPing reports whether an HTTP server answers GET /healthz on
// 127.0.0.1:port (any status will do).
func httpPing(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 2*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "HTTP/1.")
}

// poll calls cond every interval until it holds or timeout has passed; it
// reports whether it held.
func poll(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// tail returns the last n lines of out.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
