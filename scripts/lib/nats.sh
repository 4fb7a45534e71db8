# shellcheck shell=bash
# scripts/lib/nats.sh: one request to a NATS server from bash, for
# scripts/bench.sh. Sourced, never run.
#
# It speaks just enough of the NATS client protocol
# (https://docs.nats.io/reference/reference-protocols/nats-protocol) over
# bash's /dev/tcp to publish one message with a reply subject and read the
# reply: enough for the JetStream API ($JS.API.STREAM.CREATE.<name>,
# $JS.API.STREAM.INFO.<name>, $JS.API.STREAM.DELETE.<name>, $JS.API.INFO),
# which answers every request with one JSON object. No nats CLI is needed.

# nats_request PORT SUBJECT PAYLOAD [SECONDS]: send PAYLOAD on SUBJECT to the
# NATS server on 127.0.0.1:PORT and print the reply's payload. Fails when the
# server cannot be reached, answers -ERR, or sends no reply within SECONDS
# (default 10) of each step.
nats_request() {
	local LC_ALL=C # ${#payload} and read -N count bytes
	local port=$1 subject=$2 payload=$3 limit=${4:-10}
	local inbox=_INBOX.bench.$$.$RANDOM
	(
		{ exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || exit 1
		IFS= read -r -t "$limit" line <&3 || exit 1
		[[ $line == INFO\ * ]] || exit 1
		# headers:false: replies come as MSG, not HMSG.
		printf 'CONNECT {"verbose":false,"pedantic":false,"headers":false,"name":"bench.sh"}\r\nSUB %s 1\r\nPUB %s %s %d\r\n%s\r\nPING\r\n' \
			"$inbox" "$subject" "$inbox" "${#payload}" "$payload" >&3 || exit 1
		end=$((SECONDS + limit))
		while ((SECONDS <= end)) && IFS= read -r -t "$limit" line <&3; do
			line=${line%$'\r'}
			case $line in
			MSG\ *)
				# MSG <subject> <sid> <bytes>: the payload follows, then CRLF.
				size=${line##* }
				[[ $size =~ ^[0-9]+$ ]] || exit 1
				IFS= read -r -N "$size" -t "$limit" body <&3 || exit 1
				printf '%s\n' "$body"
				exit 0
				;;
			PING) printf 'PONG\r\n' >&3 ;;
			-ERR*)
				printf 'nats: %s\n' "$line" >&2
				exit 1
				;;
			esac
		done
		exit 1
	)
}
