#!/usr/bin/env bash
# validate.sh: check the deployment files without AWS.
#
#   deploy/cloud-init.yaml   placeholders as documented; rendered with sample
#                            values by scripts/deploy-ec2.sh --print-user-data
#                            (with a token, and with AUTH=none), then checked
#                            by `cloud-init schema --config-file` and parsed
#                            with PyYAML (the embedded files must come out byte
#                            for byte, runcmd in the right order)
#   deploy/fastingest.service `systemd-analyze verify`, with the credentials
#                            drop-in the deploy renders (see check_unit for how
#                            the missing binary is handled), required settings,
#                            TimeoutStopSec longer than DRAIN_DELAY + SHUTDOWN_TIMEOUT
#   deploy/fastingest-credentials.sh  shellcheck
#   deploy/sysctl.conf       syntax, one comment per setting, keys known here
#
# Each check prints PASS, FAIL or SKIP (with the reason: a tool missing or
# broken here, never a silent pass). Exit status: 1 if any check failed, else
# 0; with VALIDATE_STRICT=1 a skipped check counts as a failure (for CI, where
# every tool should be present).
#
# Usage: bash test/deploy/validate.sh [--help]
# Environment: VALIDATE_STRICT (0), NO_INSTALL (0: as root, install a missing
# cloud-init with apt-get; 1: never install). Debian's cloud-init package also
# enables its boot-time services: on a workstation rather than a CI container,
# prefer NO_INSTALL=1 (or touch /etc/cloud/cloud-init.disabled afterwards).
set -euo pipefail
export LC_ALL=C

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}
case ${1:-} in
-h | --help) usage; exit 0 ;;
"") ;;
*) usage >&2; echo "validate: unknown argument: $1" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TEMPLATE=$ROOT/deploy/cloud-init.yaml
UNIT=$ROOT/deploy/fastingest.service
SYSCTL=$ROOT/deploy/sysctl.conf
CREDS=$ROOT/deploy/fastingest-credentials.sh
STRICT=${VALIDATE_STRICT:-0}

PASSED=0
FAILED=0
SKIPPED=0
pass() { printf 'PASS: %s\n' "$*"; PASSED=$((PASSED + 1)); }
fail() { printf 'FAIL: %s\n' "$*"; FAILED=$((FAILED + 1)); }
skip() { printf 'SKIP: %s\n' "$*"; SKIPPED=$((SKIPPED + 1)); }
section() { printf '\n== %s\n' "$*"; }

for f in "$TEMPLATE" "$UNIT" "$SYSCTL" "$CREDS"; do
	[[ -f $f ]] || { echo "validate: missing $f" >&2; exit 1; }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastingest-validate.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --- the template's placeholders ---------------------------------------------

INLINE_TOKENS=(BINARY_S3_URI REGION PORT CREDENTIALS)
LINE_TOKENS=(SERVICE_UNIT SYSCTL_CONF ENV_FILE_CONTENT CREDENTIALS_SCRIPT CREDENTIALS_DROPIN)

section "placeholders in deploy/cloud-init.yaml"
mapfile -t found < <(grep -o '@@[A-Za-z0-9_]*@@' "$TEMPLATE" | sort -u)
want=$(printf '@@%s@@\n' "${INLINE_TOKENS[@]}" "${LINE_TOKENS[@]}" | sort -u)
have=$(printf '%s\n' "${found[@]}")
if [[ $have == "$want" ]]; then
	pass "exactly the placeholders $(echo "$want" | tr '\n' ' ')"
else
	fail "placeholders differ: want [$(echo "$want" | tr '\n' ' ')], have [$(echo "$have" | tr '\n' ' ')]"
fi
for t in "${LINE_TOKENS[@]}"; do
	n_line=$(grep -c "^      @@$t@@\$" "$TEMPLATE" || true)
	n_any=$(grep -c "@@$t@@" "$TEMPLATE" || true)
	if ((n_line == 1 && n_any == 1)); then
		pass "@@$t@@ is once, alone on its line, indented by 6 spaces"
	else
		fail "@@$t@@ must appear once, alone on a line indented by exactly 6 spaces (found $n_line such line(s), $n_any occurrence(s))"
	fi
done
if [[ $(head -n1 "$TEMPLATE") == "#cloud-config" ]]; then
	pass "first line is #cloud-config"
else
	fail "first line must be exactly #cloud-config, not '$(head -n1 "$TEMPLATE")'"
