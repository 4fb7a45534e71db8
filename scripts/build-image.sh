#!/usr/bin/env bash
# build-image.sh: build fastingest's container image, from the Containerfile
# and a binary built here first, offline: the image is FROM scratch, so
# nothing is pulled.
#
# Usage: bash scripts/build-image.sh [-t TAG] [--version V] [--arch ARCH] [--context DIR]
#   -t TAG         image name (default: fastingest:VERSION)
#   --version V    version stamped into the binary and the image's label
#                  (default: git describe --tags --always --dirty)
#   --arch ARCH    GOARCH of the binary and the image (default: go env GOARCH)
#   --context DIR  only prepare the build context in DIR (the binary, the CA
#                  bundle, an empty data/ and the Containerfile), for another
#                  builder: docker build -f DIR/Containerfile DIR
# Environment: CA_BUNDLE, the CA certificates the image trusts for TLS to S3,
# NATS or Kafka (default /etc/ssl/certs/ca-certificates.crt, Debian's
# ca-certificates); BUILDAH_OPTS, global buildah options (e.g.
# "--storage-driver vfs"); BUD_OPTS, options of buildah bud (e.g.
# "--isolation chroot").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# usage prints the comment above and exits with $1.
usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit "$1"
}

tag='' version='' arch='' context=''
while [[ $# -gt 0 ]]; do
	case $1 in
	-t) tag=${2:?-t needs a tag}; shift 2 ;;
	--version) version=${2:?--version needs a version}; shift 2 ;;
	--arch) arch=${2:?--arch needs a GOARCH}; shift 2 ;;
	--context) context=${2:?--context needs a directory}; shift 2 ;;
	-h | --help) usage 0 ;;
	*) echo "build-image: unknown argument $1" >&2; usage 2 >&2 ;;
	esac
done
[[ -n $version ]] || version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
[[ -n $arch ]] || arch=$(go env GOARCH)
[[ -n $tag ]] || tag=fastingest:$version
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[[ -s $ca_bundle ]] || {
	echo "build-image: no CA bundle at $ca_bundle (Debian: apt-get install ca-certificates), or set CA_BUNDLE" >&2
	exit 1
}

keep_context=1
if [[ -z $context ]]; then
	command -v buildah >/dev/null || {
		echo "build-image: buildah is missing (Debian: apt-get install buildah); or use --context DIR with another builder" >&2
		exit 1
	}
	context=$(mktemp -d "${TMPDIR:-/tmp}/fastingest-image.XXXXXX")
	keep_context=0
	trap 'rm -rf "$context"' EXIT
fi
mkdir -p "$context/data"
# Static (no cgo: no libc in the image), reproducible (-trimpath), with the
# version and the VCS revision it was built from (fastingest -version,
# fastingest_build_info).
GOWORK=off CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=auto \
	-ldflags "-s -w -X main.version=$version" -o "$context/fastingest" .
cp Containerfile "$context/Containerfile"
cp "$ca_bundle" "$context/ca-certificates.crt"
chmod 0644 "$context/ca-certificates.crt"
if [[ $keep_context == 1 ]]; then
	echo "build-image: context ready in $context (linux/$arch, version $version)"
	exit 0
fi

read -r -a buildah_opts <<<"${BUILDAH_OPTS:-}"
read -r -a bud_opts <<<"${BUD_OPTS:-}"
buildah "${buildah_opts[@]}" bud "${bud_opts[@]}" --arch "$arch" --build-arg "VERSION=$version" \
	-f "$context/Containerfile" -t "$tag" "$context"
echo "build-image: built $tag (linux/$arch, version $version)"
