#!/usr/bin/env bats
# Tests of scripts/teardown-ec2.sh without AWS: test/deploy/fake-aws stands in
# for the AWS CLI (first on PATH), records every call and answers from
# test/deploy/fixtures/aws (everything exists) or fixtures/aws-missing
# (nothing does). Waits do not sleep.

load helpers

setup() { fake_aws_setup "$BATS_TEST_DIRNAME/fixtures/aws"; }

teardown_run() { run bash scripts/teardown-ec2.sh "$@" </dev/null; }

# fresh_log: forget the recorded calls and the fake's call counts.
fresh_log() {
	: >"$FAKE_AWS_LOG"
	rm -rf "$FAKE_AWS_LOG.state"
}

# kinds: the kind of resource each create (deploy) or delete (teardown) call
# of the log is about, one a line.
kinds() {
	awk '
	$1 == "s3api" && ($2 == "create-bucket" || $2 == "delete-bucket") { print "bucket" }
	$1 == "iam" && ($2 == "create-role" || $2 == "delete-role") { print "role" }
	$1 == "iam" && ($2 == "create-instance-profile" || $2 == "delete-instance-profile") { print "instance-profile" }
	$1 == "ec2" && $2 == "create-security-group" { for (i = 3; i <= NF; i++) if ($i == "--group-name") print "sg " $(i + 1) }
	$1 == "ec2" && $2 == "delete-security-group" { for (i = 3; i <= NF; i++) if ($i == "--group-id") print "sg " ($(i + 1) == "sg-0fake000000000001" ? "fastingest-lb-sg" : "fastingest-instance-sg") }
	$1 == "elbv2" && $2 ~ /^(create|delete)-target-group$/ { print "target-group" }
	$1 == "elbv2" && $2 ~ /^(create|delete)-load-balancer$/ { print "load-balancer" }
	$1 == "elbv2" && $2 ~ /^(create|delete)-listener$/ { print "listener" }
	$1 == "ec2" && $2 ~ /^(create|delete)-launch-template$/ { print "launch-template" }
	$1 == "autoscaling" && $2 ~ /^(create|delete)-auto-scaling-group$/ { print "auto-scaling-group" }
	$1 == "autoscaling" && ($2 == "put-scaling-policy" || $2 == "delete-policy") { for (i = 3; i <= NF; i++) if ($i == "--policy-name") print "policy " $(i + 1) }
	$1 == "cloudwatch" && ($2 == "put-metric-alarm" || $2 == "delete-alarms") { print "alarm" }
	$1 == "ssm" && ($2 == "put-parameter" || $2 == "delete-parameter") { print "parameter" }
	' "$FAKE_AWS_LOG"
}

LB_ARN=arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/fastingest-lb/50dc6c495c0c9188
TG_ARN=arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/fastingest-tg/73e2d6bc24d8a067
LISTENER_ARN=arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/fastingest-lb/50dc6c495c0c9188/f2f7dc8efc522ab2

@test "teardown: --help prints usage and calls nothing" {
	teardown_run --help
	[ "$status" -eq 0 ]
	[[ $output == *"Usage: bash scripts/teardown-ec2.sh"* ]]
	[ ! -s "$FAKE_AWS_LOG" ]
}

@test "teardown: refuses to run without confirmation, calls nothing" {
	unset YES
	teardown_run
	[ "$status" -ne 0 ]
	[[ $output == *"--yes"* ]]
	[ ! -s "$FAKE_AWS_LOG" ]
}

