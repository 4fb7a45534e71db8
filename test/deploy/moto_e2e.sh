#!/usr/bin/env bash
# shellcheck disable=SC2016 # JMESPath literals (`,`) and $Latest are meant literally
# moto_e2e.sh: run scripts/deploy-ec2.sh and scripts/teardown-ec2.sh against
# moto's AWS emulator, and check with `aws ... describe-*` what they create and
# remove. Nothing reaches AWS: moto listens on 127.0.0.1, the credentials are
# moto's dummies in files of a temporary directory (your profile and
# credentials are not read), and an `aws` shim first on the scripts' PATH
# refuses any call without `--endpoint-url` pointing at this moto.
#
#   1. start `python3 -m moto.server` on a free port of 127.0.0.1
#   2. prepare what an account has and moto may lack: a default VPC with
#      subnets in two or more zones, the Amazon Linux 2023 SSM parameter (when
#      moto does not serve it, AMI_ID is taken from `ec2 describe-images`)
#   3. make a self-signed certificate with openssl and import it into moto's
#      ACM
#   4. deploy with the defaults (ALB, 4 x c6i.large, MIN 4, MAX 12, a token)
#      and that certificate, building the binary with Go when it is
#      installed; check the token's SSM parameter (a SecureString, in no
#      user-data, call or output), the IAM role (that parameter's ARN only),
#      the HTTPS :443 listener (fixed 404, one rule: POST /) and the HTTP :80
#      redirect, the security groups, the Auto Scaling group (ELB health
#      checks), the launch template (IMDSv2, gzip'd cloud-config user-data,
#      memory settings whose worst case, by the built binary's -h, fits the
#      instance), target group, scaling policies, latency alarm and S3 object;
#      with S3_BUCKET (shipping, issue 13): the role's statement names exactly
#      s3:PutObject and s3:AbortMultipartUpload on that bucket's prefix, and the
#      unit's environment carries S3_BUCKET, S3_PREFIX and AWS_REGION
#   5. tear down (with --delete-bucket) and check that everything is gone but
#      the certificate; tear down again and check that it succeeds and skips
#      everything
#
# Each check prints PASS, FAIL or XFAIL: a limitation of the emulator, when
# moto logged "NotImplementedError: The X action has not been implemented" for
# the call (moto's server answers those with a bare HTTP 500, so its log is
# where the action is named); a resource that a deploy stopped by such a
# limitation never created is XFAIL too. Without the AWS CLI
# or moto the test prints SKIP with the reason and exits 0 (1 with
# MOTO_E2E_STRICT=1, for CI where both should be installed). Exit status: 1 if
# any check failed, else 0. Takes two to four minutes (each AWS CLI call
# starts a Python process); bounded by MOTO_E2E_BUDGET seconds (900).
#
# Usage: bash test/deploy/moto_e2e.sh [--help]
# Environment: MOTO_E2E_PYTHON (python3: the interpreter that has moto),
# MOTO_E2E_STRICT (0), MOTO_E2E_VERBOSE (0: 1 prints the deploy's and the
# teardowns' output even when they succeed), MOTO_E2E_BUDGET (900).
set -uo pipefail
export LC_ALL=C

usage() {
	sed -n '3,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}
case ${1:-} in
-h | --help) usage; exit 0 ;;
"") ;;
*) usage >&2; echo "moto_e2e: unknown argument: $1" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PYTHON=${MOTO_E2E_PYTHON:-python3}
STRICT=${MOTO_E2E_STRICT:-0}
VERBOSE=${MOTO_E2E_VERBOSE:-0}
BUDGET=${MOTO_E2E_BUDGET:-900} # seconds for the whole test: every phase and AWS call is bounded by it

skip_all() {
	printf 'SKIP: %s\n' "$*"
	if [[ $STRICT == 1 ]]; then
		echo "moto e2e: skipped, and MOTO_E2E_STRICT=1 counts that as a failure"
		exit 1
	fi
	exit 0
}

# ---------------------------------------------------------------------------
# Prerequisites: skip, loudly, without them

if ! command -v aws >/dev/null 2>&1; then
	skip_all "the AWS CLI is not installed (no aws on PATH): pip install awscli, or install AWS CLI v2"
fi
if ! command -v "$PYTHON" >/dev/null 2>&1; then
	skip_all "moto not installed ($PYTHON not found, so python3 -m moto.server is unavailable)"
fi
if ! MOTO_VERSION=$("$PYTHON" -c 'import moto, moto.server; print(moto.__version__)' 2>/dev/null); then
	skip_all "moto not installed ($PYTHON -m moto.server unavailable): pip install 'moto[server]'"
fi
# The real interpreter, not a pyenv shim: its PID is the server's.
PY=$("$PYTHON" -c 'import sys; print(sys.executable)')
REAL_AWS=$(command -v aws)
if command -v timeout >/dev/null 2>&1; then HAVE_TIMEOUT=1; else HAVE_TIMEOUT=0; fi

# left CAP: seconds the next phase may take: CAP, or what is left of the
# budget when that is less (0 when it is spent).
left() {
	local rest=$((BUDGET - SECONDS))
	if ((rest < 0)); then rest=0; fi
	if ((rest < $1)); then echo "$rest"; else echo "$1"; fi
}

# bounded SECONDS CMD...: CMD, killed after SECONDS (when timeout(1) exists).
bounded() {
	local secs=$1
	shift
	if [[ $HAVE_TIMEOUT == 1 ]]; then timeout "$secs" "$@"; else "$@"; fi
}

# ---------------------------------------------------------------------------
# Results

PASSED=0
FAILED=0
XFAILED=0
pass() { printf 'PASS: %s\n' "$*"; PASSED=$((PASSED + 1)); }
fail() { printf 'FAIL: %s\n' "$*"; FAILED=$((FAILED + 1)); }
xfail() { printf 'XFAIL: %s\n' "$*"; XFAILED=$((XFAILED + 1)); }
section() { printf '\n== %s\n' "$*"; }

# show FILE: a log, indented, after a failure.
show() { sed 's/^/    | /' "$1"; }

# expect WHAT WANT HAVE: PASS if HAVE is WANT.
expect() {
	if [[ $3 == "$2" ]]; then pass "$1"; else fail "$1: want \"$2\", have \"$3\""; fi
}

# expect_num WHAT WANT HAVE: PASS if HAVE is the number WANT (250000 = 250000.0).
expect_num() {
	if [[ $3 =~ ^-?[0-9]+(\.[0-9]+)?$ ]] && awk -v a="$2" -v b="$3" 'BEGIN { exit !(a + 0 == b + 0) }'; then
		pass "$1"
	else
		fail "$1: want $2, have \"$3\""
	fi
}

