// Package tools finds what the harness (benchmarks/bench, benchmarks/loadtest)
// runs: the load generators (wrk, hey, vegeta) and nats-server, installing a
// missing one the way the harness always has (wrk with apt-get when running as
// root, the Go tools with go install at a pinned version), and the checkout
// whose scripts/payload.json and scripts/post.lua they send. The tools stay
// external programs: the harness measures servers with the tools people
// measure servers with.
package tools

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Go tools and the versions the harness installs.
const (
	HeyPackage        = "github.com/rakyll/hey@v0.1.5"
	VegetaPackage     = "github.com/tsenart/vegeta/v12@v12.13.0"
	NatsServerPackage = "github.com/nats-io/nats-server/v2@v2.15.2"
)

// installTimeout bounds one apt-get or go install.
const installTimeout = 10 * time.Minute

// Wrk returns the path of wrk, installing the Debian package when it is
// missing and this process is root with apt-get. Progress goes to log.
func Wrk(log io.Writer) (string, error) {
	if p, err := exec.LookPath("wrk"); err == nil {
		return p, nil
	}
	if err := AptInstall("wrk", log); err != nil {
		return "", fmt.Errorf("wrk is missing (%v): install it (Debian/Ubuntu: sudo apt-get install wrk; "+
			"Amazon Linux/Fedora: build it from https://github.com/wg/wrk; macOS: brew install wrk)", err)
	}
	return exec.LookPath("wrk")
}

// AptInstall installs a Debian package with apt-get, running apt-get update
// first only if the install fails. It needs root and apt-get.
func AptInstall(pkg string, log io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("not root, so not installing it with apt-get")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return errors.New("no apt-get to install it with")
	}
	fmt.Fprintf(log, "installing %s (apt-get install -y %s)\n", pkg, pkg)
	if quiet("apt-get", "install", "-y", "-qq", pkg) == nil {
		return nil
	}
	if err := quiet("apt-get", "update", "-qq"); err != nil {
		return fmt.Errorf("apt-get update failed: %w", err)
	}
	if err := quiet("apt-get", "install", "-y", "-qq", pkg); err != nil {
		return fmt.Errorf("apt-get install -y %s failed: %w", pkg, err)
	}
	return nil
}

// quiet runs a command within installTimeout, its output discarded.
func quiet(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd.Run()
}

// GoBin returns where go install puts commands: GOBIN, or the first GOPATH
// entry's bin.
func GoBin() (string, error) {
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOBIN GOPATH: %w", err)
	}
	return goBinFrom(string(out))
}

// goBinFrom reads `go env GOBIN GOPATH`: GOBIN if set, else the first GOPATH
// entry's bin.
func goBinFrom(env string) (string, error) {
	gobin, gopath, _ := strings.Cut(strings.TrimRight(env, "\n"), "\n")
	if gobin != "" {
		return gobin, nil
	}
	first, _, _ := strings.Cut(gopath, string(os.PathListSeparator))
	if first == "" {
		return "", errors.New("go env prints neither GOBIN nor GOPATH")
	}
	return filepath.Join(first, "bin"), nil
}

// GoTool returns the path of the Go command name: from PATH, else from
// GoBin, else installed there with go install pkg (a path@version).
// Progress goes to log.
func GoTool(name, pkg string, log io.Writer) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	bin, err := GoBin()
	if err != nil {
		return "", fmt.Errorf("%s is missing and Go cannot install it: %w", name, err)
	}
	p := filepath.Join(bin, name)
	if isExecutable(p) {
		return p, nil
	}
	fmt.Fprintf(log, "installing %s (go install %s)\n", name, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", pkg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil || !isExecutable(p) {
		return "", fmt.Errorf("%s is missing and 'go install %s' failed (%v); install it and retry", name, pkg, err)
	}
	return p, nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// RepoRoot returns the fastingest checkout the working directory is in: the
// nearest directory above it with the go.mod of github.com/fastingest/fastingest.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(mod), "module github.com/fastingest/fastingest\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run it from the fastingest checkout (no go.mod of github.com/fastingest/fastingest above the working directory)")
		}
		dir = parent
	}
}
