#!/usr/bin/env bash
# loadtest.sh: load-test a fastingest URL (a local server or a deployed load
# balancer) with wrk and hey, POSTing the reference payload, and print
# requests/min and latency percentiles for each tool. It builds and runs
# benchmarks/loadtest, a Go program (--help says what it does); built rather
# than `go run`, which would turn its exit status 2 (usage error) into 1.
#
# Usage: bash scripts/loadtest.sh [--help] URL
# Environment: DURATION (30s), CONNS (64), THREADS (2, wrk only),
# TOOLS ("wrk hey"), PAYLOAD (scripts/payload.json).
set -euo pipefail
command -v go >/dev/null || {
	echo "loadtest: go is missing: install Go (https://go.dev/dl/); the load test is a Go program" >&2
	exit 1
}
# A relative PAYLOAD names a file from where the caller is; the program runs
# in the repository.
if [[ -n ${PAYLOAD:-} && $PAYLOAD != /* ]]; then
	export PAYLOAD=$PWD/$PAYLOAD
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=$(mktemp -d "${TMPDIR:-/tmp}/fastingest-loadtest.XXXXXX")
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/loadtest" ./benchmarks/loadtest
rc=0
"$bin/loadtest" "$@" || rc=$?
exit "$rc"
