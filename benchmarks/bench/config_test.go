package main

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"
)

// env returns a getenv over vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := parseConfig(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.rounds != 3 || c.duration != "10s" || c.durSec != 10 || c.conns != 64 || c.rate != 16667 ||
		c.vegetaWorkers != 64 || c.simWorkers != 6000 || c.simQueue != 10000 || c.simLatency != "5ms-55ms" ||
		c.sinkRetainMiB != 512 || c.smoke || c.out != "" || c.baselineRef != "" || c.warmUp != "1s" {
		t.Errorf("defaults: %+v", c)
	}
	if want := []string{"null", "file-enqueued", "file-persisted", "file+s3-enqueued", "nats-enqueued", "nats-persisted",
		"kafka-enqueued", "kafka-persisted"}; !slices.Equal(c.sinks, want) {
		t.Errorf("sinks %v, want %v", c.sinks, want)
	}
	if c.natsRuns() != 2 || c.kafkaRuns() != 2 {
		t.Errorf("natsRuns() = %d, kafkaRuns() = %d, want 2 and 2", c.natsRuns(), c.kafkaRuns())
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		check func(c config) bool
	}{
		{"--rounds N", []string{"--rounds", "5"}, nil, func(c config) bool { return c.rounds == 5 }},
		{"--rounds=N", []string{"--rounds=2"}, nil, func(c config) bool { return c.rounds == 2 }},
		{"-rounds N", []string{"-rounds", "7"}, nil, func(c config) bool { return c.rounds == 7 }},
		{"--smoke: 1 round of 1s", []string{"--smoke", "--rounds", "5"}, map[string]string{"DURATION": "1m"},
			func(c config) bool { return c.smoke && c.rounds == 1 && c.duration == "1s" && c.durSec == 1 }},
		{"--out", []string{"--out", "/tmp/x.txt"}, nil, func(c config) bool { return c.out == "/tmp/x.txt" }},
		{"BASELINE_REF", nil, map[string]string{"BASELINE_REF": "HEAD~1"}, func(c config) bool { return c.baselineRef == "HEAD~1" }},
		{"--baseline-ref wins", []string{"--baseline-ref", "main"}, map[string]string{"BASELINE_REF": "HEAD~1"},
			func(c config) bool { return c.baselineRef == "main" }},
		{"DURATION in minutes", nil, map[string]string{"DURATION": "2m"}, func(c config) bool { return c.durSec == 120 && c.duration == "2m" }},
		{"SINKS none", nil, map[string]string{"SINKS": "none"}, func(c config) bool { return len(c.sinks) == 0 && c.natsRuns() == 0 && c.kafkaRuns() == 0 }},
		{"SINKS kafka only", nil, map[string]string{"SINKS": "kafka-persisted"},
			func(c config) bool {
				return slices.Equal(c.sinks, []string{"kafka-persisted"}) && c.kafkaRuns() == 1 && c.natsRuns() == 0
			}},
		{"--smoke runs the kafka rows", []string{"--smoke"}, nil,
			func(c config) bool { return c.kafkaRuns() == 2 && slices.Contains(c.sinks, "null") }},
		{"SINKS in its order", nil, map[string]string{"SINKS": " file-persisted  null "},
			func(c config) bool { return slices.Equal(c.sinks, []string{"file-persisted", "null"}) }},
		{"environment numbers", nil, map[string]string{"CONNS": "256", "RATE": "1000", "VEGETA_WORKERS": "8",
			"SIM_WORKERS": "10", "SIM_QUEUE": "20", "SINK_RETAIN_MIB": "4", "SIM_LATENCY": "30ms"},
			func(c config) bool {
				return c.conns == 256 && c.rate == 1000 && c.vegetaWorkers == 8 && c.simWorkers == 10 && c.simQueue == 20 &&
					c.sinkRetainMiB == 4 && c.simLatency == "30ms"
			}},
		{"--charts-from skips the rest", []string{"--charts-from", "f.txt", "--charts", "d"}, map[string]string{"CONNS": "x"},
			func(c config) bool { return c.chartsFrom == "f.txt" && c.charts == "d" }},
	} {
		c, err := parseConfig(tc.args, env(tc.env))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !tc.check(c) {
			t.Errorf("%s: %+v", tc.name, c)
		}
	}
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		env   map[string]string
		want  string // in the error
		usage bool   // a usage error
	}{
		{[]string{"--rounds", "0"}, nil, "--rounds wants a positive integer, not '0'", false},
		{[]string{"--rounds", "x"}, nil, "--rounds wants a positive integer, not 'x'", false},
		{[]string{"--rounds"}, nil, "flag needs an argument", true},
		{[]string{"--nope"}, nil, "flag provided but not defined: -nope", true},
		{[]string{"extra"}, nil, "unknown argument: extra", true},
		{[]string{"--baseline-ref", "-x"}, nil, "--baseline-ref wants a git revision, not '-x'", false},
		{nil, map[string]string{"CONNS": "0"}, "CONNS wants a positive integer, not '0'", false},
		{nil, map[string]string{"RATE": "1e4"}, "RATE wants a positive integer, not '1e4'", false},
		{nil, map[string]string{"SINK_RETAIN_MIB": "3"}, "SINK_RETAIN_MIB must be at least 4", false},
		{nil, map[string]string{"SINKS": "null null"}, "SINKS names 'null' twice", false},
		{nil, map[string]string{"SINKS": "kafka"}, "SINKS: unknown run 'kafka' (want null, file-enqueued, file-persisted, file+s3-enqueued, nats-enqueued, nats-persisted, kafka-enqueued, kafka-persisted or none)", false},
		{nil, map[string]string{"DURATION": "10ms"}, "DURATION wants Ns, Nm or Nh (e.g. 10s), not '10ms'", false},
		{nil, map[string]string{"DURATION": "0s"}, "DURATION must be at least 1s", false},
	} {
		_, err := parseConfig(tc.args, env(tc.env))
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, errUsage) != tc.usage {
			t.Errorf("parseConfig(%q, %v) = %v, want an error with %q (usage error %v)", tc.args, tc.env, err, tc.want, tc.usage)
		}
	}
	for _, h := range []string{"-h", "--help"} {
		if _, err := parseConfig([]string{h}, env(nil)); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("parseConfig(%s) = %v, want flag.ErrHelp", h, err)
		}
	}
}

