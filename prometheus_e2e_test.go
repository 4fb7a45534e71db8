//go:build linux && e2e

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastingest/fastingest/internal/testutil"
)

// The real-Prometheus test's settings. Prometheus scrapes and evaluates the
// rules every second; the rules' for: durations are cut to promFor so that
// an alert fires within seconds (their real durations are promtool's to
// test, fastingest.rules.test.yml). The dashboard's variables are given
// what Grafana would give them at that scrape interval.
const (
	promInterval     = time.Second
	promFor          = "2s"
	promRateInterval = "5s" // $__rate_interval: 4 scrapes, as Grafana computes it
	promRange        = "1m" // $__range
	promScrapes      = 8    // of every target before the queries are checked
	promTimeout      = 60 * time.Second
	steadyRate       = 40 // POST / per second to each fastingest in the steady phase
	overloadConns    = 64 // closed-loop clients of the overload phase
)

// notExposedHere returns why no fastingest of this test exposes the metric
// name, or "" when one must: the S3 shipper's metrics exist only with
// S3_BUCKET set, the Kafka sink's with SINK=kafka, the NATS sink's with
// SINK=nats, and none has a server here (their own end-to-end tests run
// them). A query that reads such a name must parse, and has no data; every
// other name must be exposed, so that a misspelt one fails rather than
// leaves a panel empty (TestQueriesReadMetricsThatExist checks those
// against the source).
func notExposedHere(name string) string {
	switch {
	case strings.HasPrefix(name, "fastingest_s3_"):
		return "S3 shipping runs only with S3_BUCKET and an S3 endpoint"
	case strings.HasPrefix(name, "fastingest_kafka_"):
		return "the Kafka sink needs Kafka brokers"
	case strings.HasPrefix(name, "fastingest_nats_"):
		return "the NATS sink needs a NATS server"
	}
	return ""
}

// TestPrometheusRulesAndDashboard runs Debian's Prometheus server against
// two fastingest processes, one with the file sink and one with the sim
// sink, under steady load, with the alert rules loaded. Every rule must
// evaluate without error and every recording rule must have data; every
// dashboard query must parse and have data when the metrics it reads exist
// here; no alert fires. Then the sim instance is overloaded until
// FastingestShedding fires for it. It takes about 30 s.
func TestPrometheusRulesAndDashboard(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("no prometheus binary in PATH (Debian: apt-get install prometheus; .ci/run installs it): " +
			"the alert rules and the dashboard are not checked on a real Prometheus")
	}
	if testing.Short() {
		t.Skip("-short: the real-Prometheus test takes about 30 s")
	}
	filep := startProcess(t, map[string]string{
		"ADDR": "127.0.0.1:0", "SINK": "file", "FSYNC_INTERVAL": "100ms", "SHUTDOWN_TIMEOUT": "10s",
	})
	// The sim sink's capacity: 20 workers / 10 ms = 2,000 parcels/s, 222
	// requests/s of 9 parcels: far above the steady load, far below the
	// overload's.
	simp := startProcess(t, map[string]string{
		"ADDR": "127.0.0.1:0", "SINK": "sim", "SIM_LATENCY": "5ms-15ms", "MAX_WORKERS": "20", "MAX_QUEUE": "200",
		"ENQUEUE_TIMEOUT": "100ms", "READY_MAX_QUEUE_WAIT": "50ms", "SHUTDOWN_TIMEOUT": "10s",
	})
	client := newClient(t)
	fileAddr, simAddr := filep.waitReady(client), simp.waitReady(client)
	targets := []string{fileAddr, simAddr}

	prom := startPrometheus(t, promBin, targets)

	ctx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	defer func() { stopLoad(); load.Wait() }()
	for _, addr := range targets {
		c := newClient(t)
		load.Go(func() { steadyLoad(ctx, c, addr) })
	}

	// Enough scrapes of both for rates over $__rate_interval.
	prom.poll(t, fmt.Sprintf("%d scrapes of each target", promScrapes), func() (bool, string) {
		v, err := prom.query(`count_over_time(up{job="fastingest"}[1m]) >= ` + strconv.Itoa(promScrapes))
		return err == nil && len(v) == len(targets), fmt.Sprintf("%d targets with enough scrapes, err %v", len(v), err)
	})

	exposed := prom.metricNames(t)
	for _, name := range []string{"fastingest_build_info", "fastingest_requests_total", "process_open_fds"} {
		if !exposed[name] {
			t.Fatalf("Prometheus has no %s: it does not scrape fastingest as the test expects", name)
		}
	}

	rules := prom.rules(t)
	t.Run("rules", func(t *testing.T) { checkRules(t, prom, exposed, rules) })
	t.Run("dashboard", func(t *testing.T) { checkDashboard(t, prom, exposed, rules, targets) })

	// Nothing fires under a steady load far below capacity.
	if firing := prom.firing(t, ""); len(firing) > 0 {
		t.Errorf("alerts firing under a steady load below capacity: %v", firing)
	}

	// Overload the sim instance until it sheds and FastingestShedding fires.
	var n202, n503 atomic.Int64
	tr := &http.Transport{MaxIdleConnsPerHost: overloadConns}
	t.Cleanup(tr.CloseIdleConnections)
	overloadClient := &http.Client{Transport: tr, Timeout: httpTimeout}
	for range overloadConns {
		load.Go(func() { overload(ctx, overloadClient, simAddr, &n202, &n503) })
	}
	prom.poll(t, "FastingestShedding firing for the overloaded instance", func() (bool, string) {
		firing := prom.firing(t, "FastingestShedding")
		return slices.Contains(firing, "FastingestShedding "+simAddr),
			fmt.Sprintf("firing %v; overload answered %d × 202, %d × 503", firing, n202.Load(), n503.Load())
	})
	if slices.Contains(prom.firing(t, "FastingestShedding"), "FastingestShedding "+fileAddr) {
		t.Errorf("FastingestShedding fires for %s, which sheds nothing", fileAddr)
	}
	t.Logf("overload: %d × 202, %d × 503; alerts firing: %v", n202.Load(), n503.Load(), prom.firing(t, ""))
	stopLoad()
	load.Wait()

	for _, p := range []*process{filep, simp} {
		if code, log := p.stop(); code != 0 {
			t.Errorf("exit code %d; want 0 (last line %q)", code, lastLine(t, log))
		}
	}
}

