#!/usr/bin/env bash
# deploy-ec2.sh: put fastingest on AWS EC2 behind a load balancer, with
# autoscaling driven by request count and p99 latency. Run
# `bash scripts/deploy-ec2.sh --help` for the settings; remove everything with
# scripts/teardown-ec2.sh and the same NAME and region.
#
# In order: read-only checks and lookups (no deployment of that name yet,
# account, VPC and subnets, machine image) and the user-data, then the build,
# so that a mistake stops the deploy before anything is created; then create the S3 bucket and upload, the IAM role and
# instance profile, the security groups, the target group, the load balancer
# and its listener, the launch template, the Auto Scaling group, the scaling
# policies and the latency alarm; wait for healthy targets; print the URL.
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
balancer; waits until the instances are healthy and prints the URL and a
load-test command. Needs the AWS CLI (v1 or v2) with credentials, and Go unless
BINARY is set. It creates billable resources: it asks first unless --yes.

  --yes, -y          do not ask for confirmation (YES=1)
  --dry-run          print the AWS commands instead of running them (DRY_RUN=1)
  --region REGION    AWS region (else AWS_REGION, else AWS_DEFAULT_REGION)
  --name NAME        prefix of every resource name (NAME, default fastingest)
  --arch ARCH        amd64 (default) or arm64 (Graviton) (ARCH)
  --lb TYPE          alb (default) or nlb (LB)
  --print-user-data  print the rendered cloud-init user-data and exit
  --help, -h         this help

Environment (defaults in brackets):
  INSTANCE_TYPE      [c6i.large; c7g.large for arm64]
  DESIRED            instances at start [4]; MIN_SIZE [DESIRED]; MAX_SIZE [3 x DESIRED]
  PORT               port the service listens on [8080]
  TARGET_REQUESTS_PER_TARGET  ALB target tracking: requests per instance per minute [250000]
  LATENCY_P99_SECONDS         ALB: p99 TargetResponseTime that adds instances [0.25]
  CPU_TARGET         NLB target tracking: average CPU percent [60]
  CLIENT_CIDR        who may reach the ALB on port 80 [0.0.0.0/0]
  AMI_ID             machine image [latest Amazon Linux 2023 for ARCH, from SSM]
  VPC_ID, SUBNET_IDS VPC and comma-separated public subnets in 2+ zones
                     [the default VPC and its default subnets]
  BUCKET             S3 bucket for the binary, created if missing
                     [NAME-artifacts-ACCOUNT-REGION]; BINARY_KEY [NAME/fastingest]
  BINARY             use this prebuilt linux binary instead of building
  ENV_FILE           file of KEY=VALUE lines for fastingest (e.g. MAX_WORKERS=2000),
                     written to /etc/fastingest/env; ADDR comes from PORT
  DEREGISTRATION_DELAY  seconds a leaving instance keeps its requests [30]
  HEALTH_CHECK_GRACE_PERIOD, INSTANCE_WARMUP  seconds [120, 180]
  WAIT_TIMEOUT       longest wait for healthy targets, seconds [600]
  POLL_INTERVAL      seconds between checks [10]
  AWS_ENDPOINT_URL   passed to every call as --endpoint-url (e.g. a local emulator)
  Names (each derived from NAME): LB_NAME, TG_NAME, LB_SG_NAME, INSTANCE_SG_NAME,
  ROLE_NAME, PROFILE_NAME, LT_NAME, ASG_NAME, TT_POLICY_NAME, STEP_POLICY_NAME,
  ALARM_NAME.
  Templates: CLOUD_INIT_TEMPLATE [deploy/cloud-init.yaml],
  SERVICE_UNIT_FILE [deploy/fastingest.service], SYSCTL_FILE [deploy/sysctl.conf].

