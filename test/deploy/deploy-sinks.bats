#!/usr/bin/env bats
# Tests of scripts/deploy-ec2.sh's sink settings without AWS (issues 13 and
# 16): S3 shipping of the file sink's segments (the role's statement, the
# unit's settings) and the Kafka sink (its settings, the SASL password's
# parameter fetched at boot and handed over by LoadCredential, never read by
# the deploy). test/deploy/fake-aws stands in for the AWS CLI, as in
# deploy-ec2.bats.

load helpers

setup() { fake_aws_setup "$BATS_TEST_DIRNAME/fixtures/aws-new:$BATS_TEST_DIRNAME/fixtures/aws"; }

deploy() { run bash scripts/deploy-ec2.sh "$@" </dev/null; }

# fresh_log: forget the recorded calls and the fake's call counts.
fresh_log() {
	: >"$FAKE_AWS_LOG"
	rm -rf "$FAKE_AWS_LOG.state"
}

# env_lines: the rendered /etc/fastingest/env of the recorded launch
# template, without its indentation.
env_lines() { user_data | sed -n '/path: \/etc\/fastingest\/env/,/^runcmd:/p' | sed -n 's/^      //p'; }

# dropin_lines: the rendered credentials drop-in of the recorded launch template.
dropin_lines() { user_data | sed -n '/fastingest.service.d\/credentials.conf/,/- path:/p' | sed -n 's/^      //p'; }

# policy NAME: the policy document of the recorded put-role-policy of that name.
policy() { grep "^iam put-role-policy .* --policy-name $1 " "$FAKE_AWS_LOG" | sed 's/.* --policy-document //; s/ --region .*//'; }

SHIP='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:AbortMultipartUpload"],"Resource":"arn:aws:s3:::acme-parcels/ingest/prod/*"}]}'
KAFKA_PW_ARN=arn:aws:ssm:us-east-1:123456789012:parameter/msk/fastingest-password

# kafka_param_found TYPE: the fake's describe-parameters finds the password's
# parameter (the second describe-parameters call; the first is the token's,
# which does not exist yet) as a TYPE parameter.
kafka_param_found() {
	mkdir -p "$BATS_TEST_TMPDIR/fix"
	printf '/msk/fastingest-password\t%s\n' "$1" >"$BATS_TEST_TMPDIR/fix/ssm.describe-parameters.2.out"
	export FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR/fix:$FAKE_AWS_FIXTURES
}

@test "deploy: DRY_RUN=1 with S3_BUCKET shows the role's statement: s3:PutObject and s3:AbortMultipartUpload on BUCKET/PREFIX* only" {
	DRY_RUN=1 S3_BUCKET=acme-parcels S3_PREFIX=ingest/prod/ deploy
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -s "$FAKE_AWS_LOG" ]
	local -a args=()
	line=$(grep '^aws iam put-role-policy .* --policy-name ship-segments ' <<<"$output")
	eval "args=($line)"
	[[ " ${args[*]} " == *" --role-name fastingest-instance-role --policy-name ship-segments --policy-document $SHIP "* ]]
	[ "$(grep -c '^aws iam put-role-policy ' <<<"$output")" -eq 3 ]
	[[ $output == *"closed segments shipped to s3://acme-parcels/ingest/prod/"* ]]
	[[ $output == *"Closed segments ship to s3://acme-parcels/ingest/prod/"* ]]
}

@test "deploy: S3_BUCKET: the settings and AWS_REGION reach the unit's environment, the S3 uploads count in its memory" {
	S3_BUCKET=acme-parcels S3_PREFIX=ingest/prod/ S3_COMPRESSION=zstd S3_UPLOAD_CONCURRENCY=4 deploy
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(policy ship-segments)" = "$SHIP" ]
	env_lines >"$BATS_TEST_TMPDIR/env"
	cat "$BATS_TEST_TMPDIR/env"
	diff -u - <(sed -n '/^# Sink/,$p' "$BATS_TEST_TMPDIR/env") <<'EOF2'
# Sink (the deploy's environment)
S3_BUCKET=acme-parcels
S3_PREFIX=ingest/prod/
S3_COMPRESSION=zstd
S3_UPLOAD_CONCURRENCY=4
AWS_REGION=us-east-1
EOF2
	# 4 uploads of up to 9 MiB each count in the bound: less room than the
	# 44032 connections and 422MiB of a c6i.large without shipping
	# (deploy-ec2.bats).
	grep -qx 'MAX_CONNS=43008' "$BATS_TEST_TMPDIR/env"
	grep -qx 'MAX_QUEUE_BYTES=413MiB' "$BATS_TEST_TMPDIR/env"

	# The default prefix is written out, so that the unit and the role agree.
	fresh_log
	S3_BUCKET=acme-parcels deploy
	[ "$status" -eq 0 ]
	[[ $(policy ship-segments) == *'"Resource":"arn:aws:s3:::acme-parcels/fastingest/*"'* ]]
	env_lines | grep -qx 'S3_PREFIX=fastingest/'
}