// TestPinSetting: PIN=off plans no taskset and no GOMAXPROCS for the
// servers, and says so in the results; anything but on or off is refused.
func TestPinSetting(t *testing.T) {
	for pin, want := range map[string]bool{"": false, "on": false, "off": true} {
		c, err := parseConfig(nil, env(map[string]string{"PIN": pin}))
		if err != nil || c.unpinned != want {
			t.Errorf("PIN=%q: unpinned %v, err %v; want %v", pin, c.unpinned, err, want)
		}
	}
	if _, err := parseConfig(nil, env(map[string]string{"PIN": "yes"})); err == nil || !strings.Contains(err.Error(), "PIN wants on or off") {
		t.Errorf("PIN=yes: err %v; want one naming on and off", err)
	}
	p := unpinnedPlan(2)
	if p.server != nil || p.load != nil || p.nats != nil || p.serverEnv != nil || !strings.Contains(p.text, "GOMAXPROCS=2") {
		t.Errorf("unpinnedPlan(2) = %+v; want nothing pinned, GOMAXPROCS=2 said", p)
	}
}

func TestPlanPinning(t *testing.T) {
	for _, tc := range []struct {
		name                string
		cpus                []int
		ncpu                int
		taskset             bool
		server, load, nats  string
		text, natsText      string
		gomaxprocsOnServers bool
	}{
		{"two CPUs", []int{0, 1}, 2, true, "taskset -c 0", "taskset -c 1", "taskset -c 1",
			"pinned: each server on CPU 0 with GOMAXPROCS=1, load generators on CPU 1 (taskset)",
			"nats-server on CPU 1, shared with the load generator (no third CPU)", true},
		{"four CPUs from 2", []int{2, 3, 4, 5}, 4, true, "taskset -c 2", "taskset -c 3", "taskset -c 4",
			"pinned: each server on CPU 2 with GOMAXPROCS=1, load generators on CPU 3 (taskset)",
			"nats-server on CPU 4, a CPU of its own", true},
		{"no taskset", []int{0, 1}, 2, false, "", "", "",
			"NOT pinned: taskset is missing (util-linux); servers and load generators share 2 CPUs", "nats-server NOT pinned", false},
		{"one CPU", []int{0}, 1, true, "", "", "",
			"NOT pinned: only 1 CPU; servers and load generators share it, so figures understate every server",
			"nats-server NOT pinned", false},
	} {
		p := planPinning(tc.cpus, tc.ncpu, tc.taskset)
		if got := strings.Join(p.server, " "); got != tc.server {
			t.Errorf("%s: server %q, want %q", tc.name, got, tc.server)
		}
		if got := strings.Join(p.load, " "); got != tc.load {
			t.Errorf("%s: load %q, want %q", tc.name, got, tc.load)
		}
		if got := strings.Join(p.nats, " "); got != tc.nats {
			t.Errorf("%s: nats %q, want %q", tc.name, got, tc.nats)
		}
		if p.text != tc.text || p.natsText != tc.natsText {
			t.Errorf("%s: texts %q, %q; want %q, %q", tc.name, p.text, p.natsText, tc.text, tc.natsText)
		}
		if got := slices.Equal(p.serverEnv, []string{"GOMAXPROCS=1"}); got != tc.gomaxprocsOnServers {
			t.Errorf("%s: serverEnv %v", tc.name, p.serverEnv)
		}
	}
}

func TestServerEnv(t *testing.T) {
	got := serverEnv([]string{"PATH=/bin", "SINK=file", "GOMAXPROCS=8", "HOME=/root", "AUTH_TOKEN=s"}, []string{"SINK=null"})
	if want := []string{"PATH=/bin", "HOME=/root", "SINK=null"}; !slices.Equal(got, want) {
		t.Errorf("serverEnv = %v, want %v", got, want)
	}
}
