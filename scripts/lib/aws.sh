# shellcheck shell=bash
# scripts/lib/aws.sh: what scripts/deploy-ec2.sh and scripts/teardown-ec2.sh
# share. Sourced, never run.
#
#   aws_cli       the one wrapper every AWS call goes through: adds --region,
#                 --endpoint-url (when AWS_ENDPOINT_URL is set) and
#                 --output text; with DRY_RUN=1 prints the command,
#                 shell-quoted, instead of running it, and answers with a
#                 placeholder so that the script can go on
#   aws_lookup    a describe/get call whose "not found" means "missing"
#                 (aws_exists: the same for calls that answer nothing)
#   aws_poll      a bounded wait (WAIT_TIMEOUT, POLL_INTERVAL)
#   step          names the step in progress; a failure names it and says how
#                 to clean up (the ERR trap, aws_fail)
#   aws_set_names every resource name, derived from NAME, so that teardown
#                 finds by name what deploy created (no state file)
#
# Calls use --query with --output text, so neither jq nor python is needed.
# Each operation is called with one --query (but for the deploy's
# describe-policies fallback, which a dry run never reaches), and the dry-run
# placeholders below have the shape of that query's output.
#
# Written for bash 3.2 (macOS) and later: no associative arrays, no ${x,,},
# no empty "${array[@]}".

# AWS CLI v2 pipes output through a pager and may prompt for parameters;
# neither may happen in a script. (v1 ignores both variables.)
export AWS_PAGER=""
export AWS_CLI_AUTO_PROMPT=off

# Dry-run commands go to the script's standard output, even from inside $(...).
exec 9>&1

AWS_LIB_SCRIPT=$(basename "$0")
AWS_LIB_STEP="start"
AWS_LIB_TMP=$(mktemp -d "${TMPDIR:-/tmp}/fastingest-aws.XXXXXX")
trap 'rm -rf "$AWS_LIB_TMP"' EXIT

# Name settings the user may override; the cleanup hint repeats those that
# were set, so that the teardown it suggests looks for the same names.
AWS_LIB_NAME_VARS="BUCKET BINARY_KEY VPC_ID LB_SG_NAME INSTANCE_SG_NAME TG_NAME LB_NAME ROLE_NAME PROFILE_NAME LT_NAME ASG_NAME TT_POLICY_NAME STEP_POLICY_NAME ALARM_NAME TOKEN_PARAM_NAME AUTH_TOKEN_PARAM"
AWS_LIB_USER_SET=""
for _v in $AWS_LIB_NAME_VARS; do
	if [[ -n ${!_v+x} ]]; then AWS_LIB_USER_SET="$AWS_LIB_USER_SET $_v"; fi
done
unset _v

# ---------------------------------------------------------------------------
# Messages, steps and failures

log() { printf '%s\n' "$*" >&2; }

# step NAME: record and announce the step in progress.
step() {
	AWS_LIB_STEP=$1
	printf '\n==> %s\n' "$1" >&2
}

# print_cmd ARGS...: one shell-quoted line, ready to paste.
print_cmd() {
	local line
	line=$(printf '%q ' "$@")
	printf '%s\n' "${line% }"
}

# aws_fail MESSAGE: stop the script, naming the step and how to clean up.
# Each script defines failure_hint, which prints the cleanup advice.
aws_fail() {
	trap - ERR
	log ""
	log "$AWS_LIB_SCRIPT: FAILED in step \"$AWS_LIB_STEP\": $*"
	failure_hint >&2
	exit 1
}

# The ERR trap: inside $(...) only pass the status on (the caller's own
# failure reports it, once); in the script itself report and stop.
aws_on_err() {
	local status=$1
	if ((BASH_SUBSHELL > 0)); then exit "$status"; fi
	aws_fail "a command exited with status $status (see the message above)"
}
set -Eeuo pipefail
trap 'aws_on_err $?' ERR
trap 'aws_fail "interrupted"' INT TERM

# aws_confirm WARNING: print the warning; go on only with DRY_RUN=1, YES=1 or
# an explicit "yes" typed on a terminal.
aws_confirm() {
	log "$1"
	if [[ $DRY_RUN == 1 ]]; then
		log "DRY_RUN=1: printing the AWS commands instead of running them; nothing is created or deleted."
		return 0
	fi
	if [[ $YES == 1 ]]; then return 0; fi
	if [[ ! -t 0 ]]; then
		log "$AWS_LIB_SCRIPT: not confirmed: pass --yes (or YES=1) to run without a prompt."
		exit 1
	fi
	local answer=""
	read -r -p "Type yes to continue: " answer || true
	if [[ $answer != yes ]]; then
		log "$AWS_LIB_SCRIPT: not confirmed; nothing done."
		exit 1
	fi
}

