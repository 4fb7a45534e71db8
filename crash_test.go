//go:build e2e

package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ACK=persisted promises that a 202 means stored on disk. The proof: kill
// the server with SIGKILL in the middle of a load, restart it on the same
// data directory, and every parcel of every request that got a 202 is in
// a segment exactly once. Parcels of requests that got no answer may be
// there or not (they were never acknowledged).
func TestKillDashNineLosesNoAcknowledgedParcel(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{
		"ADDR": "127.0.0.1:0", "SINK": "file", "ACK": "persisted", "DATA_DIR": dataDir,
		// Small segments, so that the run also crosses rotations.
		"SEGMENT_BYTES": "64KiB",
	}
	p := startProcess(t, env)
	addr := p.waitReady(newClient(t))

	const clients = 8
	var (
		mu        sync.Mutex
		acked     = map[string]bool{} // parcel ids of 202 answers
		requests  atomic.Int64
		stopLoad  = make(chan struct{})
		loadDone  sync.WaitGroup
		postFails atomic.Int64
	)
	for c := range clients {
		loadDone.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			for r := 0; ; r++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				ids, body := numberedBatch(c, r)
				resp, err := client.Post("http://"+addr+"/", "application/json", strings.NewReader(body))
				if err != nil {
					postFails.Add(1) // the server is gone: expected after the kill
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					mu.Lock()
					for _, id := range ids {
						acked[id] = true
					}
					mu.Unlock()
					requests.Add(1)
				}
			}
		})
	}

	// Kill once the load is well under way, while requests are in flight.
	deadline := time.Now().Add(20 * time.Second)
	for requests.Load() < 300 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	<-p.exited
	time.Sleep(50 * time.Millisecond) // let clients see the refused connections
	close(stopLoad)
	loadDone.Wait()
	if len(acked) == 0 {
		t.Fatal("no request was answered 202 before the kill")
	}

	// Restart on the same directory: it must start (repairing a torn tail
	// if there is one) and shut down cleanly.
	p2 := startProcess(t, env)
	p2.waitReady(newClient(t))
	if code, log := p2.stop(); code != 0 {
		t.Fatalf("restarted server exit code = %d; log:\n%s", code, strings.Join(log, "\n"))
	}

	seen := readSegments(t, dataDir)
	var missing, twice []string
	for id := range acked {
		switch seen[id] {
		case 0:
			missing = append(missing, id)
		case 1:
		default:
			twice = append(twice, id)
		}
	}
	t.Logf("%d requests answered 202 (%d parcels) before SIGKILL; %d parcels in %s; %d posts failed after it",
		requests.Load(), len(acked), len(seen), dataDir, postFails.Load())
	if len(missing) > 0 {
		t.Errorf("%d acknowledged parcels are missing after the crash, e.g. %v", len(missing), first(missing, 5))
	}
	if len(twice) > 0 {
		t.Errorf("%d acknowledged parcels are stored more than once, e.g. %v", len(twice), first(twice, 5))
	}
}

// readSegments counts the parcel ids in every segment of dir. Every line
// must be a whole record.
func readSegments(t *testing.T, dir string) map[string]int {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var rec struct{ ID, Time, Data, Received string }
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Errorf("%s: a line that is not a whole record: %q: %v", filepath.Base(name), sc.Text(), err)
				continue
			}
			if rec.Time != "2017-01-01T00:00:01Z" || !strings.HasPrefix(rec.Data, "payload ") || rec.Received == "" {
				t.Errorf("%s: record not as sent: %+v", filepath.Base(name), rec)
			}
			seen[rec.ID]++
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return seen
}

func first(s []string, n int) []string {
	return s[:min(n, len(s))]
}