@test "teardown: the expected calls in the expected order" {
	teardown_run
	echo "$output"
	[ "$status" -eq 0 ]
	diff -u - <(calls) <<'EOF'
cloudwatch describe-alarms
cloudwatch delete-alarms
autoscaling describe-auto-scaling-groups
autoscaling describe-policies
autoscaling delete-policy
autoscaling delete-policy
autoscaling delete-auto-scaling-group
autoscaling describe-auto-scaling-groups
ec2 describe-launch-templates
ec2 delete-launch-template
elbv2 describe-load-balancers
elbv2 describe-listeners
elbv2 delete-listener
elbv2 delete-load-balancer
elbv2 describe-load-balancers
elbv2 describe-target-groups
elbv2 delete-target-group
ec2 describe-vpcs
ec2 describe-security-groups
ec2 delete-security-group
ec2 describe-security-groups
ec2 delete-security-group
iam get-instance-profile
iam remove-role-from-instance-profile
iam delete-instance-profile
iam get-role
iam list-role-policies
iam delete-role-policy
iam delete-role-policy
iam delete-role
ssm describe-parameters
ssm list-tags-for-resource
ssm delete-parameter
EOF
	# Found by name, deleted by the IDs the lookups return.
	has "cloudwatch describe-alarms" "--alarm-names fastingest-p99-latency-high"
	has "autoscaling describe-auto-scaling-groups" "--auto-scaling-group-names fastingest-asg"
	has "autoscaling delete-policy" "--policy-name fastingest-p99-latency-step" 1
	has "autoscaling delete-policy" "--policy-name fastingest-target-tracking" 2
	has "autoscaling delete-auto-scaling-group" "--auto-scaling-group-name fastingest-asg --force-delete"
	has "ec2 describe-launch-templates" "Name=launch-template-name,Values=fastingest-lt"
	has "ec2 delete-launch-template" "--launch-template-id lt-0fake000000000001"
	has "elbv2 describe-load-balancers" "--names fastingest-lb"
	has "elbv2 delete-listener" "--listener-arn $LISTENER_ARN"
	has "elbv2 delete-load-balancer" "--load-balancer-arn $LB_ARN"
	has "elbv2 describe-target-groups" "--names fastingest-tg"
	has "elbv2 delete-target-group" "--target-group-arn $TG_ARN"
	has "ec2 describe-security-groups" "Name=vpc-id,Values=vpc-0fake000000000001 Name=group-name,Values=fastingest-instance-sg" 1
	has "ec2 delete-security-group" "--group-id sg-0fake000000000002" 1
	has "ec2 describe-security-groups" "Name=group-name,Values=fastingest-lb-sg" 2
	has "ec2 delete-security-group" "--group-id sg-0fake000000000001" 2
	has "iam remove-role-from-instance-profile" "--instance-profile-name fastingest-instance-profile --role-name fastingest-instance-role"
	has "iam delete-role-policy" "--role-name fastingest-instance-role --policy-name read-binary"
	has "iam delete-role-policy" "--role-name fastingest-instance-role --policy-name read-auth-token" 2
	has "iam delete-role" "--role-name fastingest-instance-role"
	# The token's parameter, after checking that the deploy created it.
	has "ssm describe-parameters" "--parameter-filters Key=Name,Option=Equals,Values=/fastingest/auth-token"
	has "ssm list-tags-for-resource" "--resource-type Parameter --resource-id /fastingest/auth-token"
	has "ssm delete-parameter" "--name /fastingest/auth-token"
	not grep -q '^acm ' "$FAKE_AWS_LOG" # never the certificate
	# The bucket is kept unless asked.
	not grep -q '^s3api\|^sts' "$FAKE_AWS_LOG"
	[[ $output == *"DELETE_BUCKET=1"* ]]
	[[ $output == *'Deployment "fastingest" in us-east-1 is removed.'* ]]
}

@test "teardown: deletes in the reverse order of the deploy's creations" {
	FAKE_AWS_FIXTURES=$FIX/aws-new:$FIX/aws run bash scripts/deploy-ec2.sh </dev/null
	[ "$status" -eq 0 ]
	kinds >"$BATS_TEST_TMPDIR/created"
	fresh_log
	DELETE_BUCKET=1 teardown_run
	echo "$output"
	[ "$status" -eq 0 ]
	kinds >"$BATS_TEST_TMPDIR/deleted"
	cat "$BATS_TEST_TMPDIR/created"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/created")" -eq 14 ]
	diff -u <(tac "$BATS_TEST_TMPDIR/created") "$BATS_TEST_TMPDIR/deleted"
}

@test "teardown: DELETE_BUCKET=1 deletes the binary, then the bucket" {
	DELETE_BUCKET=1 teardown_run
	[ "$status" -eq 0 ]
	diff -u - <(calls | tail -n 4) <<'EOF'
sts get-caller-identity
s3api head-bucket
s3api delete-object
s3api delete-bucket
EOF
	has "s3api delete-object" "--bucket fastingest-artifacts-123456789012-us-east-1 --key fastingest/fastingest"
	has "s3api delete-bucket" "--bucket fastingest-artifacts-123456789012-us-east-1"

	# A bucket that holds other objects is kept, without failing.
	fresh_log
	printf 'An error occurred (BucketNotEmpty) when calling the DeleteBucket operation: The bucket you tried to delete is not empty\n' \
		>"$BATS_TEST_TMPDIR/s3api.delete-bucket.err"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FIX/aws BUCKET=shared-bucket teardown_run --delete-bucket
	[ "$status" -eq 0 ]
	not grep -q '^sts' "$FAKE_AWS_LOG"
	[[ $output == *"bucket shared-bucket holds other objects"* ]]
}

