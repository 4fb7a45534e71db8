#!/usr/bin/env bash
# deploy-ec2.sh: put fastingest on AWS EC2 behind a load balancer, with
# autoscaling driven by request count and p99 latency, secure by default: a
# bearer token kept in SSM Parameter Store, HTTPS when given a certificate,
# only POST / reachable through the load balancer. Run
# `bash scripts/deploy-ec2.sh --help` for the settings; remove everything with
# scripts/teardown-ec2.sh and the same NAME and region.
#
# In order: read-only checks and lookups (no deployment of that name yet,
# account, VPC and subnets, the instance type's memory, machine image,
# certificate, token parameter) and the user-data, then the build, so that a
# mistake stops the deploy before anything is created; then create the S3
# bucket and upload, the token's SSM parameter, the IAM role and instance
# profile, the security groups, the target group, the load balancer, its
# listeners and rule, the launch template, the Auto Scaling group, the
# scaling policies and the latency alarm; wait for healthy targets; print the
# URL and how to read the token.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/aws.sh
source "$ROOT/scripts/lib/aws.sh"

usage() {
	cat <<'EOF'
Usage: bash scripts/deploy-ec2.sh [--yes] [--dry-run] [--region REGION] [--name NAME]
                                  [--arch amd64|arm64] [--lb alb|nlb] [--print-user-data]

Builds fastingest for Linux, uploads it to S3 and runs it on an Auto Scaling
group of EC2 instances (Amazon Linux 2023, IMDSv2 required) behind a load
balancer; waits until the instances are healthy and prints the URL, how to
read the bearer token and a test command. Needs the AWS CLI (v1 or v2) with
credentials, and Go unless BINARY is set. It creates billable resources: it
asks first unless --yes.

  --yes, -y          do not ask for confirmation (YES=1)
  --dry-run          print the AWS commands instead of running them (DRY_RUN=1)
  --region REGION    AWS region (else AWS_REGION, else AWS_DEFAULT_REGION)
  --name NAME        prefix of every resource name (NAME, default fastingest)
  --arch ARCH        amd64 (default) or arm64 (Graviton) (ARCH)
  --lb TYPE          alb (default) or nlb (LB)
  --print-user-data  print the rendered cloud-init user-data and exit
  --help, -h         this help

Security (defaults in brackets):
  AUTH               token: POST / needs a bearer token, generated (32 random
                     bytes, 64 hex digits) into an SSM SecureString parameter
                     that only the instances' role may read; it is never
                     printed, the deploy prints the command that reads it
                     [token]; none: no token, anyone who reaches the load
                     balancer may post (warned loudly)
  TOKEN_PARAM_NAME   the parameter the deploy creates [/NAME/auth-token]
  AUTH_TOKEN_PARAM   reuse this existing SecureString parameter instead (the
                     teardown keeps it)
  CERTIFICATE_ARN    an ACM certificate in REGION: HTTPS on 443 and, with an
                     ALB, HTTP 80 answering a 301 redirect to HTTPS. Without
                     it, plain HTTP on 80: the token crosses the network in
                     clear (warned)
  TLS_POLICY         [ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09: TLS 1.3 and 1.2]
  ALLOWED_CIDRS      comma-separated IPv4 CIDRs that may reach the load
                     balancer [0.0.0.0/0]
  METRICS_CIDRS      comma-separated IPv4 CIDRs that may reach the service port
                     on the instances directly, for GET /metrics [the VPC's
                     CIDR]; none: no one. The ALB forwards only POST /, every
                     other path gets a fixed 404 from the ALB
  HEALTH_CHECK_TYPE  ELB: the group replaces instances the load balancer finds
                     unhealthy (GET /readyz) [ELB]; EC2: only failed instances
  HEALTH_CHECK_GRACE_PERIOD  seconds a new instance has to become healthy [300]

Memory: MAX_CONNS, MAX_QUEUE_BYTES, MAX_BODY_BYTES and GOMEMLIMIT are derived
from the instance type's memory so that fastingest's worst case
(docs/security.md#memory) fits beside the OS; values in ENV_FILE win, and a
deploy whose worst case would not fit is refused.
  INSTANCE_MEMORY_MIB, INSTANCE_VCPUS  [from ec2 describe-instance-types;
                     --print-user-data without them assumes 4096 and 2]
  MEMORY_RESERVE_MIB memory left to the OS and its page cache [the larger of
                     512 and an eighth of the instance's memory]

Environment (defaults in brackets):
  INSTANCE_TYPE      [c6i.large; c7g.large for arm64]
  DESIRED            instances at start [4]; MIN_SIZE [DESIRED]; MAX_SIZE [3 x DESIRED]
  PORT               port the service listens on [8080]
  TARGET_REQUESTS_PER_TARGET  ALB target tracking: requests per instance per minute [250000]
  LATENCY_P99_SECONDS         ALB: p99 TargetResponseTime that adds instances [0.25]
  CPU_TARGET         NLB target tracking: average CPU percent [60]
  AMI_ID             machine image [latest Amazon Linux 2023 for ARCH, from SSM]
  VPC_ID, SUBNET_IDS VPC and comma-separated public subnets in 2+ zones
                     [the default VPC and its default subnets]
  BUCKET             S3 bucket for the binary, created if missing
                     [NAME-artifacts-ACCOUNT-REGION]; BINARY_KEY [NAME/fastingest]
  BINARY             use this prebuilt linux binary instead of building
  ENV_FILE           file of KEY=VALUE lines for fastingest (e.g. MAX_WORKERS=2000),
                     written to /etc/fastingest/env; ADDR comes from PORT, the
                     token from AUTH (AUTH_TOKEN and AUTH_TOKEN_FILE are refused:
                     the user-data is not a place for secrets)
  DEREGISTRATION_DELAY  seconds a leaving instance keeps its requests [30]
  INSTANCE_WARMUP    seconds [180]
  WAIT_TIMEOUT       longest wait for healthy targets, seconds [600]
  POLL_INTERVAL      seconds between checks [10]
  AWS_ENDPOINT_URL   passed to every call as --endpoint-url (e.g. a local emulator)
  Names (each derived from NAME): LB_NAME, TG_NAME, LB_SG_NAME, INSTANCE_SG_NAME,
  ROLE_NAME, PROFILE_NAME, LT_NAME, ASG_NAME, TT_POLICY_NAME, STEP_POLICY_NAME,
  ALARM_NAME, TOKEN_PARAM_NAME.
  Templates: CLOUD_INIT_TEMPLATE [deploy/cloud-init.yaml],
  SERVICE_UNIT_FILE [deploy/fastingest.service], SYSCTL_FILE [deploy/sysctl.conf],
  CREDENTIALS_SCRIPT_FILE [deploy/fastingest-credentials.sh].

Sink (docs/deploy.md#shipping-segments-to-s3, #kafka); from the environment or
ENV_FILE, checked before anything is created:
  SINK               file (default), nats, kafka, sim or null
  S3_BUCKET          ship the file sink's closed segments to this bucket (yours,
                     in REGION); the role may s3:PutObject and
                     s3:AbortMultipartUpload on BUCKET/S3_PREFIX* only
  S3_PREFIX [fastingest/], S3_COMPRESSION [gzip], S3_UPLOAD_CONCURRENCY [2]
  KAFKA_BROKERS      SINK=kafka: the brokers, host:port comma-separated (required)
  KAFKA_TOPIC, KAFKA_COMPRESSION, KAFKA_LINGER, KAFKA_MAX_BUFFERED, KAFKA_TLS,
  KAFKA_CREATE_TOPIC, KAFKA_PARTITIONS, KAFKA_REPLICATION: passed to the unit
  KAFKA_SASL_MECHANISM, KAFKA_SASL_USER, KAFKA_SASL_PASSWORD_PARAM: SASL; the
                     password is an SSM SecureString you create, named by
                     KAFKA_SASL_PASSWORD_PARAM, which only the role may read and
                     the instances fetch at boot (the deploy never reads it).
                     KAFKA_TLS_CA is not supported (the system's CAs are used)

With a custom VPC, the subnets must give instances a way to S3 and SSM (a
public IP, or a NAT gateway or VPC endpoints) and the load balancer must be
internet-facing in them.
EOF
}

# failure_hint: what to do after a failure (called by aws_fail).
failure_hint() {
	if [[ ${CREATING:-0} == 0 ]]; then
		log "Nothing was created yet; nothing to clean up."
		return
	fi
	log "What was created before this step is still there and may cost money. To remove it:"
	log "    $(aws_teardown_cmd)"
	log "(If the error says that something already exists, an earlier deploy left it: run the"
	log "teardown above, then deploy again.)"
}

# The tag that marks the token parameter as the deploy's own: the teardown
# deletes a parameter only when it carries this tag with the deployment's NAME.
TOKEN_TAG_KEY=fastingest:deployment

# What the load balancer answers for everything but POST /: the body
# fastingest itself gives an unknown path.
NOT_FOUND_ACTION='[{"Type":"fixed-response","FixedResponseConfig":{"StatusCode":"404","ContentType":"application/json","MessageBody":"{\"error\":\"not found: POST parcels to /\"}"}}]'
# The one rule that forwards: method POST and the path exactly "/" (an ALB
# path pattern without a wildcard matches that path only; a query string is
# not part of the path).
POST_ROOT_CONDITIONS='[{"Field":"path-pattern","PathPatternConfig":{"Values":["/"]}},{"Field":"http-request-method","HttpRequestMethodConfig":{"Values":["POST"]}}]'
REDIRECT_ACTION='[{"Type":"redirect","RedirectConfig":{"Protocol":"HTTPS","Port":"443","StatusCode":"HTTP_301"}}]'

# ---------------------------------------------------------------------------
# Settings

parse_args() {
	PRINT_USER_DATA=0
	while (($# > 0)); do
		case $1 in
		-h | --help) usage; exit 0 ;;
		-y | --yes) YES=1 ;;
		--dry-run) DRY_RUN=1 ;;
		--print-user-data) PRINT_USER_DATA=1 ;;
		--region | --name | --arch | --lb)
			if (($# < 2)); then
				log "deploy-ec2.sh: $1 needs a value (see --help)"
				exit 2
			fi
			case $1 in
			--region) REGION=$2 ;;
			--name) NAME=$2 ;;
			--arch) ARCH=$2 ;;
			--lb) LB=$2 ;;
			esac
			shift
			;;
		*)
			log "deploy-ec2.sh: unknown argument \"$1\" (see --help)"
			exit 2
			;;
		esac
		shift
	done
}

