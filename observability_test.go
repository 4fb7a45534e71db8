package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The files operators load into their own tools: the Grafana dashboard and
// the Prometheus rules. The tests here check what can be checked without
// those tools, in the fast loop; promtool checks and unit-tests the rules
// (.ci/run), and prometheus_e2e_test.go evaluates every rule and every panel
// on a real Prometheus scraping fastingest.
const (
	dashboardFile = "deploy/grafana/fastingest.json"
	rulesFile     = "deploy/prometheus/fastingest.rules.yml"
	rulesTestFile = "deploy/prometheus/fastingest.rules.test.yml"
)

// dashboard is the part of a Grafana dashboard's JSON model the tests read.
type dashboard struct {
	ID            *int   `json:"id"` // null: Grafana assigns one on import
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Panels        []dashboardPanel
	Templating    struct {
		List []dashboardVariable `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	ID         int              `json:"id"`
	Type       string           `json:"type"`
	Title      string           `json:"title"`
	Datasource *datasourceRef   `json:"datasource"`
	GridPos    gridPos          `json:"gridPos"`
	Collapsed  bool             `json:"collapsed"`
	Panels     []dashboardPanel `json:"panels"` // of a collapsed row
	Targets    []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Instant    bool           `json:"instant"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
}

type gridPos struct{ X, Y, W, H int }

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type dashboardVariable struct {
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Query      any            `json:"query"` // a string, or an object for a Prometheus query variable
	Definition string         `json:"definition"`
	Datasource *datasourceRef `json:"datasource"`
	IncludeAll bool           `json:"includeAll"`
	AllValue   string         `json:"allValue"`
}

// dashboardQuery is one query of a panel.
type dashboardQuery struct {
	panel   string // its title
	expr    string
	instant bool
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels returns the dashboard's panels, those inside collapsed rows
// included.
func (d dashboard) allPanels() []dashboardPanel {
	var all []dashboardPanel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	return all
}

// queries returns every query of every panel.
func (d dashboard) queries() []dashboardQuery {
	var qs []dashboardQuery
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			qs = append(qs, dashboardQuery{panel: p.Title, expr: tg.Expr, instant: tg.Instant})
		}
	}
	return qs
}

// TestDashboardIsImportable checks what Grafana needs to import the
// dashboard into any instance and what makes it usable there: no fixed
// datasource (every panel and query uses the ${datasource} variable), an
// instance variable that every query filters by, unique panel ids and
// panels that fit the 24-column grid without overlapping.
func TestDashboardIsImportable(t *testing.T) {
	t.Parallel()
	d := readDashboard(t)
	if d.ID != nil {
		t.Errorf("id = %d; want null, so that importing does not overwrite another dashboard", *d.ID)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want all three set", d.UID, d.Title, d.SchemaVersion)
	}

	vars := map[string]dashboardVariable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v := vars["datasource"]; v.Type != "datasource" || v.Query != "prometheus" {
		t.Errorf("variable datasource: type %q, query %v; want a Prometheus datasource variable", v.Type, v.Query)
	}
	inst := vars["instance"]
	if inst.Type != "query" || inst.Datasource == nil || inst.Datasource.UID != "${datasource}" ||
		!strings.HasPrefix(inst.Definition, "label_values(") || !inst.IncludeAll || inst.AllValue != ".*" {
		t.Errorf("variable instance = %+v; want a query variable on ${datasource}, label_values(...), with All as .*", inst)
	}

	ids := map[int]string{}
	var placed []dashboardPanel
	for _, p := range d.allPanels() {
		if other, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d, also %q's; want a unique id", p.Title, p.ID, other)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W < 1 || g.H < 1 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, g)
		}
		for _, q := range placed {
			if overlaps(g, q.GridPos) {
				t.Errorf("panel %q at %+v overlaps %q at %+v", p.Title, g, q.Title, q.GridPos)
			}
		}
		placed = append(placed, p)
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v; want uid ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q, query %s: datasource %+v; want uid ${datasource}", p.Title, tg.RefID, tg.Datasource)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q, query %s: %q does not filter by the instance variable", p.Title, tg.RefID, tg.Expr)
			}
		}
	}
	if len(d.queries()) < 20 {
		t.Errorf("%d queries; the dashboard lost its panels", len(d.queries()))
	}
}