# expect_cond WHAT DETAIL TEST...: PASS if the test command succeeds.
expect_cond() {
	local what=$1 detail=$2
	shift 2
	if "$@"; then pass "$what"; else fail "$what: $detail"; fi
}

# not_in TEXT FILE: true when FILE does not hold TEXT.
# shellcheck disable=SC2317 # called through expect_cond
not_in() { ! grep -qF -- "$1" "$2"; }

# memory_check USER_DATA: the memory settings the deploy wrote into
# /etc/fastingest/env give, by the built binary's own -h (memory.go's
# formula), a worst case within the 3584 MiB a c6i.large (4096 MiB, 2 vCPUs)
# leaves beside the OS, and the figure the deploy printed.
memory_check() {
	if [[ $BUILT != 1 ]]; then
		echo "note: no binary was built: the memory bound is not checked against fastingest -h"
		return
	fi
	local -a envs
	mapfile -t envs < <("$PY" -c '
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
env = [f for f in d["write_files"] if f["path"] == "/etc/fastingest/env"][0]["content"]
for line in env.splitlines():
    if line and not line.startswith("#") and not line.startswith("ADDR="):
        print(line)
' "$1")
	local bound script
	bound=$(env -i GOMAXPROCS=2 "${envs[@]}" "$BINARY_FILE" -h 2>&1 | sed -n 's/^ *= \([0-9]*\)MiB for the settings given\.$/\1/p')
	script=$(sed -n "s/.*fastingest's worst case \([0-9]*\) MiB of \([0-9]*\) MiB.*/\1 \2/p" "$TMP/deploy.log" | head -n 1)
	expect_cond "fastingest -h with the deployed settings (${envs[*]}): worst case ${bound:-?} MiB within the 3584 MiB a c6i.large leaves the service" \
		"fastingest -h says ${bound:-nothing}" test -n "$bound" -a "${bound:-0}" -le 3584
	expect "the deploy's own figure of the worst case is fastingest's (its copy of memory.go's formula is current)" \
		"$bound 3584" "$script"
}

# ---------------------------------------------------------------------------
# An isolated AWS environment

TMP=$(mktemp -d "${TMPDIR:-/tmp}/fastingest-moto-e2e.XXXXXX")
MOTO_PID=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [[ -n $MOTO_PID ]]; then
		kill "$MOTO_PID" 2>/dev/null
		wait "$MOTO_PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

MOTO_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
REGION=us-east-1

# Settings of the scripts that the caller's environment must not change.
unset NAME BUCKET BINARY_KEY VPC_ID SUBNET_IDS LB_SG_NAME INSTANCE_SG_NAME TG_NAME LB_NAME \
	ROLE_NAME PROFILE_NAME LT_NAME ASG_NAME TT_POLICY_NAME STEP_POLICY_NAME ALARM_NAME \
	AMI_ID BINARY ARCH LB INSTANCE_TYPE DESIRED MIN_SIZE MAX_SIZE PORT TARGET_REQUESTS_PER_TARGET \
	LATENCY_P99_SECONDS CPU_TARGET CLIENT_CIDR ENV_FILE DEREGISTRATION_DELAY \
	HEALTH_CHECK_GRACE_PERIOD INSTANCE_WARMUP CLOUD_INIT_TEMPLATE SERVICE_UNIT_FILE SYSCTL_FILE \
	DRY_RUN YES WAIT_TIMEOUT POLL_INTERVAL DELETE_BUCKET AUTH AUTH_TOKEN_PARAM TOKEN_PARAM_NAME \
	CERTIFICATE_ARN TLS_POLICY ALLOWED_CIDRS METRICS_CIDRS HEALTH_CHECK_TYPE INSTANCE_MEMORY_MIB \
	INSTANCE_VCPUS MEMORY_RESERVE_MIB CREDENTIALS_SCRIPT_FILE
# Anything that could lead the CLI to a real account.
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_ROLE_ARN \
	AWS_ROLE_SESSION_NAME AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \
	AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN
printf '[default]\nregion = %s\noutput = json\n' "$REGION" >"$TMP/config"
printf '[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n' >"$TMP/credentials"
export AWS_CONFIG_FILE=$TMP/config AWS_SHARED_CREDENTIALS_FILE=$TMP/credentials
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export AWS_DEFAULT_REGION=$REGION AWS_REGION=$REGION
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""

# The scripts get an `aws` first on their PATH that runs only calls carrying
# --endpoint-url of this moto (the issue's rule: the wrapper passes it to
# every call), and records each call (endpoint ok 1/0, service, operation).
mkdir -p "$TMP/bin"
CALLS=$TMP/calls.log
: >"$CALLS"
{
	echo '#!/usr/bin/env bash'
	printf 'real=%q want=%q log=%q args=%q\n' "$REAL_AWS" "$AWS_ENDPOINT_URL" "$CALLS" "$TMP/args.log"
	cat <<'EOF'
ok=0 prev=""
for a in "$@"; do
	if [[ $prev == --endpoint-url && $a == "$want" ]]; then ok=1; fi
	prev=$a
done
printf '%s %s %s\n' "$ok" "${1:-}" "${2:-}" >>"$log"
printf '%s\n' "$*" >>"$args"
if [[ $ok != 1 ]]; then
	echo "moto_e2e: refused an aws call without --endpoint-url $want: aws $*" >&2
	exit 99
fi
exec "$real" "$@"
EOF
} >"$TMP/bin/aws"
chmod +x "$TMP/bin/aws"

# moto_mark: remember where moto's log ends, for moto_lacks.
MOTO_MARK=0
moto_mark() { MOTO_MARK=$(wc -l <"$TMP/moto.log"); }

# moto_lacks: true when moto logged, since moto_mark, that an action is not
# implemented; MOTO_LACKS holds those messages.
moto_lacks() {
	MOTO_LACKS=$(tail -n +"$((MOTO_MARK + 1))" "$TMP/moto.log" |
		grep -o 'NotImplementedError: The [A-Za-z0-9_]* action has not been implemented' |
		sort -u | tr '\n' ';')
	MOTO_LACKS=${MOTO_LACKS%;}
	[[ -n $MOTO_LACKS ]]
}

# Set when the deploy (or teardown) stopped at a moto limitation: what it
# did not get to do is then XFAIL rather than FAIL.
DEPLOY_LIMIT=""
TEARDOWN_LIMIT=""

# q ARGS...: one AWS call of the test itself, to moto, text output, no retries
# (moto is local); stdout in Q_OUT, stderr in Q_ERR, the CLI's status returned.
q() {
	local status=0 secs
	secs=$(left 20)
	if ((secs < 1)); then
		Q_OUT="" Q_ERR="not run: the test's time budget (${BUDGET}s) is spent"
		return 124
	fi
	moto_mark
	Q_OUT=$(bounded "$secs" env AWS_MAX_ATTEMPTS=1 "$REAL_AWS" "$@" --endpoint-url "$AWS_ENDPOINT_URL" --region "$REGION" \
		--output text 2>"$TMP/q.err") || status=$?
	Q_ERR=$(tr -s '\n' ' ' <"$TMP/q.err")
	Q_ERR=${Q_ERR# }
	Q_ERR=${Q_ERR% }
	if [[ $status == 124 && -z $Q_ERR ]]; then Q_ERR="no answer within ${secs}s"; fi
	return "$status"
}

# not_found: the last call failed because what it asked for does not exist.
not_found() { [[ $Q_ERR =~ NotFound|NoSuchEntity|NoSuchBucket|does\ not\ exist|\(404\)|not\ found ]]; }

# err_code: the error code of the last call ("An error occurred (CODE) ..."),
# else its whole message.
err_code() {
	if [[ $Q_ERR =~ ^An\ error\ occurred\ \(([^\)]*)\) ]]; then
		printf '%s' "${BASH_REMATCH[1]}"
	else
		printf '%s' "$Q_ERR"
	fi
}

# missing WHAT DETAIL: report a resource the deploy should have created.
missing() {
	if [[ -n $DEPLOY_LIMIT ]]; then
		xfail "$1: not created ($2): $DEPLOY_LIMIT"
	else
		fail "$1: not found ($2)"
	fi
}

# call_failed WHAT: report a failed q call (XFAIL when moto lacks the API).
call_failed() {
	if moto_lacks; then
		xfail "$1: moto $MOTO_VERSION does not implement the call: moto logged \"$MOTO_LACKS\"; the CLI said: ${Q_ERR:0:200}"
	elif not_found; then
		missing "$1" "$(err_code)"
	else
		fail "$1: the describe call failed: ${Q_ERR:-no error message}"
	fi
}

# present WHAT ARGS...: q ARGS; true when it answered something (not empty,
# not None); otherwise reports the check as failed.
present() {
	local what=$1
	shift
	if ! q "$@"; then
		call_failed "$what"
		return 1
	fi
	if [[ -z $Q_OUT || $Q_OUT == None || $Q_OUT == None$'\t'* ]]; then
		missing "$what" "empty answer"
		return 1
	fi
	return 0
}

# gone WHAT ARGS...: PASS when q ARGS answers nothing, 0, or a not-found
# error. Lookups whose answer is a count must ask for length(...).
gone() {
	local what=$1
	shift
	if q "$@"; then
		if [[ -z $Q_OUT || $Q_OUT == None || $Q_OUT == 0 ]]; then
			pass "$what: gone"
		else
			local left_over
			left_over=$(printf '%s' "$Q_OUT" | tr '\t\n' '  ')
			if [[ -n $TEARDOWN_LIMIT ]]; then
				xfail "$what: still there ($left_over): $TEARDOWN_LIMIT"
			else
				fail "$what: still there: $left_over"
			fi
		fi
	elif not_found; then
		pass "$what: gone ($(err_code))"
	else
		call_failed "$what"
	fi
}

# over_budget PHASE CAP: true (and a FAIL) when less than 10 s of the budget
# is left; else PHASE_SECS is the time PHASE may take (at most CAP).
over_budget() {
	PHASE_SECS=$(left "$2")
	if ((PHASE_SECS < 10)); then
		fail "$1: not run, the test's time budget (${BUDGET}s) is spent"
		return 0
	fi
	return 1
}

# run_script LOG SECONDS CMD...: run one of the scripts under test against
# moto, with the aws shim first on PATH; its status is returned (124: killed
# after SECONDS).
run_script() {
	local log=$1 secs=$2 status=0
	shift 2
	PATH="$TMP/bin:$PATH" bounded "$secs" "$@" >"$log" 2>&1 </dev/null || status=$?
	if [[ $VERBOSE == 1 ]]; then show "$log"; fi
	return "$status"
}

# ---------------------------------------------------------------------------
section "moto $MOTO_VERSION on 127.0.0.1:$MOTO_PORT ($("$REAL_AWS" --version 2>&1 | head -n 1))"

PYTHONUNBUFFERED=1 "$PY" -m moto.server -H 127.0.0.1 -p "$MOTO_PORT" >"$TMP/moto.log" 2>&1 &
MOTO_PID=$!
# Ready once it answers HTTP at all (any status).
PROBE='import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass'
ready=0
deadline=$((SECONDS + 20))
while ((SECONDS < deadline)) && kill -0 "$MOTO_PID" 2>/dev/null; do
	if "$PY" -c "$PROBE" "$AWS_ENDPOINT_URL/moto-api/" >/dev/null 2>&1; then
		ready=1
		break
	fi
	sleep 0.2
done
if [[ $ready != 1 ]]; then
	fail "moto server answers on $AWS_ENDPOINT_URL (waited 20 s); its output:"
	show "$TMP/moto.log"
	exit 1
fi
pass "moto server answers on $AWS_ENDPOINT_URL"

# ---------------------------------------------------------------------------
section "what a real account has (prepared where moto lacks it)"

ACCOUNT=""
if present "sts get-caller-identity answers moto's account" sts get-caller-identity --query Account; then
	ACCOUNT=$Q_OUT
	pass "sts get-caller-identity answers moto's account ($ACCOUNT)"
fi
BUCKET_WANT="fastingest-artifacts-$ACCOUNT-$REGION"
# Where the deploy lets the instances ship segments (the bucket need not exist
# for the deploy, which grants and passes on, never writes).
SHIP_BUCKET="fastingest-e2e-parcels-$ACCOUNT" SHIP_PREFIX=ingest/e2e/

VPC=""
if q ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].VpcId' && [[ $Q_OUT == vpc-* ]]; then
	VPC=$Q_OUT
	pass "moto has a default VPC ($VPC)"
