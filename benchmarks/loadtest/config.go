package main

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/fastingest/fastingest/benchmarks/internal/stats"
)

const usageText = `Usage: bash scripts/loadtest.sh [--help] URL

POSTs the reference payload (scripts/payload.json, 9 parcels) to URL with wrk,
then with hey, each for DURATION over CONNS connections, and prints for each
tool the requests per minute, parcels per minute and the p50/p90/p99 latency.
URL must start with http:// or https://, e.g. http://127.0.0.1:8080/ or the
load balancer URL printed by scripts/deploy-ec2.sh.

Environment:
  DURATION  how long each tool runs: Ns, Nm or Nh (default 30s)
  CONNS     concurrent connections, for both tools (default 64)
  THREADS   wrk threads (default 2; at most CONNS)
  TOOLS     which tools, in order (default "wrk hey")
  PAYLOAD   the JSON body to send (default scripts/payload.json)

Missing tools are installed when possible (wrk: apt-get, as root; hey:
go install github.com/rakyll/hey@v0.1.5), otherwise named with how to install
them. Exit status: 0 when every tool ran and every response was 2xx; 1 when a
tool is missing or failed, or some responses were errors or not 2xx (the
figures are still printed); 2 for a usage error.
`

// config is what the command line and the environment ask for.
type config struct {
	url      string
	duration string // as the tools take it: 30s
	durSec   int
	conns    int
	threads  int
	tools    []string
	payload  string // as given; empty: scripts/payload.json
}

// usageError is a wrong argument or setting: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

var (
	errHelp    = errors.New("help")
	urlPattern = regexp.MustCompile(`^https?://[^/\s]+`)
	durPattern = regexp.MustCompile(`^[1-9][0-9]*[smh]$`)
	positive   = regexp.MustCompile(`^[1-9][0-9]*$`)
)

// parseArgs reads the arguments and the environment (getenv). It returns
// errHelp for --help, a usageError for a wrong argument, and a note to print
// when THREADS had to be lowered.
func parseArgs(args []string, getenv func(string) string) (c config, note string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help":
			return c, "", errHelp
		case a == "--":
			rest := args[i+1:]
			if len(rest) > 1 || (len(rest) == 1 && c.url != "") {
				return c, "", usageError{"one URL only"}
			}
			if len(rest) == 1 {
				c.url = rest[0]
			}
			i = len(args)
		case strings.HasPrefix(a, "-"):
			return c, "", usageError{"unknown option: " + a}
		case c.url != "":
			return c, "", usageError{fmt.Sprintf("one URL only (got '%s' and '%s')", c.url, a)}
		default:
			c.url = a
		}
	}
	if c.url == "" {
		return c, "", usageError{"missing URL"}
	}
	if !urlPattern.MatchString(c.url) {
		return c, "", usageError{fmt.Sprintf("URL must start with http:// or https:// and name a host, not '%s' (e.g. http://%s)", c.url, c.url)}
	}
	c.duration = or(getenv("DURATION"), "30s")
	if positive.MatchString(c.duration) {
		c.duration += "s"
	}
	if !durPattern.MatchString(c.duration) {
		return c, "", usageError{fmt.Sprintf("DURATION wants Ns, Nm or Nh (e.g. 30s), not '%s'", c.duration)}
	}
	c.durSec, _ = stats.Seconds(c.duration)
	for _, v := range []struct {
		name string
		dst  *int
		def  string
	}{{"CONNS", &c.conns, "64"}, {"THREADS", &c.threads, "2"}} {
		s := or(getenv(v.name), v.def)
		if !positive.MatchString(s) {
			return c, "", usageError{fmt.Sprintf("%s wants a positive integer, not '%s'", v.name, s)}
		}
		*v.dst, _ = strconv.Atoi(s)
	}
	if c.threads > c.conns {
		note = fmt.Sprintf("THREADS=%d > CONNS=%d; wrk needs a connection per thread, using THREADS=%d", c.threads, c.conns, c.conns)
		c.threads = c.conns
	}
	c.tools = strings.Fields(or(getenv("TOOLS"), "wrk hey"))
	if len(c.tools) == 0 {
		return c, "", usageError{"TOOLS is empty"}
	}
	for _, t := range c.tools {
		if t != "wrk" && t != "hey" {
			return c, "", usageError{fmt.Sprintf("TOOLS: unknown tool '%s' (wrk, hey)", t)}
		}
	}
	c.payload = getenv("PAYLOAD")
	return c, note, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
