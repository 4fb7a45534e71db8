//go:build e2e

package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The segment on disk is the truth: under an ACK=persisted load, the
// segment being written is deleted, then its successor truncated, by
// something other than fastingest (an operator's copy-then-delete). Every
// parcel of every request sent after each loss and answered 202 is in a
// segment; the parcels acknowledged before and gone with the files are
// counted in /metrics and the shutdown summary; no NUL run is left; a
// restart finds every segment whole.
func TestActiveSegmentDeletedAndTruncatedUnderLoad(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{"ADDR": "127.0.0.1:0", "SINK": "file", "ACK": "persisted", "DATA_DIR": dataDir}
	p := startProcess(t, env)
	addr := p.waitReady(newClient(t))

	var (
		mu       sync.Mutex
		acked    = map[string]int{} // parcel id -> the phase its request was sent in
		phase    atomic.Int64       // 0 before the deletion, 1 after it, 2 after the truncation
		requests atomic.Int64       // answered 202
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	for c := range 8 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			for r := 0; ; r++ {
				select {
				case <-stop:
					return
				default:
				}
				sentIn := int(phase.Load())
				ids, body := numberedBatch(c, r)
				resp, err := client.Post("http://"+addr+"/", "application/json", strings.NewReader(body))
				if err != nil {
					t.Errorf("POST /: %v", err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					t.Errorf("POST / = %d; want 202: losing a segment is no reason to refuse parcels", resp.StatusCode)
					return
				}
				mu.Lock()
				for _, id := range ids {
					acked[id] = sentIn
				}
				mu.Unlock()
				requests.Add(1)
			}
		})
	}
	waitRequests := func(n int64) {
		t.Helper()
		target := requests.Load() + n
		deadline := time.Now().Add(30 * time.Second)
		for requests.Load() < target {
			if time.Now().After(deadline) || t.Failed() {
				close(stop)
				wg.Wait()
				t.Fatalf("%d requests answered 202, want %d", requests.Load(), target)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	active := func() string {
		t.Helper()
		names, err := filepath.Glob(filepath.Join(dataDir, "*.ndjson"))
		if err != nil || len(names) == 0 {
			t.Fatalf("no segment in %s (%v)", dataDir, err)
		}
		slices.Sort(names)
		return names[len(names)-1]
	}

	waitRequests(200)
	first := active()
	if err := os.Remove(first); err != nil {
		t.Fatal(err)
	}
	phase.Store(1)
	waitRequests(200)
	second := active()
	if second == first {
		t.Fatalf("still writing %s after deleting it", filepath.Base(first))
	}
	info, err := os.Stat(second)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(second, info.Size()/2+3); err != nil { // mid-line, most likely
		t.Fatal(err)
	}
	phase.Store(2)
	waitRequests(200)
	close(stop)
	wg.Wait()

	metrics := scrapeAll(t, addr)
	code, log := p.stop()
	if code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, strings.Join(log, "\n"))
	}
	summary := lastLine(t, log)
	segmentsLost, _ := strconv.Atoi(logValue(summary, "file_segments_lost"))
	parcelsLost, _ := strconv.Atoi(logValue(summary, "file_parcels_lost"))
	if segmentsLost != 2 || parcelsLost == 0 {
		t.Errorf("summary %q: want file_segments_lost=2 and the parcels lost counted", summary)
	}
	if want := "\nfastingest_file_segments_lost_total 2\n"; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
	}
	var errorLines int
	for _, l := range log {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "parcels_lost=") {
			errorLines++
		}
	}
	if errorLines != 2 {
		t.Errorf("%d ERROR lines about a lost segment, want 2", errorLines)
	}

	// A restart checks every segment, and finds nothing to cut.
	p2 := startProcess(t, env)
	p2.waitReady(newClient(t))
	if code, log := p2.stop(); code != 0 {
		t.Fatalf("restart: exit code %d; log:\n%s", code, strings.Join(log, "\n"))
	} else {
		for _, l := range log {
			if strings.Contains(l, "bytes_cut=") {
				t.Errorf("the restart cut something: %s", l)
			}
		}
	}

	checkNoNULRuns(t, dataDir)
	seen := readSegments(t, dataDir) // fails on a line that is not a whole record
	var missingBefore, missingAfter []string
	for id, ph := range acked {
		if seen[id] > 0 {
			continue
		}
		if ph == 2 {
			missingAfter = append(missingAfter, id)
		} else {
			missingBefore = append(missingBefore, id)
		}
	}
	t.Logf("%d parcels acknowledged, %d in segments; %d acknowledged before a loss and gone; summary: %s",
		len(acked), len(seen), len(missingBefore), summary)
	if len(missingAfter) > 0 {
		t.Errorf("%d parcels sent after the last loss were answered 202 and are in no segment, e.g. %v",
			len(missingAfter), first5(missingAfter))
	}
	if len(missingBefore) > parcelsLost {
		t.Errorf("%d acknowledged parcels are gone, more than file_parcels_lost=%d", len(missingBefore), parcelsLost)
	}
}

// checkNoNULRuns fails the test if a file in dir holds a NUL byte.
func checkNoNULRuns(t *testing.T, dir string) {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			continue // a directory
		}
		if i := bytes.IndexByte(b, 0); i >= 0 {
			t.Errorf("%s holds a NUL byte at offset %d", filepath.Base(name), i)
		}
	}
}

func first5(s []string) []string {
	slices.Sort(s)
	return s[:min(5, len(s))]
}
