#!/usr/bin/env bash
# bench.sh: measure fastingest against the servers it must be judged by, on
# any Linux machine with Go.
#
#   classic     the published "Handling 1 Million Requests per Minute with Go"
#               design (net/http, encoding/json, a goroutine per job): the
#               baseline users would otherwise deploy (benchmarks/classic)
#   noop        fasthttp reading the body and answering 200: the ceiling
#               (benchmarks/noop)
#   fastingest  this repository, with SINK=null so that the ingest path is
#               what is measured
#
# The three servers run interleaved (fastingest classic noop, fastingest ...)
# for --rounds rounds under wrk; the table shows medians. With --baseline-ref
# REF, fastingest as of git revision REF (exported with git archive into the
# work directory, built like the working tree's) runs in those rounds too, as
# fastingest@<short sha>, right after fastingest and started exactly like it
# (the same environment, no flags), and the summary gives the working tree's
# req/s and CPU per request over its, medians and per round: the check that a
# change costs the request path nothing measurable. Then: one hey run per
# server (a second, independent client), a constant-rate vegeta run against
# fastingest at 1M requests/min, and a SINK=sim run that checks the worker
# arithmetic behind 1M requests/min.
#
# Last, the sinks: fastingest with SINK=null, SINK=file ACK=enqueued,
# SINK=file ACK=persisted, SINK=nats ACK=enqueued and SINK=nats ACK=persisted,
# interleaved the same way for --rounds rounds under wrk, against the targets
# file/enqueued >= 0.7 x null and file/persisted >= 0.4 x null req/s. Each file
# run writes to a fresh directory in the work directory, each nats run to a
# fresh JetStream stream on a local nats-server (installed with go install if
# missing, started once for the section); both are bounded by SINK_RETAIN_MIB
# and deleted after the run. nats-server's CPU is measured on its own, not
# counted in fastingest's.
#
# With 2 or more CPUs each server runs on one CPU with GOMAXPROCS=1 and the
# load generators on another, so that figures compare servers, not scheduling;
# nats-server gets a third CPU if there is one, else shares the load
# generators' CPU.
#
# Usage: bash scripts/bench.sh [--rounds N] [--out FILE] [--smoke]
#                              [--baseline-ref REF]
# Environment: BASELINE_REF (as --baseline-ref), DURATION (10s), CONNS (64),
# RATE (16667, requests/s for vegeta), VEGETA_WORKERS (64), SIM_WORKERS (6000),
# SIM_QUEUE (10000), SIM_LATENCY (5ms-55ms), SINKS (the sink runs, default
# "null file-enqueued file-persisted nats-enqueued nats-persisted"; "none"
# skips them),
# SINK_RETAIN_MIB (512: RETAIN_BYTES of a file run, max_bytes of a nats run's
# stream).
set -euo pipefail
export LC_ALL=C

usage() {
	cat <<'EOF'
Usage: bash scripts/bench.sh [--rounds N] [--out FILE] [--smoke]
                             [--baseline-ref REF]

Benchmarks fastingest (SINK=null) against the classic "1M requests per minute"
design and a no-op fasthttp server, with wrk (medians over N interleaved
rounds), hey (one run per server), vegeta (constant 1M requests/min) and a
SINK=sim run; then fastingest's sinks (null, file and nats, each ACK mode)
with wrk, medians over N interleaved rounds. Starts a local nats-server for
the nats runs (go install github.com/nats-io/nats-server/v2@v2.15.2 if it is
missing). Sends traffic to 127.0.0.1 only.

  --rounds N   interleaved wrk rounds per server (default 3)
  --out FILE   where to write every round's raw figures
               (default benchmarks/results/<date>-<time>.txt; with --smoke,
               a file in ${TMPDIR:-/tmp})
  --smoke      every run for 1 second, 1 round: checks that the harness
               works (for CI), not the figures; exits non-zero on any failure
  --baseline-ref REF
               also measure fastingest as of git revision REF (a commit,
               branch or tag: HEAD~3, main, v1.2) in the wrk rounds, as
               fastingest@<short sha>, interleaved with the others and
               started exactly like the working tree's (SINK=null, the same
               environment and CPU, no flags); the summary shows the
               working tree's req/s and CPU/request over its (medians and
               per round). REF's tree is exported with git archive into the
               work directory and built there; needs a git checkout. Not
               used by the hey, vegeta, SINK=sim and sink runs

Environment: BASELINE_REF (as --baseline-ref; the option wins),
DURATION (default 10s: Ns, Nm or Nh), CONNS (default 64),
RATE (default 16667 requests/s), VEGETA_WORKERS (default 64),
SIM_WORKERS (default 6000), SIM_QUEUE (default 10000),
SIM_LATENCY (default 5ms-55ms),
SINKS (default "null file-enqueued file-persisted nats-enqueued
  nats-persisted": the sink runs, in this order; "none" for none),
SINK_RETAIN_MIB (default 512: a file run's RETAIN_BYTES and a nats run's
  stream max_bytes, in MiB, so that a long run cannot fill the disk).
EOF
}

die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}
warn() {
	printf 'bench: warning: %s\n' "$*" >&2
	FAILURES=$((FAILURES + 1))
}

ROUNDS=3
SMOKE=0
OUT=""
BASELINE_REF=${BASELINE_REF:-}
FAILURES=0
while (($#)); do
	case $1 in
	--rounds) (($# >= 2)) || die "--rounds needs a number"; ROUNDS=$2; shift 2 ;;
	--rounds=*) ROUNDS=${1#*=}; shift ;;
	--out) (($# >= 2)) || die "--out needs a file name"; OUT=$2; shift 2 ;;
	--out=*) OUT=${1#*=}; shift ;;
	--smoke) SMOKE=1; shift ;;
	--baseline-ref) (($# >= 2)) || die "--baseline-ref needs a git revision"; BASELINE_REF=$2; shift 2 ;;
	--baseline-ref=*) BASELINE_REF=${1#*=}; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a positive integer, not '$ROUNDS'"

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
RATE=${RATE:-16667}
VEGETA_WORKERS=${VEGETA_WORKERS:-64}
SIM_WORKERS=${SIM_WORKERS:-6000}
SIM_QUEUE=${SIM_QUEUE:-10000}
SIM_LATENCY=${SIM_LATENCY:-5ms-55ms}
SINKS=${SINKS:-null file-enqueued file-persisted nats-enqueued nats-persisted}
SINK_RETAIN_MIB=${SINK_RETAIN_MIB:-512}
WARMUP=1s
if ((SMOKE)); then
	DURATION=1s
	ROUNDS=1
fi
for v in CONNS RATE VEGETA_WORKERS SIM_WORKERS SIM_QUEUE SINK_RETAIN_MIB; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v wants a positive integer, not '${!v}'"
done
((SINK_RETAIN_MIB >= 4)) || die "SINK_RETAIN_MIB must be at least 4 (a file run's segments are a quarter of it)"
SINK_RUNS=() # the sink runs, from SINKS
NATS_RUNS=0  # how many of them use nats-server
for r in $SINKS; do
	[[ " ${SINK_RUNS[*]} " != *" $r "* ]] || die "SINKS names '$r' twice"
	case $r in
	none) ;;
	null | file-enqueued | file-persisted) SINK_RUNS+=("$r") ;;
	nats-enqueued | nats-persisted) SINK_RUNS+=("$r"); NATS_RUNS=$((NATS_RUNS + 1)) ;;
	*) die "SINKS: unknown run '$r' (want null, file-enqueued, file-persisted, nats-enqueued, nats-persisted or none)" ;;
	esac
done

# seconds DURATION: the duration (Ns, Nm, Nh or N seconds) in whole seconds.
# wrk, hey and vegeta all accept these forms.
seconds() {
	[[ $1 =~ ^([0-9]+)([smh]?)$ ]] || return 1
	local n=${BASH_REMATCH[1]}
	case ${BASH_REMATCH[2]} in
	m) echo $((n * 60)) ;;
	h) echo $((n * 3600)) ;;
	*) echo "$n" ;;
	esac
}
DUR_S=$(seconds "$DURATION") || die "DURATION wants Ns, Nm or Nh (e.g. 10s), not '$DURATION'"
((DUR_S > 0)) || die "DURATION must be at least 1s"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PAYLOAD_FILE=$ROOT/scripts/payload.json
LUA=$ROOT/scripts/post.lua
[[ -f $PAYLOAD_FILE && -f $LUA ]] || die "missing scripts/payload.json or scripts/post.lua"
export PAYLOAD=$PAYLOAD_FILE # read by post.lua
PARCELS=$(grep -o '"id"' "$PAYLOAD_FILE" | wc -l)
((PARCELS > 0)) || die "scripts/payload.json holds no parcels"