With a custom VPC, the subnets must give instances a way to S3 (a public IP
or a NAT gateway / S3 endpoint) and the ALB must be internet-facing in them.
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
	if [[ ! $v =~ ^[0-9]+$ ]] || ((10#$v < $2 || 10#$v > $3)); then
		log "deploy-ec2.sh: invalid $1 \"$v\": want a whole number from $2 to $3."
		exit 2
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
	: "${CLIENT_CIDR:=0.0.0.0/0}"
	: "${DEREGISTRATION_DELAY:=30}"
	: "${HEALTH_CHECK_GRACE_PERIOD:=120}"
	: "${INSTANCE_WARMUP:=180}"
	: "${CLOUD_INIT_TEMPLATE:=$ROOT/deploy/cloud-init.yaml}"
	: "${SERVICE_UNIT_FILE:=$ROOT/deploy/fastingest.service}"
	: "${SYSCTL_FILE:=$ROOT/deploy/sysctl.conf}"

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
	if [[ ! $CLIENT_CIDR =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}/[0-9]{1,2}$ ]]; then
		log "deploy-ec2.sh: invalid CLIENT_CIDR \"$CLIENT_CIDR\": want an IPv4 CIDR, e.g. 203.0.113.0/24."
		exit 2
	fi
	if [[ -n ${VPC_ID:-} && -z ${SUBNET_IDS:-} ]]; then
		log "deploy-ec2.sh: VPC_ID is set: set SUBNET_IDS too (public subnets in two or more availability zones, comma-separated)."
		exit 2
	fi
	if [[ -n ${BUCKET:-} && ! $BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]]; then
		log "deploy-ec2.sh: invalid BUCKET \"$BUCKET\": an S3 bucket name is 3-63 lowercase letters, digits, dots and hyphens."
		exit 2
	fi
	local f
	for f in "$CLOUD_INIT_TEMPLATE" "$SERVICE_UNIT_FILE" "$SYSCTL_FILE" ${ENV_FILE:+"$ENV_FILE"}; do
		if [[ ! -r $f ]]; then
			log "deploy-ec2.sh: cannot read $f"
			exit 2
		fi
	done
	env_file_content >/dev/null
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
		if [[ $line == ADDR=* ]]; then
			log "deploy-ec2.sh: $ENV_FILE line $n: set PORT instead of ADDR (the load balancer must know the port)"
			exit 2
		fi
		printf '%s\n' "$line"
	done <"$ENV_FILE"
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
	for tok in BINARY_S3_URI REGION PORT ENV_FILE_CONTENT SERVICE_UNIT SYSCTL_CONF; do
		if ! grep -q "@@${tok}@@" "$CLOUD_INIT_TEMPLATE"; then
			aws_fail "$CLOUD_INIT_TEMPLATE has no @@${tok}@@ placeholder"
		fi
	done
	local out=$2 env_content
	env_content=$(env_file_content)
	UD_BINARY_S3_URI=$1 UD_REGION=$REGION UD_PORT=$PORT \
		UD_ENV_FILE_CONTENT=$env_content \
		UD_SERVICE_UNIT=$(cat "$SERVICE_UNIT_FILE") \
		UD_SYSCTL_CONF=$(cat "$SYSCTL_FILE") \
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
			if (match(line, /@@(ENV_FILE_CONTENT|SERVICE_UNIT|SYSCTL_CONF)@@/)) {
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
			print line
		}
		END { exit bad }
		' "$CLOUD_INIT_TEMPLATE" >"$out" || aws_fail "cannot render $CLOUD_INIT_TEMPLATE"
	if grep -Eq '@@[A-Z0-9_]+@@' "$out"; then
		aws_fail "$CLOUD_INIT_TEMPLATE has an unknown placeholder: $(grep -Eo '@@[A-Z0-9_]+@@' "$out" | head -n 1)"
	fi
	# EC2 takes at most 16 KiB of user-data.
	local size
	size=$(wc -c <"$out" | tr -d ' ')
	if ((size > 16384)); then
		aws_fail "the user-data is $size bytes; EC2 takes at most 16384"
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
	# The role is the first named resource a deploy creates: if it exists, a
	# deployment (or what a failed one left) is there, and going on would
	# overwrite its binary before failing. (A dry run shows the call only.)
	if aws_lookup iam get-role --role-name "$ROLE_NAME" --query Role.RoleName && [[ $DRY_RUN == 0 ]]; then
		aws_fail "the role $ROLE_NAME exists: a deployment named $NAME (or what a failed deploy left) is there.
Remove it first with:
    $(aws_teardown_cmd)
or choose another NAME"
	fi

	step "account and bucket name"
	if [[ -z ${BUCKET:-} ]]; then
		local account
		account=$(aws_cli sts get-caller-identity --query Account)
		BUCKET=$(default_bucket "$account")
		if [[ ! $BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]]; then
			aws_fail "the default bucket name $BUCKET is not a valid S3 bucket name: set BUCKET"
		fi
	fi
	log "binary: s3://$BUCKET/$BINARY_KEY"

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

	step "machine image"
	if [[ -z ${AMI_ID:-} ]]; then
		AMI_ID=$(aws_cli ssm get-parameter \
			--name "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-$AMI_ARCH" \
			--query Parameter.Value)
	fi
	log "AMI $AMI_ID"

	step "render the user-data ($CLOUD_INIT_TEMPLATE)"
	render_user_data "s3://$BUCKET/$BINARY_KEY" "$AWS_LIB_TMP/user-data.yaml"
	USER_DATA_B64=$(base64 <"$AWS_LIB_TMP/user-data.yaml" | tr -d '\n')
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

iam_role() {
	# The instances fetch the binary with `aws s3 cp`: their role may read
	# that one object and nothing else.
	step "IAM role and instance profile"
	local trust policy
	trust='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"'$EC2_PRINCIPAL'"},"Action":"sts:AssumeRole"}]}'
	policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:'$PARTITION':s3:::'$(json_str "$BUCKET/$BINARY_KEY")'"}]}'
	aws_cli iam create-role --role-name "$ROLE_NAME" --assume-role-policy-document "$trust" \
		--description "fastingest instances ($NAME)" --query Role.Arn >/dev/null
	aws_cli iam put-role-policy --role-name "$ROLE_NAME" --policy-name read-binary --policy-document "$policy"
	aws_cli iam create-instance-profile --instance-profile-name "$PROFILE_NAME" \
		--query InstanceProfile.Arn >/dev/null
	aws_cli iam add-role-to-instance-profile --instance-profile-name "$PROFILE_NAME" --role-name "$ROLE_NAME"
}

security_groups() {
	step "security groups"
	if [[ $LB == alb ]]; then
		LB_SG_ID=$(aws_cli ec2 create-security-group --group-name "$LB_SG_NAME" --vpc-id "$VPC_ID" \
			--description "fastingest load balancer: HTTP 80 from clients" \
			--tag-specifications "ResourceType=security-group,Tags=[{Key=Name,Value=$LB_SG_NAME}]" \
			--query GroupId)
		aws_cli ec2 authorize-security-group-ingress --group-id "$LB_SG_ID" \
			--protocol tcp --port 80 --cidr "$CLIENT_CIDR" >/dev/null
	fi
	INSTANCE_SG_ID=$(aws_cli ec2 create-security-group --group-name "$INSTANCE_SG_NAME" --vpc-id "$VPC_ID" \
		--description "fastingest instances: port $PORT from the load balancer only" \
		--tag-specifications "ResourceType=security-group,Tags=[{Key=Name,Value=$INSTANCE_SG_NAME}]" \
		--query GroupId)
	if [[ $LB == alb ]]; then
		aws_cli ec2 authorize-security-group-ingress --group-id "$INSTANCE_SG_ID" \
			--protocol tcp --port "$PORT" --source-group "$LB_SG_ID" >/dev/null
	else
		# An NLB created without security groups (and every NLB on older
		# APIs) cannot be named as a source. Its traffic and health checks come
		# from its private addresses in the VPC, because the target group
		# turns client IP preservation off (below), so the instances accept
		# the port from the VPC's CIDR only, not from the internet.
		aws_cli ec2 authorize-security-group-ingress --group-id "$INSTANCE_SG_ID" \
			--protocol tcp --port "$PORT" --cidr "$VPC_CIDR" >/dev/null
	fi
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
	if [[ $LB == alb ]]; then
		step "application load balancer"
		# The ALB's idle timeout (60 s) is shorter than fastingest's keep-alive
		# idle time (90 s), so the server never closes a connection the ALB is
		# about to reuse.
		AWS_OUT=$(aws_cli elbv2 create-load-balancer --name "$LB_NAME" --type application \
			--scheme internet-facing --ip-address-type ipv4 --subnets "${subnets[@]}" \
			--security-groups "$LB_SG_ID" --query 'LoadBalancers[0].[LoadBalancerArn,DNSName]')
	else
		step "network load balancer"
		AWS_OUT=$(aws_cli elbv2 create-load-balancer --name "$LB_NAME" --type network \
			--scheme internet-facing --ip-address-type ipv4 --subnets "${subnets[@]}" \
			--query 'LoadBalancers[0].[LoadBalancerArn,DNSName]')
	fi
	IFS=$'\t' read -r LB_ARN LB_DNS <<<"$AWS_OUT"

	step "listener on port 80"
	local proto=HTTP
	if [[ $LB == nlb ]]; then proto=TCP; fi
	aws_cli elbv2 create-listener --load-balancer-arn "$LB_ARN" --protocol "$proto" --port 80 \
		--default-actions "Type=forward,TargetGroupArn=$TG_ARN" --query 'Listeners[0].ListenerArn' >/dev/null
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
	step "auto scaling group"
	# EC2 health checks, not ELB: /readyz is a readiness check. It turns
	# 503 while an instance drains and while requests wait too long for
	# queue room (READY_MAX_QUEUE_WAIT), so that the load balancer sends
	# new traffic elsewhere. With ELB health checks the group would
	# terminate an instance for being busy, and under a general overload
	# replace them all in turn. A crashed process is restarted by systemd.
	aws_cli autoscaling create-auto-scaling-group --auto-scaling-group-name "$ASG_NAME" \
		--launch-template "LaunchTemplateId=$LT_ID,Version=\$Latest" \
		--min-size "$MIN_SIZE" --max-size "$MAX_SIZE" --desired-capacity "$DESIRED" \
		--vpc-zone-identifier "$SUBNETS" --target-group-arns "$TG_ARN" \
		--health-check-type EC2 --health-check-grace-period "$HEALTH_CHECK_GRACE_PERIOD" \
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
  cloud-init's output is in: aws ec2 get-console-output --region $REGION --instance-id INSTANCE_ID"
	fi
}

main() {
	parse_args "$@"
	settings
	if [[ $PRINT_USER_DATA == 1 ]]; then
		render_user_data "s3://${BUCKET:-$(default_bucket ACCOUNT)}/$BINARY_KEY" "$AWS_LIB_TMP/user-data.yaml"
		cat "$AWS_LIB_TMP/user-data.yaml"
		exit 0
	fi
	local what="an Application Load Balancer"
	if [[ $LB == nlb ]]; then what="a Network Load Balancer"; fi
	aws_confirm "deploy-ec2.sh creates billable AWS resources in $REGION, charged until you run
scripts/teardown-ec2.sh: $DESIRED x $INSTANCE_TYPE on demand (up to $MAX_SIZE when it scales out),
$what, a CloudWatch alarm, an S3 object and data transfer. Four c6i.large and an ALB cost
roughly US\$0.40 an hour (about US\$290 a month) in us-east-1; check current prices."

	lookups
	build
	upload
	iam_role
	security_groups
	target_group
	load_balancer
	launch_template
	auto_scaling_group
	scaling
	wait_healthy

	step "done"
	if [[ $DRY_RUN == 1 ]]; then log "DRY_RUN=1: nothing was created; with placeholders, a real run would end with:"; fi
	local url="http://$LB_DNS/"
	printf 'fastingest is serving at %s\n' "$url"
	printf 'Load-test it:\n    bash scripts/loadtest.sh %s\n' "$url"
	printf 'Remove everything (stops the charges):\n    %s\n' "$(aws_teardown_cmd)"
	printf '(The load balancer'\''s DNS name can take a minute or two to resolve.)\n'
}

main "$@"