# want_int VAR MIN MAX: VAR must be a whole number in [MIN, MAX].
want_int() {
	local v=${!1}
	if [[ ! $v =~ ^[0-9]{1,12}$ ]] || ((10#$v < $2 || 10#$v > $3)); then
		log "deploy-ec2.sh: invalid $1 \"$v\": want a whole number from $2 to $3."
		exit 2
	fi
}

# want_cidrs VAR: VAR must be a comma-separated list of IPv4 CIDRs.
want_cidrs() {
	local c list
	IFS=, read -r -a list <<<"${!1}"
	if ((${#list[@]} == 0)); then
		log "deploy-ec2.sh: $1 is empty: want IPv4 CIDRs, e.g. 203.0.113.0/24,198.51.100.7/32."
		exit 2
	fi
	for c in "${list[@]}"; do
		if [[ ! $c =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})/([0-9]{1,2})$ ]] ||
			((BASH_REMATCH[1] > 255 || BASH_REMATCH[2] > 255 || BASH_REMATCH[3] > 255 ||
				BASH_REMATCH[4] > 255 || BASH_REMATCH[5] > 32)); then
			log "deploy-ec2.sh: invalid $1 \"${!1}\": \"$c\" is not an IPv4 CIDR; want e.g. 203.0.113.0/24,198.51.100.7/32."
			exit 2
		fi
	done
}

# The sink's settings the deploy takes from its environment (or from
# ENV_FILE, as any other setting), checks, passes to the unit and, for S3
# and the Kafka password, grants the instance role. Secrets are not among
# them: KAFKA_SASL_PASSWORD_PARAM names an SSM parameter the instances read
# at boot.
SINK_VARS="SINK S3_BUCKET S3_PREFIX S3_COMPRESSION S3_UPLOAD_CONCURRENCY KAFKA_BROKERS KAFKA_TOPIC
KAFKA_COMPRESSION KAFKA_LINGER KAFKA_MAX_BUFFERED KAFKA_TLS KAFKA_SASL_MECHANISM KAFKA_SASL_USER
KAFKA_CREATE_TOPIC KAFKA_PARTITIONS KAFKA_REPLICATION"
# SINK_ENV: the lines of those settings that came from the deploy's
# environment, for /etc/fastingest/env (ENV_FILE's own lines follow).
SINK_ENV=""

# sink_bad VAR MESSAGE: stop on an invalid sink setting.
sink_bad() {
	log "deploy-ec2.sh: invalid $1 \"${!1}\": $2"
	exit 2
}

# sink_settings: the effective sink settings, each from the deploy's
# environment or ENV_FILE (set in both, they must agree), checked as
# fastingest checks them, so that a mistake stops the deploy rather than the
# instances (exit status 2, not restarted); SINK_ENV.
sink_settings() {
	local v e d
	for v in KAFKA_SASL_PASSWORD KAFKA_SASL_PASSWORD_FILE KAFKA_TLS_CA; do
		if [[ -n ${!v:-} || -n $(env_file_value "$v") ]]; then
			case $v in
			KAFKA_TLS_CA)
				log "deploy-ec2.sh: KAFKA_TLS_CA is not supported by the EC2 deploy: with KAFKA_TLS=1 the instances trust the system's authorities, which sign MSK's certificates; a private CA would have to be put on the instances by hand."
				;;
			*)
				# The value is not repeated: it may be the password.
				log "deploy-ec2.sh: $v is refused: the deploy hands the SASL password to the service from the SSM SecureString named by KAFKA_SASL_PASSWORD_PARAM (the user-data is no place for secrets)."
				;;
			esac
			exit 2
		fi
	done
	for v in $SINK_VARS; do
		d=${!v:-} e=$(env_file_value "$v")
		if [[ -n $d && -n $e && $d != "$e" ]]; then
			log "deploy-ec2.sh: $v is \"$d\" in the environment and \"$e\" in $ENV_FILE: set it in one place."
			exit 2
		fi
		if [[ -n $d && -z $e ]]; then SINK_ENV+="$v=$d"$'\n'; fi
		printf -v "$v" '%s' "${d:-$e}"
	done
	SINK=$(printf '%s' "${SINK:-file}" | tr '[:upper:]' '[:lower:]')
	case $SINK in
	file | nats | kafka | sim | null) ;;
	*) sink_bad SINK "want file (the default), nats, kafka, sim or null." ;;
	esac

	# S3 shipping: the file sink's closed segments.
	if [[ -z $S3_BUCKET ]]; then
		for v in S3_PREFIX S3_COMPRESSION S3_UPLOAD_CONCURRENCY; do
			if [[ -n ${!v} ]]; then
				log "deploy-ec2.sh: $v is set but S3_BUCKET is not: $v means nothing without S3_BUCKET."
				exit 2
			fi
		done
	else
		if [[ $SINK != file ]]; then
			sink_bad S3_BUCKET "S3_BUCKET ships the file sink's segments: want SINK=file (the default), not $SINK."
		fi
		if [[ ! $S3_BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ || $S3_BUCKET == *..* ||
			$S3_BUCKET =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
			sink_bad S3_BUCKET "an S3 bucket name is 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, without \"..\", not an IP address."
		fi
		# The prefix goes into the role's policy (BUCKET/PREFIX*) and the
		# env file: no IAM wildcard (* ?), no policy variable ($), no
		# quote or blank for systemd to interpret.
		if [[ -z ${S3_PREFIX:-} ]]; then
			S3_PREFIX=fastingest/
			SINK_ENV+="S3_PREFIX=$S3_PREFIX"$'\n'
		fi
		if [[ ! $S3_PREFIX =~ ^[A-Za-z0-9._=!-]+(/[A-Za-z0-9._=!-]+)*/?$ ]] || ((${#S3_PREFIX} > 512)); then
			sink_bad S3_PREFIX "want up to 512 letters, digits and . _ = ! - in path segments separated by /, not starting with / (e.g. fastingest/ or logs/prod/)."
		fi
		case ${S3_COMPRESSION:-gzip} in
		gzip | zstd | none) ;;
		*) sink_bad S3_COMPRESSION "want gzip (the default), zstd or none." ;;
		esac
		if [[ -n $S3_UPLOAD_CONCURRENCY ]]; then want_int S3_UPLOAD_CONCURRENCY 1 64; fi
	fi

	# Kafka.
	local any=""
	for v in $SINK_VARS KAFKA_SASL_PASSWORD_PARAM; do
		if [[ $v == KAFKA_* && -n ${!v:-} ]]; then any=$v; fi
	done
	: "${KAFKA_SASL_PASSWORD_PARAM:=}"
	if [[ $SINK != kafka ]]; then
		if [[ -n $any ]]; then
			log "deploy-ec2.sh: $any is set but SINK is $SINK: the KAFKA_* settings are for SINK=kafka."
			exit 2
		fi
		return 0
	fi
	if [[ -z $KAFKA_BROKERS ]]; then
		log "deploy-ec2.sh: SINK=kafka needs KAFKA_BROKERS: the brokers' host:port list, comma-separated (MSK: aws kafka get-bootstrap-brokers)."
		exit 2
	fi
	local b list
	IFS=, read -r -a list <<<"$KAFKA_BROKERS"
	for b in "${list[@]}"; do
		if [[ ! $b =~ ^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$ ]]; then
			sink_bad KAFKA_BROKERS "\"$b\" is not host:port; want e.g. b-1.mycluster.abc123.c2.kafka.us-east-1.amazonaws.com:9096,b-2...:9096."
		fi
	done
	if [[ -n $KAFKA_TOPIC ]] && [[ ! $KAFKA_TOPIC =~ ^[A-Za-z0-9._-]{1,249}$ || $KAFKA_TOPIC == . || $KAFKA_TOPIC == .. ]]; then
		sink_bad KAFKA_TOPIC "want up to 249 ASCII letters, digits, . _ and -."
	fi
	case $(printf '%s' "${KAFKA_COMPRESSION:-zstd}" | tr '[:upper:]' '[:lower:]') in
	zstd | lz4 | snappy | gzip | none) ;;
	*) sink_bad KAFKA_COMPRESSION "want zstd (the default), lz4, snappy, gzip or none." ;;
	esac
	if [[ -n $KAFKA_LINGER && ! $KAFKA_LINGER =~ ^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$ ]]; then
		sink_bad KAFKA_LINGER "want a duration such as 5ms, up to 1m."
	fi
	if [[ -n $KAFKA_MAX_BUFFERED ]] && { ! e=$(size_bytes "$KAFKA_MAX_BUFFERED") || ((e < 1 << 20)); }; then
		sink_bad KAFKA_MAX_BUFFERED "want a size of at least 1MiB, such as 64MiB."
	fi
	for v in KAFKA_TLS KAFKA_CREATE_TOPIC; do
		if [[ -n ${!v} && ${!v} != 0 && ${!v} != 1 ]]; then sink_bad "$v" "want 0 or 1."; fi
	done
	if [[ -n $KAFKA_PARTITIONS ]]; then want_int KAFKA_PARTITIONS 0 10000; fi
	if [[ -n $KAFKA_REPLICATION ]]; then want_int KAFKA_REPLICATION 0 32; fi
	# SASL: the mechanism, the user and the password's parameter go together.
	if [[ -n $KAFKA_SASL_MECHANISM || -n $KAFKA_SASL_USER || -n $KAFKA_SASL_PASSWORD_PARAM ]]; then
		if [[ -z $KAFKA_SASL_MECHANISM || -z $KAFKA_SASL_USER || -z $KAFKA_SASL_PASSWORD_PARAM ]]; then
			log "deploy-ec2.sh: KAFKA_SASL_MECHANISM, KAFKA_SASL_USER and KAFKA_SASL_PASSWORD_PARAM go together: set all three, or none."
			exit 2
		fi
		case $(printf '%s' "$KAFKA_SASL_MECHANISM" | tr '[:lower:]' '[:upper:]') in
		PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512) ;;
		*) sink_bad KAFKA_SASL_MECHANISM "want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (MSK: SCRAM-SHA-512)." ;;
		esac
		if [[ ! $KAFKA_SASL_USER =~ ^[A-Za-z0-9._@+=,-]{1,255}$ ]]; then
			sink_bad KAFKA_SASL_USER "want up to 255 letters, digits and . _ @ + = , -."
		fi
		if ! valid_param_name "$KAFKA_SASL_PASSWORD_PARAM"; then
			sink_bad KAFKA_SASL_PASSWORD_PARAM "want an SSM parameter name of letters, digits and . _ - /, e.g. /fastingest/kafka-password (not an ARN)."
		fi
	fi
}