fi
# The embedded files must hold no placeholder, or the result would depend on
# the order in which the deploy script substitutes.
for f in "$UNIT" "$SYSCTL" "$CREDS"; do
	if grep -q '@@' "$f"; then
		fail "${f#"$ROOT"/} contains '@@', which the user-data substitution could mangle"
	else
		pass "${f#"$ROOT"/} holds no placeholder"
	fi
done

# --- rendering ----------------------------------------------------------------

# render OUT ENV_FILE: render the template into OUT with the sample values,
# through the deploy script itself (--print-user-data makes no AWS call), so
# that what is validated is exactly what a deploy would send.
SAMPLE_BUCKET=fastingest-artifacts-123456789012
SAMPLE_KEY=fastingest/v0.1.0/linux-amd64/fastingest
SAMPLE_URI=s3://$SAMPLE_BUCKET/$SAMPLE_KEY
SAMPLE_REGION=eu-west-1
SAMPLE_PORT=8080
render() {
	local auth=token
	if [[ $1 == *noauth* ]]; then auth=none; fi
	env -u AWS_ENDPOINT_URL -u NAME -u TOKEN_PARAM_NAME -u AUTH_TOKEN_PARAM -u LB \
		BUCKET="$SAMPLE_BUCKET" BINARY_KEY="$SAMPLE_KEY" AWS_REGION="$SAMPLE_REGION" \
		PORT="$SAMPLE_PORT" ENV_FILE="$2" CLOUD_INIT_TEMPLATE="$TEMPLATE" SERVICE_UNIT_FILE="$UNIT" \
		SYSCTL_FILE="$SYSCTL" CREDENTIALS_SCRIPT_FILE="$CREDS" AUTH="$auth" \
		INSTANCE_MEMORY_MIB=4096 INSTANCE_VCPUS=2 bash "$ROOT/scripts/deploy-ec2.sh" --print-user-data >"$1"
}

section "rendering with sample values"
printf 'MAX_WORKERS=6000\nMAX_QUEUE=10000\nSIM_LATENCY=5ms-55ms\nLOG_LEVEL=info\n' >"$WORK/env-full"
: >"$WORK/env-empty"
: >"$WORK/env-noauth"
RENDERED=()
for variant in full empty noauth; do
	out=$WORK/user-data-$variant.yaml
	if render "$out" "$WORK/env-$variant"; then
		if grep -n '@@' "$out" >"$WORK/left"; then
			fail "rendered ($variant env file): placeholders left: $(head -n3 "$WORK/left")"
		else
			pass "rendered ($variant env file) with no placeholder left: $(wc -c <"$out") bytes"
			RENDERED+=("$out")
		fi
	else
		fail "rendering ($variant env file) failed"
	fi
done

# --- YAML parse and structure (PyYAML) -------------------------------------------

section "YAML parse (PyYAML)"
PY=""
for candidate in python3 /usr/bin/python3; do
	if command -v "$candidate" >/dev/null && "$candidate" -c 'import yaml' 2>/dev/null; then
		PY=$candidate
		break
	fi
done
if [[ -z $PY ]]; then
	if command -v python3 >/dev/null; then
		skip "YAML parse: PyYAML is not importable by python3 ($(command -v python3)) nor /usr/bin/python3 (Debian: apt-get install python3-yaml); cloud-init schema below still parses the YAML"
	else
		skip "YAML parse: python3 is missing; cloud-init schema below still parses the YAML"
	fi
else
	if "$PY" - "$TEMPLATE" >"$WORK/py.out" 2>&1 <<'EOF'; then