# ---------------------------------------------------------------------------
# Settings shared by both scripts

# aws_common_settings: defaults and checks of the settings both scripts use.
# REGION comes from --region (set by the caller), AWS_REGION or
# AWS_DEFAULT_REGION; there is no silent default, since deploy and teardown
# must agree on it.
aws_common_settings() {
	: "${NAME:=fastingest}"
	: "${DRY_RUN:=0}"
	: "${YES:=0}"
	: "${WAIT_TIMEOUT:=600}"
	: "${POLL_INTERVAL:=10}"
	REGION=${REGION:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}
	if [[ -z $REGION ]]; then
		log "$AWS_LIB_SCRIPT: no region: set AWS_REGION (or AWS_DEFAULT_REGION) or pass --region."
		exit 2
	fi
	if [[ ! $REGION =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]]; then
		log "$AWS_LIB_SCRIPT: invalid region \"$REGION\": want e.g. us-east-1."
		exit 2
	fi
	if [[ ! $NAME =~ ^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$ ]]; then
		log "$AWS_LIB_SCRIPT: invalid NAME \"$NAME\": letters, digits and inner hyphens only."
		exit 2
	fi
	local v
	for v in DRY_RUN YES; do
		if [[ ${!v} != 0 && ${!v} != 1 ]]; then
			log "$AWS_LIB_SCRIPT: invalid $v \"${!v}\": want 0 or 1."
			exit 2
		fi
	done
	for v in WAIT_TIMEOUT POLL_INTERVAL; do
		if [[ ! ${!v} =~ ^[0-9]+$ ]]; then
			log "$AWS_LIB_SCRIPT: invalid $v \"${!v}\": want a whole number of seconds."
			exit 2
		fi
	done
	# shellcheck disable=SC2034 # PARTITION and EC2_PRINCIPAL are for the scripts
	case $REGION in
	cn-*) PARTITION=aws-cn EC2_PRINCIPAL=ec2.amazonaws.com.cn ;;
	us-gov-*) PARTITION=aws-us-gov EC2_PRINCIPAL=ec2.amazonaws.com ;;
	*) PARTITION=aws EC2_PRINCIPAL=ec2.amazonaws.com ;;
	esac
	aws_set_names
}