# --baseline-ref: resolved now, so that a wrong revision fails before
# anything is installed or built. BASELINE_NAME is the server's name in the
# tables (fastingest@<short sha>), empty without a baseline.
BASELINE_SHA=""
BASELINE_NAME=""
if [[ -n $BASELINE_REF ]]; then
	command -v git >/dev/null || die "--baseline-ref needs git, which is missing"
	git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1 ||
		die "--baseline-ref $BASELINE_REF: $ROOT is not a git checkout, so there is no revision to compare with"
	[[ $BASELINE_REF != -* ]] || die "--baseline-ref wants a git revision, not '$BASELINE_REF'"
	if ! BASELINE_SHA=$(git -C "$ROOT" rev-parse --verify --quiet "$BASELINE_REF^{commit}"); then
		hint=""
		[[ $(git -C "$ROOT" rev-parse --is-shallow-repository 2>/dev/null) != true ]] ||
			hint=" (this is a shallow clone: 'git fetch --unshallow' may bring it)"
		die "--baseline-ref: '$BASELINE_REF' is not a commit of the repository in $ROOT (git rev-parse --verify '$BASELINE_REF^{commit}' failed)$hint"
	fi
	BASELINE_NAME=fastingest@$(git -C "$ROOT" rev-parse --short "$BASELINE_SHA")
fi

# --- tools --------------------------------------------------------------------

command -v go >/dev/null || die "go is missing: install Go (https://go.dev/dl/)"
GOBIN_DIR=$(go env GOBIN)
if [[ -z $GOBIN_DIR ]]; then
	GOBIN_DIR=$(go env GOPATH)
	GOBIN_DIR=${GOBIN_DIR%%:*}/bin
fi

# apt_install PACKAGE: install a Debian package when running as root.
apt_install() {
	((EUID == 0)) && command -v apt-get >/dev/null || return 1
	echo "installing $1 (apt-get install -y $1)"
	timeout 600 apt-get install -y -qq "$1" >/dev/null 2>&1 ||
		{ timeout 600 apt-get update -qq >/dev/null 2>&1 && timeout 600 apt-get install -y -qq "$1" >/dev/null 2>&1; }
}

# go_tool NAME PACKAGE@VERSION: print the path of a Go tool, installing it
# with go install when it is neither on PATH nor in GOBIN/GOPATH/bin.
go_tool() {
	local path
	if path=$(command -v "$1"); then
		echo "$path"
		return
	fi
	if [[ ! -x $GOBIN_DIR/$1 ]]; then
		echo "installing $1 (go install $2)" >&2
		timeout 600 go install "$2" >&2 || die "$1 is missing and 'go install $2' failed; install it and retry"
	fi
	echo "$GOBIN_DIR/$1"
}

command -v wrk >/dev/null || apt_install wrk || true
command -v wrk >/dev/null || die "wrk is missing: install it (Debian/Ubuntu: sudo apt-get install wrk)"
WRK=$(command -v wrk)
HEY=$(go_tool hey github.com/rakyll/hey@v0.1.5)
VEGETA=$(go_tool vegeta github.com/tsenart/vegeta/v12@v12.13.0)
# nats-server only for nats runs. Failing to install it fails those runs
# (see the sink section), not the whole benchmark.
NATS_SERVER=""
NATS_SERVER_ERR=""
if ((NATS_RUNS > 0)); then
	if ! NATS_SERVER=$(go_tool nats-server github.com/nats-io/nats-server/v2@v2.15.2); then
		NATS_SERVER=""
		NATS_SERVER_ERR="nats-server is missing and could not be installed (go install github.com/nats-io/nats-server/v2@v2.15.2)"
	fi
fi
if ! command -v jq >/dev/null && ! command -v python3 >/dev/null; then
	apt_install jq || die "jq or python3 is needed to read vegeta's JSON report: install one (e.g. sudo apt-get install jq)"
fi
for t in timeout awk sed sort seq getconf paste find df; do
	command -v "$t" >/dev/null || die "$t is missing"
done
# shellcheck source-path=SCRIPTDIR source=lib/nats.sh
source "$ROOT/scripts/lib/nats.sh"

# json_get FILE KEY: a top-level field of a JSON object (objects as JSON).
json_get() {
	if command -v jq >/dev/null; then
		jq -c --arg k "$2" '.[$k]' "$1"
	else
		python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))[sys.argv[2]], separators=(",", ":")))' "$1" "$2"
	fi
}

# json_at FILE KEY...: a nested field of a JSON object, null if missing
# (json_at f state bytes is .state.bytes).
json_at() {
	local file=$1
	shift
	if command -v jq >/dev/null; then
		jq -c 'getpath($ARGS.positional)' "$file" --args "$@"
	else
		python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v.get(k) if isinstance(v, dict) else None
print(json.dumps(v, separators=(",", ":")))' "$file" "$@"
	fi
}

# --- work directory, results, cleanup -----------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastingest-bench.XXXXXX")
RAW=$WORK/raw.txt # every tool's full output, appended to the results file
: >"$RAW"
SERVERS=()   # PIDs of servers still running
LOAD_PID=""  # the load generator running now, if any
STAMP=$(date +%Y-%m-%d-%H%M%S)
if [[ -z $OUT ]]; then
	if ((SMOKE)); then
		OUT=${TMPDIR:-/tmp}/fastingest-bench-smoke-$STAMP.txt
	else
		OUT=$ROOT/benchmarks/results/$STAMP.txt
	fi
fi
mkdir -p "$(dirname "$OUT")"
: >"$OUT"