// checkRules checks that Prometheus loaded every rule of the rules file,
// evaluated each without error, that each reads only metrics that exist,
// that every recording rule has data, and that the accounting rule says 0
// for every instance.
func checkRules(t *testing.T, prom *prometheus, exposed map[string]bool, rules []promRule) {
	var alerts int
	for _, r := range rules {
		if r.Type == "alerting" {
			alerts++
		}
	}
	if alerts != len(alertBlocks(t)) {
		t.Errorf("Prometheus loaded %d alerting rules; %s has %d", alerts, rulesFile, len(alertBlocks(t)))
	}
	recorded := map[string]bool{}
	for _, r := range rules {
		recorded[r.Name] = true
	}
	for _, r := range rules {
		for _, name := range promqlMetricNames(r.Query) {
			if !exposed[name] && !recorded[name] && notExposedHere(name) == "" {
				t.Errorf("rule %s: %s is no metric fastingest exposes nor a recording rule (is it misspelt?)", r.Name, name)
			}
		}
		if r.Health != "ok" {
			t.Errorf("rule %s: health %q, error %q", r.Name, r.Health, r.LastError)
		}
		v, err := prom.query(r.Query)
		if err != nil {
			t.Errorf("rule %s: %v", r.Name, err)
			continue
		}
		if r.Type == "recording" && len(v) == 0 {
			if last, ok := prom.eventually(func() (bool, string) {
				v, err := prom.query(r.Name)
				return err == nil && len(v) > 0, fmt.Sprintf("%d series, err %v", len(v), err)
			}); !ok {
				t.Errorf("recording rule %s: no data after %v: %s", r.Name, promTimeout, last)
			}
		}
	}
	t.Logf("%d rules evaluated, %d of them alerts", len(rules), alerts)
	v, err := prom.query("instance:fastingest_parcels_unaccounted:value")
	if err != nil || len(v) != 2 {
		t.Fatalf("instance:fastingest_parcels_unaccounted:value: %d series, err %v; want one per instance", len(v), err)
	}
	for _, s := range v {
		if s.Value[1] != "0" {
			t.Errorf("%v: accepted - completed - failed - in flight = %v; want 0", s.Metric, s.Value[1])
		}
	}
}