elif q ec2 create-default-vpc --query Vpc.VpcId && [[ $Q_OUT == vpc-* ]]; then
	VPC=$Q_OUT
	pass "default VPC created with ec2 create-default-vpc ($VPC)"
else
	fail "no default VPC, and ec2 create-default-vpc failed: ${Q_ERR:-answered \"$Q_OUT\"}"
fi
VPC_CIDR=""
if [[ -n $VPC ]] && q ec2 describe-vpcs --vpc-ids "$VPC" --query 'Vpcs[0].CidrBlock'; then
	VPC_CIDR=$Q_OUT # the default METRICS_CIDRS
fi
if [[ -n $VPC ]] && q ec2 describe-subnets --filters "Name=vpc-id,Values=$VPC" Name=default-for-az,Values=true \
	--query 'Subnets[].AvailabilityZone'; then
	zones=$(printf '%s' "$Q_OUT" | tr '\t' '\n' | sort -u | grep -c .)
	expect_cond "the default VPC has default subnets in 2 or more zones ($zones)" \
		"deploy-ec2.sh needs two zones; moto gave: $Q_OUT" test "$zones" -ge 2
else
	fail "default subnets of the default VPC: ${Q_ERR:-none}"
fi

AMI_PARAM=/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64
AMI_ENV=()
AMI_WANT=""
if q ssm get-parameter --name "$AMI_PARAM" --query Parameter.Value && [[ $Q_OUT == ami-* ]]; then
	AMI_WANT=$Q_OUT
	pass "moto serves the SSM parameter $AMI_PARAM ($AMI_WANT): the deploy looks it up"
