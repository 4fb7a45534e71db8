package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is stamped at build time, for a release:
//
//	go build -ldflags "-X main.version=v1.2.3"
//
// Without it, the module version the Go tool recorded is used.
var version string

// buildInfo says which fastingest this is.
type buildInfo struct {
	Version   string // the -ldflags stamp, else the module version, else "(devel)"
	Revision  string // the VCS revision built from, or "unknown"
	Modified  bool   // the working tree had changes not committed
	GoVersion string
}

// readBuildInfo returns the version stamp and what the Go tool recorded in
// the binary.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, Revision: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if b.Version == "" {
			b.Version = "(devel)"
		}
		return b
	}
	if b.Version == "" {
		b.Version = bi.Main.Version // "(devel)" for go run and tests
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is what -version prints.
func (b buildInfo) String() string {
	modified := ""
	if b.Modified {
		modified = ", modified"
	}
	return fmt.Sprintf("fastingest %s (revision %s%s, %s)", b.Version, b.Revision, modified, b.GoVersion)
}

// metric returns the exposition of the fastingest_build_info gauge: always
// 1, its labels say which build is running, so that dashboards can tell
// deployments apart. A modified tree's revision ends in "-modified".
func (b buildInfo) metric() string {
	revision := b.Revision
	if b.Modified {
		revision += "-modified"
	}
	return "# HELP fastingest_build_info The running build: its version, VCS revision and Go version. Always 1.\n" +
		"# TYPE fastingest_build_info gauge\n" +
		`fastingest_build_info{version="` + labelValue(b.Version) + `",revision="` + labelValue(revision) +
		`",goversion="` + labelValue(b.GoVersion) + `"} 1` + "\n"
}

// labelValue escapes a Prometheus label value: backslash, double quote and
// line feed.
func labelValue(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