settings() {
	if [[ $PRINT_USER_DATA == 1 ]]; then
		REGION=${REGION:-${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}}
	fi
	aws_common_settings
	: "${ARCH:=amd64}"
	: "${LB:=alb}"
	case $ARCH in
	amd64) AMI_ARCH=x86_64 DEFAULT_TYPE=c6i.large ;;
	arm64) AMI_ARCH=arm64 DEFAULT_TYPE=c7g.large ;;
	*) log "deploy-ec2.sh: invalid ARCH \"$ARCH\": want amd64 or arm64."; exit 2 ;;
	esac
	case $LB in
	alb) LB_TYPE=app ;;
	nlb) LB_TYPE=net ;;
	*) log "deploy-ec2.sh: invalid LB \"$LB\": want alb or nlb."; exit 2 ;;
	esac
	: "${INSTANCE_TYPE:=$DEFAULT_TYPE}"
	: "${PORT:=8080}"
	: "${DESIRED:=4}"
	want_int DESIRED 1 1000
	: "${MIN_SIZE:=$DESIRED}"
	: "${MAX_SIZE:=$((3 * 10#$DESIRED))}"
	: "${TARGET_REQUESTS_PER_TARGET:=250000}"
	: "${LATENCY_P99_SECONDS:=0.25}"
	: "${CPU_TARGET:=60}"
	: "${DEREGISTRATION_DELAY:=30}"
	: "${HEALTH_CHECK_GRACE_PERIOD:=300}"
	: "${HEALTH_CHECK_TYPE:=ELB}"
	: "${INSTANCE_WARMUP:=180}"
	: "${CLOUD_INIT_TEMPLATE:=$ROOT/deploy/cloud-init.yaml}"
	: "${SERVICE_UNIT_FILE:=$ROOT/deploy/fastingest.service}"
	: "${SYSCTL_FILE:=$ROOT/deploy/sysctl.conf}"
	: "${CREDENTIALS_SCRIPT_FILE:=$ROOT/deploy/fastingest-credentials.sh}"
	: "${AUTH:=token}"
	: "${CERTIFICATE_ARN:=}"
	: "${TLS_POLICY:=ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09}"
	# CLIENT_CIDR: the earlier name of ALLOWED_CIDRS (one CIDR), still read.
	: "${ALLOWED_CIDRS:=${CLIENT_CIDR:-0.0.0.0/0}}"
	: "${METRICS_CIDRS:=}"

	# The service runs unprivileged, so it cannot bind ports below 1024.
	want_int PORT 1024 65535
	want_int MIN_SIZE 0 1000
	want_int MAX_SIZE 1 1000
	if ((MIN_SIZE > DESIRED || DESIRED > MAX_SIZE)); then
		log "deploy-ec2.sh: want MIN_SIZE <= DESIRED <= MAX_SIZE, have $MIN_SIZE, $DESIRED, $MAX_SIZE."
		exit 2
	fi
	want_int TARGET_REQUESTS_PER_TARGET 1 1000000000
	want_int CPU_TARGET 1 100
	want_int DEREGISTRATION_DELAY 0 3600
	want_int HEALTH_CHECK_GRACE_PERIOD 0 86400
	want_int INSTANCE_WARMUP 0 86400
	if [[ -n ${INSTANCE_MEMORY_MIB:-} ]]; then want_int INSTANCE_MEMORY_MIB 256 100000000; fi
	if [[ -n ${INSTANCE_VCPUS:-} ]]; then want_int INSTANCE_VCPUS 1 10000; fi
	if [[ -n ${MEMORY_RESERVE_MIB:-} ]]; then want_int MEMORY_RESERVE_MIB 0 100000000; fi
	if [[ ! $LATENCY_P99_SECONDS =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
		log "deploy-ec2.sh: invalid LATENCY_P99_SECONDS \"$LATENCY_P99_SECONDS\": want seconds, e.g. 0.25."
		exit 2
	fi
	if [[ ! $INSTANCE_TYPE =~ ^[a-z0-9-]+\.[a-z0-9]+$ ]]; then
		log "deploy-ec2.sh: invalid INSTANCE_TYPE \"$INSTANCE_TYPE\": want e.g. c6i.large."
		exit 2
	fi
	# Graviton types have a "g" after the generation (c7g, m6gd, t4g, c7gn).
	local graviton=0
	if [[ $INSTANCE_TYPE =~ ^[a-z]+[0-9]+g ]]; then graviton=1; fi
	if [[ $ARCH == arm64 && $graviton == 0 ]] || [[ $ARCH == amd64 && $graviton == 1 ]]; then
		log "deploy-ec2.sh: warning: INSTANCE_TYPE $INSTANCE_TYPE does not look like a match for ARCH=$ARCH; instances may fail to start."
	fi
	want_cidrs ALLOWED_CIDRS
	if [[ -n $METRICS_CIDRS && $METRICS_CIDRS != none ]]; then want_cidrs METRICS_CIDRS; fi
	case $AUTH in
	token) TOKEN_PARAM=${AUTH_TOKEN_PARAM:-$TOKEN_PARAM_NAME} ;;
	none) TOKEN_PARAM="" ;;
	*) log "deploy-ec2.sh: invalid AUTH \"$AUTH\": want token (the default) or none."; exit 2 ;;
	esac
	if [[ -n $CERTIFICATE_ARN ]]; then
		if [[ ! $CERTIFICATE_ARN =~ ^arn:aws[a-z-]*:acm:([a-z0-9-]+):[0-9]{12}:certificate/[A-Za-z0-9-]+$ ]]; then
			log "deploy-ec2.sh: invalid CERTIFICATE_ARN \"$CERTIFICATE_ARN\": want an ACM certificate ARN, arn:aws:acm:REGION:ACCOUNT:certificate/ID."
			exit 2
		fi
		if [[ ${BASH_REMATCH[1]} != "$REGION" ]]; then
			log "deploy-ec2.sh: CERTIFICATE_ARN is in ${BASH_REMATCH[1]}, the load balancer in $REGION: a load balancer takes a certificate of its own region (request or import one there)."
			exit 2
		fi
	fi
	if [[ ! $TLS_POLICY =~ ^[A-Za-z0-9-]+$ ]]; then
		log "deploy-ec2.sh: invalid TLS_POLICY \"$TLS_POLICY\": want a policy name such as ELBSecurityPolicy-TLS13-1-2-2021-06."
		exit 2
	fi
	case $HEALTH_CHECK_TYPE in
	ELB | EC2) ;;
	*) log "deploy-ec2.sh: invalid HEALTH_CHECK_TYPE \"$HEALTH_CHECK_TYPE\": want ELB or EC2."; exit 2 ;;
	esac
	if [[ -n ${VPC_ID:-} && -z ${SUBNET_IDS:-} ]]; then
		log "deploy-ec2.sh: VPC_ID is set: set SUBNET_IDS too (public subnets in two or more availability zones, comma-separated)."
		exit 2
	fi
	if [[ -n ${BUCKET:-} && ! $BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]]; then
		log "deploy-ec2.sh: invalid BUCKET \"$BUCKET\": an S3 bucket name is 3-63 lowercase letters, digits, dots and hyphens."
		exit 2
	fi
	local f
	for f in "$CLOUD_INIT_TEMPLATE" "$SERVICE_UNIT_FILE" "$SYSCTL_FILE" "$CREDENTIALS_SCRIPT_FILE" ${ENV_FILE:+"$ENV_FILE"}; do
		if [[ ! -r $f ]]; then
			log "deploy-ec2.sh: cannot read $f"
			exit 2
		fi
	done
	env_file_content >/dev/null
	sink_settings
	memory_inputs
}

# env_file_content: ENV_FILE's settings for /etc/fastingest/env (comments and
# blank lines dropped); the template writes ADDR from PORT before them.
env_file_content() {
	if [[ -z ${ENV_FILE:-} ]]; then return 0; fi
	local line n=0
	while IFS= read -r line || [[ -n $line ]]; do
		n=$((n + 1))
		line=${line%$'\r'}
		if [[ -z ${line//[[:space:]]/} || $line =~ ^[[:space:]]*# ]]; then continue; fi
		if [[ ! $line =~ ^[A-Z_][A-Z0-9_]*= ]]; then
			log "deploy-ec2.sh: $ENV_FILE line $n: want KEY=VALUE, have \"$line\""
			exit 2
		fi
		case $line in
		ADDR=*)
			log "deploy-ec2.sh: $ENV_FILE line $n: set PORT instead of ADDR (the load balancer must know the port)"
			exit 2
			;;
		AUTH_TOKEN=* | AUTH_TOKEN_FILE=*)
			# The line is not repeated: it may hold the token.
			log "deploy-ec2.sh: $ENV_FILE line $n: ${line%%=*} is refused: ENV_FILE goes into the user-data, which anyone who may describe the launch template can read. The deploy keeps the token in SSM Parameter Store (AUTH=token, or AUTH_TOKEN_PARAM for a parameter of yours)."
			exit 2
			;;
		esac
		printf '%s\n' "$line"
	done <"$ENV_FILE"
}

# env_file_value KEY: the value ENV_FILE gives KEY (the last one wins, as in
# systemd's EnvironmentFile=), or nothing.
env_file_value() {
	local line value=""
	while IFS= read -r line; do
		if [[ $line == "$1="* ]]; then value=${line#*=}; fi
	done < <(env_file_content)
	printf '%s' "$value"
}

# ---------------------------------------------------------------------------
# Memory: fastingest's worst case, fitted to the instance

# The per-item costs of fastingest's memory bound, as memory.go has them and
# `fastingest -h` prints them (docs/security.md#memory), in bytes:
#   32 MiB + 2 x ( MAX_CONNS x (MAX_HEADER_BYTES + 12 KiB)
#                + 2 x MAX_QUEUE_BYTES
#                + min(MAX_QUEUE_BYTES / MAX_BODY_BYTES, MAX_CONNS) x 48 KiB
#                + max(4, 2 x GOMAXPROCS) x 9 MiB
#                + MAX_QUEUE x 56 + MAX_WORKERS x 8 KiB
#                + the sink's buffers: file 2 MiB (+ S3_UPLOAD_CONCURRENCY x 9 MiB
#                  with S3_BUCKET), nats MAX_QUEUE_BYTES,
#                  kafka min(MAX_QUEUE_BYTES, KAFKA_MAX_BUFFERED) )
# test/deploy/moto_e2e.sh checks the result against the built binary's -h.
MEM_BASE=$((32 << 20))
MEM_CONN=$((12 << 10))
MEM_DECOMPRESSOR=$((48 << 10))
MEM_ZSTD=$((9 << 20))
MEM_TASK=56
MEM_WORKER=$((8 << 10))
MEM_FILE_GROUPS=$((2 << 20))
MEM_S3_UPLOAD=$((9 << 20))
# Set by memory_inputs from ENV_FILE.
MEM_IN_MAX_CONNS="" MEM_IN_MAX_QUEUE_BYTES="" MEM_IN_MAX_BODY_BYTES="" MEM_IN_MAX_HEADER_BYTES=""
MEM_IN_MAX_QUEUE="" MEM_IN_MAX_WORKERS="" MEM_IN_GOMAXPROCS="" MEM_IN_SINK="" MEM_IN_S3_BUCKET=""
MEM_IN_S3_UPLOAD_CONCURRENCY="" MEM_IN_KAFKA_MAX_BUFFERED=""

# size_bytes VALUE: a size as fastingest reads it (bytes, or a number with a
# KiB, MiB, GiB or TiB suffix) in bytes; fails on anything else.
size_bytes() {
	local n shift=0
	[[ $1 =~ ^[[:space:]]*([0-9]{1,15})[[:space:]]*(KiB|MiB|GiB|TiB)?[[:space:]]*$ ]] || return 1
	n=$((10#${BASH_REMATCH[1]}))
	case ${BASH_REMATCH[2]} in
	KiB) shift=10 ;;
	MiB) shift=20 ;;
	GiB) shift=30 ;;
	TiB) shift=40 ;;
	esac
	((n >= 1 && n <= (1 << (50 - shift)))) || return 1
	echo $((n << shift))
}

