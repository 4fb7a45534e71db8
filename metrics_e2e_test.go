//go:build e2e

package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// The binary's /metrics, read by the e2e tests.

// scrapeAll returns the server's whole /metrics.
func scrapeAll(t *testing.T, addr string) string {
	t.Helper()
	resp, err := newClient(t).Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// scrape returns the value of a series in GET /metrics.
func scrape(t *testing.T, addr, series string) int64 {
	t.Helper()
	v, ok := metricValue(scrapeAll(t, addr), series)
	if !ok {
		t.Fatalf("GET /metrics has no series %s", series)
	}
	return v
}

// getBody returns the body of GET url, which must answer 200.
func getBody(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	return string(b), err
}

// metricValue returns the integer value of the series name (with its
// labels, as written) in a Prometheus text exposition.
func metricValue(exposition, name string) (int64, bool) {
	sc := bufio.NewScanner(strings.NewReader(exposition))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
