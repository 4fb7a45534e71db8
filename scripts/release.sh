#!/usr/bin/env bash
# release.sh: build fastingest's release artefacts for VERSION: a tarball
# for each platform (linux/amd64 and linux/arm64), each holding the binary
# (static, its version stamped, its VCS revision recorded), README.md,
# LICENSE, CHANGELOG.md when there is one, docs/, examples/ and deploy/ (the systemd
# unit, cloud-init, the Prometheus rules and the Grafana dashboard), and
# SHA256SUMS beside them.
#
# Reproducible: the same commit, VERSION and Go version give the same bytes
# (-trimpath, the files of the commit, the commit's time as every mtime,
# owner 0, sorted entries, gzip -n). test/release/check.sh checks it.
#
# Usage: bash scripts/release.sh [--out DIR] [--allow-dirty] VERSION
#   VERSION        vMAJOR.MINOR.PATCH, optionally with -PRERELEASE (v1.2.0, v1.3.0-rc.1)
#   --out DIR      where the artefacts go (default: dist/VERSION), emptied first
#   --allow-dirty  build from a work tree with changes (the binary then says
#                  "modified"; the other files are still the commit's)
# Environment: PLATFORMS, the GOOS/GOARCH pairs (default "linux/amd64 linux/arm64").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
umask 022 # the modes of the files in the tarballs

# usage prints the comment above and exits with $1.
usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit "$1"
}
die() {
	echo "release: $*" >&2
	exit 1
}

out='' allow_dirty=0 version=''
while [[ $# -gt 0 ]]; do
	case $1 in
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	--allow-dirty) allow_dirty=1; shift ;;
	-h | --help) usage 0 ;;
	-*) echo "release: unknown option $1" >&2; usage 2 >&2 ;;
	*) [[ -z $version ]] || { echo "release: one VERSION only" >&2; usage 2 >&2; }; version=$1; shift ;;
	esac
done
[[ -n $version ]] || { echo "release: VERSION missing" >&2; usage 2 >&2; }
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
	die "VERSION $version: want vMAJOR.MINOR.PATCH or vMAJOR.MINOR.PATCH-PRERELEASE (v1.2.0, v1.3.0-rc.1)"
git rev-parse --git-dir >/dev/null 2>&1 || die "not a git work tree: a release records the commit it was built from"
if [[ -n $(git status --porcelain) && $allow_dirty == 0 ]]; then
	die "the work tree has changes (git status): commit them, or --allow-dirty for a build that says \"modified\""
fi
platforms=${PLATFORMS:-linux/amd64 linux/arm64}
[[ -n $out ]] || out=dist/$version
# dist/ ignores itself, so that releases built here are never committed.
if [[ $out == dist/* && ! -e dist/.gitignore ]]; then
	mkdir -p dist
	echo '*' >dist/.gitignore
fi
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)

revision=$(git rev-parse HEAD)
epoch=$(git log -1 --format=%ct "$revision") # every file's mtime: the commit's time
files=(README.md LICENSE docs deploy examples)
git cat-file -e "$revision:CHANGELOG.md" 2>/dev/null && files+=(CHANGELOG.md)
for f in README.md LICENSE; do
	git cat-file -e "$revision:$f" 2>/dev/null || die "$f is not in the commit"
done

stage=$(mktemp -d "${TMPDIR:-/tmp}/fastingest-release.XXXXXX")
trap 'rm -rf "$stage"' EXIT
for platform in $platforms; do
	goos=${platform%/*} goarch=${platform#*/}
	name=fastingest-$version-$goos-$goarch
	mkdir "$stage/$name"
	# The commit's files, not the work tree's.
	git -c tar.umask=0022 archive --format=tar "$revision" -- "${files[@]}" | tar -x -C "$stage/$name"
	# Static (no cgo), reproducible (-trimpath), the version stamped
	# (fastingest -version, fastingest_build_info) and the VCS revision and
	# time recorded (-buildvcs).
	GOWORK=off CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build -trimpath -buildvcs=true \
		-ldflags "-s -w -X main.version=$version" -o "$stage/$name/fastingest" .
	# go build records the HEAD of the moment: the same commit as the rest.
	go version -m "$stage/$name/fastingest" | grep -q "vcs.revision=$revision\$" ||
		die "HEAD moved from $revision during the build (a commit landed): run again"
	tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner --format=gnu \
		-C "$stage" -cf - "$name" | gzip -9 -n >"$out/$name.tar.gz"
	echo "release: $out/$name.tar.gz"
done
(cd "$out" && sha256sum -- *.tar.gz >SHA256SUMS)
echo "release: $out/SHA256SUMS (revision $revision, $(go env GOVERSION))"