@test "deploy: without S3_BUCKET, no S3 statement and no S3 setting" {
	deploy
	[ "$status" -eq 0 ]
	not grep -q 'ship-segments\|PutObject' "$FAKE_AWS_LOG"
	not grep -q 'S3_\|AWS_REGION\|^SINK=' <(env_lines)
	[[ $output != *"ship to s3://"* ]]
}

@test "deploy: S3_BUCKET from ENV_FILE is granted too; the environment and ENV_FILE must agree" {
	printf 'S3_BUCKET=acme-parcels\nS3_PREFIX=ingest/prod/\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env deploy
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(policy ship-segments)" = "$SHIP" ]
	# Written once, by ENV_FILE's own lines.
	[ "$(env_lines | grep -c '^S3_BUCKET=')" -eq 1 ]
	env_lines | grep -qx 'AWS_REGION=us-east-1'

	fresh_log
	S3_BUCKET=other-bucket ENV_FILE=$BATS_TEST_TMPDIR/env deploy
	[ "$status" -eq 2 ]
	[[ $output == *'S3_BUCKET is "other-bucket" in the environment and "acme-parcels" in'*"set it in one place"* ]]
	[ ! -s "$FAKE_AWS_LOG" ]
}

@test "deploy: invalid S3 settings stop it before any call (exit 2)" {
	for setting in S3_BUCKET=Acme_Parcels S3_BUCKET=ab S3_BUCKET=a..b S3_BUCKET=10.0.0.1 S3_BUCKET=-acme \
		S3_PREFIX=ingest/ S3_COMPRESSION=gzip \
		'S3_BUCKET=acme S3_PREFIX=/ingest' 'S3_BUCKET=acme S3_PREFIX=in*' 'S3_BUCKET=acme S3_PREFIX=a//b' \
		'S3_BUCKET=acme S3_PREFIX=${aws:username}/' 'S3_BUCKET=acme S3_PREFIX=a b' \
		'S3_BUCKET=acme S3_COMPRESSION=lz4' 'S3_BUCKET=acme S3_UPLOAD_CONCURRENCY=0' \
		'S3_BUCKET=acme S3_UPLOAD_CONCURRENCY=65' 'S3_BUCKET=acme SINK=nats' 'S3_BUCKET=acme SINK=bogus'; do
		IFS=' ' read -r -a kv <<<"$setting"
		if [[ $setting == *"a b"* ]]; then kv=(S3_BUCKET=acme 'S3_PREFIX=a b'); fi
		run env "${kv[@]}" bash scripts/deploy-ec2.sh </dev/null
		echo "$setting: $output"
		[ "$status" -eq 2 ]
	done
	[ ! -s "$FAKE_AWS_LOG" ]
}

@test "deploy: an S3 prefix that covers the binary in its own bucket is refused before anything is created" {
	BUCKET=acme-artifacts S3_BUCKET=acme-artifacts S3_PREFIX=fastingest/ deploy
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == *"S3_PREFIX fastingest/ covers the binary s3://acme-artifacts/fastingest/fastingest"* ]]
	[[ $output == *"Nothing was created yet"* ]]
	not grep -q create "$FAKE_AWS_LOG"
	# Another prefix of the same bucket is fine.
	fresh_log
	BUCKET=acme-artifacts S3_BUCKET=acme-artifacts S3_PREFIX=segments/ deploy
	[ "$status" -eq 0 ]
}

