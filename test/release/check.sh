#!/usr/bin/env bash
# check.sh: build the release artefacts twice and check them: the checksums
# verify, the two builds are the same bytes, each tarball holds the binary,
# README.md, LICENSE, docs/ and deploy/ under one directory, owned by 0,
# with the commit's time; the binaries are static, for their platform, and
# the amd64 one says its version and revision. Run by .ci/run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

version=v0.0.0-release-check
work=$(mktemp -d "${TMPDIR:-/tmp}/fastingest-release-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
dirty=()
[[ -z $(git status --porcelain) ]] || dirty=(--allow-dirty) # a developer's tree; CI's is clean
bash scripts/release.sh "${dirty[@]}" --out "$work/a" "$version" >"$work/release.out"
cat "$work/release.out"
summary=$(tail -n 1 "$work/release.out")
bash scripts/release.sh "${dirty[@]}" --out "$work/b" "$version" >/dev/null

(cd "$work/a" && sha256sum --check --strict SHA256SUMS) || fail "SHA256SUMS does not verify"
if [[ ${#dirty[@]} == 0 ]]; then
	cmp "$work/a/SHA256SUMS" "$work/b/SHA256SUMS" || fail "two builds of the same commit differ: not reproducible"
	echo "reproducible: two builds, the same SHA-256"
else
	echo "not checked for reproducibility: the work tree has changes, which may change between the builds"
fi

# The commit the release was built from (HEAD then: in a shared work tree
# another commit may have landed since).
revision=$(sed -n 's/.*(revision \([0-9a-f]*\),.*/\1/p' <<<"$summary")
[[ -n $revision ]] || fail "release.sh did not say which revision it built: $summary"
epoch=$(git log -1 --format=%ct "$revision")
for arch in amd64 arm64; do
	name=fastingest-$version-linux-$arch
	tarball=$work/a/$name.tar.gz
	[[ -f $tarball ]] || fail "no $name.tar.gz"
	grep -q "  $name.tar.gz\$" "$work/a/SHA256SUMS" || fail "SHA256SUMS does not list $name.tar.gz"
	listing=$(tar -tzvf "$tarball" --full-time --numeric-owner)
	for want in "$name/fastingest" "$name/README.md" "$name/LICENSE" "$name/docs/operations.md" \
		"$name/deploy/fastingest.service" "$name/deploy/prometheus/fastingest.rules.yml" \
		"$name/deploy/grafana/fastingest.json" "$name/examples/README.md"; do
		grep -q " $want\$" <<<"$listing" || fail "$name.tar.gz has no $want"
	done
	grep -qv " $name/" <<<"$listing" && fail "$name.tar.gz has entries outside $name/: $(grep -v " $name/" <<<"$listing")"
	awk '$2 != "0/0" { exit 1 }' <<<"$listing" || fail "$name.tar.gz has files not owned by 0/0"
	when=$(date -u -d "@$epoch" '+%Y-%m-%d %H:%M:%S')
	TZ=UTC tar -tzvf "$tarball" --full-time | awk -v w="$when" '$4" "$5 != w { exit 1 }' ||
		fail "$name.tar.gz has mtimes other than the commit's ($when UTC)"

	mkdir -p "$work/x/$arch"
	tar -xzf "$tarball" -C "$work/x/$arch"
	bin=$work/x/$arch/$name/fastingest
	# ELF e_machine: 0x3e x86-64, 0xb7 AArch64.
	machine=$(od -An -tx1 -j18 -N1 "$bin" | tr -d ' ')
	case $arch in
	amd64) [[ $machine == 3e ]] || fail "$name/fastingest is not an x86-64 binary (e_machine $machine)" ;;
	arm64) [[ $machine == b7 ]] || fail "$name/fastingest is not an AArch64 binary (e_machine $machine)" ;;
	esac
	settings=$(go version -m "$bin") # -ldflags is not recorded under -trimpath: -version checks the stamp
	for want in "CGO_ENABLED=0" "-trimpath=true" "vcs.revision=$revision" "GOARCH=$arch"; do
		grep -qF -- "$want" <<<"$settings" || fail "$name/fastingest was not built with $want: $settings"
	done
done

got=$("$work/x/amd64/fastingest-$version-linux-amd64/fastingest" -version)
[[ $got == "fastingest $version (revision $revision"* ]] ||
	fail "fastingest -version from the amd64 tarball said \"$got\"; want \"fastingest $version (revision $revision...\""
echo "fastingest -version from the amd64 tarball: $got"
echo "ok: release $version for linux/amd64 and linux/arm64, checksums verified"
