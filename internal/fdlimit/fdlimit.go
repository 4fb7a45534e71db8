// Package fdlimit fits the number of connections fastingest serves at once
// (MAX_CONNS) to the process's open-file limit (RLIMIT_NOFILE).
//
// Every connection is a file descriptor, and so is every file and socket the
// process needs besides: the listener, the sink's segment and its directory,
// the NATS connection, the /proc files a /metrics scrape reads. When they run
// out, accept fails with EMFILE (the server backs off and retries), but so
// does the sink when it opens its next segment: a connection flood would
// stop parcels from being stored. Fit keeps a reserve of descriptors out of
// the connections' reach.
//
// At startup Fit raises the soft limit to the hard limit. (Go's runtime has
// already raised it to one below, go.dev/issue/46279: only the hard limit,
// set by systemd's LimitNOFILE=, ulimit -Hn or a container's --ulimit,
// binds.) When MAX_CONNS plus the reserve does not fit under it, Fit lowers
// the effective MAX_CONNS to what fits and logs a WARN line naming the limit
// to raise, rather than refusing to start: the limit belongs to the host and
// is often set by someone other than whoever set MAX_CONNS, and a server
// that serves fewer connections, says why, and never runs out of
// descriptors is better than one that stops starting after a host change.
// Only when not even one connection fits does Fit return an error, which
// fastingest treats as invalid configuration (exit 2).
package fdlimit

import (
	"fmt"
	"log/slog"
	"math"
)

// Reserve is how many descriptors fastingest keeps for itself besides its
// connections, its sink and the connections the server holds while refusing
// them (callers add those two): stdin, stdout and stderr, the listener, the
// epoll instance and its wake-up descriptor, the /proc files and directory a
// /metrics scrape reads, DNS lookups, and room for what a future version or
// a debugging session (pprof, a core dump helper) opens. About ten are in
// use at any time; 64 leaves room to spare at a cost of 64 connections,
// which no limit that matters (1024 and up) misses.
const Reserve = 64

// Unlimited is Limits.NoFile when the process has no open-file limit, or
// its limit cannot be read.
const Unlimited = math.MaxUint64

// Limits is what Fit found and chose.
type Limits struct {
	// NoFile is the soft RLIMIT_NOFILE once Fit has raised it to the hard
	// limit: the most descriptors the process may hold.
	NoFile uint64
	// MaxConns is how many connections to serve at once: the MAX_CONNS
	// asked for, or fewer when those would not fit in NoFile beside the
	// reserve.
	MaxConns int
	// Needed is the NoFile that the MAX_CONNS asked for needs: MAX_CONNS
	// plus the reserve.
	Needed uint64
}

// Fit raises the soft open-file limit to the hard limit and returns how many
// of maxConns connections fit in it beside reserve other descriptors (at
// least Reserve: the caller adds what its sink and server need). When it
// lowers maxConns it logs a WARN line on log saying what to raise. It
// returns an error when not even one connection fits.
func Fit(maxConns, reserve int, log *slog.Logger) (Limits, error) {
	return fit(raise(), maxConns, reserve, log)
}

// fit is Fit with the limit given.
func fit(nofile uint64, maxConns, reserve int, log *slog.Logger) (Limits, error) {
	reserve = max(reserve, 0)
	l := Limits{NoFile: nofile, MaxConns: maxConns, Needed: uint64(max(maxConns, 0)) + uint64(reserve)}
	if maxConns < 1 || nofile >= l.Needed {
		return l, nil
	}
	if nofile <= uint64(reserve) {
		return l, fmt.Errorf("the open-file limit (RLIMIT_NOFILE) is %d, too low to serve any connection beside the %d descriptors fastingest keeps for itself: raise the hard limit to at least %d for MAX_CONNS %d (LimitNOFILE= in the systemd unit, ulimit -Hn, docker run --ulimit nofile=)",
			nofile, reserve, l.Needed, maxConns)
	}
	l.MaxConns = int(nofile - uint64(reserve))
	if log != nil {
		log.Warn("MAX_CONNS lowered to fit the open-file limit: raise the hard RLIMIT_NOFILE to nofile_needed "+
			"(LimitNOFILE= in the systemd unit, ulimit -Hn, docker run --ulimit nofile=), or lower MAX_CONNS",
			"max_conns", l.MaxConns, "max_conns_configured", maxConns, "nofile", nofile,
			"nofile_needed", l.Needed, "nofile_reserved", reserve)
	}
	return l, nil
}
