#!/usr/bin/env bash
# bench.sh: measure fastingest against the classic "1M requests per minute"
# design and a no-op fasthttp server, then its sinks: runs the benchmark
# harness, benchmarks/bench, a Go program (its doc comment and -h say what it
# runs and how). Kept so that `bash scripts/bench.sh [options]` and CI go on
# working; it takes the same options and environment.
#
# Usage: bash scripts/bench.sh [--rounds N] [--out FILE] [--smoke]
#                              [--baseline-ref REF] [--charts DIR]
#        bash scripts/bench.sh --help
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec go run ./benchmarks/bench "$@"