# memory_inputs: the settings of ENV_FILE the bound depends on, in bytes or
# counts (empty when ENV_FILE leaves them to the deploy or to fastingest's
# defaults). An unreadable value stops the deploy: the bound cannot be
# checked without it.
memory_inputs() {
	local key v
	for key in MAX_CONNS MAX_QUEUE_BYTES MAX_BODY_BYTES MAX_HEADER_BYTES MAX_QUEUE MAX_WORKERS GOMAXPROCS \
		SINK S3_BUCKET S3_UPLOAD_CONCURRENCY KAFKA_MAX_BUFFERED; do
		case $key in
		# The sink's, from the environment or ENV_FILE (sink_settings).
		SINK | S3_BUCKET | S3_UPLOAD_CONCURRENCY | KAFKA_MAX_BUFFERED) v=${!key} ;;
		*) v=$(env_file_value "$key") ;;
		esac
		case $key in
		SINK | S3_BUCKET) ;; # checked by sink_settings
		MAX_QUEUE_BYTES | MAX_BODY_BYTES | MAX_HEADER_BYTES | KAFKA_MAX_BUFFERED)
			if [[ -n $v ]] && ! v=$(size_bytes "$v"); then
				log "deploy-ec2.sh: $ENV_FILE: invalid $key \"$(env_file_value "$key")\": want a size such as 256MiB (the deploy needs it to check the memory bound)."
				exit 2
			fi
			;;
		*)
			if [[ -n $v && ! $v =~ ^[0-9]{1,9}$ ]] || [[ $v == 0 ]]; then
				log "deploy-ec2.sh: $ENV_FILE: invalid $key \"$v\": want a positive whole number (the deploy needs it to check the memory bound)."
				exit 2
			fi
			;;
		esac
		printf -v "MEM_IN_$key" '%s' "$v"
	done
}

# sink_memory QUEUE_BYTES: the sink's buffers in the bound, for ENV_FILE's SINK
# (fastingest's default: file).
sink_memory() {
	case ${MEM_IN_SINK:-file} in
	file)
		if [[ -n $MEM_IN_S3_BUCKET ]]; then
			echo $((MEM_FILE_GROUPS + ${MEM_IN_S3_UPLOAD_CONCURRENCY:-2} * MEM_S3_UPLOAD))
		else
			echo "$MEM_FILE_GROUPS"
		fi
		;;
	nats) echo "$1" ;;
	kafka)
		local buffered=${MEM_IN_KAFKA_MAX_BUFFERED:-$((64 << 20))}
		echo $(($1 < buffered ? $1 : buffered))
		;;
	*) echo 0 ;;
	esac
}

# memory_bound CONNS HEADER_BYTES QUEUE_BYTES BODY_BYTES GOMAXPROCS QUEUE WORKERS:
# fastingest's worst case in bytes.
memory_bound() {
	local conns=$1 header=$2 queue_bytes=$3 body=$4 procs=$5 queue=$6 workers=$7 decoders zstd sink
	decoders=$((queue_bytes / body))
	if ((decoders > conns)); then decoders=$conns; fi
	zstd=$((2 * procs))
	if ((zstd < 4)); then zstd=4; fi
	sink=$(sink_memory "$queue_bytes")
	echo $((MEM_BASE + 2 * (conns * (header + MEM_CONN) + 2 * queue_bytes + decoders * MEM_DECOMPRESSOR +
		zstd * MEM_ZSTD + queue * MEM_TASK + workers * MEM_WORKER + sink)))
}

# mib BYTES: BYTES in MiB, rounded up (as fastingest's memory_bound).
mib() { echo $((($1 + (1 << 20) - 1) >> 20)); }

# memory_settings MEMORY_MIB VCPUS: fit MAX_CONNS, MAX_QUEUE_BYTES and
# MAX_BODY_BYTES to an instance with that memory, less MEMORY_RESERVE_MIB
# for the OS and its page cache, where ENV_FILE does not set them; set
# MEMORY_ENV (their lines for /etc/fastingest/env, with GOMEMLIMIT) and
# MEMORY_SUMMARY. Half of what the fixed terms leave goes to queued bodies,
# half to connections. Fails when the worst case does not fit.
memory_settings() {
	local mem=$1 vcpus=$2 reserve budget
	reserve=${MEMORY_RESERVE_MIB:-$((mem / 8 > 512 ? mem / 8 : 512))}
	budget=$(((mem - reserve) << 20))
	local header=${MEM_IN_MAX_HEADER_BYTES:-$((8 << 10))} queue=${MEM_IN_MAX_QUEUE:-10000}
	local workers=${MEM_IN_MAX_WORKERS:-1000} procs=${MEM_IN_GOMAXPROCS:-$vcpus}
	local conns=$MEM_IN_MAX_CONNS queue_bytes=$MEM_IN_MAX_QUEUE_BYTES body=$MEM_IN_MAX_BODY_BYTES
	local zstd=$((2 * procs)) avail share sink_fixed=0 sink_per_byte=0
	if ((zstd < 4)); then zstd=4; fi
	# The sink's term: a fixed size, or (nats) one more copy of the queued
	# bodies; kafka's min(MAX_QUEUE_BYTES, KAFKA_MAX_BUFFERED) counts as the
	# latter here, the check below takes the exact term.
	case ${MEM_IN_SINK:-file} in
	nats) sink_per_byte=1 ;;
	kafka) sink_fixed=${MEM_IN_KAFKA_MAX_BUFFERED:-$((64 << 20))} ;;
	*) sink_fixed=$(sink_memory 0) ;;
	esac
	# What the live terms may hold: half the budget past the base (the
	# collector's headroom takes the other half), less the fixed terms.
	avail=$(((budget - MEM_BASE) / 2 - zstd * MEM_ZSTD - queue * MEM_TASK - workers * MEM_WORKER - sink_fixed))
	local too_small="INSTANCE_TYPE $INSTANCE_TYPE ($mem MiB) is too small for fastingest beside ${reserve} MiB for the OS (MEMORY_RESERVE_MIB): choose a larger type"
	if [[ -z $queue_bytes ]]; then
		share=$((avail / 2))
		if [[ -n $conns ]]; then share=$((avail - conns * (header + MEM_CONN))); fi
		# 2 x MAX_QUEUE_BYTES (3 x with nats), and a decompressor per
		# MAX_BODY_BYTES of it.
		local per_body=${body:-$((1 << 20))}
		# shellcheck disable=SC2017 # dividing first: share x per_body overflows for the largest types
		queue_bytes=$((share / ((2 + sink_per_byte) * per_body + MEM_DECOMPRESSOR) * per_body))
		queue_bytes=$((queue_bytes >> 20 << 20))
		if ((queue_bytes < 16 << 20)); then
			if [[ -n $conns ]]; then
				too_small="fastingest's worst case does not fit: ENV_FILE's MAX_CONNS=$conns leaves $INSTANCE_TYPE ($mem MiB, $reserve MiB of it for the OS) too little for queued bodies: lower MAX_CONNS, or choose a larger type"
			fi
			aws_fail "$too_small (MAX_QUEUE_BYTES would be under 16MiB)"
		fi
	fi
	if [[ -z $body ]]; then
		# 1 MiB, fastingest's default, unless the queue would hold fewer
		# than 32 bodies of that size.
		body=$((queue_bytes / 32 >> 10 << 10))
		if ((body > 1 << 20)); then body=$((1 << 20)); fi
	fi
	if [[ -z $conns ]]; then
		local decoders=$((queue_bytes / body))
		conns=$(((avail - (2 + sink_per_byte) * queue_bytes - decoders * MEM_DECOMPRESSOR) / (header + MEM_CONN)))
		conns=$((conns >> 10 << 10))
		if ((conns > 1000000)); then conns=1000000; fi
		if ((conns < 1024)); then
			if [[ -n $MEM_IN_MAX_QUEUE_BYTES ]]; then
				too_small="fastingest's worst case does not fit: ENV_FILE's MAX_QUEUE_BYTES=$(size_str "$queue_bytes") leaves $INSTANCE_TYPE ($mem MiB, $reserve MiB of it for the OS) too little for connections: lower MAX_QUEUE_BYTES, or choose a larger type"
			fi
			aws_fail "$too_small (MAX_CONNS would be under 1024)"
		fi
	fi
	local bound
	bound=$(memory_bound "$conns" "$header" "$queue_bytes" "$body" "$procs" "$queue" "$workers")
	MEMORY_SUMMARY="$INSTANCE_TYPE: $mem MiB, $vcpus vCPUs; $reserve MiB left to the OS; fastingest's worst case $(mib "$bound") MiB of $((budget >> 20)) MiB with MAX_CONNS=$conns MAX_QUEUE_BYTES=$(size_str "$queue_bytes") MAX_BODY_BYTES=$(size_str "$body")"
	if ((budget <= 0 || bound > budget)); then
		aws_fail "fastingest's worst case does not fit: $MEMORY_SUMMARY. Lower MAX_CONNS or MAX_QUEUE_BYTES in ENV_FILE, or choose a larger INSTANCE_TYPE."
	fi
	MEMORY_ENV="# Memory (scripts/deploy-ec2.sh): $MEMORY_SUMMARY."
	if [[ -z $MEM_IN_MAX_CONNS ]]; then MEMORY_ENV+=$'\n'"MAX_CONNS=$conns"; fi
	if [[ -z $MEM_IN_MAX_QUEUE_BYTES ]]; then MEMORY_ENV+=$'\n'"MAX_QUEUE_BYTES=$(size_str "$queue_bytes")"; fi
	if [[ -z $MEM_IN_MAX_BODY_BYTES ]]; then MEMORY_ENV+=$'\n'"MAX_BODY_BYTES=$(size_str "$body")"; fi
	# A soft limit at the budget: the collector works harder rather than
	# let the heap pass it.
	if [[ -z $(env_file_value GOMEMLIMIT) ]]; then MEMORY_ENV+=$'\n'"GOMEMLIMIT=$((budget >> 20))MiB"; fi
}

# size_str BYTES: BYTES as fastingest writes sizes: 422MiB, 512KiB, 1000.
size_str() {
	if (($1 % (1 << 30) == 0)); then
		echo "$(($1 >> 30))GiB"
	elif (($1 % (1 << 20) == 0)); then
		echo "$(($1 >> 20))MiB"
	elif (($1 % (1 << 10) == 0)); then
		echo "$(($1 >> 10))KiB"
	else
		echo "$1"
	fi
}

# instance_env: everything /etc/fastingest/env holds after ADDR: the memory
# settings, the metrics access, then ENV_FILE's lines (which win, being
# later).
instance_env() {
	printf '%s\n' "$MEMORY_ENV"
	if [[ $LB == alb && -z $(env_file_value METRICS_PUBLIC) ]]; then
		# The ALB forwards POST / only; /metrics is reached on the
		# instances from METRICS_CIDRS alone, so a scraper there needs no
		# token (a token that can also post parcels).
		printf '%s\n' "# /metrics: not forwarded by the load balancer, reachable from METRICS_CIDRS only, so no token." "METRICS_PUBLIC=1"
	fi
	if [[ -n $SINK_ENV ]]; then
		printf '# Sink (the deploy'"'"'s environment)\n%s' "$SINK_ENV"
	fi
	if [[ -n $S3_BUCKET && -z $(env_file_value AWS_REGION) ]]; then
		# The SDK's region; the bucket is expected in the deploy's region.
		printf 'AWS_REGION=%s\n' "$REGION"
	fi
	if [[ -n ${ENV_FILE:-} ]]; then
		printf '# ENV_FILE\n'
		env_file_content
	fi
}