import sys, yaml
yaml.safe_load(open(sys.argv[1]))
EOF
		pass "the template itself parses as YAML ($PY)"
	else
		fail "the template itself does not parse as YAML: $(tail -n 3 "$WORK/py.out")"
	fi
	for out in "${RENDERED[@]}"; do
		env_file=$WORK/env-${out##*user-data-}
		env_file=${env_file%.yaml}
		if "$PY" - "$out" "$UNIT" "$SYSCTL" "$env_file" "$SAMPLE_PORT" "$SAMPLE_REGION" "$SAMPLE_URI" "$CREDS" \
			"$WORK/dropin-${out##*user-data-}" >"$WORK/py.out" 2>&1 <<'EOF'; then
import sys, yaml
path, unit, sysctl, env, port, region, uri, creds, dropin_out = sys.argv[1:]
noauth = "noauth" in path
doc = yaml.safe_load(open(path))
problems = []
files = {f["path"]: f for f in doc.get("write_files", [])}
def check_file(p, want):
    if p not in files:
        problems.append(f"write_files has no {p}")
    elif files[p].get("content") != want:
        problems.append(f"{p}: content differs from its source ({files[p].get('content')!r:.200})")
check_file("/etc/systemd/system/fastingest.service", open(unit).read())
check_file("/etc/sysctl.d/90-fastingest.conf", open(sysctl).read())
check_file("/usr/local/sbin/fastingest-credentials", open(creds).read())
check_file("/etc/sysctl.d/91-fastingest-port.conf", f"net.ipv4.ip_local_reserved_ports = {port}\n")
# The env file: ADDR, the memory settings sized for the instance, then
# ENV_FILE's lines, last so that they win; no secret.
envc = files.get("/etc/fastingest/env", {}).get("content", "")
lines = envc.splitlines()
if not lines or lines[0] != f"ADDR=:{port}":
    problems.append(f"/etc/fastingest/env does not start with ADDR=:{port}: {envc!r:.200}")
for key in ("MAX_CONNS=", "MAX_QUEUE_BYTES=", "MAX_BODY_BYTES=", "GOMEMLIMIT="):
    if not any(l.startswith(key) for l in lines):
        problems.append(f"/etc/fastingest/env has no {key} line")
extra = open(env).read()
if extra and not envc.endswith("# ENV_FILE\n" + extra):
    problems.append(f"/etc/fastingest/env does not end with ENV_FILE's lines: {envc!r:.300}")
if "AUTH_TOKEN" in envc:
    problems.append("/etc/fastingest/env names AUTH_TOKEN: the token must come from the credentials drop-in")
# The drop-in hands the fetched token over (or, with AUTH=none, nothing).
dropin = files.get("/etc/systemd/system/fastingest.service.d/credentials.conf", {}).get("content")
if dropin is None:
    problems.append("write_files has no fastingest.service.d/credentials.conf")
else:
    open(dropin_out, "w").write(dropin)
    want_lines = ["LoadCredential=auth-token:/etc/fastingest/credentials/auth-token",
                  "Environment=AUTH_TOKEN_FILE=%d/auth-token"]
    have = [w for w in want_lines if w in dropin.splitlines()]
    if noauth and have:
        problems.append(f"AUTH=none, yet the drop-in hands a token over: {have}")
    if not noauth and have != want_lines:
        problems.append(f"the drop-in lacks {set(want_lines) - set(have)}")
for p, f in files.items():
    if not isinstance(f.get("permissions", ""), str):
        problems.append(f"{p}: permissions must be a quoted string, not {f['permissions']!r}")
runcmd = [c if isinstance(c, str) else " ".join(c) for c in doc.get("runcmd", [])]
fetch = f"/usr/local/sbin/fastingest-credentials {region}" + ("" if noauth else " auth-token=/fastingest/auth-token")
want = ["sysctl --system", f"aws s3 cp --region {region} {uri} /usr/local/bin/fastingest",
        "chmod 0755 /usr/local/bin/fastingest", fetch, "systemctl daemon-reload", "systemctl enable --now fastingest"]
pos = -1
for w in want:
    hits = [i for i, c in enumerate(runcmd) if w in c]
    if not hits:
        problems.append(f"runcmd has no command containing {w!r}")
    elif hits[0] < pos:
        problems.append(f"runcmd runs {w!r} too early")
    else:
        pos = hits[0]
if problems:
    print("; ".join(problems))
    sys.exit(1)
print(f"{len(files)} files, {len(runcmd)} runcmd entries")
EOF
			pass "$(basename "$out") parses; embedded files identical to their sources; runcmd in order ($(cat "$WORK/py.out"))"
		else
			fail "$(basename "$out"): $(tail -n 3 "$WORK/py.out")"
		fi
	done
fi

# --- cloud-init schema ------------------------------------------------------------

section "cloud-init schema"
if ! command -v cloud-init >/dev/null && ((EUID == 0)) && [[ ${NO_INSTALL:-0} != 1 ]] && command -v apt-get >/dev/null; then
	echo "installing cloud-init (apt-get install -y cloud-init)"
	timeout 600 apt-get install -y -qq cloud-init >"$WORK/apt.log" 2>&1 ||
		{ timeout 600 apt-get update -qq >>"$WORK/apt.log" 2>&1 && timeout 600 apt-get install -y -qq cloud-init >>"$WORK/apt.log" 2>&1; } ||
		echo "apt-get install cloud-init failed: $(tail -n 3 "$WORK/apt.log")"
fi
# schema_check FILE: run cloud-init schema; sets SCHEMA_RC and SCHEMA_OUT.
schema_check() {
	SCHEMA_RC=0
	SCHEMA_OUT=$(timeout 120 cloud-init schema --config-file "$1" 2>&1) || SCHEMA_RC=$?
}
# An environmental failure (a broken install, jsonschema missing) is a SKIP;
# a report of schema errors is a FAIL. Anything else unexpected is a FAIL.
schema_env_problem() {
	grep -qiE 'jsonschema|Traceback|ModuleNotFoundError|ImportError|No module named|command not found|Permission denied' <<<"$1"
}
if ! command -v cloud-init >/dev/null; then
	skip "cloud-init schema: cloud-init is not installed and could not be installed here (Debian: apt-get install cloud-init; needs root)"
elif ! help=$(timeout 60 cloud-init schema --help 2>&1) || ! grep -q -- '--config-file' <<<"$help"; then
	skip "cloud-init schema: 'cloud-init schema --help' fails or offers no --config-file here, so the installed cloud-init cannot validate (its output: $(tail -n 2 <<<"$help" | tr '\n' ' '))"
else
	echo "cloud-init: $(cloud-init --version 2>&1)"
	# First make sure the validator rejects something: cloud-init passes
	# unknown top-level keys, so a check that passes everything would look
	# the same as a real one. Unquoted octal permissions are a schema error.
	printf '#cloud-config\nwrite_files:\n  - path: /x\n    permissions: 0644\n    content: x\n' >"$WORK/bad.yaml"
	schema_check "$WORK/bad.yaml"
	validator_ok=1
	if ((SCHEMA_RC == 0)); then
		validator_ok=0
		fail "cloud-init schema accepted a config with a schema error, so it validates nothing here: $SCHEMA_OUT"
	elif schema_env_problem "$SCHEMA_OUT"; then
		validator_ok=0
		skip "cloud-init schema does not work here (environment): $SCHEMA_OUT"
	else
		pass "cloud-init schema rejects a known-bad config (self-test)"
	fi
	if ((validator_ok)); then
		for out in "${RENDERED[@]}"; do
			schema_check "$out"
			echo "\$ cloud-init schema --config-file $(basename "$out")"
			printf '%s\n' "$SCHEMA_OUT" | sed "s#$WORK/##g"
			if ((SCHEMA_RC == 0)) && grep -q '^Valid cloud-config' <<<"$SCHEMA_OUT"; then
				pass "cloud-init schema: $(basename "$out") is valid cloud-config"
			elif ((SCHEMA_RC != 0)) && schema_env_problem "$SCHEMA_OUT"; then
				skip "cloud-init schema could not run on $(basename "$out") (environment, see above)"
			else
				fail "cloud-init schema: $(basename "$out") (exit status $SCHEMA_RC, see above)"
			fi
		done
	fi
fi

# --- the systemd unit --------------------------------------------------------------

section "systemd unit deploy/fastingest.service"
# Settings the deployment relies on (issue 4): checked literally, so that a
# refactoring of the unit cannot drop one silently.
required=(
	"ExecStart=/usr/local/bin/fastingest" "DynamicUser=yes" "ProtectSystem=strict" "ProtectHome=yes"
	"PrivateTmp=yes" "NoNewPrivileges=yes" "PrivateDevices=yes" "ProtectKernelTunables=yes"
	"ProtectKernelModules=yes" "ProtectKernelLogs=yes" "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX"
	"CapabilityBoundingSet=" "LimitNOFILE=1048576" "Restart=on-failure" "KillSignal=SIGTERM"
	"Environment=ADDR=:8080" "EnvironmentFile=-/etc/fastingest/env" "StateDirectory=fastingest"
	"Environment=DATA_DIR=/var/lib/fastingest" "After=network-online.target" "Wants=network-online.target"
	"WantedBy=multi-user.target" "RestartPreventExitStatus=2"
)
missing=()
for r in "${required[@]}"; do
	grep -qxF "$r" "$UNIT" || missing+=("$r")
done
if ((${#missing[@]} == 0)); then
	pass "all ${#required[@]} required settings present"
else
	fail "settings missing (as whole lines): ${missing[*]}"
fi
if grep -q '^RestartSec=' "$UNIT"; then pass "RestartSec set"; else fail "RestartSec missing"; fi
# A failure (exit status 2 above all) is told on the console, as root.
if grep -q '^ExecStopPost=+/bin/sh -c .*SERVICE_RESULT.*/dev/console' "$UNIT"; then
	pass "ExecStopPost reports a failure on the console"
else
	fail "ExecStopPost=+/bin/sh -c '... \$\$SERVICE_RESULT ... >/dev/console' missing: a failure would not show in the console output"
fi

# seconds VALUE: a systemd/Go duration made of s, m and h parts, in seconds.
seconds() {
	local v=$1 total=0
	[[ $v =~ ^([0-9]+[hms]?)+$ ]] || return 1
	while [[ $v =~ ^([0-9]+)([hms]?)(.*)$ ]]; do
		case ${BASH_REMATCH[2]} in
		h) total=$((total + BASH_REMATCH[1] * 3600)) ;;
		m) total=$((total + BASH_REMATCH[1] * 60)) ;;
		*) total=$((total + BASH_REMATCH[1])) ;;
		esac
		v=${BASH_REMATCH[3]}
	done
	echo "$total"
}
# SHUTDOWN_TIMEOUT's default, from the README's configuration table (the
# backquotes are Markdown's, not the shell's).
# shellcheck disable=SC2016
drain=$(sed -nE 's/^\| `SHUTDOWN_TIMEOUT` \|.*\| `([0-9]+[hms])` \|.*/\1/p' "$ROOT/README.md" | head -n1)
if [[ -z $drain ]]; then
	drain=30s
	echo "note: SHUTDOWN_TIMEOUT's default not found in README.md; assuming $drain"
fi
# The unit's DRAIN_DELAY comes first: serving on, not ready, before the drain.
delay=$(sed -n 's/^Environment=DRAIN_DELAY=//p' "$UNIT" | tail -n1)
delay=${delay:-0s}
stop=$(sed -n 's/^TimeoutStopSec=//p' "$UNIT" | tail -n1)
if [[ -z $stop ]]; then
	fail "TimeoutStopSec is not set (systemd's 90 s default is not tied to SHUTDOWN_TIMEOUT)"
elif ! stop_s=$(seconds "$stop"); then
	fail "TimeoutStopSec=$stop: cannot read it as a duration"
elif ! delay_s=$(seconds "$delay"); then
	fail "DRAIN_DELAY=$delay in the unit: cannot read it as a duration"
elif ((stop_s > delay_s + $(seconds "$drain"))); then
	pass "TimeoutStopSec=$stop is longer than the unit's DRAIN_DELAY $delay plus SHUTDOWN_TIMEOUT's default $drain"
else
	fail "TimeoutStopSec=$stop must be longer than DRAIN_DELAY $delay plus SHUTDOWN_TIMEOUT's default $drain, or SIGKILL cuts the drain short"
fi

# systemd-analyze verify checks that ExecStart names an executable file, and
# /usr/local/bin/fastingest does not exist on a build machine. So the unit is
# verified as a copy that differs from it in that one line: ExecStart points at
# a stub executable in a temporary directory (a two-line shell script: verify
# never runs it, it only checks that it exists and is executable, so building
# fastingest would add nothing). Every other line is checked as shipped, and
# any output at all counts as a failure: verify reports unknown or misspelled
# directives as warnings with exit status 0.
check_unit() {
	local dir=$WORK/unit stub out rc=0
	mkdir -p "$dir/bin"
	stub=$dir/bin/fastingest
	printf '#!/bin/sh\nexit 0\n' >"$stub"
	chmod 0755 "$stub"
	sed "s#^ExecStart=/usr/local/bin/fastingest\$#ExecStart=$stub#" "$UNIT" >"$dir/fastingest.service"
	if [[ $(diff "$UNIT" "$dir/fastingest.service" | grep -c '^[<>]') != 2 ]]; then
		fail "systemd-analyze verify: could not point ExecStart of the copy at the stub (expected exactly one ExecStart=/usr/local/bin/fastingest line)"
		return
	fi
	# With the credentials drop-in of the rendered user-data (a token), which
	# verify reads from fastingest.service.d/ beside the unit.
	local with=""
	if [[ -s $WORK/dropin-full.yaml ]]; then
		mkdir -p "$dir/fastingest.service.d"
		cp "$WORK/dropin-full.yaml" "$dir/fastingest.service.d/credentials.conf"
		with=", with the deploy's credentials drop-in"
	fi
	out=$(timeout 60 systemd-analyze verify "$dir/fastingest.service" 2>&1) || rc=$?
	echo "\$ systemd-analyze verify fastingest.service  (copy, ExecStart=<stub>$with)"
	if [[ -n $out ]]; then
		printf '%s\n' "$out" | sed "s#$dir/##g"
	else
		echo "(no output, exit status $rc)"
	fi
	if ((rc == 0)) && [[ -z $out ]]; then
		pass "systemd-analyze verify accepts the unit$with"
		if [[ -z $with ]]; then fail "the credentials drop-in was not rendered (see the YAML checks above), so it was not verified"; fi
	else
		fail "systemd-analyze verify (exit status $rc, see above)"
	fi
	# For information: systemd's own exposure score of the sandboxing.
	if out=$(timeout 60 systemd-analyze security --offline=yes "$dir/fastingest.service" 2>/dev/null); then
		echo "note: $(grep -o 'Overall exposure level.*' <<<"$out" | head -n1)"
	fi
}
if ! command -v systemd-analyze >/dev/null; then
	skip "systemd-analyze verify: systemd-analyze is missing (Debian: package systemd)"
else
	check_unit
fi

# --- the credentials script -------------------------------------------------------

section "deploy/fastingest-credentials.sh"
if ! command -v shellcheck >/dev/null; then
	skip "shellcheck is missing (Debian: apt-get install shellcheck)"
elif out=$(shellcheck -x "$CREDS" 2>&1); then
	pass "shellcheck finds nothing"
else
	printf '%s\n' "$out"
	fail "shellcheck (see above)"
fi
if [[ $(head -n1 "$CREDS") == "#!/bin/bash" ]]; then
	pass "runs with bash (#!/bin/bash, present on Amazon Linux 2023)"
else
	fail "first line must be #!/bin/bash"
fi

# --- sysctl.conf -----------------------------------------------------------------------

section "sysctl settings deploy/sysctl.conf"
bad=()
uncommented=()
unknown=()
keys=()
prev=""
while IFS= read -r line || [[ -n $line ]]; do
	if [[ $line =~ ^[[:space:]]*(#|$) ]]; then
		prev=$line
		continue
	fi
	if [[ $line =~ ^([a-z0-9_.]+)\ =\ ([^[:space:]].*)$ ]]; then
		key=${BASH_REMATCH[1]}
		keys+=("$key")
		[[ $prev =~ ^#\ [^[:space:]] ]] || uncommented+=("$key")
		[[ -e /proc/sys/${key//.//} ]] || unknown+=("$key")
	else
		bad+=("$line")
	fi
	prev=$line
done <"$SYSCTL"
if ((${#bad[@]} == 0)); then
	pass "${#keys[@]} settings, all 'key = value'"
else
	fail "lines that are not 'key = value': ${bad[*]}"
fi
if ((${#uncommented[@]} == 0)); then
	pass "every setting has a comment line above it"
else
	fail "settings without a comment line above: ${uncommented[*]}"
fi
for k in net.core.somaxconn net.ipv4.tcp_max_syn_backlog; do
	if printf '%s\n' "${keys[@]}" | grep -qxF "$k"; then pass "$k set"; else fail "$k not set"; fi
done
if ((${#unknown[@]} == 0)); then
	pass "every key exists in this kernel's /proc/sys"
elif [[ ! -d /proc/sys/net/ipv4 ]]; then
	skip "sysctl keys: /proc/sys/net/ipv4 is not visible here, cannot check ${unknown[*]}"
else
	fail "keys unknown to this kernel (misspelled?): ${unknown[*]}"
fi

# --- summary ------------------------------------------------------------------------

printf '\n%d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED" "$SKIPPED"
if ((FAILED > 0)); then
	exit 1
fi
if ((SKIPPED > 0)); then
	if [[ $STRICT == 1 ]]; then
		echo "VALIDATE_STRICT=1: skipped checks count as failures"
		exit 1
	fi
	echo "note: $SKIPPED check(s) skipped (see SKIP lines): this is not a full validation"
fi
exit 0
