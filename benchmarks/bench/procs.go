package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is a process the harness started: a server, nats-server or a load
// generator. A goroutine waits for it, so that it is reaped as soon as it
// exits and /proc/PID no longer answers for it: a server read from /proc
// after a run is a server that was still running.
type proc struct {
	name  string
	cmd   *exec.Cmd
	log   string        // where its stdout and stderr go
	done  chan struct{} // closed once it has exited and been reaped
	state *os.ProcessState
}

// startProc starts argv with env, its output in the file logPath, and
// registers it with ps so that cleanup stops it.
func startProc(ps *procSet, name string, argv, env []string, logPath string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	if err := ps.start(p); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait() // the exit status is read from state
		p.state = cmd.ProcessState
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// alive reports whether the process has not exited yet.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// wait waits up to d for the process to exit; it reports whether it did.
func (p *proc) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// signal sends sig unless the process has exited.
func (p *proc) signal(sig os.Signal) {
	if p.alive() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// status returns the exit status as a shell reports it (128 + the signal
// for a process a signal ended); call it once the process has exited.
func (p *proc) status() int {
	<-p.done
	if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return p.state.ExitCode()
}

// cpuSeconds returns the user and system CPU time of an exited process.
func (p *proc) cpuSeconds() float64 {
	<-p.done
	return (p.state.UserTime() + p.state.SystemTime()).Seconds()
}

// stop sends SIGTERM, waits up to grace, then SIGKILL; it reports whether
// the process had to be killed.
func (p *proc) stop(grace time.Duration) (killed bool) {
	p.signal(syscall.SIGTERM)
	if p.wait(grace) {
		return false
	}
	p.signal(syscall.SIGKILL)
	<-p.done
	return true
}

// kill sends SIGKILL and waits for the process to exit.
func (p *proc) kill() {
	p.signal(syscall.SIGKILL)
	<-p.done
}

// procSet holds the processes running, for cleanup; once closed it starts
// nothing more.
type procSet struct {
	mu      sync.Mutex
	running map[*proc]bool
	closed  bool
}

var errClosing = errors.New("the harness is stopping")

// start starts p and adds it to the set.
func (s *procSet) start(p *proc) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosing
	}
	if err := p.cmd.Start(); err != nil {
		return err
	}
	if s.running == nil {
		s.running = make(map[*proc]bool)
	}
	s.running[p] = true
	return nil
}

// forget takes an exited process off the set.
func (s *procSet) forget(p *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.running, p)
}

// stopAll closes the set and stops every process in it: SIGTERM to all, 5 s,
// then SIGKILL.
func (s *procSet) stopAll() {
	s.mu.Lock()
	s.closed = true
	ps := make([]*proc, 0, len(s.running))
	for p := range s.running {
		ps = append(ps, p)
	}
	s.running = nil
	s.mu.Unlock()
	for _, p := range ps {
		p.signal(syscall.SIGTERM)
	}
	for _, p := range ps {
		if !p.wait(5 * time.Second) {
			p.signal(syscall.SIGKILL)
			<-p.done
		}
	}
}