# aws_set_names: every name derives from NAME; each can be set on its own.
# Load balancer and target group names are limited to 32 characters.
aws_set_names() {
	: "${LB_SG_NAME:=${NAME}-lb-sg}"
	: "${INSTANCE_SG_NAME:=${NAME}-instance-sg}"
	: "${TG_NAME:=${NAME}-tg}"
	: "${LB_NAME:=${NAME}-lb}"
	: "${ROLE_NAME:=${NAME}-instance-role}"
	: "${PROFILE_NAME:=${NAME}-instance-profile}"
	: "${LT_NAME:=${NAME}-lt}"
	: "${ASG_NAME:=${NAME}-asg}"
	: "${TT_POLICY_NAME:=${NAME}-target-tracking}"
	: "${STEP_POLICY_NAME:=${NAME}-p99-latency-step}"
	: "${ALARM_NAME:=${NAME}-p99-latency-high}"
	: "${BINARY_KEY:=${NAME}/fastingest}"
	# The SSM parameter a deploy creates for the bearer token (teardown
	# deletes it, and only if its tag says this deploy created it).
	: "${TOKEN_PARAM_NAME:=/${NAME}/auth-token}"
	local v val
	for v in LB_NAME TG_NAME; do
		val=${!v}
		if [[ ! $val =~ ^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$ ]] || ((${#val} > 32)); then
			log "$AWS_LIB_SCRIPT: invalid $v \"$val\": at most 32 letters, digits and inner hyphens (shorten NAME or set $v)."
			exit 2
		fi
	done
	for v in TOKEN_PARAM_NAME AUTH_TOKEN_PARAM; do
		val=${!v:-}
		if [[ -n $val ]] && ! valid_param_name "$val"; then
			log "$AWS_LIB_SCRIPT: invalid $v \"$val\": an SSM parameter name of letters, digits and . _ - /, e.g. /fastingest/auth-token (not an ARN)."
			exit 2
		fi
	done
}

# valid_param_name NAME: NAME is an SSM parameter name of this account and
# region (a path such as /fastingest/auth-token, or a plain name), which the
# scripts and the instances can pass to the CLI and to cloud-init unquoted.
valid_param_name() {
	[[ $1 =~ ^/?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$ ]] && ((${#1} <= 1011)) && [[ ! $1 =~ ^/?(aws|ssm)(/|$) ]]
}

# param_arn NAME ACCOUNT: the ARN of the SSM parameter NAME of ACCOUNT in
# this region (a path's leading slash is not repeated after "parameter").
param_arn() {
	printf 'arn:%s:ssm:%s:%s:parameter/%s' "$PARTITION" "$REGION" "$2" "${1#/}"
}

# default_bucket ACCOUNT: the default artifact bucket, unique per account and
# region because bucket names are global.
default_bucket() {
	printf '%s-artifacts-%s-%s' "$(printf '%s' "$NAME" | tr '[:upper:]' '[:lower:]')" "$1" "$REGION"
}

# aws_teardown_cmd: the teardown command for this deployment, with every
# setting it needs to find the same resources.
aws_teardown_cmd() {
	local -a env=(env "NAME=$NAME" "AWS_REGION=$REGION")
	local v
	for v in $AWS_LIB_USER_SET; do env+=("$v=${!v}"); done
	if [[ -n ${AWS_PROFILE:-} ]]; then env+=("AWS_PROFILE=$AWS_PROFILE"); fi
	if [[ -n ${AWS_ENDPOINT_URL:-} ]]; then env+=("AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"); fi
	print_cmd "${env[@]}" bash scripts/teardown-ec2.sh
}

# json_str VALUE: VALUE as the inside of a JSON string.
json_str() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	printf '%s' "$s"
}

# ---------------------------------------------------------------------------
# The AWS wrapper

# aws_cli SERVICE OPERATION ARGS...: run one AWS CLI call. Every AWS call of
# both scripts goes through here.
aws_cli() {
	local -a cmd=(aws "$@" --region "$REGION" --output text)
	# Older CLIs ignore the AWS_ENDPOINT_URL variable; the flag works everywhere.
	if [[ -n ${AWS_ENDPOINT_URL:-} ]]; then cmd+=(--endpoint-url "$AWS_ENDPOINT_URL"); fi
	if [[ $DRY_RUN == 1 ]]; then
		print_cmd "${cmd[@]}" >&9
		aws_dry_run_reply "$@"
		return
	fi
	"${cmd[@]}"
}

# arg_value FLAG ARGS...: the value following FLAG in ARGS.
arg_value() {
	local flag=$1
	shift
	while (($# > 1)); do
		if [[ $1 == "$flag" ]]; then
			printf '%s' "$2"
			return 0
		fi
		shift
	done
}

# aws_dry_run_reply SERVICE OPERATION ARGS...: a placeholder with the shape
# of the output the scripts' --query asks for. Lookups answer "found", except
# the bucket (so that the dry run shows how it is created); waits answer
# "done".
aws_dry_run_reply() {
	local acct=123456789012 svc="$1 $2"
	local elb="arn:$PARTITION:elasticloadbalancing:$REGION:$acct"
	shift 2
	case $svc in
	"sts get-caller-identity") echo "$acct" ;;
	"s3api head-bucket")
		echo "dry run: assuming the bucket does not exist (404)" >&2
		return 254
		;;
	"ec2 describe-vpcs") printf '%s\t%s\n' "${VPC_ID:-vpc-0dryrun00000000000}" 172.31.0.0/16 ;;
	"ec2 describe-subnets") printf '%s\t%s\n' subnet-0dryruna0000000000 "${REGION}a" subnet-0dryrunb0000000000 "${REGION}b" ;;
	"ec2 describe-instance-type-offerings") printf '%s\t%s\n' "${REGION}a" "${REGION}b" ;;
	"ec2 create-security-group" | "ec2 describe-security-groups")
		local a group=""
		for a in "$@"; do
			case $a in Name=group-name,Values=*) group=${a#*Values=} ;; esac
		done
		echo "sg-0dryrun-$(arg_value --group-name "$@")$group"
		;;
	"elbv2 create-target-group" | "elbv2 describe-target-groups") echo "$elb:targetgroup/$TG_NAME/0dryrun000000000" ;;
	"elbv2 create-load-balancer") printf '%s\t%s\n' "$elb:loadbalancer/${LB_TYPE:-app}/$LB_NAME/0dryrun000000000" "$LB_NAME-0dryrun.$REGION.elb.amazonaws.com" ;;
	"elbv2 describe-load-balancers") echo "$elb:loadbalancer/app/$LB_NAME/0dryrun000000000" ;;
	"elbv2 create-listener" | "elbv2 describe-listeners") echo "$elb:listener/app/$LB_NAME/0dryrun000000000/0dryrun000000000" ;;
	"elbv2 describe-target-health") printf 'healthy\n%.0s' $(seq 1 "${DESIRED:-1}") ;;
	"iam create-role") echo "arn:$PARTITION:iam::$acct:role/$ROLE_NAME" ;;
	"iam get-role") echo "$ROLE_NAME" ;;
	"iam list-role-policies") printf '%s\t%s\n' read-binary read-auth-token ;;
	"iam get-instance-profile") printf '%s\t%s\n' "$PROFILE_NAME" "$ROLE_NAME" ;;
	"ssm get-parameter") echo "ami-0dryrun000000000" ;;
	"ssm describe-parameters")
		# A reused parameter (AUTH_TOKEN_PARAM) is found; the deploy's own
		# check that its parameter does not exist yet is not stopped by a
		# dry run (as for the role).
		printf '%s\t%s\n' "$(arg_value --parameter-filters "$@" | sed 's/.*Values=//')" SecureString
		;;
	"ssm list-tags-for-resource") echo "$NAME" ;;
	"ec2 describe-instance-types") printf '%s\t%s\n' 4096 2 ;;
	"acm describe-certificate") printf '%s\t%s\n' ISSUED dry-run.example.com ;;
	"elbv2 create-rule") echo "$elb:listener-rule/app/$LB_NAME/0dryrun000000000/0dryrun000000000/0dryrun000000000" ;;
	"ec2 create-launch-template" | "ec2 describe-launch-templates") echo "lt-0dryrun000000000" ;;
	"autoscaling put-scaling-policy") echo "arn:$PARTITION:autoscaling:$REGION:$acct:scalingPolicy:0dryrun:autoScalingGroupName/$ASG_NAME:policyName/$(arg_value --policy-name "$@")" ;;
	"autoscaling describe-auto-scaling-groups") printf '%s\t%s\n' "$ASG_NAME" None ;;
	"autoscaling describe-policies") printf '%s\t%s\n' "$TT_POLICY_NAME" "$STEP_POLICY_NAME" ;;
	"cloudwatch describe-alarms") echo "$ALARM_NAME" ;;
	esac
	return 0
}

