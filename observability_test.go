package main

import (
	"encoding/json"
	"os"
	"regexp"
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