@test "deploy: DRY_RUN=1 with SINK=kafka: KAFKA_* in the unit's environment, the password by LoadCredential from its parameter, no secret" {
	DRY_RUN=1 SINK=kafka KAFKA_BROKERS=b-1.msk.example:9096,b-2.msk.example:9096 KAFKA_TOPIC=parcels \
		KAFKA_COMPRESSION=lz4 KAFKA_LINGER=10ms KAFKA_MAX_BUFFERED=32MiB KAFKA_TLS=1 \
		KAFKA_SASL_MECHANISM=SCRAM-SHA-512 KAFKA_SASL_USER=fastingest KAFKA_SASL_PASSWORD_PARAM=/msk/fastingest-password \
		KAFKA_CREATE_TOPIC=1 KAFKA_PARTITIONS=12 KAFKA_REPLICATION=3 deploy
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -s "$FAKE_AWS_LOG" ]
	# The role may read that parameter, named by its ARN, and no other.
	local -a args=()
	line=$(grep '^aws iam put-role-policy .* --policy-name read-kafka-sasl-password ' <<<"$output")
	eval "args=($line)"
	[[ " ${args[*]} " == *' --policy-document {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"'$KAFKA_PW_ARN'"}]} '* ]]
	# The deploy checks the parameter's type, never reads its value.
	[[ $output == *'aws ssm describe-parameters --parameter-filters Key=Name\,Option=Equals\,Values=/msk/fastingest-password '* ]]
	[ "$(grep -c -- '--with-decryption' <<<"$output")" -eq 2 ] # the token's read command, said twice
	not grep -q 'get-parameter .*fastingest-password' <<<"$output"
	# The rendered user-data (the launch template's, from the dry run's --print-user-data twin).
	run env DRY_RUN=1 SINK=kafka KAFKA_BROKERS=b-1.msk.example:9096,b-2.msk.example:9096 KAFKA_TOPIC=parcels \
		KAFKA_COMPRESSION=lz4 KAFKA_LINGER=10ms KAFKA_MAX_BUFFERED=32MiB KAFKA_TLS=1 \
		KAFKA_SASL_MECHANISM=SCRAM-SHA-512 KAFKA_SASL_USER=fastingest KAFKA_SASL_PASSWORD_PARAM=/msk/fastingest-password \
		KAFKA_CREATE_TOPIC=1 KAFKA_PARTITIONS=12 KAFKA_REPLICATION=3 bash scripts/deploy-ec2.sh --print-user-data
	[ "$status" -eq 0 ]
	sed -n 's/^      //p' <<<"$output" >"$BATS_TEST_TMPDIR/ud"
	diff -u - <(sed -n '/^# Sink/,/^$/p' "$BATS_TEST_TMPDIR/ud" | sed '/^$/d') <<'EOF2'
# Sink (the deploy's environment)
SINK=kafka
KAFKA_BROKERS=b-1.msk.example:9096,b-2.msk.example:9096
KAFKA_TOPIC=parcels
KAFKA_COMPRESSION=lz4
KAFKA_LINGER=10ms
KAFKA_MAX_BUFFERED=32MiB
KAFKA_TLS=1
KAFKA_SASL_MECHANISM=SCRAM-SHA-512
KAFKA_SASL_USER=fastingest
KAFKA_CREATE_TOPIC=1
KAFKA_PARTITIONS=12
KAFKA_REPLICATION=3
EOF2
	grep -qx 'LoadCredential=kafka-sasl-password:/etc/fastingest/credentials/kafka-sasl-password' "$BATS_TEST_TMPDIR/ud"
	grep -qx 'Environment=KAFKA_SASL_PASSWORD_FILE=%d/kafka-sasl-password' "$BATS_TEST_TMPDIR/ud"
	grep -qx '  - /usr/local/sbin/fastingest-credentials us-east-1 auth-token=/fastingest/auth-token kafka-sasl-password=/msk/fastingest-password' <<<"$output"
	# The password's file is the drop-in's alone, no KAFKA_SASL_PASSWORD* in the environment file.
	not grep -q '^KAFKA_SASL_PASSWORD' "$BATS_TEST_TMPDIR/ud"
	# No S3 statement with Kafka, and no warning: TLS is on.
	not grep -q 'S3_' "$BATS_TEST_TMPDIR/ud"
}

