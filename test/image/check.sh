#!/usr/bin/env bash
# check.sh: build fastingest's container image with buildah, offline, and
# run it: the image holds the binary, CA certificates and /data only, runs
# as 65532, answers 202 to the reference client, stores the parcels in
# /data, and drains and exits 0 on SIGTERM. Run by .ci/run.
#
# It skips, saying why, where buildah is missing or cannot build and run a
# container here (no chroot, no mounts): a probe that does not use the
# Containerfile decides, so that a broken Containerfile still fails.
# buildah keeps its storage in a temporary directory (vfs driver, chroot
# isolation: no daemon, no overlay, no user namespaces needed), removed at
# the end, so that the machine's own images are left alone.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

skip() {
	echo "SKIPPED: the container image is not checked: $*"
	exit 0
}
fail() {
	echo "FAIL: $*" >&2
	if [[ -s ${log:-} ]]; then
		echo "--- container log:" >&2
		cat "$log" >&2
	fi
	exit 1
}

command -v buildah >/dev/null || skip "buildah is not installed (Debian: apt-get install buildah)"

work=$(mktemp -d "${TMPDIR:-/tmp}/fastingest-image-check.XXXXXX")
B=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
ctr='' runner=''
cleanup() {
	if [[ -n $runner ]] && kill -0 "$runner" 2>/dev/null; then
		kill -KILL "$runner" 2>/dev/null || true
		wait "$runner" 2>/dev/null || true
	fi
	if [[ -n $ctr ]]; then
		"${B[@]}" umount "$ctr" >/dev/null 2>&1 || true
		"${B[@]}" rm "$ctr" >/dev/null 2>&1 || true
	fi
	"${B[@]}" rmi --all --force >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# The probe: can buildah build a scratch container and run a static binary
# in it here? The binary is fastingest itself, asked for its version.
CGO_ENABLED=0 go build -trimpath -o "$work/probe" .
if ! probe=$({
	c=$("${B[@]}" from --quiet scratch) &&
		"${B[@]}" copy "$c" "$work/probe" /probe >/dev/null &&
		timeout 60 "${B[@]}" run --isolation chroot "$c" -- /probe -version &&
		"${B[@]}" rm "$c" >/dev/null
} 2>&1); then
	skip "buildah cannot build and run a container here: $(tail -n 3 <<<"$probe")"
fi
echo "probe: buildah runs a scratch container here ($(buildah --version))"

version=v0.0.0-image-check
image=localhost/fastingest:image-check
BUILDAH_OPTS="${B[*]:1}" BUD_OPTS="--isolation chroot" \
	timeout 300 bash scripts/build-image.sh -t "$image" --version "$version"

# The image's configuration.
config=$("${B[@]}" inspect --type image --format \
	'user={{.OCIv1.Config.User}} entrypoint={{.OCIv1.Config.Entrypoint}} ports={{.OCIv1.Config.ExposedPorts}} env={{.OCIv1.Config.Env}} volumes={{.OCIv1.Config.Volumes}} version={{index .OCIv1.Config.Labels "org.opencontainers.image.version"}} licenses={{index .OCIv1.Config.Labels "org.opencontainers.image.licenses"}}' \
	"$image")
echo "image: $config"
for want in 'user=65532:65532' 'entrypoint=[/usr/local/bin/fastingest]' 'ports=map[8080/tcp:{}]' \
	'DATA_DIR=/data' 'volumes=map[/data:{}]' "version=$version" 'licenses=Apache-2.0'; do
	[[ $config == *"$want"* ]] || fail "the image's configuration has no $want"
done

# Its files: the binary, the CA bundle and /data, nothing else (no shell).
ctr=$("${B[@]}" from --quiet "$image")
root=$("${B[@]}" mount "$ctr")
files=$(cd "$root" && find . -mindepth 1 | sort | tr '\n' ' ')
[[ $files == './data ./etc ./etc/ssl ./etc/ssl/certs ./etc/ssl/certs/ca-certificates.crt ./usr ./usr/local ./usr/local/bin ./usr/local/bin/fastingest ' ]] ||
	fail "the image holds more than the binary, the CA bundle and /data: $files"
[[ $(stat -c %u:%g "$root/data") == 65532:65532 ]] || fail "/data is owned by $(stat -c %u:%g "$root/data"), not 65532:65532"

# Run it: port 0, the address read from the startup line.
log=$work/container.log
timeout 120 "${B[@]}" run --isolation chroot --env ADDR=127.0.0.1:0 --env SHUTDOWN_TIMEOUT=10s \
	"$ctr" -- /usr/local/bin/fastingest >"$log" 2>&1 &
runner=$!
addr=''
for _ in $(seq 200); do
	addr=$(sed -n 's/.*msg="fastingest listening" listen=\([^ ]*\).*/\1/p' "$log")
	[[ -n $addr ]] && break
	kill -0 "$runner" 2>/dev/null || fail "the container exited before it was listening"
	sleep 0.1
done
[[ -n $addr ]] || fail "no startup line after 20 s"
grep -q "version=$version" "$log" || fail "the startup line does not say version=$version"

body='{"Data":[{"id":"1","time":"2017-01-01T00:00:01Z","data":"abc"},{"id":"2","time":"2017-01-01T00:00:02Z","data":"def"}]}'
answer=$(curl -sS --max-time 10 -w ' %{http_code}' -H 'Content-Type: application/json' -d "$body" "http://$addr/")
[[ $answer == '{"accepted":2} 202' ]] || fail "POST / answered $answer; want {\"accepted\":2} 202"
echo "POST / in the container: $answer"

# SIGTERM to fastingest itself: buildah run does not forward signals (it
# kills its child). The process is the one in buildah's process tree that
# runs the binary as 65532.
pid=''
for _ in $(seq 50); do
	for p in $(pgrep -u 65532 -x fastingest || true); do
		a=$p
		while [[ $a -gt 1 && $a != "$runner" ]]; do a=$(ps -o ppid= -p "$a" | tr -d ' '); done
		[[ $a == "$runner" ]] && pid=$p
	done
	[[ -n $pid ]] && break
	sleep 0.1
done
[[ -n $pid ]] || fail "cannot find fastingest's process under buildah run ($runner)"
[[ $(ps -o user= -p "$pid" | tr -d ' ') == 65532 ]] || fail "fastingest runs as $(ps -o user= -p "$pid"), not 65532"
kill -TERM "$pid"
rc=0
wait "$runner" || rc=$?
runner=''
[[ $rc == 0 ]] || fail "the container exited $rc after SIGTERM; want 0"
grep -q 'msg="shutdown complete" accepted=2 completed=2 failed=0 not_completed=0' "$log" ||
	fail "no complete drain in the log"
echo "SIGTERM: drained, exit 0: $(tail -n 1 "$log" | sed 's/^.*msg=/msg=/')"

# The parcels are in /data, written as 65532. /data is a VOLUME, so
# buildah run mounted an anonymous volume there, made from the image's
# /data as docker and podman make one: it lives in the container's storage.
segment=$(find "$work/storage" -path '*/buildah-volumes/*' -name '*.ndjson' -size +0)
[[ -n $segment ]] || fail "no segment with data in /data"
[[ $(stat -c %u "$segment") == 65532 ]] || fail "the segment is owned by $(stat -c %u "$segment"), not 65532"
[[ $(wc -l <"$segment") == 2 ]] || fail "the segment has $(wc -l <"$segment") lines; want 2"
echo "ok: image $image built offline, runs as 65532, answers 202, stores in /data, drains on SIGTERM"