func overlaps(a, b gridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

// ruleBlock is one alerting rule of the rules file, as lines.
type ruleBlock struct {
	name  string
	lines []string
}

var alertLine = regexp.MustCompile(`^\s*- alert:\s*(\S+)\s*$`)

// alertBlocks returns the alerting rules of the rules file, each with its
// lines up to the next rule; a line scan, since the module has no YAML
// parser and promtool checks the syntax.
func alertBlocks(t *testing.T) []ruleBlock {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []ruleBlock
	in := false // within an alerting rule
	for _, line := range strings.Split(string(b), "\n") {
		switch m := alertLine.FindStringSubmatch(line); {
		case m != nil:
			blocks = append(blocks, ruleBlock{name: m[1]})
			in = true
		case strings.Contains(line, "- record:") || strings.Contains(line, "- name:"):
			in = false
		case in:
			blocks[len(blocks)-1].lines = append(blocks[len(blocks)-1].lines, line)
		}
	}
	return blocks
}

// TestAlertRulesAreComplete checks that every alert has a for:, a severity
// and a summary, and that the promtool unit tests expect it to fire at least
// once: an alert nobody has seen fire may never fire.
func TestAlertRulesAreComplete(t *testing.T) {
	t.Parallel()
	blocks := alertBlocks(t)
	if len(blocks) < 10 {
		t.Fatalf("%s: %d alerts found; want the line scan to find them all", rulesFile, len(blocks))
	}
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	// An alertname: line followed by a non-empty exp_alerts: a test in
	// which it fires.
	fires := map[string]bool{}
	lines := strings.Split(string(b), "\n")
	for i, line := range lines {
		name, ok := strings.CutPrefix(strings.TrimSpace(line), "alertname:")
		if ok && i+1 < len(lines) && strings.TrimSpace(lines[i+1]) == "exp_alerts:" {
			fires[strings.TrimSpace(name)] = true
		}
	}
	seen := map[string]bool{}
	for _, r := range blocks {
		if seen[r.name] {
			t.Errorf("alert %s defined twice", r.name)
		}
		seen[r.name] = true
		body := strings.Join(r.lines, "\n")
		for _, want := range []string{"\n        for: ", "severity: ", "summary: "} {
			if !strings.Contains("\n"+body, want) {
				t.Errorf("alert %s has no %q", r.name, strings.TrimSpace(want))
			}
		}
		if !regexp.MustCompile(`severity: (critical|warning)\n`).MatchString(body + "\n") {
			t.Errorf("alert %s: severity neither critical nor warning", r.name)
		}
		if !fires[r.name] {
			t.Errorf("alert %s: no test in %s expects it to fire", r.name, rulesTestFile)
		}
	}
	for name := range fires {
		if !seen[name] {
			t.Errorf("%s tests %s, which %s does not define", rulesTestFile, name, rulesFile)
		}
	}
}

// promqlMetricNames returns the metric names a PromQL expression reads: the
// identifiers that are neither functions, keywords, label names nor
// quoted.
func promqlMetricNames(expr string) []string {
	unquoted := regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).ReplaceAllString(expr, `""`)
	unquoted = regexp.MustCompile(`\[[^\]]*\]`).ReplaceAllString(unquoted, "")
	// Label lists: by (...), without (...), on (...), ignoring (...),
	// group_left (...), and matchers {...}.
	unquoted = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`).ReplaceAllString(unquoted, "")
	unquoted = regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(unquoted, "")
	var names []string
	for _, m := range regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`).FindAllString(unquoted, -1) {
		if strings.HasSuffix(m, "(") { // a function or an aggregation
			continue
		}
		switch m {
		case "and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN":
			continue
		}
		if !slices.Contains(names, m) {
			names = append(names, m)
		}
	}
	return names
}

// ruleExprs returns the expr of every rule of the rules file, recording and
// alerting, and the names the recording rules record; a line scan, which
// reads one-line exprs and block scalars (expr: |).
func ruleExprs(t *testing.T) (exprs, recorded []string) {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	indent := func(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(trimmed, "- record:"); ok {
			recorded = append(recorded, strings.TrimSpace(name))
		}
		expr, ok := strings.CutPrefix(trimmed, "expr:")
		if !ok {
			continue
		}
		expr = strings.TrimSpace(expr)
		if expr == "|" {
			var block []string
			for _, next := range lines[i+1:] {
				if strings.TrimSpace(next) != "" && indent(next) <= indent(line) {
					break
				}
				block = append(block, strings.TrimSpace(next))
			}
			expr = strings.Join(block, " ")
		}
		exprs = append(exprs, expr)
	}
	return exprs, recorded
}

// sourceMetricNames returns the metric names that start a string literal
// (quoted or raw) or follow "# TYPE " in the module's Go code, tests
// aside: where fastingest and its sinks write their families, and the
// process and Go families processmetrics.go describes.
func sourceMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	literal := regexp.MustCompile("(?:[\"`]|# TYPE )((?:fastingest|process|go)_[a-z0-9_]+)")
	names := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range literal.FindAllSubmatch(b, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestQueriesReadMetricsThatExist checks that every metric name the alert
// rules and the dashboard read is one fastingest writes (or a recording
// rule, or Prometheus' up): a misspelt name parses, matches nothing, and
// leaves an alert that never fires or a panel that stays empty. The
// real-Prometheus test checks the same against a live exposition, for the
// metrics of the sinks it runs.
func TestQueriesReadMetricsThatExist(t *testing.T) {
	t.Parallel()
	known := sourceMetricNames(t)
	if !known["fastingest_requests_total"] || !known["process_open_fds"] {
		t.Fatalf("the source scan found %d names, not fastingest_requests_total and process_open_fds", len(known))
	}
	exprs, recorded := ruleExprs(t)
	if len(exprs) < len(alertBlocks(t))+len(recorded) {
		t.Fatalf("%d exprs read from %s; want one per rule", len(exprs), rulesFile)
	}
	var queries []dashboardQuery
	for _, e := range exprs {
		queries = append(queries, dashboardQuery{panel: rulesFile, expr: e})
	}
	queries = append(queries, readDashboard(t).queries()...)
	for _, q := range queries {
		for _, name := range promqlMetricNames(q.expr) {
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(name, suffix); ok && known[b] {
					base = b
				}
			}
			if !known[base] && !slices.Contains(recorded, name) && name != "up" {
				t.Errorf("%s: %s reads %s, which fastingest does not write", q.panel, q.expr, name)
			}
		}
	}
}