// checkDashboard evaluates every query of the dashboard as Grafana would,
// its variables replaced, over the last seconds: each must parse, and each
// whose metrics exist here must return data. The instance variable's
// query must list both instances.
func checkDashboard(t *testing.T, prom *prometheus, exposed map[string]bool, rules []promRule, targets []string) {
	d := readDashboard(t)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`).FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: cannot read its definition %q", v.Name, v.Definition)
			continue
		}
		values := prom.labelValues(t, m[2], m[1])
		for _, want := range targets {
			if !slices.Contains(values, want) {
				t.Errorf("variable %s: %s = %v; want %s among them", v.Name, v.Definition, values, want)
			}
		}
	}
	recorded := map[string]bool{}
	for _, r := range rules {
		recorded[r.Name] = true
	}
	checked := 0
	replacer := strings.NewReplacer("$__rate_interval", promRateInterval, "$__range", promRange,
		"$__interval", promInterval.String(), "$instance", ".*")
	for _, q := range d.queries() {
		expr := replacer.Replace(q.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("panel %q: %q has a variable the test does not know", q.panel, q.expr)
			continue
		}
		want := true // data, unless a metric it reads is not exposed here
		for _, name := range promqlMetricNames(expr) {
			switch {
			case exposed[name] || recorded[name]:
			case notExposedHere(name) != "":
				want = false
			default:
				t.Errorf("panel %q: %s is no metric fastingest exposes (is it misspelt?)", q.panel, name)
				want = false
			}
		}
		eval := func() (int, error) {
			if q.instant {
				v, err := prom.query(expr)
				return len(v), err
			}
			return prom.queryRange(expr)
		}
		n, err := eval()
		switch {
		case err != nil:
			t.Errorf("panel %q: %v", q.panel, err)
		case want && n == 0:
			// Rates need two scrapes in their window: wait for them.
			if last, ok := prom.eventually(func() (bool, string) {
				n, err := eval()
				return err == nil && n > 0, fmt.Sprintf("%d series, err %v", n, err)
			}); !ok {
				t.Errorf("panel %q: no data for %s after %v: %s", q.panel, expr, promTimeout, last)
			}
		}
		checked++
	}
	t.Logf("%d dashboard queries evaluated", checked)
}

// steadyLoad posts the reference payload to addr steadyRate times a second
// and probes /readyz and /healthz as a load balancer would, until ctx ends.
func steadyLoad(ctx context.Context, client *http.Client, addr string) {
	payload := referencePayload()
	tick := time.NewTicker(time.Second / steadyRate)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sendLoad(ctx, client, http.MethodPost, "http://"+addr+"/", payload)
		if n%4 == 0 {
			sendLoad(ctx, client, http.MethodGet, "http://"+addr+"/readyz", "")
		}
		if n%20 == 0 {
			sendLoad(ctx, client, http.MethodGet, "http://"+addr+"/healthz", "")
		}
	}
}

// overload posts the reference payload to addr as fast as the answers come,
// counting 202s and 503s, until ctx ends.
func overload(ctx context.Context, client *http.Client, addr string, n202, n503 *atomic.Int64) {
	payload := referencePayload()
	for ctx.Err() == nil {
		switch sendLoad(ctx, client, http.MethodPost, "http://"+addr+"/", payload) {
		case http.StatusAccepted:
			n202.Add(1)
		case http.StatusServiceUnavailable:
			n503.Add(1)
		}
	}
}

// sendLoad sends one request and returns its status, 0 on an error (the load
// ending included).
func sendLoad(ctx context.Context, client *http.Client, method, url, body string) int {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// prometheus is a running Prometheus server and its HTTP API.
type prometheus struct {
	base   string // http://127.0.0.1:port
	client *http.Client
}

// startPrometheus runs promBin scraping targets every promInterval as the
// job "fastingest", with the rules of rulesFile, their for: cut to promFor,
// and waits until it is ready. It is stopped when the test ends.
func startPrometheus(t *testing.T, promBin string, targets []string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	fors := regexp.MustCompile(`(?m)^(\s+for:\s+)\S+\s*$`)
	if len(fors.FindAll(rules, -1)) != len(alertBlocks(t)) {
		t.Fatalf("%s: the for: lines do not match the alerts one to one", rulesFile)
	}
	rules = fors.ReplaceAll(rules, []byte("${1}"+promFor))
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	quoted := make([]string, len(targets))
	for i, a := range targets {
		quoted[i] = strconv.Quote(a)
	}
	config := fmt.Sprintf("global:\n  scrape_interval: %s\n  evaluation_interval: %s\n"+
		"rule_files: [rules.yml]\nscrape_configs:\n  - job_name: fastingest\n    static_configs:\n      - targets: [%s]\n",
		promInterval, promInterval, strings.Join(quoted, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}

	// A free port: Prometheus does not say which one it got for port 0.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	var out testutil.SyncBuffer // Prometheus' stdout and stderr, copied by two goroutines
	cmd := exec.Command(promBin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start %s: %v", promBin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(exitTimeout):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})

	p := &prometheus{base: "http://" + addr, client: &http.Client{Timeout: httpTimeout}}
	deadline := time.Now().Add(promTimeout)
	for {
		if resp, err := p.client.Get(p.base + "/-/ready"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-exited:
			t.Fatalf("prometheus exited before it was ready: %v\n%s", cmd.ProcessState, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after %v", promTimeout)
		}
	}
}

// poll calls cond until it is true, failing the test after promTimeout
// with what cond said last.
func (p *prometheus) poll(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	if last, ok := p.eventually(cond); !ok {
		t.Fatalf("waiting for %s: still not after %v: %s", what, promTimeout, last)
	}
}

// eventually calls cond until it is true or promTimeout has passed, and
// returns what cond said last and whether it became true.
func (p *prometheus) eventually(cond func() (bool, string)) (string, bool) {
	deadline := time.Now().Add(promTimeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok || time.Now().After(deadline) {
			return last, ok
		}
		<-tick.C
	}
}

// get calls the API at path with query parameters and decodes the data of
// a successful answer into data; a failed one (a query that does not parse)
// is the error.
func (p *prometheus) get(path string, params url.Values, data any) error {
	resp, err := p.client.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var answer struct {
		Status    string          `json:"status"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return fmt.Errorf("%s: %d, %v", path, resp.StatusCode, err)
	}
	if answer.Status != "success" {
		return fmt.Errorf("%s %s: %s: %s", path, params.Encode(), answer.ErrorType, answer.Error)
	}
	return json.Unmarshal(answer.Data, data)
}