cleanup() {
	local pid
	if [[ -n $LOAD_PID ]]; then
		kill -TERM "$LOAD_PID" 2>/dev/null || true
	fi
	for pid in "${SERVERS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${SERVERS[@]}"; do
		for _ in {1..50}; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	done
	if [[ -s $RAW && -f $OUT ]]; then
		{
			echo
			echo "== raw tool output"
			cat "$RAW"
		} >>"$OUT"
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# note LINE...: print and keep in the results file.
note() {
	printf '%s\n' "$*" | tee -a "$OUT"
}

# --- CPU pinning ----------------------------------------------------------------

# allowed_cpus: the CPUs this process may run on, one per line.
allowed_cpus() {
	local list part parts
	list=$(taskset -pc $$ 2>/dev/null) || return 1
	list=${list##*: }
	IFS=, read -r -a parts <<<"$list"
	for part in "${parts[@]}"; do
		if [[ $part == *-* ]]; then
			seq "${part%-*}" "${part#*-}"
		else
			echo "$part"
		fi
	done
}

PIN_SERVER=()
PIN_LOAD=()
SERVER_ENV=()
NCPU=$(nproc)
CPUS=()
if command -v taskset >/dev/null; then
	mapfile -t CPUS < <(allowed_cpus || true)
fi
if ((${#CPUS[@]} >= 2)); then
	PIN_SERVER=(taskset -c "${CPUS[0]}")
	PIN_LOAD=(taskset -c "${CPUS[1]}")
	SERVER_ENV=(GOMAXPROCS=1)
	PINNING="pinned: each server on CPU ${CPUS[0]} with GOMAXPROCS=1, load generators on CPU ${CPUS[1]} (taskset)"
elif ((NCPU >= 2)); then
	PINNING="NOT pinned: taskset is missing (util-linux); servers and load generators share $NCPU CPUs"
else
	PINNING="NOT pinned: only $NCPU CPU; servers and load generators share it, so figures understate every server"
fi
# nats-server, for the nats sink runs: on a CPU of its own if there is a third,
# else with the load generators, never with the server measured.
PIN_NATS=()
if ((${#CPUS[@]} >= 3)); then
	PIN_NATS=(taskset -c "${CPUS[2]}")
	NATS_PINNING="nats-server on CPU ${CPUS[2]}, a CPU of its own"
elif ((${#CPUS[@]} >= 2)); then
	PIN_NATS=("${PIN_LOAD[@]}")
	NATS_PINNING="nats-server on CPU ${CPUS[1]}, shared with the load generator (no third CPU)"
else
	NATS_PINNING="nats-server NOT pinned"
fi

# --- build --------------------------------------------------------------------

# build_fastingest DIR OUT: build fastingest from the source tree in DIR into
# OUT; the working tree and the --baseline-ref revision are built alike.
build_fastingest() {
	(cd "$1" && timeout 600 go build -o "$2" .)
}

echo "building fastingest, classic and noop into $WORK"
build_fastingest "$ROOT" "$WORK/fastingest" || die "go build of fastingest failed"
timeout 600 go build -o "$WORK/classic" ./benchmarks/classic || die "go build of benchmarks/classic failed"
timeout 600 go build -o "$WORK/noop" ./benchmarks/noop || die "go build of benchmarks/noop failed"
if [[ -n $BASELINE_NAME ]]; then
	# The revision's tree, as committed, without a worktree to clean up: it
	# goes with the work directory.
	echo "building $BASELINE_NAME ($BASELINE_REF) from git archive $BASELINE_SHA into $WORK"
	mkdir "$WORK/baseline-src"
	git -C "$ROOT" archive --format=tar "$BASELINE_SHA" | tar -x -C "$WORK/baseline-src" ||
		die "cannot export $BASELINE_REF ($BASELINE_SHA) with git archive"
	[[ -f $WORK/baseline-src/go.mod ]] || die "$BASELINE_REF ($BASELINE_SHA) has no go.mod at the top: not a fastingest revision"
	build_fastingest "$WORK/baseline-src" "$WORK/$BASELINE_NAME" ||
		die "go build of fastingest at $BASELINE_REF ($BASELINE_SHA) failed"
fi

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $COMMIT != unknown && -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
	COMMIT="$COMMIT (with uncommitted changes)"
fi
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2>/dev/null || true)
KIND=""
((SMOKE)) && KIND=" (SMOKE: checks the harness; the figures mean nothing)"
note "fastingest benchmark $STAMP$KIND"
note "commit $COMMIT; $(go version); $(uname -sr); ${CPU_MODEL:-unknown CPU} x $NCPU"
note "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
note "$PINNING"
note "rounds $ROUNDS, duration $DURATION, warm-up $WARMUP, $CONNS connections, payload $PARCELS parcels ($(wc -c <"$PAYLOAD_FILE") bytes)"
note "wrk $WRK; hey $HEY; vegeta $VEGETA"
if [[ -n $BASELINE_NAME ]]; then
	note "baseline: $BASELINE_NAME = $BASELINE_REF = $BASELINE_SHA ($(git -C "$ROOT" log -1 --date=short --format='%cd %s' "$BASELINE_SHA" |
		awk '{print (length($0) > 80 ? substr($0, 1, 77) "..." : $0)}')), in the wrk rounds only"
fi
if ((${#SINK_RUNS[@]} > 0)); then
	note "sink runs: ${SINK_RUNS[*]}; SINK_RETAIN_MIB $SINK_RETAIN_MIB"
	if ((NATS_RUNS > 0)); then
		if [[ -n $NATS_SERVER ]]; then
			note "nats-server $NATS_SERVER ($("$NATS_SERVER" --version 2>&1 | head -n1)); $NATS_PINNING"
		else
			note "nats-server: $NATS_SERVER_ERR"
		fi
	fi
fi
if read -r load1 _ </proc/loadavg && awk -v l="$load1" 'BEGIN {exit !(l > 0.5)}'; then
	echo "bench: note: the 1-minute load average is $load1: if something else is running, figures will be noisy" >&2
fi

# --- servers ------------------------------------------------------------------

SEQ=0
CLEAR_ENV=()
for v in ADDR MAX_WORKERS MAX_QUEUE SINK SIM_LATENCY MAX_BODY_BYTES LOG_LEVEL SHUTDOWN_TIMEOUT GOMAXPROCS \
	ACK ACK_TIMEOUT DATA_DIR SEGMENT_BYTES SEGMENT_AGE RETAIN_BYTES FSYNC_INTERVAL \
	NATS_URL NATS_SUBJECT NATS_STREAM NATS_REPLICAS ENQUEUE_TIMEOUT READY_MAX_QUEUE_WAIT MAX_CONNS \
	READ_TIMEOUT WRITE_TIMEOUT IDLE_TIMEOUT MAX_HEADER_BYTES AUTH_TOKEN AUTH_TOKEN_FILE METRICS_PUBLIC TLS_CERT TLS_KEY; do
	CLEAR_ENV+=(-u "$v")
done
# launch_server NAME [VAR=VALUE...]: start $WORK/NAME on 127.0.0.1 with a free
# port, wait until it answers HTTP; sets SRV_PID, SRV_PORT and SRV_LOG. If it
# does not come up, it is stopped and launch_server returns 1 with the reason
# in SRV_ERR and the exit status in SRV_RC (empty if it had to be killed).
launch_server() {
	local name=$1
	shift
	SEQ=$((SEQ + 1))
	SRV_LOG=$WORK/$name.$SEQ.log
	SRV_PORT=""
	SRV_ERR=""
	SRV_RC=""
	# The log exists before the server starts: sed may read it first.
	: >"$SRV_LOG"
	# env and taskset exec the server, so $! is the server's PID. The
	# servers' settings come from the arguments only, not from the caller.
	env "${CLEAR_ENV[@]}" ADDR=127.0.0.1:0 "${SERVER_ENV[@]}" "$@" "${PIN_SERVER[@]}" "$WORK/$name" >"$SRV_LOG" 2>&1 &
	SRV_PID=$!
	SERVERS+=("$SRV_PID")
	for _ in {1..100}; do
		SRV_PORT=$(sed -nE 's/.*(listen=|listening on )127\.0\.0\.1:([0-9]+).*/\2/p' "$SRV_LOG" | head -n1)
		[[ -n $SRV_PORT ]] && break
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [[ -n $SRV_PORT ]]; then
		for _ in {1..50}; do
			http_ping "$SRV_PORT" && return 0
			kill -0 "$SRV_PID" 2>/dev/null || break
			sleep 0.1
		done
		SRV_ERR="$name (pid $SRV_PID) does not answer HTTP on 127.0.0.1:$SRV_PORT"
	else
		SRV_ERR="$name ($*) did not log its address within 10 s"
	fi
	if kill -0 "$SRV_PID" 2>/dev/null; then
		kill -KILL "$SRV_PID" 2>/dev/null || true
		wait "$SRV_PID" 2>/dev/null || true
	else
		SRV_RC=0
		wait "$SRV_PID" 2>/dev/null || SRV_RC=$?
		SRV_ERR="$name ($*) exited with status $SRV_RC before answering HTTP"
	fi
	forget_server "$SRV_PID"
	{
		echo "-- $name log (did not start: $SRV_ERR)"
		cat "$SRV_LOG"
	} >>"$RAW"
	return 1
}

# start_server NAME [VAR=VALUE...]: launch_server, or die.
start_server() {
	launch_server "$@" && return 0
	cat "$SRV_LOG" >&2
	die "$SRV_ERR"
}

# forget_server PID: take a stopped server off the list cleanup stops.
forget_server() {
	local keep=() p
	for p in "${SERVERS[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	SERVERS=("${keep[@]}")
}

# http_ping PORT: whether an HTTP server answers GET /healthz on 127.0.0.1:PORT
# (any status will do).
http_ping() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" &&
			printf 'GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
			IFS= read -r -t 2 line <&3 &&
			[[ $line == HTTP/1.* ]]
	) 2>/dev/null
}

# stop_server NAME: SIGTERM the server started last, wait for it (40 s at most:
# fastingest drains its queue), and check that it exited 0.
stop_server() {
	local rc=0
	kill -TERM "$SRV_PID" 2>/dev/null || true
	for _ in {1..400}; do
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$SRV_PID" 2>/dev/null; then
		kill -KILL "$SRV_PID" 2>/dev/null || true
		warn "$1 did not exit within 40 s of SIGTERM; killed"
	fi
	wait "$SRV_PID" 2>/dev/null || rc=$?
	forget_server "$SRV_PID"
	{
		echo "-- $1 log (exit status $rc)"
		cat "$SRV_LOG"
	} >>"$RAW"
	if ((rc != 0)); then
		tail -n 5 "$SRV_LOG" >&2
		warn "$1 exited with status $rc after SIGTERM"
	fi
}

# cpu_ticks PID: user + system CPU time of a process, in clock ticks.
cpu_ticks() {
	local stat f
	stat=$(<"/proc/$1/stat")
	read -r -a f <<<"${stat##*) }" # fields from the 3rd on: utime is the 14th
	echo $((f[11] + f[12]))
}
CLK_TCK=$(getconf CLK_TCK)

# peak_rss_mib PID: the process's peak resident set size (VmHWM), in MiB.
peak_rss_mib() {
	awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"
}

now_ns() { date +%s%N; }

# children_cpu VAR: set VAR to the user + system CPU seconds of every child
# this shell has waited for (the load generators, through timeout). Call it
# as a command, not in $(...): a subshell's children start from zero.
children_cpu() {
	times >"$WORK/times.txt"
	printf -v "$1" '%s' "$(awk 'NR == 2 {
		t = 0
		for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] }
		printf "%.3f\n", t
	}' "$WORK/times.txt")"
}

# cpu_pct CPU_SECONDS NANOSECONDS: CPU time as a share of one core, in %.
cpu_pct() {
	awk -v c="$1" -v ns="$2" 'BEGIN {printf "%.0f\n", 100 * c / (ns / 1e9)}'
}

# bounded SECONDS OUTFILE CMD...: run a load generator on the load CPU with a
# time limit, output in OUTFILE (and the raw log); returns its exit status.
bounded() {
	local limit=$1 out=$2 rc=0
	shift 2
	timeout "$limit" "${PIN_LOAD[@]}" "$@" >"$out" 2>&1 &
	LOAD_PID=$!
	wait "$LOAD_PID" || rc=$?
	LOAD_PID=""
	{
		echo "-- $*  (exit status $rc)"
		cat "$out"
	} >>"$RAW"
	return "$rc"
}

# warm_up PORT NAME: a short wrk run whose figures are discarded; returns 1
# with the reason in W_ERR if wrk fails.
warm_up() {
	bounded 60 "$WORK/warmup.txt" "$WRK" -t1 -c"$CONNS" -d"$WARMUP" -s "$LUA" "http://127.0.0.1:$1/" && return 0
	W_ERR="wrk warm-up against $2 failed: $(tail -n 3 "$WORK/warmup.txt")"
	return 1
}

# parse_wrk FILE: "requests req/s p50_ms p99_ms non2xx socket_errors".
parse_wrk() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return v / 1000
		if (v ~ /ms$/) return v + 0
		if (v ~ /s$/) return v * 1000
		if (v ~ /m$/) return v * 60000
		if (v ~ /h$/) return v * 3600000
		return v + 0
	}
	$1 == "50%" { p50 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	/ requests in / { req = $1 }
	/^Requests\/sec:/ { rps = $2 }
	/Non-2xx or 3xx responses:/ { non2xx = $NF }
	/Socket errors:/ { sock = $4 + $6 + $8 + $10 }
	END { printf "%d %.1f %.3f %.3f %d %d\n", req, rps, p50, p99, non2xx, sock }
	' "$1"
}

# run_wrk NAME PORT LABEL: the measured wrk run; sets W_REQ W_RPS W_P50 W_P99
# W_CPU_US (server CPU µs per request) W_UTIL (server CPU %) W_GEN (wrk CPU %)
# W_RSS (MiB), and, when CO_PID names another process (nats-server), that
# process's CPU over the same interval: W_CO_CPU_US (µs per request) and
# W_CO_UTIL (%), else "-". Returns 1 with the reason in W_ERR if wrk fails,
# completes no request or the server exits during the run.
CO_PID=""
run_wrk() {
	local name=$1 port=$2 label=$3 out=$WORK/wrk.txt t0 t1 c0 c1 k0="" k1="" g0 g1 non2xx sock
	W_ERR=""
	W_CO_CPU_US=-
	W_CO_UTIL=-
	children_cpu g0
	c0=$(cpu_ticks "$SRV_PID") || { W_ERR="$name ($label) is not running"; return 1; }
	if [[ -n $CO_PID ]]; then
		k0=$(cpu_ticks "$CO_PID") || k0=""
	fi
	t0=$(now_ns)
	if ! bounded $((DUR_S + 60)) "$out" "$WRK" -t1 -c"$CONNS" -d"$DURATION" --latency -s "$LUA" "http://127.0.0.1:$port/"; then
		W_ERR="wrk against $name ($label) failed: $(tail -n 3 "$out")"
		return 1
	fi
	t1=$(now_ns)
	# The server must still be running: its CPU and peak RSS are read from
	# /proc, which forgets a process once bash has reaped it.
	if ! c1=$(cpu_ticks "$SRV_PID") || ! W_RSS=$(peak_rss_mib "$SRV_PID") || [[ -z $W_RSS ]]; then
		W_ERR="$name ($label) exited during the wrk run"
		return 1
	fi
	if [[ -n $k0 ]]; then
		k1=$(cpu_ticks "$CO_PID") || k1=""
	fi
	children_cpu g1
	W_GEN=$(cpu_pct "$(awk -v a="$g0" -v b="$g1" 'BEGIN {print b - a}')" $((t1 - t0)))
	read -r W_REQ W_RPS W_P50 W_P99 non2xx sock < <(parse_wrk "$out")
	if ((W_REQ == 0)); then
		W_ERR="wrk against $name ($label) completed no request: $(cat "$out")"
		return 1
	fi
	((non2xx == 0)) || warn "$name ($label): $non2xx responses were not 2xx"
	((sock == 0)) || echo "bench: note: $name ($label): $sock socket errors (see raw output)" >&2
	read -r W_CPU_US W_UTIL < <(cpu_per_request $((c1 - c0)) "$W_REQ" $((t1 - t0)))
	if [[ -n $k1 ]]; then
		read -r W_CO_CPU_US W_CO_UTIL < <(cpu_per_request $((k1 - k0)) "$W_REQ" $((t1 - t0)))
	fi
}

# cpu_per_request TICKS REQUESTS NANOSECONDS: "µs_per_request percent_of_one_core".
cpu_per_request() {
	awk -v d="$1" -v hz="$CLK_TCK" -v n="$2" -v ns="$3" 'BEGIN {printf "%.2f %.0f\n", d * 1e6 / hz / n, 100 * (d / hz) / (ns / 1e9)}'
}

SERVER_NAMES=(fastingest classic noop)
# WRK_NAMES: the servers of the wrk rounds, the baseline (--baseline-ref) right
# after fastingest; NAME_W: the width of their names in the tables.
WRK_NAMES=(fastingest ${BASELINE_NAME:+"$BASELINE_NAME"} classic noop)
NAME_W=10
((${#BASELINE_NAME} <= NAME_W)) || NAME_W=${#BASELINE_NAME}
# server_args NAME: the environment each server runs with in the comparison:
# fastingest and classic with the same (default) pool sizes, whatever the
# caller's environment says. The baseline gets fastingest's: environment
# variables only, no flags, which every revision reads (an older one ignores
# a variable it does not know, but would reject a flag).
server_args() {
	case $1 in
	fastingest | fastingest@*) echo "SINK=null MAX_WORKERS=1000 MAX_QUEUE=10000 LOG_LEVEL=info" ;;
	classic) echo "MAX_WORKERS=1000 MAX_QUEUE=10000" ;;
	*) echo "" ;;
	esac
}

# --- wrk rounds ---------------------------------------------------------------

ROWS=$WORK/rows.tsv
printf 'server\tround\treq/s\tp50_ms\tp99_ms\tpeak_rss_mib\tcpu_us_per_req\tserver_cpu_pct\twrk_cpu_pct\trequests\n' >"$ROWS"
echo
echo "== wrk: $ROUNDS interleaved round(s) of $DURATION per server, -t1 -c$CONNS"
for ((round = 1; round <= ROUNDS; round++)); do
	for name in "${WRK_NAMES[@]}"; do
		read -r -a extra <<<"$(server_args "$name")"
		start_server "$name" "${extra[@]}"
		warm_up "$SRV_PORT" "$name" || die "$W_ERR"
		run_wrk "$name" "$SRV_PORT" "round $round" || die "$W_ERR"
		stop_server "$name"
		printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$round" "$W_RPS" "$W_P50" "$W_P99" "$W_RSS" \
			"$W_CPU_US" "$W_UTIL" "$W_GEN" "$W_REQ" >>"$ROWS"
		printf '  round %d %-*s %8.0f req/s  p50 %6.3f ms  p99 %7.3f ms  %5.1f MiB  %6.2f CPU us/req  server CPU %s%%  wrk CPU %s%%\n' \
			"$round" "$NAME_W" "$name" "$W_RPS" "$W_P50" "$W_P99" "$W_RSS" "$W_CPU_US" "$W_UTIL" "$W_GEN"
	done
done
{
	echo
	echo "== wrk, every round (-t1 -c$CONNS -d$DURATION --latency)"
	cat "$ROWS"
} >>"$OUT"

# median_in FILE KEY COLUMN: the median of a column of a table (tab-separated,
# a header line) over the lines whose first field is KEY; nothing if none.
median_in() {
	awk -F'\t' -v s="$2" -v c="$3" 'NR > 1 && $1 == s {print $c}' "$1" | sort -g |
		awk '{a[NR] = $1} END {if (NR == 0) exit; if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

# median SERVER COLUMN: the median of a column of $ROWS for one server.
median() {
	median_in "$ROWS" "$@"
}

# --- hey ----------------------------------------------------------------------

echo
echo "== hey: ONE run of $DURATION per server (not a median), -c 64"
HEY_ROWS=$WORK/hey.tsv
printf 'server\treq/s\tp99_ms\n' >"$HEY_ROWS"
for name in "${SERVER_NAMES[@]}"; do
	read -r -a extra <<<"$(server_args "$name")"
	start_server "$name" "${extra[@]}"
	warm_up "$SRV_PORT" "$name" || die "$W_ERR"
	out=$WORK/hey.txt
	bounded $((DUR_S + 60)) "$out" "$HEY" -z "$DURATION" -c 64 -m POST -T application/json -D "$PAYLOAD_FILE" \
		"http://127.0.0.1:$SRV_PORT/" || die "hey against $name failed: $(tail -n 3 "$out")"
	stop_server "$name"
	read -r h_rps h_p99 h_ok h_bad < <(awk '
		/Requests\/sec:/ { rps = $2 }
		$1 ~ /^99%+$/ && $2 == "in" { p99 = $3 * 1000 } # hey v0.1.5 prints "99%%"
		/^ *\[[0-9]+\]/ { code = substr($1, 2, 3); if (code ~ /^2/) ok += $2; else bad += $2 }
		END { printf "%.1f %.3f %d %d\n", rps, p99, ok, bad }' "$out")
	((h_ok > 0)) || die "hey against $name got no 2xx response: $(cat "$out")"
	((h_bad == 0)) || warn "hey against $name: $h_bad responses were not 2xx"
	grep -q '^Error distribution' "$out" && echo "bench: note: hey against $name reported errors (see raw output)" >&2
	printf '%s\t%s\t%s\n' "$name" "$h_rps" "$h_p99" >>"$HEY_ROWS"
	printf '  %-10s %10.0f req/s  p99 %7.3f ms\n' "$name" "$h_rps" "$h_p99"
done
{
	echo
	echo "== hey, one run per server (-z $DURATION -c 64)"
	cat "$HEY_ROWS"
} >>"$OUT"

# --- vegeta: constant rate ----------------------------------------------------

echo
# vegeta's default, unbounded workers, collapses when vegeta has one CPU: on a
# hiccup it starts workers, each dialling a new connection, which costs more
# CPU, so it falls further behind (measured: 1,219 req/s sent of 16,667, 8,221
# connections, p50 8.5 s, the server 7% busy). A fixed pool of VEGETA_WORKERS
# keeps the rate; if the server is too slow for it, the rate is not achieved
# and the report says so.
echo "== vegeta: fastingest (SINK=null) at a constant $RATE req/s for $DURATION, $VEGETA_WORKERS workers"
read -r -a extra <<<"$(server_args fastingest)"
start_server fastingest "${extra[@]}"
warm_up "$SRV_PORT" fastingest || die "$W_ERR"
printf 'POST http://127.0.0.1:%s/\nContent-Type: application/json\n@%s\n' "$SRV_PORT" "$PAYLOAD_FILE" >"$WORK/targets.txt"
children_cpu g0
c0=$(cpu_ticks "$SRV_PID")
t0=$(now_ns)
bounded $((DUR_S + 60)) "$WORK/vegeta-attack.txt" "$VEGETA" attack -rate="$RATE/s" -duration="$DURATION" -timeout=10s \
	-workers="$VEGETA_WORKERS" -max-workers="$VEGETA_WORKERS" -targets="$WORK/targets.txt" -output="$WORK/vegeta.bin" ||
	die "vegeta attack failed: $(tail -n 3 "$WORK/vegeta-attack.txt")"
t1=$(now_ns)
c1=$(cpu_ticks "$SRV_PID")
children_cpu g1
v_gen=$(cpu_pct "$(awk -v a="$g0" -v b="$g1" 'BEGIN {print b - a}')" $((t1 - t0)))
stop_server fastingest
timeout 120 "$VEGETA" report -type=json "$WORK/vegeta.bin" >"$WORK/vegeta.json" || die "vegeta report failed"
# vegeta's JSON report has no p99.9 (and estimates the others), so the
# percentiles come from the results themselves (column 3: latency in ns).
timeout 120 "$VEGETA" encode -to csv "$WORK/vegeta.bin" | cut -d, -f3 | sort -n >"$WORK/vegeta-lat.txt" ||
	die "vegeta encode failed"
read -r v_p50 v_p99 v_p999 < <(awk '
	function q(p,  i) { i = int(p * NR); if (i < p * NR) i++; if (i < 1) i = 1; return a[i] / 1e6 }
	{ a[NR] = $1 }
	END { printf "%.3f %.3f %.3f\n", q(0.5), q(0.99), q(0.999) }' "$WORK/vegeta-lat.txt")
v_rate=$(json_get "$WORK/vegeta.json" rate)
v_thr=$(json_get "$WORK/vegeta.json" throughput)
v_req=$(json_get "$WORK/vegeta.json" requests)
v_success=$(json_get "$WORK/vegeta.json" success)
v_codes=$(json_get "$WORK/vegeta.json" status_codes)
v_errors=$(json_get "$WORK/vegeta.json" errors)
((v_req > 0)) || die "vegeta sent no request"
read -r v_cpu_us v_util < <(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$v_req" -v ns=$((t1 - t0)) \
	'BEGIN {printf "%.2f %.0f\n", d * 1e6 / hz / n, 100 * (d / hz) / (ns / 1e9)}')
VEGETA_SUMMARY=$(printf 'sent %.0f req/s, successful %.0f req/s (success ratio %s, status codes %s)\nlatency p50 %s ms, p99 %s ms, p99.9 %s ms; server CPU %s%% of one core, %s us/request; vegeta CPU %s%%' \
	"$v_rate" "$v_thr" "$v_success" "$v_codes" "$v_p50" "$v_p99" "$v_p999" "$v_util" "$v_cpu_us" "$v_gen")
if awk -v t="$v_thr" -v r="$RATE" 'BEGIN {exit !(t >= 0.99 * r)}'; then
	VEGETA_VERDICT="rate achieved ($(printf '%.0f' "$v_thr") req/s >= 99% of $RATE)"
else
	VEGETA_VERDICT="rate NOT achieved: $(printf '%.0f' "$v_thr") req/s (want >= 99% of $RATE)"
	if ((v_util < 90)); then
		VEGETA_VERDICT+="; the server used only ${v_util}% of its CPU (vegeta ${v_gen}%), so it is not the server's CPU"
	fi
fi
[[ $v_errors == "[]" ]] || echo "bench: note: vegeta errors: ${v_errors:0:300}" >&2
echo "$VEGETA_SUMMARY"
echo "$VEGETA_VERDICT"
{
	echo
	echo "== vegeta attack -rate=$RATE/s -duration=$DURATION -workers=$VEGETA_WORKERS -max-workers=$VEGETA_WORKERS against fastingest (SINK=null)"
	echo "$VEGETA_SUMMARY"
	echo "$VEGETA_VERDICT"
	echo "report: $(cat "$WORK/vegeta.json")"
} >>"$OUT"

# --- SINK=sim -----------------------------------------------------------------

echo
echo "== SINK=sim: fastingest with MAX_WORKERS=$SIM_WORKERS MAX_QUEUE=$SIM_QUEUE SIM_LATENCY=$SIM_LATENCY, wrk $DURATION"
start_server fastingest SINK=sim MAX_WORKERS="$SIM_WORKERS" MAX_QUEUE="$SIM_QUEUE" SIM_LATENCY="$SIM_LATENCY" LOG_LEVEL=info
warm_up "$SRV_PORT" "fastingest (sim)" || die "$W_ERR"
run_wrk fastingest "$SRV_PORT" "SINK=sim" || die "$W_ERR"
stop_server "fastingest (sim)"
SIM_RPS=$W_RPS
# mean_latency_s RANGE: the mean of SIM_LATENCY (min-max or one duration of
# ns, us, ms, s or m), in seconds.
mean_latency_s() {
	awk -v r="$1" '
	function sec(d,  n) {
		n = d + 0
		if (d ~ /ns$/) return n / 1e9
		if (d ~ /(us|µs)$/) return n / 1e6
		if (d ~ /ms$/) return n / 1e3
		if (d ~ /s$/) return n
		if (d ~ /m$/) return n * 60
		return -1
	}
	BEGIN {
		k = split(r, p, "-"); lo = sec(p[1]); hi = (k > 1) ? sec(p[2]) : lo
		if (lo < 0 || hi < 0 || k > 2) exit 1
		printf "%.6f\n", (lo + hi) / 2
	}'
}
SIM_SUMMARY=$(
	printf 'measured: %.0f req/s = %.0f req/min = %.0f parcels/s (p50 %s ms, p99 %s ms, server CPU %s%%, %s MiB peak RSS)\n' \
		"$SIM_RPS" "$(awk -v r="$SIM_RPS" 'BEGIN {print r * 60}')" "$(awk -v r="$SIM_RPS" -v p="$PARCELS" 'BEGIN {print r * p}')" \
		"$W_P50" "$W_P99" "$W_UTIL" "$W_RSS"
	if mean=$(mean_latency_s "$SIM_LATENCY"); then
		awk -v w="$SIM_WORKERS" -v m="$mean" -v p="$PARCELS" -v r="$SIM_RPS" 'BEGIN {
			bound = w / m
			printf "bound:    MAX_WORKERS / mean latency = %d / %.3f s = %.0f parcels/s = %.0f req/s = %.0f req/min (%d parcels per request)\n",
				w, m, bound, bound / p, bound / p * 60, p
			printf "          measured is %.0f%% of the bound\n", 100 * r * p / bound
			target = 1e6 / 60
			need = target * p * m
			printf "1M req/min: workers >= %.0f req/s x %d parcels x %.3f s = %.0f (Little'"'"'s law: no margin at all;\n", target, p, m, need
			printf "          latency spread and bursts need more): recommend MAX_WORKERS >= %.0f (+25%%), with MAX_QUEUE\n", need * 1.25
			printf "          absorbing bursts; MAX_WORKERS=%d is %.2fx the minimum\n", w, w / need
		}'
	else
		echo "bound:    SIM_LATENCY '$SIM_LATENCY' is not a form this script reads (e.g. 5ms-55ms); no bound computed"
	fi
)
echo "$SIM_SUMMARY"
{
	echo
	echo "== SINK=sim: MAX_WORKERS=$SIM_WORKERS MAX_QUEUE=$SIM_QUEUE SIM_LATENCY=$SIM_LATENCY, wrk -t1 -c$CONNS -d$DURATION"
	echo "$SIM_SUMMARY"
} >>"$OUT"

# --- sinks ----------------------------------------------------------------------

SINK_ROWS=$WORK/sinks.tsv
SINK_FAILED=$WORK/sink-failures.tsv
printf 'run\tround\treq/s\tp50_ms\tp99_ms\tpeak_rss_mib\tcpu_us_per_req\tserver_cpu_pct\twrk_cpu_pct\trequests\tnats_cpu_us_per_req\tnats_cpu_pct\tstored_mib\tparcels_stored\n' >"$SINK_ROWS"
printf 'run\tround\treason\n' >"$SINK_FAILED"
declare -A SINK_SKIP=() # run -> why later rounds do not try it again
NATS_PID=""
NATS_PORT=""
NATS_ERR=""
JS_API=\$JS.API # JetStream's API subjects: $JS.API.STREAM.CREATE.<stream>, ...

# sink_label RUN: a run as the tables show it: null, file/enqueued, ...
sink_label() {
	echo "${1/-//}"
}

# start_nats: start nats-server with JetStream on 127.0.0.1 (a free port, its
# store in $WORK), pinned by PIN_NATS, and wait until its JetStream API
# answers; sets NATS_PID and NATS_PORT, or returns 1 with the reason in
# NATS_ERR.
start_nats() {
	NATS_LOG=$WORK/nats-server.log
	mkdir -p "$WORK/nats"
	: >"$NATS_LOG"
	env -u GOMAXPROCS "${PIN_NATS[@]}" "$NATS_SERVER" -a 127.0.0.1 -p -1 -js -sd "$WORK/nats" >"$NATS_LOG" 2>&1 &
	NATS_PID=$!
	SERVERS+=("$NATS_PID")
	NATS_PORT=""
	for _ in {1..100}; do
		NATS_PORT=$(sed -nE 's/.*Listening for client connections on 127\.0\.0\.1:([0-9]+).*/\1/p' "$NATS_LOG" | head -n1)
		[[ -n $NATS_PORT ]] && break
		kill -0 "$NATS_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [[ -n $NATS_PORT ]]; then
		for _ in {1..50}; do
			nats_api INFO '' "$WORK/js-info.json" && return 0
			kill -0 "$NATS_PID" 2>/dev/null || break
			sleep 0.2
		done
		NATS_ERR="nats-server's JetStream API does not answer on 127.0.0.1:$NATS_PORT ($NATS_ERR)"
	else
		NATS_ERR="nats-server did not log its client port within 10 s"
	fi
	kill -0 "$NATS_PID" 2>/dev/null || NATS_ERR="nats-server exited at startup"
	NATS_ERR+=": $(grep -E '\[(ERR|FTL)\]' "$NATS_LOG" | tail -n 2 | paste -sd ' ' -)"
	stop_nats
	NATS_PORT=""
	return 1
}

# stop_nats: stop nats-server (SIGTERM, 10 s, then SIGKILL), keep its log.
stop_nats() {
	local rc=0
	[[ -n $NATS_PID ]] || return 0
	kill -TERM "$NATS_PID" 2>/dev/null || true
	for _ in {1..100}; do
		kill -0 "$NATS_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$NATS_PID" 2>/dev/null || true
	wait "$NATS_PID" 2>/dev/null || rc=$?
	forget_server "$NATS_PID"
	NATS_PID=""
	{
		echo "-- nats-server log (exit status $rc)"
		cat "$NATS_LOG"
	} >>"$RAW"
}

# nats_api REQUEST PAYLOAD FILE: a JetStream API request ($JS.API.REQUEST) to
# the nats-server started for the sinks, its answer in FILE; returns 1 with
# the reason in NATS_ERR if there is no answer or the answer is an error.
nats_api() {
	local err
	if ! nats_request "$NATS_PORT" "$JS_API.$1" "$2" 10 >"$3"; then
		NATS_ERR="no answer to $JS_API.$1"
		return 1
	fi
	echo "-- $JS_API.$1 $2: $(cat "$3")" >>"$RAW"
	err=$(json_at "$3" error) || err="unreadable answer"
	if [[ $err != null ]]; then
		NATS_ERR="$JS_API.$1: $err"
		return 1
	fi
}

# sink_run RUN ROUND: start fastingest for one sink run, warm it up, measure
# it with wrk, stop it; appends a line to $SINK_ROWS and prints one, or
# returns 1 with the reason in SINK_ERR. A file run writes to a directory of
# its own and a nats run to a stream of its own, both bounded by
# SINK_RETAIN_MIB and deleted afterwards.
sink_run() {
	local run=$1 round=$2 label dir="" stream="" co="" ok=1 stored=- parcels=- detail="" b d f m n s completed
	local args=(MAX_WORKERS=1000 MAX_QUEUE=10000 LOG_LEVEL=info)
	label=$(sink_label "$run")
	SINK_ERR=""
	case $run in
	null) args+=(SINK=null) ;;
	file-*)
		dir=$WORK/data-$run-$round
		args+=(SINK=file "ACK=${run#file-}" "DATA_DIR=$dir" "RETAIN_BYTES=${SINK_RETAIN_MIB}MiB"
			"SEGMENT_BYTES=$((SINK_RETAIN_MIB / 4))MiB")
		;;
	nats-*)
		if [[ -z $NATS_PORT ]]; then
			SINK_ERR="nats-server is not running: $NATS_ERR"
			SINK_SKIP[$run]="nats-server is not running"
			return 1
		fi
		# A fresh stream per run, created here rather than by fastingest so
		# that it is bounded (max_bytes, discarding the oldest messages);
		# otherwise as fastingest creates it: file storage, 1 replica, the
		# 2-minute duplicate window.
		stream=BENCH_${run/-/_}_$round
		if ! nats_api "STREAM.CREATE.$stream" \
			"{\"name\":\"$stream\",\"subjects\":[\"bench.$stream\"],\"storage\":\"file\",\"num_replicas\":1,\"max_bytes\":$((SINK_RETAIN_MIB << 20)),\"discard\":\"old\",\"duplicate_window\":120000000000}" \
			"$WORK/stream.json"; then
			SINK_ERR="cannot create the JetStream stream $stream: $NATS_ERR"
			return 1
		fi
		args+=(SINK=nats "ACK=${run#nats-}" "NATS_URL=nats://127.0.0.1:$NATS_PORT" "NATS_SUBJECT=bench.$stream"
			"NATS_STREAM=$stream")
		co=$NATS_PID
		;;
	esac

	if ! launch_server fastingest "${args[@]}"; then
		if [[ $run == nats-* ]] && grep -qiE 'unknown sink|invalid SINK' "$SRV_LOG"; then
			SINK_ERR="SINK=nats is not supported by this fastingest build yet: it exited with status ${SRV_RC:-?}"
			SINK_ERR+=": $(grep -oiE -m1 '(unknown sink|invalid SINK).*' "$SRV_LOG" | sed 's/\\"/"/g; s/"$//')"
			SINK_SKIP[$run]="SINK=nats is not supported by this fastingest build"
		else
			SINK_ERR="$SRV_ERR: $(tail -n 2 "$SRV_LOG" | paste -sd ' ' -)"
		fi
		ok=0
	elif ! warm_up "$SRV_PORT" "fastingest ($label)"; then
		SINK_ERR=$W_ERR
		stop_server "fastingest ($label)"
		ok=0
	else
		CO_PID=$co
		run_wrk fastingest "$SRV_PORT" "$label, round $round" || { SINK_ERR=$W_ERR; ok=0; }
		CO_PID=""
		stop_server "fastingest ($label)"
	fi

	completed=$(sed -nE 's/.*shutdown complete.* completed=([0-9]+).*/\1/p' "$SRV_LOG" | tail -n1)
	if ((ok)) && [[ -n $dir ]]; then
		# Written = the segments left + those RETAIN_BYTES deleted.
		b=$(find "$dir" -name '*.ndjson' -printf '%s\n' 2>/dev/null | awk '{t += $1} END {print t + 0}')
		d=$(sed -nE 's/.*deleted the oldest segment.* bytes=([0-9]+).*/\1/p' "$SRV_LOG" | awk '{t += $1} END {print t + 0}')
		stored=$(awk -v b="$b" -v d="$d" 'BEGIN {printf "%.1f", (b + d) / 1048576}')
		parcels=${completed:--}
		detail="  wrote $stored MiB"
		((d == 0)) || detail+=" ($(awk -v d="$d" 'BEGIN {printf "%.0f", d / 1048576}') MiB deleted by RETAIN_BYTES)"
		f=$(sed -nE 's/.*shutdown complete.* file_fsyncs=([0-9]+).*/\1/p' "$SRV_LOG" | tail -n1)
		if [[ -n $f && -n $completed ]] && ((f > 0)); then
			detail+=", $f fsyncs ($((completed / f)) parcels each)"
		fi
	elif ((ok)) && [[ -n $stream ]]; then
		if nats_api "STREAM.INFO.$stream" '' "$WORK/stream.json"; then
			m=$(json_at "$WORK/stream.json" state messages)
			n=$(json_at "$WORK/stream.json" state last_seq)
			s=$(json_at "$WORK/stream.json" state bytes)
			# max_bytes may have discarded the oldest messages: scale up.
			stored=$(awk -v m="$m" -v n="$n" -v s="$s" 'BEGIN {printf "%.1f", (m > 0 ? s / m * n / 1048576 : 0)}')
			parcels=$n
			((n > 0)) || warn "fastingest ($label, round $round): JetStream stored no message"
			if [[ -n $completed ]] && ((n < completed)); then
				warn "fastingest ($label, round $round): completed $completed parcels but the stream holds $n"
			fi
		else
			warn "fastingest ($label, round $round): cannot read the stream's state: $NATS_ERR"
		fi
		detail="  nats-server $W_CO_CPU_US CPU us/req (CPU $W_CO_UTIL%)  stored $stored MiB"
	fi
	[[ -z $dir ]] || rm -rf "$dir"
	if [[ -n $stream ]] && ! nats_api "STREAM.DELETE.$stream" '' "$WORK/stream.json"; then
		warn "cannot delete the JetStream stream $stream: $NATS_ERR"
	fi
	((ok)) || return 1

	printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$round" "$W_RPS" "$W_P50" "$W_P99" "$W_RSS" \
		"$W_CPU_US" "$W_UTIL" "$W_GEN" "$W_REQ" "$W_CO_CPU_US" "$W_CO_UTIL" "$stored" "$parcels" >>"$SINK_ROWS"
	printf '  round %d %-14s %8.0f req/s  p50 %6.3f ms  p99 %7.3f ms  %5.1f MiB  %6.2f CPU us/req  server CPU %s%%  wrk CPU %s%%%s\n' \
		"$round" "$label" "$W_RPS" "$W_P50" "$W_P99" "$W_RSS" "$W_CPU_US" "$W_UTIL" "$W_GEN" "$detail"
}

if ((${#SINK_RUNS[@]} > 0)); then
	echo
	echo "== sinks: $ROUNDS interleaved round(s) of $DURATION per run, -t1 -c$CONNS: ${SINK_RUNS[*]}"
	if ((NATS_RUNS > 0)); then
		if [[ -z $NATS_SERVER ]]; then
			NATS_ERR=$NATS_SERVER_ERR
		elif start_nats; then
			echo "  nats-server (pid $NATS_PID) on 127.0.0.1:$NATS_PORT with JetStream; $NATS_PINNING"
		else
			echo "  nats-server did not start: $NATS_ERR"
		fi
	fi
	if [[ " ${SINK_RUNS[*]} " == *" file-"* ]]; then
		free_mib=$(df -Pk "$WORK" | awk 'NR == 2 {printf "%d", $4 / 1024}')
		if ((free_mib < 2 * SINK_RETAIN_MIB)); then
			echo "bench: note: $free_mib MiB free in $WORK, under 2 x SINK_RETAIN_MIB ($SINK_RETAIN_MIB): file runs may fill the disk" >&2
		fi
	fi
	for ((round = 1; round <= ROUNDS; round++)); do
		for run in "${SINK_RUNS[@]}"; do
			if [[ -n ${SINK_SKIP[$run]:-} ]]; then
				printf '%s\t%d\t%s\n' "$run" "$round" "not run: ${SINK_SKIP[$run]}" >>"$SINK_FAILED"
				continue
			fi
			if ! sink_run "$run" "$round"; then
				printf '  round %d %-14s FAILED: %s\n' "$round" "$(sink_label "$run")" "$SINK_ERR"
				printf '%s\t%d\t%s\n' "$run" "$round" "$SINK_ERR" >>"$SINK_FAILED"
				warn "sink run $(sink_label "$run"), round $round failed: $SINK_ERR"
				if [[ -n ${SINK_SKIP[$run]:-} ]] && ((round < ROUNDS)); then
					echo "  (not run again in later rounds: ${SINK_SKIP[$run]})"
				fi
			fi
		done
	done
	if [[ -n $NATS_PID ]]; then
		NATS_RSS=$(peak_rss_mib "$NATS_PID" 2>/dev/null || echo "?")
		stop_nats
	fi
	{
		echo
		echo "== sinks, every round (-t1 -c$CONNS -d$DURATION --latency; stored MiB and parcels include the warm-up)"
		cat "$SINK_ROWS"
		if (($(wc -l <"$SINK_FAILED") > 1)); then
			echo "failed sink runs:"
			cat "$SINK_FAILED"
		fi
	} >>"$OUT"
fi

# sink_ratio RUN [ROUND]: RUN's median req/s (or ROUND's) over null's; empty
# without both figures.
sink_ratio() {
	local a b
	if (($# > 1)); then
		a=$(awk -F'\t' -v r="$1" -v n="$2" '$1 == r && $2 == n {print $3}' "$SINK_ROWS")
		b=$(awk -F'\t' -v n="$2" '$1 == "null" && $2 == n {print $3}' "$SINK_ROWS")
	else
		a=$(median_in "$SINK_ROWS" "$1" 3)
		b=$(median_in "$SINK_ROWS" null 3)
	fi
	[[ -n $a && -n $b ]] || return 0
	awk -v a="$a" -v b="$b" 'BEGIN {if (b > 0) printf "%.2f\n", a / b}'
}

# sink_target RUN TARGET: the target check line of a run.
sink_target() {
	local run=$1 target=$2 label ratio rounds="" r x verdict
	label=$(sink_label "$run")
	if [[ " ${SINK_RUNS[*]} " != *" $run "* || " ${SINK_RUNS[*]} " != *" null "* ]]; then
		echo "$label: not measured (SINKS must include null and $run) (target ≥ $target)"
		return
	fi
	ratio=$(sink_ratio "$run")
	if [[ -z $ratio ]]; then
		echo "$label: no figure, the runs failed (target ≥ $target)"
		return
	fi
	if awk -v r="$ratio" -v t="$target" 'BEGIN {exit !(r >= t)}'; then verdict=met; else verdict="NOT met"; fi
	if ((ROUNDS > 1)); then
		for ((r = 1; r <= ROUNDS; r++)); do
			x=$(sink_ratio "$run" "$r")
			rounds+="${rounds:+, }${x:--}"
		done
		rounds="; per round $rounds"
	fi
	echo "$label: $ratio × null (target ≥ $target: $verdict$rounds)"
}

# num FORMAT VALUE: VALUE in printf FORMAT if it is a number, else as it is.
num() {
	if [[ $2 =~ ^-?[0-9]+(\.[0-9]*)?$ ]]; then
		# shellcheck disable=SC2059 # the format is the caller's
		printf "$1" "$2"
	else
		printf '%s' "${2:--}"
	fi
}

# sink_table: the sink runs' table, the target checks and the nats figures.
sink_table() {
	local run label n rps reason cpu co stored
	echo "Sinks (wrk, medians of $ROUNDS rounds): -t1 -c$CONNS -d$DURATION; $PINNING"
	printf '%-15s %8s %10s %7s %8s %8s %10s %7s %10s %10s\n' run "req/s" "parcels/s" "p50 ms" "p99 ms" "RSS MiB" \
		"CPU us/req" "x null" "nats us/req" "stored MiB"
	for run in "${SINK_RUNS[@]}"; do
		label=$(sink_label "$run")
		n=$(awk -F'\t' -v r="$run" 'NR > 1 && $1 == r' "$SINK_ROWS" | wc -l)
		reason=$(awk -F'\t' -v r="$run" 'NR > 1 && $1 == r {print $3; exit}' "$SINK_FAILED")
		if ((n == 0)); then
			printf '%-15s FAILED: %s\n' "$label" "${reason:-no run}"
			continue
		fi
		rps=$(median_in "$SINK_ROWS" "$run" 3)
		co=-
		[[ $run != nats-* ]] || co=$(num "%.2f" "$(median_in "$SINK_ROWS" "$run" 11)")
		stored=-
		[[ $run == null ]] || stored=$(num "%.1f" "$(median_in "$SINK_ROWS" "$run" 13)")
		printf '%-15s %8.0f %10.0f %7.3f %8.3f %8.1f %10.2f %7s %10s %10s' "$label" "$rps" \
			"$(awk -v r="$rps" -v p="$PARCELS" 'BEGIN {print r * p}')" "$(median_in "$SINK_ROWS" "$run" 4)" \
			"$(median_in "$SINK_ROWS" "$run" 5)" "$(median_in "$SINK_ROWS" "$run" 6)" "$(median_in "$SINK_ROWS" "$run" 7)" \
			"$(sink_ratio "$run")" "$co" "$stored"
		if ((n < ROUNDS)); then
			printf '  (%d of %d rounds; failed: %s)' "$n" "$ROUNDS" "$reason"
		fi
		printf '\n'
	done
	echo "(CPU us/req = fastingest's own user+system CPU during the run / requests; nats us/req = nats-server's,"
	echo " measured apart over the same interval; x null = req/s over SINK=null's in this section; stored MiB ="
	echo " file: segment bytes written, nats: the stream's bytes, warm-up included)"
	if ((NATS_RUNS > 0)); then
		echo "($NATS_PINNING;"
		echo " with its defaults, JetStream fsyncs its store every 2 minutes (sync_interval), not per message:"
		echo " nats/persisted means acknowledged by JetStream, file/persisted means fsynced)"
	fi
	sink_target file-enqueued 0.7
	sink_target file-persisted 0.4
	((CONNS == 64)) || echo "(the targets are stated for 64 connections; these runs used $CONNS)"
	for run in nats-enqueued nats-persisted; do
		[[ " ${SINK_RUNS[*]} " == *" $run "* ]] || continue
		(($(awk -F'\t' -v r="$run" 'NR > 1 && $1 == r' "$SINK_ROWS" | wc -l) > 0)) || continue
		cpu=$(median_in "$SINK_ROWS" "$run" 7)
		co=$(median_in "$SINK_ROWS" "$run" 11)
		awk -v l="$(sink_label "$run")" -v c="$cpu" -v o="$co" -v u="$(median_in "$SINK_ROWS" "$run" 12)" 'BEGIN {
			printf "%s: CPU per request fastingest %.2f us + nats-server %.2f us = %.2f us; nats-server used %.0f%% of a CPU\n", l, c, o, c + o, u
		}'
	done
	if [[ -n ${NATS_RSS:-} ]]; then
		echo "nats-server peak RSS over the section: $NATS_RSS MiB"
	fi
}

# --- summary ------------------------------------------------------------------

# ratio A B: A / B as "0.98x", "-" without both figures.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {if (a != "" && b + 0 > 0) printf "%.2fx", a / b; else printf "-"}'
}

# round_figure SERVER ROUND COLUMN: one round's figure of a server in $ROWS.
round_figure() {
	awk -F'\t' -v s="$1" -v r="$2" -v c="$3" 'NR > 1 && $1 == s && $2 == r {print $c}' "$ROWS"
}

# vs_baseline: the working tree's fastingest over the --baseline-ref one, from
# the same interleaved wrk rounds: req/s (above 1x: faster) and CPU per request
# (above 1x: costlier), ratios of the medians, then each round's ratios.
vs_baseline() {
	local r rps="" cpu=""
	for ((r = 1; r <= ROUNDS; r++)); do
		rps+=" $(ratio "$(round_figure fastingest "$r" 3)" "$(round_figure "$BASELINE_NAME" "$r" 3)")"
		cpu+=" $(ratio "$(round_figure fastingest "$r" 7)" "$(round_figure "$BASELINE_NAME" "$r" 7)")"
	done
	printf 'fastingest vs %s: req/s %s, CPU/request %s (per round: req/s%s; CPU/request%s)\n' "$BASELINE_NAME" \
		"$(ratio "$(median fastingest 3)" "$(median "$BASELINE_NAME" 3)")" \
		"$(ratio "$(median fastingest 7)" "$(median "$BASELINE_NAME" 7)")" "$rps" "$cpu"
	echo "(the working tree over $BASELINE_NAME = $BASELINE_REF, measured in the same rounds: req/s above 1x and"
	echo " CPU/request below 1x favour the working tree)"
}

{
	echo
	echo "== summary: wrk -t1 -c$CONNS -d$DURATION, median of $ROUNDS round(s); $PINNING"
	printf '%-*s %8s %10s %10s %7s %8s %8s %10s %7s %7s\n' "$NAME_W" server "req/s" "req/min" "parcels/s" "p50 ms" \
		"p99 ms" "RSS MiB" "CPU us/req" "srv CPU" "wrk CPU"
	for name in "${WRK_NAMES[@]}"; do
		rps=$(median "$name" 3)
		if [[ $name == noop ]]; then
			parcels=-
		else
			parcels=$(awk -v r="$rps" -v p="$PARCELS" 'BEGIN {printf "%.0f", r * p}')
		fi
		printf '%-*s %8.0f %10.0f %10s %7.3f %8.3f %8.1f %10.2f %6.0f%% %6.0f%%\n' "$NAME_W" "$name" "$rps" \
			"$(awk -v r="$rps" 'BEGIN {print r * 60}')" "$parcels" "$(median "$name" 4)" "$(median "$name" 5)" \
			"$(median "$name" 6)" "$(median "$name" 7)" "$(median "$name" 8)" "$(median "$name" 9)"
	done
	echo "(RSS = peak, VmHWM; CPU us/req = server user+system CPU during the run / requests; srv CPU, wrk CPU = share"
	echo " of one core: a server below ~95% while wrk is near 100% was limited by the load generator, not by itself)"
	awk -v f="$(median fastingest 3)" -v c="$(median classic 3)" -v n="$(median noop 3)" \
		-v fc="$(median fastingest 7)" -v nc="$(median noop 7)" 'BEGIN {
		printf "fastingest: req/s %.2fx classic, %.2fx noop; CPU/request %.2fx noop (+%.2f us for decoding, validating, queueing)\n",
			f / c, f / n, fc / nc, fc - nc
	}'
	[[ -z $BASELINE_NAME ]] || vs_baseline
	echo
	echo "hey, one run per server (-z $DURATION -c 64), not a median:"
	while IFS=$'\t' read -r name rps p99; do
		[[ $name == server ]] && continue
		printf '  %-10s %10.0f req/s  p99 %7.3f ms\n' "$name" "$rps" "$p99"
	done <"$HEY_ROWS"
	echo
	echo "vegeta, fastingest at $RATE req/s for $DURATION ($VEGETA_WORKERS workers): $VEGETA_VERDICT"
	echo "$VEGETA_SUMMARY"
	echo
	echo "SINK=sim, MAX_WORKERS=$SIM_WORKERS MAX_QUEUE=$SIM_QUEUE SIM_LATENCY=$SIM_LATENCY:"
	echo "$SIM_SUMMARY"
	if ((${#SINK_RUNS[@]} > 0)); then
		echo
		sink_table
	fi
} >"$WORK/summary.txt"
echo
cat "$WORK/summary.txt"
cat "$WORK/summary.txt" >>"$OUT"
echo
echo "results (every round's raw figures and tool output): $OUT"
if ((FAILURES > 0)); then
	die "$FAILURES problem(s) above: the figures may not be trustworthy"
fi
