# Shared by the bats tests of the deployment scripts: a fake AWS CLI first on
# PATH (test/deploy/fake-aws, which records every call in $FAKE_AWS_LOG and
# answers from the fixture directories in $FAKE_AWS_FIXTURES), a stand-in
# binary instead of a build, the stand-in templates, waits that do not sleep,
# and helpers to read the recorded calls.

# fake_aws_setup FIXTURES: set all of that up, with FIXTURES (a colon-separated
# list of directories under fixtures/) as the fake's answers, and cd to the
# repository root.
fake_aws_setup() {
	ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
	FIX=$BATS_TEST_DIRNAME/fixtures
	mkdir -p "$BATS_TEST_TMPDIR/bin"
	ln -s "$BATS_TEST_DIRNAME/fake-aws" "$BATS_TEST_TMPDIR/bin/aws"
	export PATH="$BATS_TEST_TMPDIR/bin:$PATH"
	export FAKE_AWS_LOG=$BATS_TEST_TMPDIR/aws.log FAKE_AWS_FIXTURES=$1
	: >"$FAKE_AWS_LOG"
	printf 'not really a binary\n' >"$BATS_TEST_TMPDIR/fastingest"
	export BINARY=$BATS_TEST_TMPDIR/fastingest
	export CLOUD_INIT_TEMPLATE=$FIX/templates/cloud-init.yaml
	export SERVICE_UNIT_FILE=$FIX/templates/fastingest.service SYSCTL_FILE=$FIX/templates/sysctl.conf
	export CREDENTIALS_SCRIPT_FILE=$FIX/templates/fastingest-credentials.sh
	export AWS_REGION=us-east-1 YES=1 POLL_INTERVAL=0 WAIT_TIMEOUT=5
	unset AWS_DEFAULT_REGION AWS_ENDPOINT_URL AWS_PROFILE DRY_RUN NAME ARCH LB PORT INSTANCE_TYPE \
		DESIRED MIN_SIZE MAX_SIZE AMI_ID VPC_ID SUBNET_IDS BUCKET BINARY_KEY ENV_FILE FAKE_AWS_FAIL \
		TARGET_REQUESTS_PER_TARGET LATENCY_P99_SECONDS CPU_TARGET CLIENT_CIDR DELETE_BUCKET \
		AUTH AUTH_TOKEN_PARAM TOKEN_PARAM_NAME CERTIFICATE_ARN TLS_POLICY ALLOWED_CIDRS METRICS_CIDRS \
		HEALTH_CHECK_TYPE HEALTH_CHECK_GRACE_PERIOD INSTANCE_MEMORY_MIB INSTANCE_VCPUS MEMORY_RESERVE_MIB \
		FASTINGEST_CREDENTIALS_DIR SINK S3_BUCKET S3_PREFIX S3_COMPRESSION S3_UPLOAD_CONCURRENCY \
		KAFKA_BROKERS KAFKA_TOPIC KAFKA_COMPRESSION KAFKA_LINGER KAFKA_MAX_BUFFERED KAFKA_TLS KAFKA_TLS_CA \
		KAFKA_SASL_MECHANISM KAFKA_SASL_USER KAFKA_SASL_PASSWORD KAFKA_SASL_PASSWORD_FILE \
		KAFKA_SASL_PASSWORD_PARAM KAFKA_CREATE_TOPIC KAFKA_PARTITIONS KAFKA_REPLICATION
	cd "$ROOT" || return 1
}

# not COMMAND...: fails when COMMAND succeeds (a bare "! cmd" does not fail a
# bats test).
not() {
	if "$@"; then
		echo "unexpected success: $*" >&2
		return 1
	fi
}

# calls: "service operation" of every recorded call, in order.
calls() { cut -d' ' -f1,2 "$FAKE_AWS_LOG"; }

# call "SERVICE OPERATION" [N]: the Nth (default first) recorded call of it.
call() { grep "^$1 " "$FAKE_AWS_LOG" | sed -n "${2:-1}p"; }

# has "SERVICE OPERATION" TEXT [N]: that call has TEXT among its arguments.
has() {
	local line
	line=$(call "$1" "${3:-1}")
	if [[ " $line " != *" $2 "* ]]; then
		echo "want \"$2\" in: $line" >&2
		return 1
	fi
}

# sent_file "SERVICE OPERATION" [N]: what the Nth (default first) call of it
# sent as a file:// argument (see fake-aws).
sent_file() { cat "$FAKE_AWS_LOG.state/files/${1/ /.}.${2:-1}"; }

# user_data: the user-data of the recorded create-launch-template call,
# decoded and decompressed.
user_data() {
	call "ec2 create-launch-template" | grep -o '"UserData":"[^"]*"' | cut -d'"' -f4 | base64 -d | gunzip
}