# credentials_dropin: the systemd drop-in that hands the token, fetched at
# boot into a root-only file, to the service through AUTH_TOKEN_FILE. A
# missing file fails the start (status 243/CREDENTIALS): never a start
# without the token.
credentials_dropin() {
	printf '%s\n' "# Written by scripts/deploy-ec2.sh. fastingest-credentials fetches each credential"
	printf '%s\n' "# from SSM Parameter Store at boot into /etc/fastingest/credentials (root only);"
	printf '%s\n' "# systemd hands it to the service, readable by its dynamic user alone."
	printf '%s\n' "[Service]"
	if [[ $AUTH == token ]]; then
		printf '%s\n' "LoadCredential=auth-token:/etc/fastingest/credentials/auth-token" \
			"Environment=AUTH_TOKEN_FILE=%d/auth-token"
	else
		printf '%s\n' "# AUTH=none: no credentials for a bearer token. fastingest runs WITHOUT a bearer token."
	fi
	if [[ -n $KAFKA_SASL_PASSWORD_PARAM ]]; then
		printf '%s\n' "LoadCredential=kafka-sasl-password:/etc/fastingest/credentials/kafka-sasl-password" \
			"Environment=KAFKA_SASL_PASSWORD_FILE=%d/kafka-sasl-password"
	fi
}

