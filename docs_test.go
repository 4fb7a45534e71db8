package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// docFiles are the documents whose links and tables the tests below check:
// the README and everything under docs/.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"README.md"}, files...)
}

// mdLink matches an inline Markdown link or image, [text](target) or
// [text](target "title"), capturing the target.
var mdLink = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// TestDocLinksResolve checks that every relative link in the README and
// docs/*.md names a file or directory that exists and, when it has a
// #fragment into a Markdown file, a heading of that file: documents move
// and headings get renamed, and a front door with dead links is no door.
func TestDocLinksResolve(t *testing.T) {
	t.Parallel()
	anchors := map[string]map[string]bool{} // Markdown file -> its heading anchors
	for _, doc := range docFiles(t) {
		for _, l := range markdownLinks(t, doc) {
			target := l.target
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue // not a file of this repository
			}
			path, frag, _ := strings.Cut(target, "#")
			file := doc // a bare #fragment points into the document itself
			if path != "" {
				file = filepath.Join(filepath.Dir(doc), filepath.FromSlash(path))
				if _, err := os.Stat(file); err != nil {
					t.Errorf("%s:%d: link %q: %v", doc, l.line, target, err)
					continue
				}
			}
			if frag == "" || !strings.HasSuffix(file, ".md") {
				continue
			}
			if anchors[file] == nil {
				anchors[file] = headingAnchors(t, file)
			}
			if !anchors[file][frag] {
				t.Errorf("%s:%d: link %q: %s has no heading with the anchor #%s", doc, l.line, target, file, frag)
			}
		}
	}
}

// TestReadmeSettingsTable checks that the README's settings table has one
// row per option, with its variable, flag and default, and nothing else.
func TestReadmeSettingsTable(t *testing.T) {
	t.Parallel()
	want := map[string]string{} // env -> "flag default"
	for _, o := range options {
		want[o.env] = "-" + o.flag + " " + o.def
	}
	got := map[string]string{}
	inTable := false
	for _, line := range readLines(t, "README.md") {
		if strings.HasPrefix(line, "| ENV | -flag | default |") {
			inTable = true
			continue
		}
		if !inTable || strings.HasPrefix(line, "|---") {
			continue
		}
		if !strings.HasPrefix(line, "|") {
			break // the table ended
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 4 {
			t.Errorf("README settings row %q: got %d cells, want 4", line, len(cells))
			continue
		}
		unquote := func(s string) string { return strings.Trim(strings.TrimSpace(s), "`") }
		env := unquote(cells[0])
		if _, dup := got[env]; dup {
			t.Errorf("README settings table: %s has two rows", env)
		}
		got[env] = unquote(cells[1]) + " " + unquote(cells[2])
	}
	if len(got) == 0 {
		t.Fatal("README.md has no settings table (a header row starting | ENV | -flag | default |)")
	}
	for env, w := range want {
		if g, ok := got[env]; !ok {
			t.Errorf("README settings table: no row for %s", env)
		} else if g != w {
			t.Errorf("README settings table, %s: got flag and default %q, want %q", env, g, w)
		}
	}
	for env := range got {
		if _, ok := want[env]; !ok {
			t.Errorf("README settings table: row %s is no option of config.go", env)
		}
	}
}

// TestHelpListsEveryOption checks that -h lists every option of the options
// table, with its type, variable and default on the flag's line and its
// description and accepted values under it, so that -h, like the README's
// table, cannot drift from the options table.
func TestHelpListsEveryOption(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	if _, err := loadConfig([]string{"-h"}, func(string) (string, bool) { return "", false }, &out); err == nil {
		t.Fatal("loadConfig(-h) returned no error; want flag.ErrHelp")
	}
	help := out.String()
	for _, o := range options {
		head := "  -" + o.flag + " " + o.typ + " (env " + o.env
		if o.def != "" {
			head += ", default " + o.def
		}
		head += ")\n"
		i := strings.Index(help, head)
		if i < 0 {
			t.Errorf("-h has no line %q", head)
			continue
		}
		entry := help[i+len(head):]
		if j := strings.Index(entry, "\n  -"); j >= 0 {
			entry = entry[:j]
		}
		entry = strings.Join(strings.Fields(entry), " ") // undo the wrapping
		for _, want := range []string{o.usage, "accepts " + o.accepts} {
			if !strings.Contains(entry, strings.Join(strings.Fields(want), " ")) {
				t.Errorf("-h entry of -%s = %q; want it to contain %q", o.flag, entry, want)
			}
		}
	}
}

// TestReadmeIsAFrontDoor keeps the README a landing page: details belong
// in docs/.
func TestReadmeIsAFrontDoor(t *testing.T) {
	t.Parallel()
	const max = 12 << 10
	info, err := os.Stat("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if info.Size() > max {
		t.Errorf("README.md is %d bytes, more than %d: move details to docs/", info.Size(), max)
	}
}

type docLink struct {
	line   int
	target string
}

// markdownLinks returns the inline links of a Markdown file, outside fenced
// code blocks and code spans.
func markdownLinks(t *testing.T, path string) []docLink {
	t.Helper()
	var links []docLink
	fenced := false
	for i, line := range readLines(t, path) {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(stripCodeSpans(line), -1) {
			links = append(links, docLink{line: i + 1, target: m[1]})
		}
	}
	return links
}

// stripCodeSpans removes `code spans` from a line, so that link-like text
// quoted in code is not taken for a link.
func stripCodeSpans(line string) string {
	var b strings.Builder
	inCode := false
	for _, r := range line {
		switch {
		case r == '`':
			inCode = !inCode
		case !inCode:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown file: lower case, punctuation dropped, spaces made hyphens, and
// -1, -2... appended to repeats.
func headingAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	anchors := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range readLines(t, path) {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
		}
		if fenced || !strings.HasPrefix(line, "#") {
			continue
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(text) {
			switch {
			case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		anchor := b.String()
		if n := seen[anchor]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", anchor, n)] = true
		} else {
			anchors[anchor] = true
		}
		seen[anchor]++
	}
	return anchors
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		lines = append(lines, s.Text())
	}
	if err := s.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return lines
}

// TestBenchClearsEverySetting checks that the benchmark harness clears every
// setting from the environment it starts fastingest in (clearEnv in
// benchmarks/bench/servers.go), so that its caller's cannot reshape a run.
func TestBenchClearsEverySetting(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(filepath.Join("benchmarks", "bench", "servers.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range options {
		if !strings.Contains(string(src), `"`+o.env+`"`) {
			t.Errorf("benchmarks/bench/servers.go: clearEnv lacks %s", o.env)
		}
	}
}
