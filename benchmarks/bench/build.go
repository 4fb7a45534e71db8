package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// buildTimeout bounds one go build.
const buildTimeout = 10 * time.Minute

// resolveBaseline checks --baseline-ref and names the baseline
// fastingest@<short sha>.
func (b *bench) resolveBaseline() error {
	ref := b.cfg.baselineRef
	if _, err := exec.LookPath("git"); err != nil {
		return errors.New("--baseline-ref needs git, which is missing")
	}
	if exec.Command("git", "-C", b.root, "rev-parse", "--git-dir").Run() != nil {
		return fmt.Errorf("--baseline-ref %s: %s is not a git checkout, so there is no revision to compare with", ref, b.root)
	}
	out, err := exec.Command("git", "-C", b.root, "rev-parse", "--verify", "--quiet", ref+"^{commit}").Output()
	if err != nil {
		hint := ""
		if sh, _ := exec.Command("git", "-C", b.root, "rev-parse", "--is-shallow-repository").Output(); strings.TrimSpace(string(sh)) == "true" {
			hint = " (this is a shallow clone: 'git fetch --unshallow' may bring it)"
		}
		return fmt.Errorf("--baseline-ref: '%s' is not a commit of the repository in %s (git rev-parse --verify '%s^{commit}' failed)%s", ref, b.root, ref, hint)
	}
	b.baselineSHA = strings.TrimSpace(string(out))
	short, err := exec.Command("git", "-C", b.root, "rev-parse", "--short", b.baselineSHA).Output()
	if err != nil {
		return fmt.Errorf("git rev-parse --short %s: %w", b.baselineSHA, err)
	}
	b.res.baseline = "fastingest@" + strings.TrimSpace(string(short))
	return nil
}

// build builds fastingest, classic, noop, kfake (for kafka runs) and the
// baseline into the work directory.
func (b *bench) build() error {
	names := []string{"classic", "noop"}
	if b.cfg.kafkaRuns() > 0 {
		names = append(names, "kfake") // the kafka runs' broker
	}
	fmt.Printf("building fastingest, %s into %s\n", strings.Join(names, ", "), b.work)
	if err := goBuild(b.root, filepath.Join(b.work, "fastingest"), ".", "GOWORK=off"); err != nil {
		return fmt.Errorf("go build of fastingest failed: %w", err)
	}
	for _, name := range names {
		if err := goBuild(b.root, filepath.Join(b.work, name), "./benchmarks/"+name); err != nil {
			return fmt.Errorf("go build of benchmarks/%s failed: %w", name, err)
		}
	}
	if b.res.baseline == "" {
		return nil
	}
	// The revision's tree, as committed, exported rather than checked out
	// as a worktree: nothing in the repository to clean up, it goes with
	// the work directory.
	ref, sha := b.cfg.baselineRef, b.baselineSHA
	fmt.Printf("building %s (%s) from git archive %s into %s\n", b.res.baseline, ref, sha, b.work)
	src := filepath.Join(b.work, "baseline-src")
	if err := exportTree(b.root, sha, src); err != nil {
		return fmt.Errorf("cannot export %s (%s) with git archive: %w", ref, sha, err)
	}
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
		return fmt.Errorf("%s (%s) has no go.mod at the top: not a fastingest revision", ref, sha)
	}
	// GOWORK=off, as for the working tree: the revision's own module,
	// whatever go.work it holds.
	if err := goBuild(src, filepath.Join(b.work, b.res.baseline), ".", "GOWORK=off"); err != nil {
		return fmt.Errorf("go build of fastingest at %s (%s) failed: %w", ref, sha, err)
	}
	return nil
}

// goBuild builds pkg of the module in dir into out, with env added to the
// environment. fastingest, the working tree's and the baseline's, is built
// alike, with GOWORK=off: from its own go.mod, as a release is; the
// harness's servers (noop, classic, kfake) from the workspace.
func goBuild(dir, out, pkg string, env ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// exportTree writes the tree of commit sha into dir: git archive | tar -x.
func exportTree(root, sha, dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	archive := exec.Command("git", "-C", root, "archive", "--format=tar", sha)
	extract := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	extract.Stdin = pipe
	archive.Stderr, extract.Stderr = os.Stderr, os.Stderr
	if err := extract.Start(); err != nil {
		return err
	}
	if err := archive.Run(); err != nil {
		_ = extract.Wait()
		return err
	}
	return extract.Wait()
}