# aws_lookup SERVICE OPERATION ARGS...: a describe or get call. Returns 0 with
# the output in AWS_OUT when the resource exists; 1 when it does not (an
# empty or "None" answer, or a not-found error); stops the script on any other
# error. Call it directly (not in $(...)), so that it can stop the script.
aws_lookup() { _aws_lookup 1 "$@"; }

# aws_exists SERVICE OPERATION ARGS...: as aws_lookup, for calls that answer
# nothing on success (s3api head-bucket).
aws_exists() { _aws_lookup 0 "$@"; }

_aws_lookup() {
	local empty_is_missing=$1 status=0 err="$AWS_LIB_TMP/lookup.err"
	shift
	AWS_OUT=$(aws_cli "$@" 2>"$err") || status=$?
	if ((status != 0)); then
		if [[ $DRY_RUN == 1 ]] || grep -Eq 'NotFound|NoSuchEntity|NoSuchBucket|does not exist|\(404\)|Not Found' "$err"; then
			AWS_OUT=""
			return 1
		fi
		cat "$err" >&2
		aws_fail "aws $1 $2 failed (exit status $status)"
	fi
	if [[ $empty_is_missing == 1 ]] && [[ -z $AWS_OUT || $AWS_OUT == None ]]; then return 1; fi
	return 0
}

# aws_poll DESCRIPTION CHECK ARGS...: run CHECK ARGS until it succeeds, every
# POLL_INTERVAL seconds for at most WAIT_TIMEOUT seconds; returns 1 on
# timeout. With DRY_RUN=1 the check runs once (printing its commands).
aws_poll() {
	local what=$1 deadline=$((SECONDS + WAIT_TIMEOUT))
	shift
	while :; do
		if "$@"; then return 0; fi
		if [[ $DRY_RUN == 1 ]]; then return 0; fi
		if ((SECONDS >= deadline)); then
			log "timed out after ${WAIT_TIMEOUT}s (WAIT_TIMEOUT) waiting for $what"
			return 1
		fi
		log "  waiting for $what ..."
		sleep "$POLL_INTERVAL"
	done
}