@test "deploy: SINK=kafka with SASL: the role reads the password's parameter, the drop-in hands it over, the deploy never reads it" {
	kafka_param_found SecureString
	SINK=kafka KAFKA_BROKERS=b-1.msk.example:9096 KAFKA_TLS=1 KAFKA_SASL_MECHANISM=SCRAM-SHA-512 \
		KAFKA_SASL_USER=fastingest KAFKA_SASL_PASSWORD_PARAM=/msk/fastingest-password deploy
	echo "$output"
	[ "$status" -eq 0 ]
	has "ssm describe-parameters" "--parameter-filters Key=Name,Option=Equals,Values=/msk/fastingest-password" 2
	[ "$(policy read-kafka-sasl-password)" = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"'$KAFKA_PW_ARN'"}]}' ]
	not grep -q -- '--with-decryption' "$FAKE_AWS_LOG"
	dropin_lines >"$BATS_TEST_TMPDIR/dropin"
	grep -qx 'LoadCredential=auth-token:/etc/fastingest/credentials/auth-token' "$BATS_TEST_TMPDIR/dropin"
	grep -qx 'LoadCredential=kafka-sasl-password:/etc/fastingest/credentials/kafka-sasl-password' "$BATS_TEST_TMPDIR/dropin"
	grep -qx 'Environment=KAFKA_SASL_PASSWORD_FILE=%d/kafka-sasl-password' "$BATS_TEST_TMPDIR/dropin"
	env_lines | grep -qx 'SINK=kafka'
	[[ $output == *"The brokers' security group must admit the instances' group,"* ]]
	[[ $output == *"sg-0fake000000000002 (fastingest-instance-sg), on the brokers' port"* ]]
	[[ $output != *"WARNING: Kafka"* ]]

	# With AUTH=none the password is the one credential.
	fresh_log
	printf '/msk/fastingest-password\tSecureString\n' >"$BATS_TEST_TMPDIR/fix/ssm.describe-parameters.1.out"
	AUTH=none SINK=kafka KAFKA_BROKERS=b-1.msk.example:9096 KAFKA_TLS=1 KAFKA_SASL_MECHANISM=SCRAM-SHA-512 \
		KAFKA_SASL_USER=fastingest KAFKA_SASL_PASSWORD_PARAM=/msk/fastingest-password deploy
	[ "$status" -eq 0 ]
	grep -qx '  - /usr/local/sbin/fastingest-credentials us-east-1 kafka-sasl-password=/msk/fastingest-password' <(user_data)
	not grep -q 'AUTH_TOKEN_FILE' <(dropin_lines)
	[ "$(policy read-kafka-sasl-password)" = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"'$KAFKA_PW_ARN'"}]}' ]
}

@test "deploy: SINK=kafka without SASL: no credential for it, no policy; SASL without TLS is warned" {
	SINK=kafka KAFKA_BROKERS=10.0.1.5:9092 deploy
	[ "$status" -eq 0 ]
	not grep -q 'kafka-sasl-password' "$FAKE_AWS_LOG"
	not grep -q 'kafka-sasl-password' <(user_data)
	[ "$(grep -c '^iam put-role-policy' "$FAKE_AWS_LOG")" -eq 2 ]

	fresh_log
	kafka_param_found SecureString
	SINK=kafka KAFKA_BROKERS=10.0.1.5:9092 KAFKA_SASL_MECHANISM=PLAIN KAFKA_SASL_USER=u \
		KAFKA_SASL_PASSWORD_PARAM=/msk/fastingest-password deploy
	[ "$status" -eq 0 ]
	[ "$(grep -c 'WARNING: Kafka SASL without KAFKA_TLS=1' <<<"$output")" -eq 2 ]
}

@test "deploy: the password's parameter missing, or not a SecureString, stops it before anything is created" {
	kafka_param_found String
	SINK=kafka KAFKA_BROKERS=b-1:9096 KAFKA_TLS=1 KAFKA_SASL_MECHANISM=SCRAM-SHA-512 KAFKA_SASL_USER=u \
		KAFKA_SASL_PASSWORD_PARAM=/msk/fastingest-password deploy
	echo "$output"
	[ "$status" -eq 1 ]
	[[ $output == *"KAFKA_SASL_PASSWORD_PARAM /msk/fastingest-password is a String parameter: want a SecureString"* ]]
	[[ $output == *"Nothing was created yet"* ]]
	not grep -q create "$FAKE_AWS_LOG"

	fresh_log
	rm "$BATS_TEST_TMPDIR/fix/ssm.describe-parameters.2.out"
	SINK=kafka KAFKA_BROKERS=b-1:9096 KAFKA_TLS=1 KAFKA_SASL_MECHANISM=SCRAM-SHA-512 KAFKA_SASL_USER=u \
		KAFKA_SASL_PASSWORD_PARAM=/msk/fastingest-password deploy
	[ "$status" -eq 1 ]
	[[ $output == *"KAFKA_SASL_PASSWORD_PARAM /msk/fastingest-password: no such SSM parameter in us-east-1"* ]]
	not grep -q create "$FAKE_AWS_LOG"
}

