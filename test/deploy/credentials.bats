#!/usr/bin/env bats
# Tests of deploy/fastingest-credentials.sh, the boot-time fetch of the
# bearer token from SSM Parameter Store, without AWS: test/deploy/fake-aws
# stands in for the AWS CLI and answers ssm get-parameter from fixture files
# made here; the credentials go to a temporary directory; retries do not sleep.

load helpers

setup() {
	fake_aws_setup "$BATS_TEST_TMPDIR/fixtures"
	mkdir -p "$BATS_TEST_TMPDIR/fixtures"
	export FASTINGEST_CREDENTIALS_DIR=$BATS_TEST_TMPDIR/credentials FASTINGEST_CREDENTIALS_DELAY=0
	TOKEN=3f9c2d7e6b1a4c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d
}

fetch() { run bash deploy/fastingest-credentials.sh "$@"; }

@test "credentials: the parameter's value lands in a root-only file, decrypted, and is never printed" {
	printf '%s\n' "$TOKEN" >"$BATS_TEST_TMPDIR/fixtures/ssm.get-parameter.out"
	fetch us-east-1 auth-token=/fastingest/auth-token
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(call "ssm get-parameter")" = "ssm get-parameter --region us-east-1 --name /fastingest/auth-token --with-decryption --query Parameter.Value --output text" ]
	[ "$(cat "$FASTINGEST_CREDENTIALS_DIR/auth-token")" = "$TOKEN" ]
	[ "$(stat -c %a "$FASTINGEST_CREDENTIALS_DIR/auth-token")" = 600 ]
	[ "$(stat -c %a "$FASTINGEST_CREDENTIALS_DIR")" = 700 ]
	[[ $output == *"auth-token: read from /fastingest/auth-token"* ]]
	[[ $output != *"$TOKEN"* ]]
	# No temporary file is left beside it.
	[ "$(find "$FASTINGEST_CREDENTIALS_DIR" -mindepth 1 | wc -l)" -eq 1 ]
}

@test "credentials: retried while the parameter cannot be read, then fetched" {
	printf 'An error occurred (AccessDeniedException) when calling the GetParameter operation: no credentials yet\n' \
		>"$BATS_TEST_TMPDIR/fixtures/ssm.get-parameter.1.err"
	printf '%s\n' "$TOKEN" >"$BATS_TEST_TMPDIR/fixtures/ssm.get-parameter.out"
	fetch us-east-1 auth-token=/fastingest/auth-token
	[ "$status" -eq 0 ]
	[ "$(grep -c '^ssm get-parameter' "$FAKE_AWS_LOG")" -eq 2 ]
	[ "$(cat "$FASTINGEST_CREDENTIALS_DIR/auth-token")" = "$TOKEN" ]
}

@test "credentials: a parameter that cannot be read leaves no file (the service's start fails), says why, exits 1" {
	printf 'An error occurred (ParameterNotFound) when calling the GetParameter operation: \n' \
		>"$BATS_TEST_TMPDIR/fixtures/ssm.get-parameter.err"
	FASTINGEST_CREDENTIALS_ATTEMPTS=3 fetch eu-west-1 auth-token=/missing/token
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$(grep -c '^ssm get-parameter' "$FAKE_AWS_LOG")" -eq 3 ]
	[ ! -e "$FASTINGEST_CREDENTIALS_DIR/auth-token" ]
	[ "$(find "$FASTINGEST_CREDENTIALS_DIR" -mindepth 1 | wc -l)" -eq 0 ]
	[[ $output == *"auth-token: cannot read the SSM parameter /missing/token after 3 attempts: An error occurred (ParameterNotFound)"* ]]
	[[ $output == *"fastingest will not start without it"* ]]

	# An empty answer is no token either.
	rm "$BATS_TEST_TMPDIR/fixtures/ssm.get-parameter.err"
	: >"$BATS_TEST_TMPDIR/fixtures/ssm.get-parameter.out"
	FASTINGEST_CREDENTIALS_ATTEMPTS=1 fetch eu-west-1 auth-token=/empty/token
	[ "$status" -eq 1 ]
	[ ! -e "$FASTINGEST_CREDENTIALS_DIR/auth-token" ]
}

@test "credentials: nothing to fetch (AUTH=none) is not an error; bad arguments are" {
	fetch us-east-1
	[ "$status" -eq 0 ]
	[[ $output == *"no credentials to fetch"* ]]
	[ ! -s "$FAKE_AWS_LOG" ]
	fetch
	[ "$status" -eq 2 ]
	printf '%s\n' "$TOKEN" >"$BATS_TEST_TMPDIR/fixtures/ssm.get-parameter.out"
	fetch us-east-1 noequals ../escape=/p auth-token=/fastingest/auth-token
	[ "$status" -eq 1 ]
	[[ $output == *'invalid argument "noequals"'* && $output == *'invalid argument "../escape=/p"'* ]]
	# The valid one is still fetched.
	[ "$(cat "$FASTINGEST_CREDENTIALS_DIR/auth-token")" = "$TOKEN" ]
	[ "$(grep -c '^ssm get-parameter' "$FAKE_AWS_LOG")" -eq 1 ]
}

@test "credentials: the token and the Kafka SASL password, each into its own file, neither printed" {
	printf '%s\n' "$TOKEN" >"$BATS_TEST_TMPDIR/fixtures/ssm.get-parameter.1.out"
	printf '%s\n' 'kafka-pa55word-value' >"$BATS_TEST_TMPDIR/fixtures/ssm.get-parameter.2.out"
	fetch us-east-1 auth-token=/fastingest/auth-token kafka-sasl-password=/msk/fastingest-password
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(call "ssm get-parameter" 2)" = "ssm get-parameter --region us-east-1 --name /msk/fastingest-password --with-decryption --query Parameter.Value --output text" ]
	[ "$(cat "$FASTINGEST_CREDENTIALS_DIR/auth-token")" = "$TOKEN" ]
	[ "$(cat "$FASTINGEST_CREDENTIALS_DIR/kafka-sasl-password")" = kafka-pa55word-value ]
	[ "$(stat -c %a "$FASTINGEST_CREDENTIALS_DIR/kafka-sasl-password")" = 600 ]
	[[ $output == *"kafka-sasl-password: read from /msk/fastingest-password"* ]]
	[[ $output != *"$TOKEN"* && $output != *kafka-pa55word-value* ]]
}