# credentials_args: the arguments of fastingest-credentials: ID=PARAMETER
# for each credential to fetch.
credentials_args() {
	local -a args=()
	if [[ $AUTH == token ]]; then args+=("auth-token=$TOKEN_PARAM"); fi
	if [[ -n $KAFKA_SASL_PASSWORD_PARAM ]]; then args+=("kafka-sasl-password=$KAFKA_SASL_PASSWORD_PARAM"); fi
	if ((${#args[@]} > 0)); then printf '%s' "${args[*]}"; fi
}

# ---------------------------------------------------------------------------
# User-data

# render_user_data S3_URI OUT: write to OUT deploy/cloud-init.yaml with its
# placeholders replaced. The values are handed to awk through the environment (awk -v
# would interpret backslashes). A block placeholder (a file's content) must
# stand alone on its line, under a "content: |" key: each line of the content
# gets that line's indentation, or 6 spaces when the placeholder is not
# indented.
render_user_data() {
	local tok
	for tok in BINARY_S3_URI REGION PORT CREDENTIALS ENV_FILE_CONTENT SERVICE_UNIT SYSCTL_CONF \
		CREDENTIALS_SCRIPT CREDENTIALS_DROPIN; do
		if ! grep -q "@@${tok}@@" "$CLOUD_INIT_TEMPLATE"; then
			aws_fail "$CLOUD_INIT_TEMPLATE has no @@${tok}@@ placeholder"
		fi
	done
	local out=$2 env_content
	env_content=$(instance_env)
	UD_BINARY_S3_URI=$1 UD_REGION=$REGION UD_PORT=$PORT UD_CREDENTIALS=$(credentials_args) \
		UD_ENV_FILE_CONTENT=$env_content \
		UD_SERVICE_UNIT=$(cat "$SERVICE_UNIT_FILE") \
		UD_SYSCTL_CONF=$(cat "$SYSCTL_FILE") \
		UD_CREDENTIALS_SCRIPT=$(cat "$CREDENTIALS_SCRIPT_FILE") \
		UD_CREDENTIALS_DROPIN=$(credentials_dropin) \
		awk '
		function literal_replace(s, tok, val,   i, r) {
			r = ""
			while ((i = index(s, tok)) > 0) {
				r = r substr(s, 1, i - 1) val
				s = substr(s, i + length(tok))
			}
			return r s
		}
		{
			line = $0
			if (match(line, /@@(ENV_FILE_CONTENT|SERVICE_UNIT|SYSCTL_CONF|CREDENTIALS_SCRIPT|CREDENTIALS_DROPIN)@@/)) {
				tok = substr(line, RSTART + 2, RLENGTH - 4)
				pre = substr(line, 1, RSTART - 1)
				post = substr(line, RSTART + RLENGTH)
				if (pre !~ /^ *$/ || post !~ /^[ \t]*$/) {
					printf "line %d: @@%s@@ must stand alone on its line\n", NR, tok > "/dev/stderr"
					bad = 1
					next
				}
				pad = (pre == "") ? "      " : pre
				n = split(ENVIRON["UD_" tok], lines, "\n")
				for (i = 1; i <= n; i++) {
					if (lines[i] == "") print ""; else print pad lines[i]
				}
				next
			}
			line = literal_replace(line, "@@BINARY_S3_URI@@", ENVIRON["UD_BINARY_S3_URI"])
			line = literal_replace(line, "@@REGION@@", ENVIRON["UD_REGION"])
			line = literal_replace(line, "@@PORT@@", ENVIRON["UD_PORT"])
			line = literal_replace(line, "@@CREDENTIALS@@", ENVIRON["UD_CREDENTIALS"])
			sub(/[ \t]+$/, "", line)
			print line
		}
		END { exit bad }
		' "$CLOUD_INIT_TEMPLATE" >"$out" || aws_fail "cannot render $CLOUD_INIT_TEMPLATE"
	if grep -Eq '@@[A-Z0-9_]+@@' "$out"; then
		aws_fail "$CLOUD_INIT_TEMPLATE has an unknown placeholder: $(grep -Eo '@@[A-Z0-9_]+@@' "$out" | head -n 1)"
	fi
	# EC2 takes at most 16 KiB of user-data; it goes gzip-compressed
	# (cloud-init reads gzip), which leaves room for the commented unit.
	local size
	size=$(gzip -9nc "$out" | wc -c | tr -d ' ')
	if ((size > 16384)); then
		aws_fail "the user-data is $size bytes gzip-compressed; EC2 takes at most 16384"
	fi
}

# ---------------------------------------------------------------------------
# Steps

build() {
	step "build fastingest for linux/$ARCH"
	if [[ -n ${BINARY:-} ]]; then
		if [[ $DRY_RUN == 0 && ! -f $BINARY ]]; then aws_fail "BINARY $BINARY is not a file"; fi
		log "using the prebuilt BINARY $BINARY"
		BIN=$BINARY
		return
	fi
	BIN="$AWS_LIB_TMP/fastingest-linux-$ARCH"
	local -a cmd=(env CGO_ENABLED=0 GOOS=linux "GOARCH=$ARCH" go -C "$ROOT" build -trimpath -ldflags=-s -o "$BIN" .)
	if [[ $DRY_RUN == 1 ]]; then
		print_cmd "${cmd[@]}" >&9
		return
	fi
	command -v go >/dev/null 2>&1 || aws_fail "Go is needed to build fastingest (or set BINARY to a prebuilt linux/$ARCH binary)"
	"${cmd[@]}"
}

lookups() {
	step "check that no deployment named $NAME exists"
	# The role is the first resource a deploy creates that it names after
	# NAME alone: if it exists, a deployment (or what a failed one left) is
	# there, and going on would overwrite its binary before failing. (A dry
	# run shows the call only.)
	if aws_lookup iam get-role --role-name "$ROLE_NAME" --query Role.RoleName && [[ $DRY_RUN == 0 ]]; then
		aws_fail "the role $ROLE_NAME exists: a deployment named $NAME (or what a failed deploy left) is there.
Remove it first with:
    $(aws_teardown_cmd)
or choose another NAME"
	fi

	step "account and bucket name"
	# The account names the default bucket and the token parameter's ARN.
	ACCOUNT=""
	if [[ -z ${BUCKET:-} || $AUTH == token || -n $KAFKA_SASL_PASSWORD_PARAM ]]; then
		ACCOUNT=$(aws_cli sts get-caller-identity --query Account)
	fi
	if [[ -z ${BUCKET:-} ]]; then
		BUCKET=$(default_bucket "$ACCOUNT")
		if [[ ! $BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]]; then
			aws_fail "the default bucket name $BUCKET is not a valid S3 bucket name: set BUCKET"
		fi
	fi
	log "binary: s3://$BUCKET/$BINARY_KEY"
	if [[ -n $S3_BUCKET ]]; then
		# The role may put objects under the prefix: the binary must not be
		# among them, or an instance could replace what the others boot.
		if [[ $S3_BUCKET == "$BUCKET" && $BINARY_KEY == "$S3_PREFIX"* ]]; then
			aws_fail "S3_PREFIX $S3_PREFIX covers the binary s3://$BUCKET/$BINARY_KEY, which the instances could then overwrite: ship to another bucket (or prefix)"
		fi
		log "closed segments ship to s3://$S3_BUCKET/$S3_PREFIX (the bucket must exist, in $REGION)"
	fi

	step "network: VPC and subnets in two or more availability zones"
	local -a vpc_sel
	if [[ -n ${VPC_ID:-} ]]; then vpc_sel=(--vpc-ids "$VPC_ID"); else vpc_sel=(--filters "Name=is-default,Values=true"); fi
	if ! aws_lookup ec2 describe-vpcs "${vpc_sel[@]}" --query 'Vpcs[0].[VpcId,CidrBlock]'; then
		if [[ -n ${VPC_ID:-} ]]; then aws_fail "VPC $VPC_ID not found in $REGION"; fi
		aws_fail "no default VPC in $REGION: set VPC_ID and SUBNET_IDS"
	fi
	IFS=$'\t' read -r VPC_ID VPC_CIDR <<<"$AWS_OUT"

	local -a subnet_sel
	if [[ -n ${SUBNET_IDS:-} ]]; then
		# shellcheck disable=SC2206 # subnet IDs have no spaces or wildcards
		subnet_sel=(--subnet-ids ${SUBNET_IDS//,/ })
	else
		subnet_sel=(--filters "Name=vpc-id,Values=$VPC_ID" "Name=default-for-az,Values=true")
	fi
	if ! aws_lookup ec2 describe-subnets "${subnet_sel[@]}" --query 'Subnets[].[SubnetId,AvailabilityZone]'; then
		aws_fail "no subnets found in VPC $VPC_ID: set SUBNET_IDS"
	fi
	local subnets=$AWS_OUT offered=""
	if [[ -z ${SUBNET_IDS:-} ]]; then
		# Not every zone offers every instance type (us-east-1e has no c6i).
		if ! aws_lookup ec2 describe-instance-type-offerings --location-type availability-zone \
			--filters "Name=instance-type,Values=$INSTANCE_TYPE" --query 'InstanceTypeOfferings[].Location'; then
			aws_fail "INSTANCE_TYPE $INSTANCE_TYPE is not offered in $REGION"
		fi
		offered=" $(printf '%s' "$AWS_OUT" | tr '\t\n' '  ') "
	fi
	# The group uses every subnet given (SUBNET_IDS) or one per zone (default
	# subnets); the load balancer takes at most one per zone.
	local id az zones=" " picked="" lb_picked=""
	while read -r id az; do
		if [[ -z $id ]]; then continue; fi
		if [[ -n $offered && $offered != *" $az "* ]]; then continue; fi
		if [[ $zones == *" $az "* ]]; then
			if [[ -n ${SUBNET_IDS:-} ]]; then picked="$picked,$id"; fi
			continue
		fi
		zones="$zones$az "
		picked="$picked,$id"
		lb_picked="$lb_picked,$id"
	done < <(printf '%s\n' "$subnets" | LC_ALL=C sort -k2,2 -k1,1)
	SUBNETS=${picked#,} LB_SUBNETS=${lb_picked#,}
	local -a zone_list
	read -r -a zone_list <<<"$zones"
	if ((${#zone_list[@]} < 2)); then
		aws_fail "want subnets in two or more availability zones${offered:+ that offer $INSTANCE_TYPE}, found zones:${zones% } (set SUBNET_IDS, or another INSTANCE_TYPE)"
	fi
	log "VPC $VPC_ID ($VPC_CIDR), subnets $SUBNETS in zones${zones% }"
	if [[ -z $METRICS_CIDRS ]]; then METRICS_CIDRS=$VPC_CIDR; fi

	step "memory settings for $INSTANCE_TYPE"
	local mem=${INSTANCE_MEMORY_MIB:-} vcpus=${INSTANCE_VCPUS:-}
	if [[ -z $mem || -z $vcpus ]]; then
		if ! aws_lookup ec2 describe-instance-types --instance-types "$INSTANCE_TYPE" \
			--query 'InstanceTypes[0].[MemoryInfo.SizeInMiB,VCpuInfo.DefaultVCpus]'; then
			aws_fail "INSTANCE_TYPE $INSTANCE_TYPE: ec2 describe-instance-types knows no such type in $REGION"
		fi
		local m v
		read -r m v <<<"$AWS_OUT"
		if [[ ! $m =~ ^[0-9]+$ || ! $v =~ ^[0-9]+$ ]]; then
			aws_fail "ec2 describe-instance-types gave no memory and vCPU count for $INSTANCE_TYPE (\"$AWS_OUT\"): set INSTANCE_MEMORY_MIB and INSTANCE_VCPUS"
		fi
		mem=${mem:-$m} vcpus=${vcpus:-$v}
	fi
	memory_settings "$mem" "$vcpus"
	log "$MEMORY_SUMMARY"

	step "machine image"
	if [[ -z ${AMI_ID:-} ]]; then
		AMI_ID=$(aws_cli ssm get-parameter \
			--name "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-$AMI_ARCH" \
			--query Parameter.Value)
	fi
	log "AMI $AMI_ID"

	if [[ -n $CERTIFICATE_ARN ]]; then
		step "certificate"
		if ! aws_lookup acm describe-certificate --certificate-arn "$CERTIFICATE_ARN" \
			--query 'Certificate.[Status,DomainName]'; then
			aws_fail "CERTIFICATE_ARN $CERTIFICATE_ARN: no such certificate in $REGION"
		fi
		local status domain
		read -r status domain <<<"$AWS_OUT"
		if [[ $status != ISSUED ]]; then
			aws_fail "the certificate for $domain is $status, not ISSUED: finish its validation (or import one) first"
		fi
		log "certificate for $domain ($status); TLS policy $TLS_POLICY"
		CERT_DOMAIN=$domain
	fi

	if [[ $AUTH == token ]]; then
		step "bearer token parameter"
		if [[ -n ${AUTH_TOKEN_PARAM:-} ]]; then
			if ! aws_lookup ssm describe-parameters --parameter-filters "Key=Name,Option=Equals,Values=$AUTH_TOKEN_PARAM" \
				--query 'Parameters[0].[Name,Type]'; then
				aws_fail "AUTH_TOKEN_PARAM $AUTH_TOKEN_PARAM: no such SSM parameter in $REGION"
			fi
			local type
			read -r _ type <<<"$AWS_OUT"
			if [[ $type != SecureString ]]; then
				aws_fail "AUTH_TOKEN_PARAM $AUTH_TOKEN_PARAM is a $type parameter: want a SecureString (encrypted at rest, readable only with decryption)"
			fi
			log "reusing $AUTH_TOKEN_PARAM (SecureString); the teardown keeps it"
		elif aws_lookup ssm describe-parameters --parameter-filters "Key=Name,Option=Equals,Values=$TOKEN_PARAM_NAME" \
			--query 'Parameters[].Name' && [[ $DRY_RUN == 0 ]]; then
			aws_fail "the SSM parameter $TOKEN_PARAM_NAME exists (a deployment named $NAME, or what a failed deploy left).
Reuse it with AUTH_TOKEN_PARAM=$TOKEN_PARAM_NAME, or remove what is left with:
    $(aws_teardown_cmd)"
		else
			log "a new token goes into $TOKEN_PARAM_NAME (SecureString)"
		fi
		TOKEN_ARN=$(param_arn "$TOKEN_PARAM" "$ACCOUNT")
	fi

	if [[ -n $KAFKA_SASL_PASSWORD_PARAM ]]; then
		step "Kafka SASL password parameter"
		# The operator's parameter: only its name and type are read here,
		# never its value.
		if ! aws_lookup ssm describe-parameters \
			--parameter-filters "Key=Name,Option=Equals,Values=$KAFKA_SASL_PASSWORD_PARAM" \
			--query 'Parameters[0].[Name,Type]'; then
			aws_fail "KAFKA_SASL_PASSWORD_PARAM $KAFKA_SASL_PASSWORD_PARAM: no such SSM parameter in $REGION (create it first: docs/deploy.md#kafka)"
		fi
		local ktype
		read -r _ ktype <<<"$AWS_OUT"
		if [[ $ktype != SecureString ]]; then
			aws_fail "KAFKA_SASL_PASSWORD_PARAM $KAFKA_SASL_PASSWORD_PARAM is a $ktype parameter: want a SecureString (encrypted at rest, readable only with decryption)"
		fi
		log "the instances read the SASL password from $KAFKA_SASL_PASSWORD_PARAM (SecureString) at boot"
		KAFKA_PASSWORD_ARN=$(param_arn "$KAFKA_SASL_PASSWORD_PARAM" "$ACCOUNT")
	fi

	step "render the user-data ($CLOUD_INIT_TEMPLATE)"
	render_user_data "s3://$BUCKET/$BINARY_KEY" "$AWS_LIB_TMP/user-data.yaml"
	USER_DATA_B64=$(gzip -9nc "$AWS_LIB_TMP/user-data.yaml" | base64 | tr -d '\n')
}

upload() {
	CREATING=1
	step "S3 bucket and upload"
	if aws_exists s3api head-bucket --bucket "$BUCKET"; then
		log "bucket $BUCKET exists"
	elif [[ $REGION == us-east-1 ]]; then
		aws_cli s3api create-bucket --bucket "$BUCKET" >/dev/null
	else
		aws_cli s3api create-bucket --bucket "$BUCKET" \
			--create-bucket-configuration "LocationConstraint=$REGION" >/dev/null
	fi
	aws_cli s3 cp "$BIN" "s3://$BUCKET/$BINARY_KEY" --only-show-errors
}

# new_token: 32 bytes from the kernel's CSPRNG, as 64 hex digits (visible
# ASCII without spaces, as fastingest wants a token).
new_token() {
	local t
	t=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
	if [[ ! $t =~ ^[0-9a-f]{64}$ ]]; then aws_fail "could not read 32 random bytes from /dev/urandom"; fi
	printf '%s' "$t"
}

auth_token() {
	if [[ $AUTH != token || -n ${AUTH_TOKEN_PARAM:-} ]]; then return; fi
	step "bearer token: SSM SecureString parameter $TOKEN_PARAM_NAME"
	# The value goes to the CLI as a file (file://), never as an argument:
	# arguments show in ps, in DRY_RUN's output and in logs of calls.
	local file="$AWS_LIB_TMP/auth-token"
	if [[ $DRY_RUN == 0 ]]; then
		(
			umask 077
			new_token >"$file"
		)
	fi
	aws_cli ssm put-parameter --name "$TOKEN_PARAM_NAME" --type SecureString --value "file://$file" \
		--description "fastingest $NAME: bearer token for POST / (scripts/deploy-ec2.sh)" \
		--tags "Key=$TOKEN_TAG_KEY,Value=$NAME" --query Version >/dev/null
	rm -f "$file"
}

iam_role() {
	# The instances fetch the binary with `aws s3 cp` and the token with
	# `aws ssm get-parameter`: their role may read that one object and that
	# one parameter, nothing else. (A SecureString under the AWS managed key
	# aws/ssm needs no kms:Decrypt grant: the key's policy allows it through
	# SSM within the account.)
	step "IAM role and instance profile"
	local trust policy
	trust='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"'$EC2_PRINCIPAL'"},"Action":"sts:AssumeRole"}]}'
	policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:'$PARTITION':s3:::'$(json_str "$BUCKET/$BINARY_KEY")'"}]}'
	aws_cli iam create-role --role-name "$ROLE_NAME" --assume-role-policy-document "$trust" \
		--description "fastingest instances ($NAME)" --query Role.Arn >/dev/null
	aws_cli iam put-role-policy --role-name "$ROLE_NAME" --policy-name read-binary --policy-document "$policy"
	if [[ $AUTH == token ]]; then
		policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"'$(json_str "$TOKEN_ARN")'"}]}'
		aws_cli iam put-role-policy --role-name "$ROLE_NAME" --policy-name read-auth-token --policy-document "$policy"
	fi
	if [[ -n $S3_BUCKET ]]; then
		# What the shipper calls: PutObject, and for a large segment the
		# multipart upload (created, parts uploaded and completed under
		# s3:PutObject), aborted on failure. No read, list or delete:
		# the keys are deterministic, a retry overwrites.
		policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload"],"Resource":"arn:'$PARTITION':s3:::'$(json_str "$S3_BUCKET/$S3_PREFIX")'*"}]}'
		aws_cli iam put-role-policy --role-name "$ROLE_NAME" --policy-name ship-segments --policy-document "$policy"
	fi
	if [[ -n $KAFKA_SASL_PASSWORD_PARAM ]]; then
		policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"'$(json_str "$KAFKA_PASSWORD_ARN")'"}]}'
		aws_cli iam put-role-policy --role-name "$ROLE_NAME" --policy-name read-kafka-sasl-password --policy-document "$policy"
	fi
	aws_cli iam create-instance-profile --instance-profile-name "$PROFILE_NAME" \
		--query InstanceProfile.Arn >/dev/null
	aws_cli iam add-role-to-instance-profile --instance-profile-name "$PROFILE_NAME" --role-name "$ROLE_NAME"
}

# ip_ranges CIDRS DESCRIPTION: the IpRanges JSON of a comma-separated list.
ip_ranges() {
	local c list out=""
	IFS=, read -r -a list <<<"$1"
	for c in "${list[@]}"; do out+=',{"CidrIp":"'$c'","Description":"'$2'"}'; done
	printf '[%s]' "${out#,}"
}

security_groups() {
	step "security groups"
	# The load balancer's group admits ALLOWED_CIDRS on its listeners' ports.
	local ports=80 p perms=""
	if [[ -n $CERTIFICATE_ARN ]]; then
		ports="443 80"
		if [[ $LB == nlb ]]; then ports=443; fi
	fi
	for p in $ports; do
		perms+=',{"IpProtocol":"tcp","FromPort":'$p',"ToPort":'$p',"IpRanges":'$(ip_ranges "$ALLOWED_CIDRS" "producers (ALLOWED_CIDRS)")'}'
	done
	LB_SG_ID=$(aws_cli ec2 create-security-group --group-name "$LB_SG_NAME" --vpc-id "$VPC_ID" \
		--description "fastingest load balancer: port ${ports// / and } from ALLOWED_CIDRS" \
		--tag-specifications "ResourceType=security-group,Tags=[{Key=Name,Value=$LB_SG_NAME}]" \
		--query GroupId)
	aws_cli ec2 authorize-security-group-ingress --group-id "$LB_SG_ID" --ip-permissions "[${perms#,}]" >/dev/null

	# The instances' group admits the service port from the load balancer's
	# group (its traffic and health checks; an NLB with a security group
	# connects from its own addresses, since the target group turns client
	# IP preservation off) and from METRICS_CIDRS, for /metrics.
	local perm='{"IpProtocol":"tcp","FromPort":'$PORT',"ToPort":'$PORT',"UserIdGroupPairs":[{"GroupId":"'$LB_SG_ID'","Description":"the load balancer"}]'
	if [[ $METRICS_CIDRS != none ]]; then
		perm+=',"IpRanges":'$(ip_ranges "$METRICS_CIDRS" "metrics scrapers (METRICS_CIDRS)")
	fi
	perm+='}'
	INSTANCE_SG_ID=$(aws_cli ec2 create-security-group --group-name "$INSTANCE_SG_NAME" --vpc-id "$VPC_ID" \
		--description "fastingest instances: port $PORT from the load balancer and METRICS_CIDRS only" \
		--tag-specifications "ResourceType=security-group,Tags=[{Key=Name,Value=$INSTANCE_SG_NAME}]" \
		--query GroupId)
	aws_cli ec2 authorize-security-group-ingress --group-id "$INSTANCE_SG_ID" --ip-permissions "[$perm]" >/dev/null
}

target_group() {
	step "target group (health check GET /readyz)"
	local proto=HTTP
	if [[ $LB == nlb ]]; then proto=TCP; fi
	# /readyz turns 503 as soon as an instance begins to drain (SIGTERM), so
	# the load balancer stops sending to it while it finishes its queue.
	TG_ARN=$(aws_cli elbv2 create-target-group --name "$TG_NAME" --protocol "$proto" --port "$PORT" \
		--vpc-id "$VPC_ID" --target-type instance \
		--health-check-protocol HTTP --health-check-path /readyz --health-check-port traffic-port \
		--health-check-interval-seconds 10 --health-check-timeout-seconds 5 \
		--healthy-threshold-count 2 --unhealthy-threshold-count 2 --matcher HttpCode=200 \
		--query 'TargetGroups[0].TargetGroupArn')
	local -a attrs=("Key=deregistration_delay.timeout_seconds,Value=$DEREGISTRATION_DELAY")
	if [[ $LB == nlb ]]; then
		# The NLB connects from its own addresses (see the security group);
		# fastingest does not use client addresses.
		attrs+=("Key=preserve_client_ip.enabled,Value=false")
	fi
	aws_cli elbv2 modify-target-group-attributes --target-group-arn "$TG_ARN" --attributes "${attrs[@]}" >/dev/null
}

load_balancer() {
	local -a subnets
	IFS=, read -r -a subnets <<<"$LB_SUBNETS"
	local what="application load balancer"
	if [[ $LB == nlb ]]; then what="network load balancer"; fi
	step "$what"
	# The ALB's idle timeout (60 s) is shorter than fastingest's keep-alive
	# idle time (90 s), so the server never closes a connection the ALB is
	# about to reuse. An NLB takes a security group too (at creation only).
	AWS_OUT=$(aws_cli elbv2 create-load-balancer --name "$LB_NAME" --type "${what%% *}" \
		--scheme internet-facing --ip-address-type ipv4 --subnets "${subnets[@]}" \
		--security-groups "$LB_SG_ID" --query 'LoadBalancers[0].[LoadBalancerArn,DNSName]')
	IFS=$'\t' read -r LB_ARN LB_DNS <<<"$AWS_OUT"
}

# forward_rule LISTENER_ARN: the listener's one forwarding rule, POST /.
forward_rule() {
	aws_cli elbv2 create-rule --listener-arn "$1" --priority 1 --conditions "$POST_ROOT_CONDITIONS" \
		--actions "Type=forward,TargetGroupArn=$TG_ARN" --query 'Rules[0].RuleArn' >/dev/null
}

listeners() {
	local listener
	if [[ $LB == nlb ]]; then
		# An NLB forwards connections, not requests: it has no rules, so
		# every path reaches fastingest (which answers 404 to unknown ones,
		# and asks the token for /metrics).
		if [[ -n $CERTIFICATE_ARN ]]; then
			step "TLS listener on 443 ($TLS_POLICY)"
			aws_cli elbv2 create-listener --load-balancer-arn "$LB_ARN" --protocol TLS --port 443 \
				--ssl-policy "$TLS_POLICY" --certificates "CertificateArn=$CERTIFICATE_ARN" \
				--default-actions "Type=forward,TargetGroupArn=$TG_ARN" --query 'Listeners[0].ListenerArn' >/dev/null
		else
			step "TCP listener on 80 (no CERTIFICATE_ARN: plain HTTP)"
			aws_cli elbv2 create-listener --load-balancer-arn "$LB_ARN" --protocol TCP --port 80 \
				--default-actions "Type=forward,TargetGroupArn=$TG_ARN" --query 'Listeners[0].ListenerArn' >/dev/null
		fi
		return
	fi
	if [[ -n $CERTIFICATE_ARN ]]; then
		step "HTTPS listener on 443 ($TLS_POLICY): POST / forwarded, any other request 404"
		listener=$(aws_cli elbv2 create-listener --load-balancer-arn "$LB_ARN" --protocol HTTPS --port 443 \
			--ssl-policy "$TLS_POLICY" --certificates "CertificateArn=$CERTIFICATE_ARN" \
			--default-actions "$NOT_FOUND_ACTION" --query 'Listeners[0].ListenerArn')
		forward_rule "$listener"
		step "HTTP listener on 80: 301 redirect to HTTPS"
		aws_cli elbv2 create-listener --load-balancer-arn "$LB_ARN" --protocol HTTP --port 80 \
			--default-actions "$REDIRECT_ACTION" --query 'Listeners[0].ListenerArn' >/dev/null
	else
		step "HTTP listener on 80 (no CERTIFICATE_ARN: plain HTTP): POST / forwarded, any other request 404"
		listener=$(aws_cli elbv2 create-listener --load-balancer-arn "$LB_ARN" --protocol HTTP --port 80 \
			--default-actions "$NOT_FOUND_ACTION" --query 'Listeners[0].ListenerArn')
		forward_rule "$listener"
	fi
}

launch_template() {
	step "launch template (IMDSv2 required)"
	# A new instance profile takes a few seconds to be usable.
	aws_cli iam wait instance-profile-exists --instance-profile-name "$PROFILE_NAME"
	local data
	data='{"ImageId":"'$(json_str "$AMI_ID")'","InstanceType":"'$INSTANCE_TYPE'"'
	data+=',"IamInstanceProfile":{"Name":"'$(json_str "$PROFILE_NAME")'"}'
	data+=',"SecurityGroupIds":["'$INSTANCE_SG_ID'"]'
	data+=',"MetadataOptions":{"HttpTokens":"required","HttpEndpoint":"enabled","HttpPutResponseHopLimit":1}'
	data+=',"UserData":"'$USER_DATA_B64'"}'
	LT_ID=$(aws_cli ec2 create-launch-template --launch-template-name "$LT_NAME" \
		--version-description "fastingest linux/$ARCH" --launch-template-data "$data" \
		--query LaunchTemplate.LaunchTemplateId)
}

auto_scaling_group() {
	step "auto scaling group ($HEALTH_CHECK_TYPE health checks)"
	# ELB health checks: an instance whose /readyz the load balancer finds
	# failing (a crash loop that systemd gave up on, a bad setting that
	# stopped the service with status 2, a sink that never comes up) is
	# replaced, once the grace period for booting has passed. /readyz also
	# turns 503 under overload (READY_MAX_QUEUE_WAIT) and while draining:
	# docs/deploy.md says what that means for a group under sustained
	# overload, and HEALTH_CHECK_TYPE=EC2 turns replacement on unhealthy
	# targets off.
	aws_cli autoscaling create-auto-scaling-group --auto-scaling-group-name "$ASG_NAME" \
		--launch-template "LaunchTemplateId=$LT_ID,Version=\$Latest" \
		--min-size "$MIN_SIZE" --max-size "$MAX_SIZE" --desired-capacity "$DESIRED" \
		--vpc-zone-identifier "$SUBNETS" --target-group-arns "$TG_ARN" \
		--health-check-type "$HEALTH_CHECK_TYPE" --health-check-grace-period "$HEALTH_CHECK_GRACE_PERIOD" \
		--tags "Key=Name,Value=$NAME,PropagateAtLaunch=true"
}

scaling() {
	local tt
	if [[ $LB == alb ]]; then
		step "target tracking on ALBRequestCountPerTarget"
		# ALBRequestCountPerTarget is the target group's requests per healthy
		# target, summed per minute: 250,000 per instance per minute is the
		# reference's 1M requests/min shared by 4 instances. Target tracking
		# also scales in, down to MIN_SIZE.
		local label="${LB_ARN#*:loadbalancer/}/${TG_ARN##*:}"
		tt='{"PredefinedMetricSpecification":{"PredefinedMetricType":"ALBRequestCountPerTarget","ResourceLabel":"'$label'"},"TargetValue":'$TARGET_REQUESTS_PER_TARGET'}'
	else
		step "target tracking on ASGAverageCPUUtilization"
		# An NLB works at TCP level: it has no request count and no response
		# time, and its flow counts are per load balancer, not per target.
		# fastingest's cost per request is CPU, so average CPU of the group is
		# the metric that exists and follows the load.
		tt='{"PredefinedMetricSpecification":{"PredefinedMetricType":"ASGAverageCPUUtilization"},"TargetValue":'$CPU_TARGET'}'
	fi
	aws_cli autoscaling put-scaling-policy --auto-scaling-group-name "$ASG_NAME" \
		--policy-name "$TT_POLICY_NAME" --policy-type TargetTrackingScaling \
		--estimated-instance-warmup "$INSTANCE_WARMUP" --target-tracking-configuration "$tt" \
		--query PolicyARN >/dev/null

	if [[ $LB == nlb ]]; then
		log "NLB: no p99 latency alarm: an NLB does not see HTTP responses, so it has no TargetResponseTime."
		return
	fi
	step "step scaling on p99 TargetResponseTime"
	# The reference's latency trigger. Steps are relative to the threshold:
	# p99 over it adds 25% of the group, over twice it 50%, at least one
	# instance. It only adds; target tracking takes instances away.
	local step_arn
	step_arn=$(aws_cli autoscaling put-scaling-policy --auto-scaling-group-name "$ASG_NAME" \
		--policy-name "$STEP_POLICY_NAME" --policy-type StepScaling \
		--adjustment-type PercentChangeInCapacity --min-adjustment-magnitude 1 \
		--estimated-instance-warmup "$INSTANCE_WARMUP" \
		--step-adjustments \
		"MetricIntervalLowerBound=0,MetricIntervalUpperBound=$LATENCY_P99_SECONDS,ScalingAdjustment=25" \
		"MetricIntervalLowerBound=$LATENCY_P99_SECONDS,ScalingAdjustment=50" \
		--query PolicyARN)
	if [[ -z $step_arn || $step_arn == None ]]; then
		# Some emulators (moto 5.2) answer without the ARN: ask for it.
		step_arn=$(aws_cli autoscaling describe-policies --auto-scaling-group-name "$ASG_NAME" \
			--policy-names "$STEP_POLICY_NAME" --query 'ScalingPolicies[0].PolicyARN')
	fi
	if [[ -z $step_arn || $step_arn == None ]]; then
		aws_fail "no ARN for the scaling policy $STEP_POLICY_NAME"
	fi
	aws_cli cloudwatch put-metric-alarm --alarm-name "$ALARM_NAME" \
		--alarm-description "fastingest $NAME: p99 TargetResponseTime above ${LATENCY_P99_SECONDS}s for 3 minutes adds instances" \
		--namespace AWS/ApplicationELB --metric-name TargetResponseTime \
		--dimensions "Name=LoadBalancer,Value=${LB_ARN#*:loadbalancer/}" \
		--extended-statistic p99 --period 60 --evaluation-periods 3 --datapoints-to-alarm 3 \
		--threshold "$LATENCY_P99_SECONDS" --comparison-operator GreaterThanThreshold \
		--treat-missing-data notBreaching --alarm-actions "$step_arn"
}

# healthy_targets: true once DESIRED targets are healthy.
healthy_targets() {
	local states s n=0
	states=$(aws_cli elbv2 describe-target-health --target-group-arn "$TG_ARN" \
		--query 'TargetHealthDescriptions[].TargetHealth.State') || aws_fail "describe-target-health failed"
	for s in $states; do
		if [[ $s == healthy ]]; then n=$((n + 1)); fi
	done
	log "  healthy targets: $n of $DESIRED"
	((n >= DESIRED))
}

wait_healthy() {
	step "wait for $DESIRED healthy targets (at most ${WAIT_TIMEOUT}s)"
	if ! aws_poll "$DESIRED healthy targets" healthy_targets; then
		aws_fail "fewer than $DESIRED healthy targets after ${WAIT_TIMEOUT}s. Instances may still be starting:
  check with: $(print_cmd aws elbv2 describe-target-health --region "$REGION" --target-group-arn "$TG_ARN")
  the boot's output, and fastingest's last lines if it stopped, are in the console output:
    aws ec2 get-console-output --region $REGION --latest --output text --instance-id INSTANCE_ID"
	fi
}

# warnings: what the settings leave open, said before the deploy asks and
# again at its end.
warnings() {
	if [[ $AUTH == none ]]; then
		printf '%s\n' "WARNING: AUTH=none: fastingest runs WITHOUT a bearer token. Anyone who can reach the load" \
			"balancer (ALLOWED_CIDRS: $ALLOWED_CIDRS) can post parcels into your sink. Deploy without AUTH=none" \
			"for a token kept in SSM Parameter Store."
	fi
	if [[ -z $CERTIFICATE_ARN ]]; then
		printf '%s\n' "WARNING: plain HTTP (no CERTIFICATE_ARN): the bearer token and every parcel cross the network" \
			"in clear text between producers and the load balancer, where anyone on the path can read them" \
			"and then post as a producer. Set CERTIFICATE_ARN (an ACM certificate for a name of yours that" \
			"points at the load balancer) for HTTPS."
	fi
	if [[ -n $KAFKA_SASL_MECHANISM && $KAFKA_TLS != 1 ]]; then
		printf '%s\n' "WARNING: Kafka SASL without KAFKA_TLS=1: the records, and with PLAIN the password, cross the" \
			"network in clear text to the brokers. MSK's SASL/SCRAM listener (port 9096) wants KAFKA_TLS=1."
	fi
	if [[ $LB == nlb ]]; then
		local metrics="/metrics asks for the token, or is open with METRICS_PUBLIC=1 in ENV_FILE"
		if [[ $AUTH == none ]]; then metrics="/metrics too, with no token"; fi
		printf '%s\n' "NOTE: LB=nlb forwards connections, not requests: every path reaches fastingest" \
			"($metrics); an ALB forwards POST / only."
	fi
}

# token_cmd: the command that prints the token.
token_cmd() {
	local -a cmd=(aws ssm get-parameter --region "$REGION" --name "$TOKEN_PARAM" --with-decryption
		--query Parameter.Value --output text)
	if [[ -n ${AWS_ENDPOINT_URL:-} ]]; then cmd+=(--endpoint-url "$AWS_ENDPOINT_URL"); fi
	print_cmd "${cmd[@]}"
}

main() {
	parse_args "$@"
	settings
	if [[ $PRINT_USER_DATA == 1 ]]; then
		if [[ -z ${INSTANCE_MEMORY_MIB:-} || -z ${INSTANCE_VCPUS:-} ]]; then
			log "deploy-ec2.sh: --print-user-data: sized for ${INSTANCE_MEMORY_MIB:-4096} MiB and ${INSTANCE_VCPUS:-2} vCPUs (set INSTANCE_MEMORY_MIB and INSTANCE_VCPUS for $INSTANCE_TYPE)"
		fi
		memory_settings "${INSTANCE_MEMORY_MIB:-4096}" "${INSTANCE_VCPUS:-2}"
		render_user_data "s3://${BUCKET:-$(default_bucket ACCOUNT)}/$BINARY_KEY" "$AWS_LIB_TMP/user-data.yaml"
		cat "$AWS_LIB_TMP/user-data.yaml"
		exit 0
	fi
	local what="an Application Load Balancer" auth="a bearer token in SSM Parameter Store ($TOKEN_PARAM)"
	local transport="plain HTTP"
	if [[ $LB == nlb ]]; then what="a Network Load Balancer"; fi
	if [[ $AUTH == none ]]; then auth="NO bearer token (AUTH=none)"; fi
	if [[ -n $CERTIFICATE_ARN ]]; then transport="HTTPS with $CERTIFICATE_ARN"; fi
	local sink=$SINK
	if [[ -n $S3_BUCKET ]]; then sink+=", closed segments shipped to s3://$S3_BUCKET/$S3_PREFIX"; fi
	if [[ $SINK == kafka ]]; then
		sink+=" ($KAFKA_BROKERS${KAFKA_SASL_MECHANISM:+, SASL $KAFKA_SASL_MECHANISM as $KAFKA_SASL_USER, the password from $KAFKA_SASL_PASSWORD_PARAM})"
	fi
	warnings >&2
	aws_confirm "deploy-ec2.sh creates billable AWS resources in $REGION, charged until you run
scripts/teardown-ec2.sh: $DESIRED x $INSTANCE_TYPE on demand (up to $MAX_SIZE when it scales out),
$what, a CloudWatch alarm, an S3 object, an SSM parameter and data transfer. Four c6i.large
and an ALB cost roughly US\$0.40 an hour (about US\$290 a month) in us-east-1; check current prices.
Access: $transport, from $ALLOWED_CIDRS, with $auth.
Sink: $sink."

	lookups
	build
	upload
	auth_token
	iam_role
	security_groups
	target_group
	load_balancer
	listeners
	launch_template
	auto_scaling_group
	scaling
	wait_healthy

	step "done"
	if [[ $DRY_RUN == 1 ]]; then log "DRY_RUN=1: nothing was created; with placeholders, a real run would end with:"; fi
	local scheme=http
	if [[ -n $CERTIFICATE_ARN ]]; then scheme=https; fi
	local url="$scheme://$LB_DNS/"
	printf 'fastingest is serving at %s\n' "$url"
	if [[ -n $CERTIFICATE_ARN ]]; then
		# The load balancer's own name is not the certificate's: clients
		# that check certificates (all should) use the certificate's name.
		printf '(The certificate is for %s: point that name at %s with a DNS CNAME or alias record,\n' \
			"${CERT_DOMAIN:-its domain}" "$LB_DNS"
		if [[ -n ${CERT_DOMAIN:-} ]]; then url="https://${CERT_DOMAIN/#\*./NAME.}/"; fi
		printf 'and post to %s.)\n' "$url"
	fi
	if [[ $AUTH == token ]]; then
		printf 'POST / needs "Authorization: Bearer TOKEN". The token is in the SSM SecureString parameter %s\n' "$TOKEN_PARAM"
		printf 'and is never printed; read it with:\n    %s\n' "$(token_cmd)"
		# shellcheck disable=SC2016 # $(...) is for the reader's shell
		printf 'Send a parcel:\n    curl -sS -H "Authorization: Bearer $(%s)" -H '\''Content-Type: application/json'\'' --data-binary @scripts/payload.json %s\n' \
			"$(token_cmd)" "$url"
		printf 'Rotate it: docs/deploy.md#rotating-the-token.\n'
		printf 'Load-test it (scripts/loadtest.sh sends no token yet, so it measures 401s here: load-test a deployment with AUTH=none):\n    bash scripts/loadtest.sh %s\n' "$url"
	else
		printf 'Load-test it:\n    bash scripts/loadtest.sh %s\n' "$url"
	fi
	if [[ -n $S3_BUCKET ]]; then
		printf 'Closed segments ship to s3://%s/%s (the role may s3:PutObject there only; the bucket is yours,\n' "$S3_BUCKET" "$S3_PREFIX"
		printf 'and the teardown leaves it).\n'
	fi
	if [[ $SINK == kafka ]]; then
		printf 'Parcels go to Kafka (%s). The brokers'"'"' security group must admit the instances'"'"' group,\n' "$KAFKA_BROKERS"
		printf '%s (%s), on the brokers'"'"' port: docs/deploy.md#kafka.\n' "$INSTANCE_SG_ID" "$INSTANCE_SG_NAME"
	fi
	if [[ $LB == alb ]]; then
		printf 'Only POST / is forwarded (any other request gets 404 from the load balancer); /metrics is served\n'
		printf 'on the instances, port %s, to %s.\n' "$PORT" "$METRICS_CIDRS"
	fi
	printf 'Remove everything (stops the charges):\n    %s\n' "$(aws_teardown_cmd)"
	printf '(The load balancer'\''s DNS name can take a minute or two to resolve.)\n'
	warnings
}

main "$@"