@test "deploy: invalid Kafka settings stop it before any call (exit 2); no password is taken, nor repeated" {
	local k='SINK=kafka KAFKA_BROKERS=b-1:9096'
	for setting in SINK=kafka KAFKA_BROKERS=b-1:9096 "SINK=nats KAFKA_TOPIC=t" "SINK=file KAFKA_SASL_PASSWORD_PARAM=/p" \
		"SINK=kafka KAFKA_BROKERS=b-1:port" "SINK=kafka KAFKA_BROKERS=b-1:9096,,b-2:9096" "SINK=kafka KAFKA_BROKERS=http://b-1:9096" \
		"$k KAFKA_TOPIC=a/b" "$k KAFKA_TOPIC=.." "$k KAFKA_COMPRESSION=brotli" "$k KAFKA_LINGER=soon" \
		"$k KAFKA_MAX_BUFFERED=512KiB" "$k KAFKA_MAX_BUFFERED=lots" "$k KAFKA_TLS=yes" "$k KAFKA_CREATE_TOPIC=true" \
		"$k KAFKA_PARTITIONS=10001" "$k KAFKA_REPLICATION=33" "$k KAFKA_SASL_MECHANISM=SCRAM-SHA-512" \
		"$k KAFKA_SASL_MECHANISM=SCRAM-SHA-512 KAFKA_SASL_USER=u" "$k KAFKA_SASL_USER=u KAFKA_SASL_PASSWORD_PARAM=/p" \
		"$k KAFKA_SASL_MECHANISM=GSSAPI KAFKA_SASL_USER=u KAFKA_SASL_PASSWORD_PARAM=/p" \
		"$k KAFKA_SASL_MECHANISM=PLAIN KAFKA_SASL_USER=u\"x KAFKA_SASL_PASSWORD_PARAM=/p" \
		"$k KAFKA_SASL_MECHANISM=PLAIN KAFKA_SASL_USER=u KAFKA_SASL_PASSWORD_PARAM=arn:aws:ssm:x" \
		"$k KAFKA_TLS=1 KAFKA_TLS_CA=/etc/msk-ca.pem" "$k KAFKA_SASL_PASSWORD_FILE=/etc/pw" \
		"$k KAFKA_SASL_PASSWORD=hunter2-s3cr3t"; do
		IFS=' ' read -r -a kv <<<"$setting"
		run env "${kv[@]}" bash scripts/deploy-ec2.sh </dev/null
		echo "$setting: $output"
		[ "$status" -eq 2 ]
		[[ $output != *hunter2-s3cr3t* ]]
	done
	# Nor in ENV_FILE, which goes into the user-data.
	printf 'SINK=kafka\nKAFKA_BROKERS=b-1:9096\nKAFKA_SASL_PASSWORD=hunter2-s3cr3t\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env deploy
	[ "$status" -eq 2 ]
	[[ $output == *"KAFKA_SASL_PASSWORD is refused"* && $output != *hunter2-s3cr3t* ]]
	[ ! -s "$FAKE_AWS_LOG" ]
}

@test "deploy: SINK=kafka from ENV_FILE is passed through as before, and sized with KAFKA_MAX_BUFFERED" {
	printf 'SINK=kafka\nKAFKA_BROKERS=b-1:9092\nKAFKA_MAX_BUFFERED=256MiB\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env deploy
	echo "$output"
	[ "$status" -eq 0 ]
	not grep -q '^# Sink' <(env_lines)
	env_lines | grep -qx 'KAFKA_MAX_BUFFERED=256MiB'
	[[ $output == *"Sink: kafka (b-1:9092)."* ]]
	# The same from the environment: the same memory settings.
	local from_file
	from_file=$(env_lines | grep '^MAX_')
	fresh_log
	SINK=kafka KAFKA_BROKERS=b-1:9092 KAFKA_MAX_BUFFERED=256MiB deploy
	[ "$status" -eq 0 ]
	[ "$(env_lines | grep '^MAX_')" = "$from_file" ]
}