@test "teardown: safe to run twice (the second run finds nothing and succeeds)" {
	teardown_run
	[ "$status" -eq 0 ]
	fresh_log
	FAKE_AWS_FIXTURES=$FIX/aws-missing DELETE_BUCKET=1 teardown_run
	echo "$output"
	[ "$status" -eq 0 ]
	# Only lookups: nothing to delete.
	not grep -Eq '^[a-z0-9]+ (delete|remove)-' "$FAKE_AWS_LOG"
	for what in "alarm fastingest-p99-latency-high" "auto scaling group fastingest-asg" \
		"launch template fastingest-lt" "load balancer fastingest-lb" "target group fastingest-tg" \
		"security group fastingest-instance-sg" "security group fastingest-lb-sg" \
		"instance profile fastingest-instance-profile" "role fastingest-instance-role" \
		"parameter /fastingest/auth-token" "bucket fastingest-artifacts-123456789012-us-east-1"; do
		[[ $output == *"$what"*"not found, skipped"* ]]
	done
}

@test "teardown: without a VPC the security groups are skipped, not an error" {
	: >"$BATS_TEST_TMPDIR/ec2.describe-vpcs.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FIX/aws-missing teardown_run
	[ "$status" -eq 0 ]
	not grep -q '^ec2 describe-security-groups' "$FAKE_AWS_LOG"
	[[ $output == *"the security groups: not found, skipped"* ]]
}

@test "teardown: retries a security group while network interfaces detach, bounded" {
	printf 'An error occurred (DependencyViolation) when calling the DeleteSecurityGroup operation: resource sg-0fake000000000002 has a dependent object\n' \
		>"$BATS_TEST_TMPDIR/ec2.delete-security-group.1.err"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FIX/aws teardown_run
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^ec2 delete-security-group --group-id sg-0fake000000000002' "$FAKE_AWS_LOG")" -eq 2 ]
	[[ $output == *"still in use"* ]]

	# Never free: stops after WAIT_TIMEOUT, naming the step and how to go on.
	fresh_log
	cp "$BATS_TEST_TMPDIR/ec2.delete-security-group.1.err" "$BATS_TEST_TMPDIR/ec2.delete-security-group.err"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FIX/aws WAIT_TIMEOUT=0 teardown_run
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *'FAILED in step "security groups fastingest-instance-sg and fastingest-lb-sg"'* ]]
	[[ $output == *"run the teardown again"* ]]
	not grep -q '^iam' "$FAKE_AWS_LOG"
}

@test "teardown: a group already being deleted is waited for, not deleted again" {
	printf 'fastingest-asg\tDelete in progress\n' >"$BATS_TEST_TMPDIR/autoscaling.describe-auto-scaling-groups.1.out"
	printf 'fastingest-asg\tDelete in progress\n' >"$BATS_TEST_TMPDIR/autoscaling.describe-auto-scaling-groups.2.out"
	: >"$BATS_TEST_TMPDIR/autoscaling.describe-auto-scaling-groups.3.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FIX/aws teardown_run
	[ "$status" -eq 0 ]
	not grep -q '^autoscaling delete-' "$FAKE_AWS_LOG"
	[ "$(grep -c '^autoscaling describe-auto-scaling-groups' "$FAKE_AWS_LOG")" -eq 3 ]
	[[ $output == *"already being deleted"* ]]
}

@test "teardown: a group that does not go away stops the teardown after WAIT_TIMEOUT" {
	printf 'fastingest-asg\tNone\n' >"$BATS_TEST_TMPDIR/autoscaling.describe-auto-scaling-groups.2.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FIX/aws WAIT_TIMEOUT=0 teardown_run
	[ "$status" -ne 0 ]
	[[ $output == *"timed out after 0s (WAIT_TIMEOUT)"* ]]
	[[ $output == *'FAILED in step "scaling policies and auto scaling group fastingest-asg (with its instances)"'* ]]
	not grep -q '^ec2 ' "$FAKE_AWS_LOG"
}

@test "teardown: a failing call stops it with the step and the command to run again" {
	FAKE_AWS_FAIL=elbv2:delete-load-balancer NAME=demo teardown_run
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"when calling the DeleteLoadBalancer operation"* ]]
	[[ $output == *'FAILED in step "listeners and load balancer demo-lb"'* ]]
	[[ $output == *"env NAME=demo AWS_REGION=us-east-1 bash scripts/teardown-ec2.sh"* ]]
	[ "$(tail -n 1 "$FAKE_AWS_LOG" | cut -d' ' -f1,2)" = "elbv2 delete-load-balancer" ]
}

