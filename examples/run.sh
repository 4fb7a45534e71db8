#!/usr/bin/env bash
# run.sh: run every producer example in examples/ against a live fastingest.
#
# Builds fastingest, starts it on a free port of 127.0.0.1 with SINK=null, a
# token, and MAX_BODY_BYTES small enough (4KiB) that the examples' batches of
# 200 parcels get 413 and are split, runs each example with FASTINGEST_URL and
# FASTINGEST_TOKEN set, then stops the server with SIGTERM. An example whose
# runtime is missing is skipped, saying so. Exits 1 when an example exits
# non-zero, the server does not drain cleanly, or no batch was split.
#
# Usage: bash examples/run.sh   (from anywhere; .ci/run runs it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

work=$(mktemp -d "${TMPDIR:-/tmp}/fastingest-examples.XXXXXX")
pid=''
cleanup() {
	if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "run.sh: building fastingest"
go build -o "$work/fastingest" .
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
# Only these settings: none inherited from the caller's environment.
env -i PATH="$PATH" ADDR=127.0.0.1:0 SINK=null MAX_BODY_BYTES=4KiB AUTH_TOKEN="$token" \
	SHUTDOWN_TIMEOUT=10s "$work/fastingest" 2>"$work/server.log" &
pid=$!

# The startup line names the port chosen: listen=127.0.0.1:PORT.
addr=''
for _ in $(seq 300); do
	addr=$(sed -n '/msg="fastingest listening"/s/.* listen=\([^ ]*\).*/\1/p' "$work/server.log")
	[[ -z $addr ]] || break
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "run.sh: fastingest exited before listening:" >&2
		cat "$work/server.log" >&2
		exit 1
	fi
	sleep 0.1
done
[[ -n $addr ]] || { echo "run.sh: no startup line within 30 s" >&2; exit 1; }
export FASTINGEST_URL="http://$addr/" FASTINGEST_TOKEN="$token"
echo "run.sh: fastingest listening on $FASTINGEST_URL"

ran=() skipped=() failed=()
# example NAME COMMAND... runs one example, for at most 2 minutes.
example() {
	local name=$1 status=0
	shift
	printf '\n-- %s: %s\n' "$name" "$*"
	timeout 120 "$@" || status=$?
	if [[ $status == 0 ]]; then
		ran+=("$name")
	else
		echo "run.sh: $name exited with status $status"
		failed+=("$name")
	fi
}
# skip NAME WHY notes an example not run.
skip() {
	printf '\n-- %s: skipped: %s\n' "$1" "$2"
	skipped+=("$1")
}

if command -v curl >/dev/null && command -v gzip >/dev/null; then
	example curl bash examples/curl.sh
else
	skip curl "curl or gzip is not installed"
fi

# Debian's python3-requests installs for /usr/bin/python3, which may not be
# the python3 first on PATH (pyenv).
python=''
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null && "$p" -c 'import requests' 2>/dev/null; then
		python=$p
		break
	fi
done
if [[ -n $python ]]; then
	example python "$python" examples/python/send.py
else
	skip python "no python3 with the requests module (Debian: apt-get install python3-requests)"
fi

example go go run ./examples/go

if command -v node >/dev/null && node -e 'process.exit(typeof fetch === "function" ? 0 : 1)'; then
	example node node examples/node/send.mjs
else
	skip node "no Node.js 18 or newer (with fetch)"
fi

# Stop the server; it must drain and exit 0, and must have answered 413 at
# least once (requests_rejected counts 4xx), or the split path went untested.
printf '\n'
if ! kill -TERM "$pid" 2>/dev/null; then
	echo "run.sh: fastingest stopped while the examples ran:" >&2
	cat "$work/server.log" >&2
	exit 1
fi
status=0
wait "$pid" || status=$?
pid=''
summary=$(grep 'msg="shutdown complete"' "$work/server.log" || true)
echo "run.sh: fastingest exited with status $status: ${summary#*msg=}"
if [[ $status != 0 || -z $summary ]]; then
	cat "$work/server.log" >&2
	failed+=("the server's shutdown")
fi
rejected=$(sed -n 's/.* requests_rejected=\([0-9]*\).*/\1/p' <<<"$summary")
if [[ ${rejected:-0} == 0 ]]; then
	echo "run.sh: no batch was answered 413: the examples' split path was not exercised" >&2
	failed+=("the 413 split")
fi

echo "run.sh: ran: ${ran[*]:-none}; skipped: ${skipped[*]:-none}; failed: ${failed[*]:-none}"
[[ ${#failed[@]} == 0 ]]
