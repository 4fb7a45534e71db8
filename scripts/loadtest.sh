#!/usr/bin/env bash
# loadtest.sh: load-test a fastingest URL (a local server or a deployed load
# balancer) with wrk and hey, POSTing the reference payload, and print
# requests/min and latency percentiles for each tool.
#
# Usage: bash scripts/loadtest.sh [--help] URL
# Environment: DURATION (30s), CONNS (64), THREADS (2, wrk only),
# TOOLS ("wrk hey"), PAYLOAD (scripts/payload.json).
set -euo pipefail
export LC_ALL=C

usage() {
	cat <<'EOF'
Usage: bash scripts/loadtest.sh [--help] URL

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
EOF
}

die() {
	printf 'loadtest: %s\n' "$*" >&2
	exit 1
}
usage_error() {
	printf 'loadtest: %s\n' "$*" >&2
	echo "Try: bash scripts/loadtest.sh --help" >&2
	exit 2
}

URL=""
while (($#)); do
	case $1 in
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	-*) usage_error "unknown option: $1" ;;
	*)
		[[ -z $URL ]] || usage_error "one URL only (got '$URL' and '$1')"
		URL=$1
		shift
		;;
	esac
done
if (($#)); then
	[[ -z $URL && $# -eq 1 ]] || usage_error "one URL only"
	URL=$1
fi
[[ -n $URL ]] || usage_error "missing URL"
if [[ ! $URL =~ ^https?://[^/[:space:]]+ ]]; then
	usage_error "URL must start with http:// or https:// and name a host, not '$URL' (e.g. http://$URL)"
fi

DURATION=${DURATION:-30s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
TOOLS=${TOOLS:-wrk hey}
[[ $DURATION =~ ^[0-9]+$ ]] && DURATION=${DURATION}s
[[ $DURATION =~ ^([1-9][0-9]*)([smh])$ ]] || usage_error "DURATION wants Ns, Nm or Nh (e.g. 30s), not '$DURATION'"
case ${BASH_REMATCH[2]} in
s) DUR_S=${BASH_REMATCH[1]} ;;
m) DUR_S=$((BASH_REMATCH[1] * 60)) ;;
h) DUR_S=$((BASH_REMATCH[1] * 3600)) ;;
esac
[[ $CONNS =~ ^[1-9][0-9]*$ ]] || usage_error "CONNS wants a positive integer, not '$CONNS'"
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || usage_error "THREADS wants a positive integer, not '$THREADS'"
if ((THREADS > CONNS)); then
	echo "loadtest: note: THREADS=$THREADS > CONNS=$CONNS; wrk needs a connection per thread, using THREADS=$CONNS" >&2
	THREADS=$CONNS
fi
read -r -a TOOL_LIST <<<"$TOOLS"
((${#TOOL_LIST[@]} > 0)) || usage_error "TOOLS is empty"
for t in "${TOOL_LIST[@]}"; do
	[[ $t == wrk || $t == hey ]] || usage_error "TOOLS: unknown tool '$t' (wrk, hey)"
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PAYLOAD_FILE=${PAYLOAD:-$ROOT/scripts/payload.json}
[[ -f $PAYLOAD_FILE ]] || die "payload file not found: $PAYLOAD_FILE"
PAYLOAD_FILE=$(cd "$(dirname "$PAYLOAD_FILE")" && pwd)/$(basename "$PAYLOAD_FILE")
export PAYLOAD=$PAYLOAD_FILE # read by scripts/post.lua
LUA=$ROOT/scripts/post.lua
[[ -f $LUA ]] || die "missing $LUA"
PARCELS=$(grep -o '"id"' "$PAYLOAD_FILE" | wc -l)

# --- tools --------------------------------------------------------------------

# apt_install PACKAGE: install a Debian package when running as root.
apt_install() {
	((EUID == 0)) && command -v apt-get >/dev/null || return 1
	echo "installing $1 (apt-get install -y $1)" >&2
	timeout 600 apt-get install -y -qq "$1" >/dev/null 2>&1 ||
		{ timeout 600 apt-get update -qq >/dev/null 2>&1 && timeout 600 apt-get install -y -qq "$1" >/dev/null 2>&1; }
}

# find_wrk: the path of wrk, installed with apt-get if possible.
find_wrk() {
	command -v wrk >/dev/null || apt_install wrk >&2 || true
	command -v wrk || {
		echo "loadtest: wrk is missing: install it (Debian/Ubuntu: sudo apt-get install wrk; Amazon Linux/Fedora: build it from https://github.com/wg/wrk; macOS: brew install wrk)" >&2
		return 1
	}
}

# find_hey: the path of hey, from PATH, GOBIN or GOPATH/bin, installed with
# go install if Go is there.
find_hey() {
	local bin
	if command -v hey; then
		return 0
	fi
	if command -v go >/dev/null; then
		bin=$(go env GOBIN)
		if [[ -z $bin ]]; then
			bin=$(go env GOPATH)
			bin=${bin%%:*}/bin
		fi
		if [[ ! -x $bin/hey ]]; then
			echo "installing hey (go install github.com/rakyll/hey@v0.1.5)" >&2
			timeout 600 go install github.com/rakyll/hey@v0.1.5 >&2 || true
		fi
		if [[ -x $bin/hey ]]; then
			echo "$bin/hey"
			return 0
		fi
	fi
	echo "loadtest: hey is missing: install it with Go (go install github.com/rakyll/hey@v0.1.5, then it is in \$(go env GOPATH)/bin)" >&2
	return 1
}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastingest-loadtest.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PROBLEMS=0
problem() {
	printf 'loadtest: %s\n' "$*" >&2
	PROBLEMS=$((PROBLEMS + 1))
}

# --- preflight ----------------------------------------------------------------

echo "target:   $URL"
echo "payload:  $PAYLOAD_FILE ($PARCELS parcels, $(wc -c <"$PAYLOAD_FILE") bytes)"
echo "load:     $DURATION per tool, $CONNS connections (wrk: $THREADS threads)"
if command -v curl >/dev/null; then
	# One request first: a wrong URL or path shows here, not as a run of errors.
	code=$(curl -sS -o "$WORK/preflight.body" -w '%{http_code}' --max-time 10 \
		-H 'Content-Type: application/json' --data-binary "@$PAYLOAD_FILE" "$URL" 2>"$WORK/preflight.err") || code=000
	if [[ $code == 2?? ]]; then
		echo "preflight: POST answered $code $(head -c 200 "$WORK/preflight.body")"
	else
		problem "preflight: POST $URL answered $code: $(head -c 200 "$WORK/preflight.body")$(head -c 300 "$WORK/preflight.err") (running the load anyway)"
	fi
fi

# --- runs -----------------------------------------------------------------------

# report TOOL REQUESTS RPS P50 P90 P99 NON2XX ERRORS: print and keep a row.
ROWS=()
report() {
	local per_min parcels_min
	per_min=$(awk -v r="$3" 'BEGIN {printf "%.0f", r * 60}')
	parcels_min=$(awk -v r="$3" -v p="$PARCELS" 'BEGIN {printf "%.0f", r * 60 * p}')
	printf '%s: %s requests, %.1f req/s = %s requests/min (%s parcels/min); latency p50 %s ms, p90 %s ms, p99 %s ms; not 2xx: %s, errors: %s\n' \
		"$1" "$2" "$3" "$per_min" "$parcels_min" "$4" "$5" "$6" "$7" "$8"
	ROWS+=("$(printf '%-4s %12s %14s %10s %10s %10s %9s %8s' "$1" "$2" "$per_min" "$4" "$5" "$6" "$7" "$8")")
	if (($2 == 0)); then
		problem "$1: no request completed"
	elif (($7 > 0 || $8 > 0)); then
		problem "$1: $7 responses were not 2xx and $8 requests failed: the figures include them"
	fi
}

run_wrk() {
	local wrk out=$WORK/wrk.txt rc=0
	wrk=$(find_wrk) || { problem "wrk skipped: not installed"; return; }
	echo
	echo "== wrk: $wrk -t$THREADS -c$CONNS -d$DURATION --latency -s scripts/post.lua $URL"
	timeout $((DUR_S + 60)) "$wrk" -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$LUA" "$URL" >"$out" 2>&1 || rc=$?
	cat "$out"
	if ((rc != 0)); then
		problem "wrk failed with exit status $rc"
		return
	fi
	local req rps p50 p90 p99 non2xx errs
	read -r req rps p50 p90 p99 non2xx errs < <(awk '
	function ms(v) {
		if (v ~ /us$/) return v / 1000
		if (v ~ /ms$/) return v + 0
		if (v ~ /m$/) return v * 60000
		if (v ~ /h$/) return v * 3600000
		if (v ~ /s$/) return v * 1000
		return v + 0
	}
	$1 == "50%" { p50 = ms($2) }
	$1 == "90%" { p90 = ms($2) }
	$1 == "99%" { p99 = ms($2) }
	/ requests in / { req = $1 }
	/^Requests\/sec:/ { rps = $2 }
	/Non-2xx or 3xx responses:/ { non2xx = $NF }
	/Socket errors:/ { errs = $4 + $6 + $8 + $10 }
	END { printf "%d %.1f %.3f %.3f %.3f %d %d\n", req, rps, p50, p90, p99, non2xx, errs }' "$out")
	report wrk "$req" "$rps" "$p50" "$p90" "$p99" "$non2xx" "$errs"
}

run_hey() {
	local hey out=$WORK/hey.txt rc=0
	hey=$(find_hey) || { problem "hey skipped: not installed"; return; }
	echo
	echo "== hey: $hey -z $DURATION -c $CONNS -m POST -T application/json -D $PAYLOAD_FILE $URL"
	timeout $((DUR_S + 60)) "$hey" -z "$DURATION" -c "$CONNS" -m POST -T application/json -D "$PAYLOAD_FILE" "$URL" >"$out" 2>&1 || rc=$?
	cat "$out"
	if ((rc != 0)); then
		problem "hey failed with exit status $rc"
		return
	fi
	local req rps p50 p90 p99 non2xx errs
	# hey v0.1.5 prints its percentiles as "50%% in 0.0012 secs"; statuses as
	# "[202] N responses", errors as "[N] message" under "Error distribution".
	read -r req rps p50 p90 p99 non2xx errs < <(awk '
	/^Error distribution:/ { in_err = 1; next }
	/Requests\/sec:/ { rps = $2 }
	$2 == "in" && $4 == "secs" {
		p = $1; sub(/%+$/, "", p)
		if (p == "50") p50 = $3 * 1000
		if (p == "90") p90 = $3 * 1000
		if (p == "99") p99 = $3 * 1000
	}
	/^ *\[[0-9]+\]/ {
		n = $2 + 0
		if (in_err) { errs += substr($1, 2) + 0; next }
		if (substr($1, 2, 1) == "2") ok += n; else non2xx += n
	}
	END { printf "%d %.1f %.3f %.3f %.3f %d %d\n", ok + non2xx + errs, rps, p50, p90, p99, non2xx, errs }' "$out")
	report hey "$req" "$rps" "$p50" "$p90" "$p99" "$non2xx" "$errs"
}

for t in "${TOOL_LIST[@]}"; do
	"run_$t"
done

# --- summary ------------------------------------------------------------------

echo
echo "== summary: $URL, $DURATION per tool, $CONNS connections, $PARCELS parcels per request"
printf '%-4s %12s %14s %10s %10s %10s %9s %8s\n' tool requests requests/min p50_ms p90_ms p99_ms "not 2xx" errors
for row in "${ROWS[@]}"; do
	echo "$row"
done
if ((PROBLEMS > 0)); then
	echo "loadtest: $PROBLEMS problem(s), see the messages above" >&2
	exit 1
fi