@test "teardown: an error other than not-found in a lookup stops it" {
	printf 'An error occurred (AccessDenied) when calling the GetRole operation: not authorized\n' \
		>"$BATS_TEST_TMPDIR/iam.get-role.err"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FIX/aws teardown_run
	[ "$status" -ne 0 ]
	[[ $output == *"AccessDenied"* ]]
	[[ $output == *'FAILED in step "instance profile fastingest-instance-profile and role fastingest-instance-role"'* ]]
	not grep -q '^iam delete-role' "$FAKE_AWS_LOG"
}

@test "teardown: AWS_ENDPOINT_URL is passed to every call, names follow NAME and --region" {
	AWS_ENDPOINT_URL=http://127.0.0.1:5000 teardown_run --name demo --region eu-west-1
	[ "$status" -eq 0 ]
	[ "$(grep -vc -- '--region eu-west-1 --output text --endpoint-url http://127.0.0.1:5000' "$FAKE_AWS_LOG")" -eq 0 ]
	has "cloudwatch describe-alarms" "--alarm-names demo-p99-latency-high"
	has "autoscaling describe-auto-scaling-groups" "--auto-scaling-group-names demo-asg"
	has "elbv2 describe-load-balancers" "--names demo-lb"
	has "elbv2 describe-target-groups" "--names demo-tg"
	has "iam get-role" "--role-name demo-instance-role"
}

@test "teardown: DRY_RUN=1 calls nothing and prints shell-quoted commands" {
	DRY_RUN=1 DELETE_BUCKET=1 teardown_run
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -s "$FAKE_AWS_LOG" ]
	[[ $output == *"aws autoscaling delete-auto-scaling-group --auto-scaling-group-name fastingest-asg --force-delete --region us-east-1 --output text"* ]]
	[[ $output == *"aws elbv2 delete-load-balancer --load-balancer-arn "* ]]
	[[ $output == *"aws ec2 delete-security-group --group-id sg-0dryrun-fastingest-instance-sg"* ]]
	[[ $output == *"aws iam delete-role --role-name fastingest-instance-role"* ]]
	[[ $output == *"aws ssm delete-parameter --name /fastingest/auth-token"* ]]
	local -a args=()
	line=$(grep '^aws elbv2 describe-load-balancers ' <<<"$output")
	eval "args=($line)"
	[ "${args[5]}" = "--query" ]
	[ "${args[6]}" = "LoadBalancers[].LoadBalancerArn" ]
}

@test "teardown: keeps a token parameter it did not create, and AUTH_TOKEN_PARAM" {
	# No tag of this deployment: someone else's parameter of that name.
	printf 'someone-else\n' >"$BATS_TEST_TMPDIR/ssm.list-tags-for-resource.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FIX/aws teardown_run
	echo "$output"
	[ "$status" -eq 0 ]
	not grep -q '^ssm delete-parameter' "$FAKE_AWS_LOG"
	[[ $output == *"parameter /fastingest/auth-token: kept (no tag fastingest:deployment=fastingest"* ]]

	: >"$BATS_TEST_TMPDIR/ssm.list-tags-for-resource.out"
	fresh_log
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FIX/aws teardown_run
	[ "$status" -eq 0 ]
	not grep -q '^ssm delete-parameter' "$FAKE_AWS_LOG"

	# A reused parameter (the deploy's teardown hint repeats AUTH_TOKEN_PARAM).
	fresh_log
	AUTH_TOKEN_PARAM=/fastingest/auth-token teardown_run
	[ "$status" -eq 0 ]
	not grep -q '^ssm ' "$FAKE_AWS_LOG"
	[[ $output == *"kept (it is AUTH_TOKEN_PARAM"* ]]

	# A parameter of another name is not this deployment's either.
	fresh_log
	AUTH_TOKEN_PARAM=/shared/token teardown_run
	[ "$status" -eq 0 ]
	has "ssm delete-parameter" "--name /fastingest/auth-token"
	not grep -q /shared/token "$FAKE_AWS_LOG"
}

@test "teardown: TOKEN_PARAM_NAME names the parameter" {
	printf 'demo\n' >"$BATS_TEST_TMPDIR/ssm.list-tags-for-resource.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FIX/aws NAME=demo TOKEN_PARAM_NAME=/ingest/demo-token teardown_run
	[ "$status" -eq 0 ]
	has "ssm delete-parameter" "--name /ingest/demo-token"
}