else
	ssm_err=${Q_ERR:-answered \"$Q_OUT\"}
	if q ec2 describe-images --owners amazon --filters Name=architecture,Values=x86_64 \
		--query 'Images[0].ImageId' && [[ $Q_OUT == ami-* ]]; then
		AMI_WANT=$Q_OUT
		AMI_ENV=("AMI_ID=$AMI_WANT")
		pass "moto does not serve $AMI_PARAM ($ssm_err): AMI_ID=$AMI_WANT from ec2 describe-images"
	else
		fail "no AMI: ssm get-parameter: $ssm_err; ec2 describe-images: ${Q_ERR:-answered \"$Q_OUT\"}"
	fi
fi

CERT_ARN=""
if ! command -v openssl >/dev/null 2>&1 && ((EUID == 0)) && command -v apt-get >/dev/null 2>&1; then
	echo "installing openssl (apt-get install -y openssl)"
	bounded "$(left 300)" apt-get install -y -qq openssl >"$TMP/apt.log" 2>&1 ||
		{ bounded "$(left 300)" apt-get update -qq >>"$TMP/apt.log" 2>&1 &&
			bounded "$(left 300)" apt-get install -y -qq openssl >>"$TMP/apt.log" 2>&1; } ||
		echo "apt-get install openssl failed: $(tail -n 3 "$TMP/apt.log")"
fi
if ! command -v openssl >/dev/null 2>&1; then
	fail "openssl is missing: no self-signed certificate for ACM (Debian: apt-get install openssl)"
elif ! openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=ingest.example.test \
	-keyout "$TMP/tls.key" -out "$TMP/tls.crt" >"$TMP/openssl.log" 2>&1; then
	fail "openssl req: $(tail -n 2 "$TMP/openssl.log")"
elif q acm import-certificate --certificate "fileb://$TMP/tls.crt" --private-key "fileb://$TMP/tls.key" \
	--query CertificateArn && [[ $Q_OUT == arn:aws:acm:* ]]; then
	CERT_ARN=$Q_OUT
	pass "a self-signed certificate for ingest.example.test imported into ACM ($CERT_ARN)"
else
	call_failed "acm import-certificate"
fi

# ---------------------------------------------------------------------------
section "build fastingest for linux/amd64 (the deploy's command; given to it as BINARY)"

# Built here rather than by the deploy so that a cold Go build cache (tens of
# seconds) does not eat into the deploy's time limit.
BINARY_FILE=$TMP/fastingest-linux-amd64
BUILT=0
if ! command -v go >/dev/null 2>&1; then
	printf 'not a real binary: Go is not installed here\n' >"$BINARY_FILE"
	echo "note: Go is not installed: the deploy uploads a placeholder file"
elif ! over_budget "build" 150; then
	build_start=$SECONDS
	if bounded "$PHASE_SECS" env CGO_ENABLED=0 GOOS=linux GOARCH=amd64 \
		go -C "$ROOT" build -trimpath -ldflags=-s -o "$BINARY_FILE" . >"$TMP/build.log" 2>&1; then
		BUILT=1
		pass "go build (linux/amd64) in $((SECONDS - build_start))s"
	else
		fail "go build (linux/amd64) failed or took over ${PHASE_SECS}s; its output:"
		show "$TMP/build.log"
		printf 'not a real binary: the build failed\n' >"$BINARY_FILE"
	fi
fi

# ---------------------------------------------------------------------------
section "deploy (scripts/deploy-ec2.sh --yes, defaults: ALB, 4 x c6i.large, a token; CERTIFICATE_ARN)"

DEPLOYED=0
if ! over_budget "deploy" 420; then
	: >"$CALLS"
	moto_mark
	status=0
	run_script "$TMP/deploy.log" "$PHASE_SECS" \
		env YES=1 WAIT_TIMEOUT=15 POLL_INTERVAL=1 "BINARY=$BINARY_FILE" ${AMI_ENV[@]+"${AMI_ENV[@]}"} \
		"CERTIFICATE_ARN=$CERT_ARN" "S3_BUCKET=$SHIP_BUCKET" "S3_PREFIX=$SHIP_PREFIX" \
		bash "$ROOT/scripts/deploy-ec2.sh" --yes || status=$?
	if [[ $status == 0 ]]; then
		DEPLOYED=1
		pass "deploy-ec2.sh exits 0 (${SECONDS}s into the test)"
	else
		if [[ $status == 124 ]]; then
			fail "deploy-ec2.sh did not finish within ${PHASE_SECS}s; its output:"
		elif moto_lacks; then
			DEPLOY_LIMIT="the deploy stopped where moto $MOTO_VERSION lacks an action ($MOTO_LACKS)"
			xfail "deploy-ec2.sh exits $status: moto $MOTO_VERSION logged \"$MOTO_LACKS\"; $(grep -m1 'FAILED in step' "$TMP/deploy.log"); its output:"
		else
			fail "deploy-ec2.sh exits $status; its output:"
		fi
		show "$TMP/deploy.log"
	fi
	ncalls=$(grep -c . "$CALLS")
	refused=$(grep -c '^0 ' "$CALLS")
	expect_cond "every AWS call of the deploy went to moto with --endpoint-url ($ncalls calls)" \
		"$refused of $ncalls calls had no --endpoint-url $AWS_ENDPOINT_URL: $(grep '^0 ' "$CALLS" | cut -d' ' -f2- | sort -u | tr '\n' ';')" \
		test "$ncalls" -gt 0 -a "$refused" -eq 0
	if grep -q '^1 autoscaling describe-policies$' "$CALLS"; then
		echo "note: moto $MOTO_VERSION answers put-scaling-policy without PolicyARN; the deploy asked describe-policies for it"
	fi
fi

# ---------------------------------------------------------------------------
section "what the deploy created"

DESIRED_WANT=4 MIN_WANT=4 MAX_WANT=12 TYPE_WANT=c6i.large
INSTANCE_IDS=()
TG_ARN="" LB_ARN="" LB_DNS="" LISTENER_ARN="" STEP_ARN="" LB_SG="" INSTANCE_SG=""

if [[ $DEPLOYED == 1 ]] || [[ -s $TMP/deploy.log ]]; then
	# Target group (first: the group and the policies refer to it).
	if present "target group fastingest-tg" elbv2 describe-target-groups --names fastingest-tg \
		--query 'TargetGroups[0].[TargetGroupArn,Protocol,Port,HealthCheckProtocol,HealthCheckPath,Matcher.HttpCode,VpcId]'; then
		IFS=$'\t' read -r TG_ARN proto port hc_proto hc_path matcher vpc <<<"$Q_OUT"
		expect "target group health check path" /readyz "$hc_path"
		expect "target group health check: $hc_proto, expects 200" "HTTP 200" "$hc_proto $matcher"
		expect "target group forwards HTTP to port 8080" "HTTP 8080" "$proto $port"
		expect "target group is in the default VPC" "$VPC" "$vpc"
		if q elbv2 describe-target-group-attributes --target-group-arn "$TG_ARN" \
			--query "Attributes[?Key=='deregistration_delay.timeout_seconds'].Value | [0]"; then
			expect "target group deregistration delay (short)" 30 "$Q_OUT"
		else
			call_failed "target group attributes"
		fi
	fi

	# Load balancer and listener.
	if present "load balancer fastingest-lb" elbv2 describe-load-balancers --names fastingest-lb \
		--query 'LoadBalancers[0].[LoadBalancerArn,Type,Scheme,State.Code,DNSName,length(AvailabilityZones),join(`,`,SecurityGroups)]'; then
		IFS=$'\t' read -r LB_ARN type scheme state LB_DNS nzones lb_sgs <<<"$Q_OUT"
		expect "load balancer is an internet-facing application load balancer" \
			"application internet-facing" "$type $scheme"
		expect "load balancer state" active "$state"
		expect_cond "load balancer spans 2 or more zones ($nzones)" "has $nzones" test "$nzones" -ge 2
		if grep -q "serving at https://$LB_DNS/\$" "$TMP/deploy.log" &&
			grep -q "loadtest.sh https://ingest.example.test/\$" "$TMP/deploy.log"; then
			pass "deploy printed the load balancer's URL and a load-test command (to the certificate's name)"
		elif [[ -n $DEPLOY_LIMIT ]]; then
			xfail "deploy printed no URL: $DEPLOY_LIMIT"
		else
			fail "deploy printed the load balancer's URL and a load-test command: no \"https://$LB_DNS/\" lines in its output"
		fi
		if q elbv2 describe-listeners --load-balancer-arn "$LB_ARN" --query 'length(Listeners)'; then
			expect "two listeners (443, 80)" 2 "$Q_OUT"
		fi
		if present "listener on port 443" elbv2 describe-listeners --load-balancer-arn "$LB_ARN" \
			--query 'Listeners[?Port==`443`] | [0].[ListenerArn,Protocol,SslPolicy,Certificates[0].CertificateArn,length(DefaultActions),DefaultActions[0].Type,DefaultActions[0].FixedResponseConfig.StatusCode,DefaultActions[0].FixedResponseConfig.MessageBody]'; then
			IFS=$'\t' read -r LISTENER_ARN proto policy cert nactions action code body <<<"$Q_OUT"
			expect "listener on 443: HTTPS, a TLS 1.3/1.2 policy, the imported certificate" \
				"HTTPS ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09 $CERT_ARN" "$proto $policy $cert"
			expect "listener on 443: by default a fixed 404 with fastingest's own body" \
				'1 fixed-response 404 {"error":"not found: POST parcels to /"}' "$nactions $action $code $body"
			if q elbv2 describe-rules --listener-arn "$LISTENER_ARN" \
				--query 'Rules[?IsDefault==`false`].[length(Conditions),Actions[0].Type,Actions[0].TargetGroupArn]'; then
				expect "listener on 443: one rule, forwarding to the target group" "2 forward $TG_ARN" "$(printf '%s' "$Q_OUT" | tr '\t\n' '  ' | sed 's/ *$//')"
			else
				call_failed "rules of the 443 listener"
			fi
			if q elbv2 describe-rules --listener-arn "$LISTENER_ARN" \
				--query 'Rules[?IsDefault==`false`] | [0].Conditions[].[Field,join(`,`,PathPatternConfig.Values || HttpRequestMethodConfig.Values)]'; then
				expect "the rule matches the path exactly / and the method POST" \
					"http-request-method POST path-pattern /" "$(printf '%s\n' "$Q_OUT" | sort | tr '\t\n' '  ' | sed 's/ *$//')"
			else
				call_failed "conditions of the rule"
			fi
		fi
		if present "listener on port 80" elbv2 describe-listeners --load-balancer-arn "$LB_ARN" \
			--query 'Listeners[?Port==`80`] | [0].[Protocol,DefaultActions[0].Type,DefaultActions[0].RedirectConfig.Protocol,DefaultActions[0].RedirectConfig.Port,DefaultActions[0].RedirectConfig.StatusCode]'; then
			expect "listener on 80: HTTP, a 301 redirect to HTTPS on 443" "HTTP redirect HTTPS 443 HTTP_301" \
				"$(printf '%s' "$Q_OUT" | tr '\t' ' ')"
		fi
	fi

	# Security groups.
	if present "security group fastingest-lb-sg" ec2 describe-security-groups \
		--filters "Name=vpc-id,Values=$VPC" Name=group-name,Values=fastingest-lb-sg \
		--query 'SecurityGroups[0].GroupId'; then
		LB_SG=$Q_OUT
		expect "load balancer uses its security group" "$LB_SG" "${lb_sgs:-}"
		if q ec2 describe-security-groups --group-ids "$LB_SG" \
			--query 'SecurityGroups[0].IpPermissions[].[IpProtocol,FromPort,ToPort,join(`,`,IpRanges[].CidrIp)]'; then
			expect "load balancer security group: tcp 443 and 80, from 0.0.0.0/0 (ALLOWED_CIDRS)" \
				"tcp 443 443 0.0.0.0/0;tcp 80 80 0.0.0.0/0" "$(printf '%s\n' "$Q_OUT" | tr '\t' ' ' | sort | paste -sd';')"
		else
			call_failed "rules of the load balancer's security group"
		fi
	fi
	if present "security group fastingest-instance-sg" ec2 describe-security-groups \
		--filters "Name=vpc-id,Values=$VPC" Name=group-name,Values=fastingest-instance-sg \
		--query 'SecurityGroups[0].[GroupId,length(IpPermissions),IpPermissions[0].IpProtocol,IpPermissions[0].FromPort,IpPermissions[0].ToPort,join(`,`,IpPermissions[0].UserIdGroupPairs[].GroupId),join(`,`,IpPermissions[0].IpRanges[].CidrIp)]'; then
		IFS=$'\t' read -r INSTANCE_SG n p from to srcs ranges <<<"$Q_OUT"
		expect "instance security group: tcp 8080 only, from the load balancer's group and, for /metrics, the VPC ($VPC_CIDR) alone" \
			"1 tcp 8080-8080 $LB_SG $VPC_CIDR" "$n $p $from-$to $srcs $ranges"
	fi

	# IAM.
	if present "instance profile fastingest-instance-profile" iam get-instance-profile \
		--instance-profile-name fastingest-instance-profile --query 'InstanceProfile.Roles[0].RoleName'; then
		expect "instance profile holds the role" fastingest-instance-role "$Q_OUT"
	fi
	if present "role policy read-binary" iam get-role-policy --role-name fastingest-instance-role \
		--policy-name read-binary --query 'PolicyDocument.Statement[0].[Effect,Action,Resource]'; then
		expect "instance role may read the binary and nothing else" \
			"Allow	s3:GetObject	arn:aws:s3:::$BUCKET_WANT/fastingest/fastingest" "$Q_OUT"
	fi
	if q iam list-role-policies --role-name fastingest-instance-role --query 'PolicyNames'; then
		expect "instance role has three policies" "read-auth-token read-binary ship-segments" "$(printf '%s' "$Q_OUT" | tr '\t' '\n' | sort | paste -sd' ')"
	fi
	if present "role policy ship-segments" iam get-role-policy --role-name fastingest-instance-role \
		--policy-name ship-segments --query 'PolicyDocument.[length(Statement),Statement[0].Effect,join(`,`,Statement[0].Action),Statement[0].Resource]'; then
		expect "instance role may put objects (and abort multipart uploads) under S3_BUCKET/S3_PREFIX only" \
			"1 Allow s3:PutObject,s3:AbortMultipartUpload arn:aws:s3:::$SHIP_BUCKET/$SHIP_PREFIX*" "$(printf '%s' "$Q_OUT" | tr '\t' ' ')"
	fi
	if present "role policy read-auth-token" iam get-role-policy --role-name fastingest-instance-role \
		--policy-name read-auth-token --query 'PolicyDocument.[length(Statement),Statement[0].Effect,Statement[0].Action,Statement[0].Resource]'; then
		expect "instance role may read the token's parameter, named by its ARN, and no other" \
			"1 Allow ssm:GetParameter arn:aws:ssm:$REGION:$ACCOUNT:parameter/fastingest/auth-token" "$(printf '%s' "$Q_OUT" | tr '\t' ' ')"
	fi

	# The token's parameter.
	TOKEN=""
	if present "SSM parameter /fastingest/auth-token" ssm get-parameter --name /fastingest/auth-token \
		--query Parameter.Type; then
		expect "the token's parameter is a SecureString" SecureString "$Q_OUT"
		if q ssm list-tags-for-resource --resource-type Parameter --resource-id /fastingest/auth-token \
			--query "TagList[?Key=='fastingest:deployment'].Value"; then
			expect "the parameter carries the deploy's tag (the teardown's proof of ownership)" fastingest "$Q_OUT"
		fi
		if q ssm get-parameter --name /fastingest/auth-token --with-decryption --query Parameter.Value; then
			TOKEN=$Q_OUT
			expect_cond "the token is 32 random bytes (64 hex digits)" "it is ${#TOKEN} characters" \
				grep -Eqx '[0-9a-f]{64}' <<<"$TOKEN"
			expect_cond "the token is in none of the deploy's AWS calls' arguments" "found in $TMP/args.log" \
				not_in "$TOKEN" "$TMP/args.log"
			expect_cond "the token is not in the deploy's output" "found in its output" \
				not_in "$TOKEN" "$TMP/deploy.log"
			expect_cond "the deploy printed the command that reads the token" "no such line" \
				grep -q -- "--name /fastingest/auth-token --with-decryption --query Parameter.Value" "$TMP/deploy.log"
		else
			call_failed "the token's value"
		fi
	fi

	# Launch template.
	if present "launch template fastingest-lt" ec2 describe-launch-template-versions \
		--launch-template-name fastingest-lt --versions '$Latest' \
		--query 'LaunchTemplateVersions[0].LaunchTemplateData.[ImageId,InstanceType,IamInstanceProfile.Name,MetadataOptions.HttpTokens,MetadataOptions.HttpEndpoint,join(`,`,SecurityGroupIds),UserData]'; then
		IFS=$'\t' read -r ami itype profile tokens endpoint lt_sgs user_data <<<"$Q_OUT"
		expect "launch template MetadataOptions: HttpTokens=required (IMDSv2), HttpEndpoint=enabled" \
			"required enabled" "$tokens $endpoint"
		expect "launch template image is Amazon Linux 2023 ($AMI_PARAM)" "$AMI_WANT" "$ami"
		expect "launch template instance type" "$TYPE_WANT" "$itype"
		expect "launch template instance profile" fastingest-instance-profile "$profile"
		expect "launch template security group is the instances' group" "$INSTANCE_SG" "$lt_sgs"
		if [[ -n ${user_data:-} && $user_data != None ]] &&
			printf '%s' "$user_data" | "$PY" -c 'import base64, gzip, sys; sys.stdout.buffer.write(gzip.decompress(base64.b64decode(sys.stdin.read(), validate=True)))' \
				>"$TMP/user-data.yaml" 2>"$TMP/b64.err"; then
			expect "launch template user-data (gzip) starts with #cloud-config" "#cloud-config" "$(head -n 1 "$TMP/user-data.yaml")"
			if [[ -n $TOKEN ]]; then
				expect_cond "the launch template's user-data holds no token" "the token is in it" \
					not_in "$TOKEN" "$TMP/user-data.yaml"
				expect_cond "the launch template's data holds no token" "the token is in it" \
					not_in "$TOKEN" <(printf '%s' "$Q_OUT")
			fi
			expect_cond "user-data fetches the token at boot, by the parameter's name" "no such runcmd line" \
				grep -qx '  - /usr/local/sbin/fastingest-credentials us-east-1 auth-token=/fastingest/auth-token' "$TMP/user-data.yaml"
			expect_cond "user-data hands it over with LoadCredential and AUTH_TOKEN_FILE" "no such drop-in lines" \
				grep -qx '      Environment=AUTH_TOKEN_FILE=%d/auth-token' "$TMP/user-data.yaml"
			expect "user-data's environment ships to S3_BUCKET/S3_PREFIX in the deploy's region" \
				"S3_BUCKET=$SHIP_BUCKET S3_PREFIX=$SHIP_PREFIX AWS_REGION=$REGION" \
				"$(sed -n 's/^      \(S3_BUCKET\|S3_PREFIX\|AWS_REGION\)=/\1=/p' "$TMP/user-data.yaml" | paste -sd' ')"
			memory_check "$TMP/user-data.yaml"
			expect_cond "user-data fetches s3://$BUCKET_WANT/fastingest/fastingest" "the URI is not in it" \
				grep -qF "s3://$BUCKET_WANT/fastingest/fastingest" "$TMP/user-data.yaml"
			expect "user-data has every placeholder filled in (none left)" "" \
				"$(grep -o '@@[A-Z_]*@@' "$TMP/user-data.yaml" | sort -u | tr '\n' ' ')"
		else
			fail "launch template user-data: missing or not base64 ($(cat "$TMP/b64.err" 2>/dev/null))"
		fi
	fi

	# Auto Scaling group.
	if present "auto scaling group fastingest-asg" autoscaling describe-auto-scaling-groups \
		--auto-scaling-group-names fastingest-asg \
		--query 'AutoScalingGroups[0].[MinSize,MaxSize,DesiredCapacity,VPCZoneIdentifier,join(`,`,TargetGroupARNs),LaunchTemplate.LaunchTemplateName,LaunchTemplate.Version,HealthCheckType,HealthCheckGracePeriod,join(`,`,Instances[].InstanceId)]'; then
		IFS=$'\t' read -r min max desired subnets asg_tgs lt_name lt_version hc_type grace instance_ids <<<"$Q_OUT"
		expect "auto scaling group: a grace period of 300 s before health checks count" 300 "$grace"
		IFS=, read -r -a INSTANCE_IDS <<<"$instance_ids"
		expect "auto scaling group min/max/desired" "$MIN_WANT/$MAX_WANT/$DESIRED_WANT" "$min/$max/$desired"
		expect "auto scaling group is attached to the target group" "$TG_ARN" "$asg_tgs"
		expect "auto scaling group launches the launch template, latest version" 'fastingest-lt $Latest' "$lt_name $lt_version"
		expect "auto scaling group replaces instances on ELB health checks" ELB "$hc_type"
		expect "moto launched the desired instances" "$DESIRED_WANT" "${#INSTANCE_IDS[@]}"
		IFS=, read -r -a subnet_list <<<"$subnets"
		if q ec2 describe-subnets --subnet-ids "${subnet_list[@]}" --query 'Subnets[].AvailabilityZone'; then
			zones=$(printf '%s' "$Q_OUT" | tr '\t' '\n' | sort -u | grep -c .)
			expect_cond "auto scaling group spans ${#subnet_list[@]} subnets in $zones zones (2 or more)" \
				"subnets: $subnets" test "${#subnet_list[@]}" -ge 2 -a "$zones" -ge 2
		else
			call_failed "subnets of the auto scaling group ($subnets)"
		fi
		if q elbv2 describe-target-health --target-group-arn "$TG_ARN" \
			--query 'length(TargetHealthDescriptions)'; then
			expect "the group's instances are registered in the target group" "$DESIRED_WANT" "$Q_OUT"
		else
			call_failed "target health"
		fi
	fi

	# Scaling policies.
	if present "target tracking policy fastingest-target-tracking" autoscaling describe-policies \
		--auto-scaling-group-name fastingest-asg --policy-names fastingest-target-tracking \
		--query 'ScalingPolicies[0].[PolicyType,TargetTrackingConfiguration.PredefinedMetricSpecification.PredefinedMetricType,TargetTrackingConfiguration.TargetValue,TargetTrackingConfiguration.PredefinedMetricSpecification.ResourceLabel]'; then
		IFS=$'\t' read -r ptype metric target label <<<"$Q_OUT"
		expect "target tracking policy on ALBRequestCountPerTarget" \
			"TargetTrackingScaling ALBRequestCountPerTarget" "$ptype $metric"
		expect_num "target tracking target: 250000 requests per target per minute" 250000 "$target"
		expect "target tracking resource label: the load balancer and target group" \
			"${LB_ARN#*:loadbalancer/}/${TG_ARN##*:}" "$label"
	fi
	if present "step policy fastingest-p99-latency-step" autoscaling describe-policies \
		--auto-scaling-group-name fastingest-asg --policy-names fastingest-p99-latency-step \
		--query 'ScalingPolicies[0].[PolicyARN,PolicyType,AdjustmentType,length(StepAdjustments),MinAdjustmentMagnitude]'; then
		IFS=$'\t' read -r STEP_ARN ptype adj nsteps minadj <<<"$Q_OUT"
		expect "step policy: StepScaling, PercentChangeInCapacity, 2 steps, at least 1 instance" \
			"StepScaling PercentChangeInCapacity 2 1" "$ptype $adj $nsteps $minadj"
	fi

	# Alarm.
	if present "alarm fastingest-p99-latency-high" cloudwatch describe-alarms --alarm-names fastingest-p99-latency-high \
		--query 'MetricAlarms[0].[Namespace,MetricName,ExtendedStatistic,Threshold,ComparisonOperator,Period,EvaluationPeriods,Dimensions[0].Name,Dimensions[0].Value,join(`,`,AlarmActions)]'; then
		IFS=$'\t' read -r ns metric stat threshold cmp period periods dim_name dim_value actions <<<"$Q_OUT"
		expect "alarm on AWS/ApplicationELB TargetResponseTime, ExtendedStatistic p99" \
			"AWS/ApplicationELB TargetResponseTime p99" "$ns $metric $stat"
		expect_num "alarm threshold: 0.25 s" 0.25 "$threshold"
		expect "alarm: above the threshold for 3 periods of 60 s" "GreaterThanThreshold 60 3" "$cmp $period $periods"
		expect "alarm watches the load balancer" "LoadBalancer=${LB_ARN#*:loadbalancer/}" "$dim_name=$dim_value"
		expect "alarm action is the step policy" "${STEP_ARN:-(no step policy ARN)}" "$actions"
	fi

	# S3.
	if present "S3 object s3://$BUCKET_WANT/fastingest/fastingest" s3api head-object \
		--bucket "$BUCKET_WANT" --key fastingest/fastingest --query ContentLength; then
		size=$Q_OUT
		if q s3 cp "s3://$BUCKET_WANT/fastingest/fastingest" "$TMP/downloaded" --only-show-errors; then
			expect_cond "S3 object is the binary given to the deploy ($size bytes)" "it differs" \
				cmp -s "$BINARY_FILE" "$TMP/downloaded"
			if [[ $BUILT == 1 ]]; then
				# ELF magic, 64-bit, little-endian, e_machine 0x3e (x86-64).
				read -r -a elf <<<"$(od -An -tx1 -N20 "$TMP/downloaded" | tr '\n' ' ')"
				expect "S3 object is a linux/amd64 ELF executable ($size bytes)" \
					"7f 45 4c 46 02 01 3e 00" "${elf[*]:0:6} ${elf[*]:18:2}"
			fi
		else
			call_failed "S3 object download"
		fi
	fi
fi

# ---------------------------------------------------------------------------
section "teardown (scripts/teardown-ec2.sh --yes --delete-bucket)"

if ! over_budget "teardown" 240; then
	: >"$CALLS"
	moto_mark
	status=0
	run_script "$TMP/teardown.log" "$PHASE_SECS" env YES=1 WAIT_TIMEOUT=20 POLL_INTERVAL=1 \
		bash "$ROOT/scripts/teardown-ec2.sh" --yes --delete-bucket || status=$?
	if [[ $status == 0 ]]; then
		pass "teardown-ec2.sh exits 0 (${SECONDS}s into the test)"
	else
		if [[ $status == 124 ]]; then
			fail "teardown-ec2.sh did not finish within ${PHASE_SECS}s; its output:"
		elif moto_lacks; then
			TEARDOWN_LIMIT="the teardown stopped where moto $MOTO_VERSION lacks an action ($MOTO_LACKS)"
			xfail "teardown-ec2.sh exits $status: moto $MOTO_VERSION logged \"$MOTO_LACKS\"; $(grep -m1 'FAILED in step' "$TMP/teardown.log"); its output:"
		else
			fail "teardown-ec2.sh exits $status; its output:"
		fi
		show "$TMP/teardown.log"
	fi
	ncalls=$(grep -c . "$CALLS")
	refused=$(grep -c '^0 ' "$CALLS")
	expect_cond "every AWS call of the teardown went to moto with --endpoint-url ($ncalls calls)" \
		"$refused of $ncalls calls had no --endpoint-url $AWS_ENDPOINT_URL" \
		test "$ncalls" -gt 0 -a "$refused" -eq 0
fi

section "what the teardown removed"

gone "alarm fastingest-p99-latency-high" cloudwatch describe-alarms --alarm-names fastingest-p99-latency-high \
	--query 'length(MetricAlarms)'
gone "scaling policies of fastingest-asg" autoscaling describe-policies --auto-scaling-group-name fastingest-asg \
	--query 'length(ScalingPolicies)'
gone "auto scaling group fastingest-asg" autoscaling describe-auto-scaling-groups \
	--auto-scaling-group-names fastingest-asg --query 'length(AutoScalingGroups)'
if ((${#INSTANCE_IDS[@]} > 0)); then
	gone "the group's ${#INSTANCE_IDS[@]} instances (terminated)" ec2 describe-instances \
		--instance-ids "${INSTANCE_IDS[@]}" \
		--filters Name=instance-state-name,Values=pending,running,stopping,stopped \
		--query 'length(Reservations[].Instances[])'
fi
gone "launch template fastingest-lt" ec2 describe-launch-templates \
	--filters Name=launch-template-name,Values=fastingest-lt --query 'length(LaunchTemplates)'
if [[ -n $LISTENER_ARN ]]; then
	gone "listener on port 80" elbv2 describe-listeners --listener-arns "$LISTENER_ARN" --query 'length(Listeners)'
fi
gone "load balancer fastingest-lb" elbv2 describe-load-balancers --names fastingest-lb --query 'length(LoadBalancers)'
gone "target group fastingest-tg" elbv2 describe-target-groups --names fastingest-tg --query 'length(TargetGroups)'
gone "security groups fastingest-lb-sg and fastingest-instance-sg" ec2 describe-security-groups \
	--filters Name=group-name,Values=fastingest-lb-sg,fastingest-instance-sg --query 'length(SecurityGroups)'
gone "instance profile fastingest-instance-profile" iam get-instance-profile \
	--instance-profile-name fastingest-instance-profile --query InstanceProfile.InstanceProfileName
gone "role fastingest-instance-role" iam get-role --role-name fastingest-instance-role --query Role.RoleName
gone "S3 object s3://$BUCKET_WANT/fastingest/fastingest" s3api head-object --bucket "$BUCKET_WANT" \
	--key fastingest/fastingest --query ContentLength
gone "S3 bucket $BUCKET_WANT" s3api list-buckets --query "length(Buckets[?Name=='$BUCKET_WANT'])"
gone "SSM parameter /fastingest/auth-token" ssm describe-parameters \
	--parameter-filters Key=Name,Option=Equals,Values=/fastingest/auth-token --query 'length(Parameters)'
if [[ -n $CERT_ARN ]]; then
	if q acm describe-certificate --certificate-arn "$CERT_ARN" --query Certificate.Status; then
		expect "the certificate is kept (it is not the deploy's)" ISSUED "$Q_OUT"
	else
		fail "the certificate is kept (it is not the deploy's): ${Q_ERR:-gone}"
	fi
fi

# ---------------------------------------------------------------------------
section "teardown again (safe to run twice)"

if ! over_budget "second teardown" 150; then
	: >"$CALLS"
	moto_mark
	status=0
	run_script "$TMP/teardown2.log" "$PHASE_SECS" env YES=1 WAIT_TIMEOUT=20 POLL_INTERVAL=1 \
		bash "$ROOT/scripts/teardown-ec2.sh" --yes --delete-bucket || status=$?
	if [[ $status == 0 ]]; then
		pass "second teardown-ec2.sh exits 0 (${SECONDS}s into the test)"
		nskipped=$(grep -c 'not found, skipped' "$TMP/teardown2.log")
		ndeleted=$(grep -c ': deleted$' "$TMP/teardown2.log")
		# alarm, group, template, load balancer, target group, 2 security
		# groups, instance profile, role, parameter, bucket
		expect "second teardown skips all 11 resources and deletes nothing" "11 skipped, 0 deleted" \
			"$nskipped skipped, $ndeleted deleted"
		if [[ $nskipped != 11 || $ndeleted != 0 ]]; then show "$TMP/teardown2.log"; fi
	else
		if [[ $status == 124 ]]; then
			fail "second teardown-ec2.sh did not finish within ${PHASE_SECS}s; its output:"
		elif moto_lacks; then
			xfail "second teardown-ec2.sh exits $status: moto $MOTO_VERSION logged \"$MOTO_LACKS\"; $(grep -m1 'FAILED in step' "$TMP/teardown2.log"); its output:"
		else
			fail "second teardown-ec2.sh exits $status; its output:"
		fi
		show "$TMP/teardown2.log"
	fi
	refused=$(grep -c '^0 ' "$CALLS")
	expect "every AWS call of the second teardown went to moto with --endpoint-url" 0 "$refused"
fi

# ---------------------------------------------------------------------------
printf '\nmoto e2e (moto %s): %d passed, %d failed, %d xfail (moto limitations) in %ds\n' \
	"$MOTO_VERSION" "$PASSED" "$FAILED" "$XFAILED" "$SECONDS"
if ((FAILED > 0)); then exit 1; fi
exit 0
