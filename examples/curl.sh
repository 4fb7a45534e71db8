#!/usr/bin/env bash
# curl.sh: three batches to fastingest with curl: JSON, gzip-compressed JSON
# and NDJSON. FASTINGEST_URL says where (default http://127.0.0.1:8080/),
# FASTINGEST_TOKEN as whom (optional). Exits non-zero (curl's 22, the answer
# printed) when a batch is not accepted.
#
#   FASTINGEST_URL=http://127.0.0.1:8080/ bash examples/curl.sh
set -euo pipefail
url=${FASTINGEST_URL:-http://127.0.0.1:8080/}
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# auth_header prints the Authorization header, if there is a token. curl
# reads it from a pipe (-H @file), not from its command line, which ps shows.
auth_header() {
	[[ -z ${FASTINGEST_TOKEN:-} ]] || printf 'Authorization: Bearer %s\n' "$FASTINGEST_TOKEN"
}

# post CONTENT-TYPE [CURL-OPTION...] sends the body on stdin as one batch and
# prints the answer. --fail-with-body makes any 4xx or 5xx an error, keeping
# its answer; --retry tries again on 408, 429 and 5xx, waiting as Retry-After
# says, and empties the --output file first, so that only the last answer is
# printed.
answer=$(mktemp)
trap 'rm -f "$answer"' EXIT
post() {
	local status=0
	curl --silent --show-error --fail-with-body --retry 8 --retry-max-time 60 -H @<(auth_header) \
		-H "Content-Type: $1" --data-binary @- --output "$answer" "${@:2}" "$url" || status=$?
	cat "$answer"
	echo
	return "$status"
}

# A JSON batch: {"Data":[parcel, ...]}.
post application/json <<EOF
{"Data":[{"id":"curl-1","time":"$now","data":"reading 1"},{"id":"curl-2","time":"$now","data":"reading 2"}]}
EOF

# The same, gzip-compressed: MAX_BODY_BYTES bounds the body once decompressed.
gzip -c <<EOF | post application/json -H 'Content-Encoding: gzip'
{"Data":[{"id":"curl-3","time":"$now","data":"reading 3"},{"id":"curl-4","time":"$now","data":"reading 4"}]}
EOF

# NDJSON: one parcel per line.
post application/x-ndjson <<EOF
{"id":"curl-5","time":"$now","data":"reading 5"}
{"id":"curl-6","time":"$now","data":"reading 6"}
EOF