type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"` // time, value as a string
}

// query evaluates expr now and returns its samples.
func (p *prometheus) query(expr string) ([]promSample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: a %s, not an instant vector", expr, data.ResultType)
	}
	var v []promSample
	return v, json.Unmarshal(data.Result, &v)
}

// queryRange evaluates expr over the last 5 scrapes, as a Grafana time
// series panel does over its time range, and returns how many series have
// values.
func (p *prometheus) queryRange(expr string) (int, error) {
	end := time.Now()
	var data struct {
		Result []struct {
			Values [][2]any `json:"values"`
		} `json:"result"`
	}
	err := p.get("/api/v1/query_range", url.Values{"query": {expr},
		"start": {strconv.FormatInt(end.Add(-5*promInterval).Unix(), 10)},
		"end":   {strconv.FormatInt(end.Unix(), 10)}, "step": {"1"}}, &data)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range data.Result {
		if len(s.Values) > 0 {
			n++
		}
	}
	return n, nil
}

// metricNames returns the names of every series Prometheus holds, those of
// the recording rules included.
func (p *prometheus) metricNames(t *testing.T) map[string]bool {
	t.Helper()
	var names []string
	if err := p.get("/api/v1/label/__name__/values", nil, &names); err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// labelValues returns the values of label among the series match selects.
func (p *prometheus) labelValues(t *testing.T, label, match string) []string {
	t.Helper()
	var values []string
	if err := p.get("/api/v1/label/"+label+"/values", url.Values{"match[]": {match}}, &values); err != nil {
		t.Fatal(err)
	}
	return values
}

type promRule struct {
	Name           string    `json:"name"`
	Query          string    `json:"query"`
	Type           string    `json:"type"` // recording or alerting
	Health         string    `json:"health"`
	LastError      string    `json:"lastError"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

// rules waits until Prometheus has evaluated every rule at least once and
// returns them.
func (p *prometheus) rules(t *testing.T) []promRule {
	t.Helper()
	var rules []promRule
	p.poll(t, "every rule evaluated", func() (bool, string) {
		var data struct {
			Groups []struct {
				Rules []promRule `json:"rules"`
			} `json:"groups"`
		}
		if err := p.get("/api/v1/rules", nil, &data); err != nil {
			return false, err.Error()
		}
		rules = rules[:0]
		for _, g := range data.Groups {
			rules = append(rules, g.Rules...)
		}
		for _, r := range rules {
			if r.LastEvaluation.Year() < 2000 {
				return false, "rule " + r.Name + " not evaluated yet"
			}
		}
		return len(rules) > 0, fmt.Sprintf("%d rules", len(rules))
	})
	return rules
}

// firing returns the alerts firing now, as "name instance", of the alert
// name or of all when name is "".
func (p *prometheus) firing(t *testing.T, name string) []string {
	t.Helper()
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := p.get("/api/v1/alerts", nil, &data); err != nil {
		t.Fatal(err)
	}
	var firing []string
	for _, a := range data.Alerts {
		if a.State == "firing" && (name == "" || a.Labels["alertname"] == name) {
			firing = append(firing, a.Labels["alertname"]+" "+a.Labels["instance"])
		}
	}
	slices.Sort(firing)
	return firing
}
