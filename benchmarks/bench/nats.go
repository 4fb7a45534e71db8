package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// natsServer is the nats-server started for the sink section.
type natsServer struct {
	*proc
	port int
}

// jsAPI is the prefix of JetStream's API subjects:
// $JS.API.STREAM.CREATE.<stream>, ...
const jsAPI = "$JS.API."

var natsListening = regexp.MustCompile(`Listening for client connections on 127\.0\.0\.1:([0-9]+)`)

// startNats starts nats-server with JetStream on 127.0.0.1 (a free port, its
// store in the work directory), pinned away from the servers, and waits until
// its JetStream API answers.
func (b *bench) startNats() (*natsServer, error) {
	logPath := filepath.Join(b.work, "nats-server.log")
	store := filepath.Join(b.work, "nats")
	if err := os.MkdirAll(store, 0o755); err != nil {
		return nil, err
	}
	argv := append(slices.Clone(b.pin.nats), b.natsServer, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", store)
	p, err := startProc(&b.procs, "nats-server", argv, serverEnv(os.Environ(), nil), logPath)
	if err != nil {
		return nil, err
	}
	n := &natsServer{proc: p}
	var reason string
	portFound := poll(10*time.Second, 100*time.Millisecond, func() bool {
		if log, err := os.ReadFile(logPath); err == nil {
			if m := natsListening.FindSubmatch(log); m != nil {
				n.port, _ = strconv.Atoi(string(m[1]))
			}
		}
		return n.port > 0 || !p.alive()
	}) && n.port > 0
	if portFound {
		var apiErr error
		if poll(10*time.Second, 200*time.Millisecond, func() bool {
			_, apiErr = b.natsAPI(n, "INFO", "")
			return apiErr == nil || !p.alive()
		}) && apiErr == nil {
			return n, nil
		}
		reason = fmt.Sprintf("nats-server's JetStream API does not answer on 127.0.0.1:%d (%v)", n.port, apiErr)
	} else {
		reason = "nats-server did not log its client port within 10 s"
	}
	if !p.alive() {
		reason = "nats-server exited at startup"
	}
	log, _ := os.ReadFile(logPath)
	var errs []string
	for line := range strings.Lines(string(log)) {
		if strings.Contains(line, "[ERR]") || strings.Contains(line, "[FTL]") {
			errs = append(errs, strings.TrimSpace(line))
		}
	}
	reason += ": " + strings.Join(errs[max(len(errs)-2, 0):], " ")
	b.stopNats(n)
	return nil, fmt.Errorf("%s", reason)
}

// stopNats stops nats-server (SIGTERM, 10 s, then SIGKILL) and keeps its log.
func (b *bench) stopNats(n *natsServer) {
	n.stop(10 * time.Second)
	b.procs.forget(n.proc)
	log, _ := os.ReadFile(n.log)
	b.rawLog(fmt.Sprintf("nats-server log (exit status %d)", n.status()), log)
}

// natsAPI sends a JetStream API request ($JS.API.<req>) to nats-server and
// returns the answer, a JSON object; an answer with an error is an error.
// One connection per request, as few as the section needs: nothing of the
// harness stays connected while fastingest is measured.
func (b *bench) natsAPI(n *natsServer, req, payload string) ([]byte, error) {
	nc, err := nats.Connect("nats://127.0.0.1:"+strconv.Itoa(n.port), nats.Name("fastingest-bench"),
		nats.Timeout(10*time.Second), nats.NoReconnect())
	if err != nil {
		return nil, fmt.Errorf("cannot connect to nats-server: %w", err)
	}
	defer nc.Close()
	msg, err := nc.Request(jsAPI+req, []byte(payload), 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("no answer to %s%s: %w", jsAPI, req, err)
	}
	b.rawLog(fmt.Sprintf("%s%s %s: %s", jsAPI, req, payload, msg.Data), nil)
	var answer struct {
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &answer); err != nil {
		return nil, fmt.Errorf("%s%s: unreadable answer %q", jsAPI, req, msg.Data)
	}
	if len(answer.Error) > 0 && string(answer.Error) != "null" {
		return nil, fmt.Errorf("%s%s: %s", jsAPI, req, answer.Error)
	}
	return msg.Data, nil
}

// streamConfig is the JetStream stream of one nats run: a fresh stream per
// run, created by the harness rather than by fastingest so that it is
// bounded (max_bytes, discarding the oldest messages); otherwise as
// fastingest creates it: file storage, 1 replica, the 2-minute duplicate
// window.
func streamConfig(name string, maxBytes int64) string {
	return fmt.Sprintf(`{"name":"%s","subjects":["bench.%s"],"storage":"file","num_replicas":1,"max_bytes":%d,"discard":"old","duplicate_window":120000000000}`,
		name, name, maxBytes)
}

// streamState is the part of $JS.API.STREAM.INFO's answer a run reads.
type streamState struct {
	State struct {
		Messages int64 `json:"messages"`
		LastSeq  int64 `json:"last_seq"`
		Bytes    int64 `json:"bytes"`
	} `json:"state"`
}
