#!/usr/bin/env bats
# Tests of scripts/deploy-ec2.sh without AWS: test/deploy/fake-aws stands in
# for the AWS CLI (first on PATH), records every call in $FAKE_AWS_LOG and
# answers from test/deploy/fixtures/aws-new (what a fresh account lacks: the
# role, the bucket), then fixtures/aws. The build is skipped (BINARY), the
# templates are the stand-ins in fixtures/templates, waits do not sleep.

load helpers

setup() { fake_aws_setup "$BATS_TEST_DIRNAME/fixtures/aws-new:$BATS_TEST_DIRNAME/fixtures/aws"; }

deploy() { run bash scripts/deploy-ec2.sh "$@" </dev/null; }

LB_ARN=arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/fastingest-lb/50dc6c495c0c9188
TG_ARN=arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/fastingest-tg/73e2d6bc24d8a067
STEP_ARN=arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:0f01:autoScalingGroupName/fastingest-asg:policyName/fastingest-p99-latency-step

@test "deploy: --help prints usage and calls nothing" {
	deploy --help
	[ "$status" -eq 0 ]
	[[ $output == *"Usage: bash scripts/deploy-ec2.sh"* ]]
	[[ $output == *"--dry-run"* && $output == *"LB"* && $output == *"ARCH"* ]]
	[ ! -s "$FAKE_AWS_LOG" ]
}

@test "deploy: refuses to run without confirmation (no --yes, no terminal), calls nothing" {
	unset YES
	deploy
	[ "$status" -ne 0 ]
	[[ $output == *"billable"* ]]
	[[ $output == *"--yes"* ]]
	[ ! -s "$FAKE_AWS_LOG" ]
}

@test "deploy (ALB): the expected calls in the expected order" {
	deploy
	echo "$output"
	[ "$status" -eq 0 ]
	diff -u - <(calls) <<'EOF'
iam get-role
sts get-caller-identity
ec2 describe-vpcs
ec2 describe-subnets
ec2 describe-instance-type-offerings
ssm get-parameter
s3api head-bucket
s3api create-bucket
s3 cp
iam create-role
iam put-role-policy
iam create-instance-profile
iam add-role-to-instance-profile
ec2 create-security-group
ec2 authorize-security-group-ingress
ec2 create-security-group
ec2 authorize-security-group-ingress
elbv2 create-target-group
elbv2 modify-target-group-attributes
elbv2 create-load-balancer
elbv2 create-listener
iam wait
ec2 create-launch-template
autoscaling create-auto-scaling-group
autoscaling put-scaling-policy
autoscaling put-scaling-policy
cloudwatch put-metric-alarm
elbv2 describe-target-health
EOF
}

@test "deploy (ALB): key parameters of every resource" {
	deploy
	echo "$output"
	[ "$status" -eq 0 ]
	# Every call in the region, with text output.
	[ "$(grep -vc -- '--region us-east-1 --output text' "$FAKE_AWS_LOG")" -eq 0 ]
	not grep -q -- --endpoint-url "$FAKE_AWS_LOG"
	# The binary, in a bucket created for the account, readable by the role.
	has "s3api create-bucket" fastingest-artifacts-123456789012-us-east-1
	has "s3 cp" "$BINARY"
	has "s3 cp" s3://fastingest-artifacts-123456789012-us-east-1/fastingest/fastingest
	[[ $(call "iam put-role-policy") == *'"Action":"s3:GetObject","Resource":"arn:aws:s3:::fastingest-artifacts-123456789012-us-east-1/fastingest/fastingest"'* ]]
	[[ $(call "iam create-role") == *'"Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"'* ]]
	has "iam add-role-to-instance-profile" fastingest-instance-profile
	# Security groups: the LB's open on 80; the instances' on 8080 from the LB's group only.
	has "ec2 create-security-group" fastingest-lb-sg 1
	has "ec2 create-security-group" vpc-0fake000000000001 1
	has "ec2 authorize-security-group-ingress" "--group-id sg-0fake000000000001 --protocol tcp --port 80 --cidr 0.0.0.0/0" 1
	has "ec2 create-security-group" fastingest-instance-sg 2
	has "ec2 authorize-security-group-ingress" "--group-id sg-0fake000000000002 --protocol tcp --port 8080 --source-group sg-0fake000000000001" 2
	# Target group: HTTP, health check GET /readyz, short deregistration delay.
	has "elbv2 create-target-group" "--name fastingest-tg --protocol HTTP --port 8080"
	has "elbv2 create-target-group" "--health-check-protocol HTTP --health-check-path /readyz"
	has "elbv2 modify-target-group-attributes" "--target-group-arn $TG_ARN --attributes Key=deregistration_delay.timeout_seconds,Value=30"
	# ALB in one subnet per zone that offers the type (not us-east-1e), behind its group; listener on 80.
	has "elbv2 create-load-balancer" "--name fastingest-lb --type application --scheme internet-facing"
	has "elbv2 create-load-balancer" "--subnets subnet-0fake00000000001a subnet-0fake00000000001b --security-groups sg-0fake000000000001"
	has "elbv2 create-listener" "--load-balancer-arn $LB_ARN --protocol HTTP --port 80 --default-actions Type=forward,TargetGroupArn=$TG_ARN"
	# Launch template: IMDSv2 required, the profile, the instances' group, the AMI from SSM.
	has "ssm get-parameter" "--name /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
	lt=$(call "ec2 create-launch-template")
	[[ $lt == *'"MetadataOptions":{"HttpTokens":"required"'* ]]
	[[ $lt == *'"IamInstanceProfile":{"Name":"fastingest-instance-profile"}'* ]]
	[[ $lt == *'"SecurityGroupIds":["sg-0fake000000000002"]'* ]]
	[[ $lt == *'"ImageId":"ami-0fake000000000001","InstanceType":"c6i.large"'* ]]
	has "iam wait" "instance-profile-exists --instance-profile-name fastingest-instance-profile"
	# Auto Scaling group: 4 instances over two zones, in the target group, ELB health checks.
	# shellcheck disable=SC2016 # a literal $Latest
	has "autoscaling create-auto-scaling-group" '--launch-template LaunchTemplateId=lt-0fake000000000001,Version=$Latest'
	has "autoscaling create-auto-scaling-group" "--min-size 4 --max-size 12 --desired-capacity 4"
	has "autoscaling create-auto-scaling-group" "--vpc-zone-identifier subnet-0fake00000000001a,subnet-0fake00000000001b"
	has "autoscaling create-auto-scaling-group" "--target-group-arns $TG_ARN --health-check-type EC2 --health-check-grace-period 120"
	# Target tracking on ALBRequestCountPerTarget, 250000 per target (per minute).
	tt=$(call "autoscaling put-scaling-policy" 1)
	[[ $tt == *"--policy-type TargetTrackingScaling"* ]]
	[[ $tt == *'{"PredefinedMetricSpecification":{"PredefinedMetricType":"ALBRequestCountPerTarget","ResourceLabel":"app/fastingest-lb/50dc6c495c0c9188/targetgroup/fastingest-tg/73e2d6bc24d8a067"},"TargetValue":250000}'* ]]
	# Step scaling, driven by the p99 TargetResponseTime alarm.
	has "autoscaling put-scaling-policy" "--policy-type StepScaling" 2
	has "autoscaling put-scaling-policy" "MetricIntervalLowerBound=0,MetricIntervalUpperBound=0.25,ScalingAdjustment=25 MetricIntervalLowerBound=0.25,ScalingAdjustment=50" 2
	has "cloudwatch put-metric-alarm" "--namespace AWS/ApplicationELB --metric-name TargetResponseTime"
	has "cloudwatch put-metric-alarm" "--dimensions Name=LoadBalancer,Value=app/fastingest-lb/50dc6c495c0c9188"
	has "cloudwatch put-metric-alarm" "--extended-statistic p99 --period 60 --evaluation-periods 3"
	has "cloudwatch put-metric-alarm" "--threshold 0.25 --comparison-operator GreaterThanThreshold"
	has "cloudwatch put-metric-alarm" "--alarm-actions $STEP_ARN"
	# The waits and the result.
	has "elbv2 describe-target-health" "--target-group-arn $TG_ARN"
	[[ $output == *"healthy targets: 4 of 4"* ]]
	[[ $output == *"bash scripts/loadtest.sh http://fastingest-lb-1234567890.us-east-1.elb.amazonaws.com/"* ]]
	[[ $output == *"NAME=fastingest AWS_REGION=us-east-1 bash scripts/teardown-ec2.sh"* ]]
}

@test "deploy: the launch template's user-data is the rendered template" {
	printf 'MAX_WORKERS=2000\n# a comment\n\nSINK=null\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env deploy
	[ "$status" -eq 0 ]
	b64=$(call "ec2 create-launch-template" | grep -o '"UserData":"[^"]*"' | cut -d'"' -f4)
	printf '%s' "$b64" | base64 -d >"$BATS_TEST_TMPDIR/user-data"
	ENV_FILE=$BATS_TEST_TMPDIR/env BUCKET=fastingest-artifacts-123456789012-us-east-1 \
		run bash scripts/deploy-ec2.sh --print-user-data
	[ "$status" -eq 0 ]
	diff -u <(printf '%s\n' "$output") "$BATS_TEST_TMPDIR/user-data"
	grep -qx '  - aws s3 cp --region us-east-1 s3://fastingest-artifacts-123456789012-us-east-1/fastingest/fastingest /usr/local/bin/fastingest' "$BATS_TEST_TMPDIR/user-data"
}

@test "deploy --print-user-data: placeholders replaced literally, blocks indented 6 spaces" {
	printf 'MAX_WORKERS=2000\nSIM_LATENCY=1ms-2ms\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env PORT=9000 BUCKET=my-bucket run bash scripts/deploy-ec2.sh --print-user-data
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -s "$FAKE_AWS_LOG" ]
	[[ $output != *@@* ]]
	want=$(
		cat <<'EOF'
#cloud-config
# Stand-in for deploy/cloud-init.yaml in the bats tests: the same six
# placeholders, the same layout rules.
write_files:
  - path: /etc/systemd/system/fastingest.service
    permissions: '0644'
    content: |
      # Stand-in for deploy/fastingest.service: characters that naive substitution
      # mangles (& \ $ %) must arrive unchanged.
      [Unit]
      Description=fastingest & friends

      [Service]
      ExecStart=/usr/local/bin/fastingest \
          -log-level info
      Environment="GREETING=100% $HOME"
      EnvironmentFile=-/etc/fastingest/env
  - path: /etc/sysctl.d/90-fastingest.conf
    permissions: '0644'
    content: |
      # Stand-in for deploy/sysctl.conf
      net.core.somaxconn = 65535
      net.ipv4.tcp_max_syn_backlog = 65535
  - path: /etc/fastingest/env
    permissions: '0600'
    content: |
      ADDR=:9000
      MAX_WORKERS=2000
      SIM_LATENCY=1ms-2ms
runcmd:
  - aws s3 cp --region us-east-1 s3://my-bucket/fastingest/fastingest /usr/local/bin/fastingest
  - systemctl enable --now fastingest
EOF
	)
	diff -u <(printf '%s\n' "$want") <(printf '%s\n' "$output")
	if python3 -c 'import yaml' 2>/dev/null; then
		printf '%s\n' "$output" | python3 -c '
import sys, yaml
d = yaml.safe_load(sys.stdin)
unit = open(sys.argv[1]).read()
assert d["write_files"][0]["content"] == unit, d["write_files"][0]["content"]
assert d["write_files"][2]["content"] == "ADDR=:9000\nMAX_WORKERS=2000\nSIM_LATENCY=1ms-2ms\n"
' "$SERVICE_UNIT_FILE"
	fi
}

@test "deploy --print-user-data: the real deploy/cloud-init.yaml renders to valid YAML holding the real unit" {
	unset CLOUD_INIT_TEMPLATE SERVICE_UNIT_FILE SYSCTL_FILE
	if [[ ! -f deploy/cloud-init.yaml || ! -f deploy/fastingest.service || ! -f deploy/sysctl.conf ]]; then
		skip "deploy/cloud-init.yaml, deploy/fastingest.service or deploy/sysctl.conf is missing"
	fi
	if ! python3 -c 'import yaml' 2>/dev/null; then skip "python3 with PyYAML is not installed"; fi
	run bash scripts/deploy-ec2.sh --print-user-data
	[ "$status" -eq 0 ]
	[[ $output != *@@* ]]
	printf '%s\n' "$output" | python3 -c '
import sys, yaml
d = yaml.safe_load(sys.stdin)
files = {f["path"]: f["content"] for f in d["write_files"]}
assert files["/etc/systemd/system/fastingest.service"] == open("deploy/fastingest.service").read()
assert any(c == open("deploy/sysctl.conf").read() for c in files.values())
'
}

@test "deploy --print-user-data: a template without a placeholder, or an ADDR in ENV_FILE, is refused" {
	grep -v SYSCTL_CONF "$CLOUD_INIT_TEMPLATE" >"$BATS_TEST_TMPDIR/t.yaml"
	CLOUD_INIT_TEMPLATE=$BATS_TEST_TMPDIR/t.yaml run bash scripts/deploy-ec2.sh --print-user-data
	[ "$status" -ne 0 ]
	[[ $output == *"has no @@SYSCTL_CONF@@ placeholder"* ]]
	printf 'ADDR=:9999\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env run bash scripts/deploy-ec2.sh --print-user-data
	[ "$status" -eq 2 ]
	[[ $output == *"set PORT instead of ADDR"* ]]
}

@test "deploy: names, sizes, thresholds, port and region are settable" {
	NAME=demo INSTANCE_TYPE=c6i.xlarge DESIRED=2 MIN_SIZE=2 MAX_SIZE=6 PORT=9000 \
		TARGET_REQUESTS_PER_TARGET=100000 LATENCY_P99_SECONDS=0.5 BUCKET=demo-bucket \
		ASG_NAME=custom-asg deploy --region eu-west-1
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -vc -- '--region eu-west-1' "$FAKE_AWS_LOG")" -eq 0 ]
	not grep -q '^sts ' "$FAKE_AWS_LOG" # BUCKET is set: no account lookup
	has "s3api create-bucket" "--bucket demo-bucket --create-bucket-configuration LocationConstraint=eu-west-1"
	has "iam create-role" "--role-name demo-instance-role"
	has "ec2 create-security-group" demo-lb-sg 1
	has "ec2 create-security-group" demo-instance-sg 2
	has "ec2 authorize-security-group-ingress" "--port 9000 --source-group sg-0fake000000000001" 2
	has "elbv2 create-target-group" "--name demo-tg --protocol HTTP --port 9000"
	has "elbv2 create-load-balancer" "--name demo-lb"
	has "ec2 create-launch-template" "--launch-template-name demo-lt"
	[[ $(call "ec2 create-launch-template") == *'"InstanceType":"c6i.xlarge"'* ]]
	has "autoscaling create-auto-scaling-group" "--auto-scaling-group-name custom-asg"
	has "autoscaling create-auto-scaling-group" "--min-size 2 --max-size 6 --desired-capacity 2"
	[[ $(call "autoscaling put-scaling-policy" 1) == *'"TargetValue":100000}'* ]]
	has "cloudwatch put-metric-alarm" "--alarm-name demo-p99-latency-high"
	has "cloudwatch put-metric-alarm" "--threshold 0.5"
	[[ $output == *"ASG_NAME=custom-asg"* ]] # the teardown hint repeats overridden names
}

@test "deploy: ARCH=arm64 uses the arm64 image and c7g.large" {
	ARCH=arm64 deploy
	[ "$status" -eq 0 ]
	has "ssm get-parameter" "--name /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
	has "ec2 describe-instance-type-offerings" "Name=instance-type,Values=c7g.large"
	[[ $(call "ec2 create-launch-template") == *'"InstanceType":"c7g.large"'* ]]
	has "ec2 create-launch-template" "fastingest linux/arm64"
}

@test "deploy: AMI_ID, VPC_ID and SUBNET_IDS skip the lookups they replace" {
	# The fixture answers for 4 subnets: 1a, a second in 1a, 1b and 1e. All go to
	# the group; the load balancer gets one per zone.
	AMI_ID=ami-0123456789abcdef0 VPC_ID=vpc-0fake000000000001 \
		SUBNET_IDS=subnet-0fake00000000001a,subnet-0fake0000000001a2,subnet-0fake00000000001b,subnet-0fake00000000001e deploy
	echo "$output"
	[ "$status" -eq 0 ]
	not grep -q '^ssm ' "$FAKE_AWS_LOG"
	not grep -q '^ec2 describe-instance-type-offerings' "$FAKE_AWS_LOG"
	has "ec2 describe-vpcs" "--vpc-ids vpc-0fake000000000001"
	has "ec2 describe-subnets" "--subnet-ids subnet-0fake00000000001a subnet-0fake0000000001a2 subnet-0fake00000000001b subnet-0fake00000000001e"
	has "autoscaling create-auto-scaling-group" "--vpc-zone-identifier subnet-0fake00000000001a,subnet-0fake0000000001a2,subnet-0fake00000000001b,subnet-0fake00000000001e"
	has "elbv2 create-load-balancer" "--subnets subnet-0fake00000000001a subnet-0fake00000000001b subnet-0fake00000000001e"
	[[ $(call "ec2 create-launch-template") == *'"ImageId":"ami-0123456789abcdef0"'* ]]
}

@test "deploy: refuses to go on when a deployment of the same NAME exists" {
	FAKE_AWS_FIXTURES=$FIX/aws deploy
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"the role fastingest-instance-role exists"* ]]
	[[ $output == *"env NAME=fastingest AWS_REGION=us-east-1 bash scripts/teardown-ec2.sh"* ]]
	[ "$(calls)" = "iam get-role" ]
}

@test "deploy: an existing bucket is reused" {
	: >"$BATS_TEST_TMPDIR/s3api.head-bucket.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FAKE_AWS_FIXTURES deploy
	[ "$status" -eq 0 ]
	has "s3api head-bucket" "--bucket fastingest-artifacts-123456789012-us-east-1"
	not grep -q '^s3api create-bucket' "$FAKE_AWS_LOG"
	[[ $output == *"bucket fastingest-artifacts-123456789012-us-east-1 exists"* ]]
}

@test "deploy: fewer than two availability zones is refused before anything is created" {
	printf 'us-east-1a\n' >"$BATS_TEST_TMPDIR/ec2.describe-instance-type-offerings.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FAKE_AWS_FIXTURES deploy
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *'FAILED in step "network: VPC and subnets in two or more availability zones"'* ]]
	[[ $output == *"two or more availability zones"* ]]
	[[ $output == *"Nothing was created yet"* ]]
	not grep -q create "$FAKE_AWS_LOG"
}

@test "deploy (LB=nlb): TCP target group with an HTTP /readyz health check, CPU target tracking, no alarm" {
	LB=nlb deploy
	echo "$output"
	[ "$status" -eq 0 ]
	diff -u - <(calls) <<'EOF'
iam get-role
sts get-caller-identity
ec2 describe-vpcs
ec2 describe-subnets
ec2 describe-instance-type-offerings
ssm get-parameter
s3api head-bucket
s3api create-bucket
s3 cp
iam create-role
iam put-role-policy
iam create-instance-profile
iam add-role-to-instance-profile
ec2 create-security-group
ec2 authorize-security-group-ingress
elbv2 create-target-group
elbv2 modify-target-group-attributes
elbv2 create-load-balancer
elbv2 create-listener
iam wait
ec2 create-launch-template
autoscaling create-auto-scaling-group
autoscaling put-scaling-policy
elbv2 describe-target-health
EOF
	# No security group for the NLB: the instances accept the port from the VPC.
	has "ec2 create-security-group" fastingest-instance-sg
	has "ec2 authorize-security-group-ingress" "--port 8080 --cidr 172.31.0.0/16"
	has "elbv2 create-target-group" "--protocol TCP --port 8080"
	has "elbv2 create-target-group" "--health-check-protocol HTTP --health-check-path /readyz"
	has "elbv2 modify-target-group-attributes" "Key=deregistration_delay.timeout_seconds,Value=30 Key=preserve_client_ip.enabled,Value=false"
	has "elbv2 create-load-balancer" "--type network"
	not grep -q -- '--security-groups' <(call "elbv2 create-load-balancer")
	has "elbv2 create-listener" "--protocol TCP --port 80"
	[[ $(call "autoscaling put-scaling-policy") == *'"PredefinedMetricType":"ASGAverageCPUUtilization"},"TargetValue":60}'* ]]
	[[ $output == *"no p99 latency alarm"* ]]
}

@test "deploy: AWS_ENDPOINT_URL is passed to every call as --endpoint-url" {
	AWS_ENDPOINT_URL=http://127.0.0.1:5000 deploy
	[ "$status" -eq 0 ]
	[ "$(wc -l <"$FAKE_AWS_LOG")" -gt 20 ]
	[ "$(grep -vc -- '--endpoint-url http://127.0.0.1:5000' "$FAKE_AWS_LOG")" -eq 0 ]
	# ... and the teardown command it prints aims at the same endpoint.
	[[ $output == *"AWS_ENDPOINT_URL=http://127.0.0.1:5000 bash scripts/teardown-ec2.sh"* ]]
}

@test "deploy: a failing call stops the deploy, naming the step and the teardown command" {
	FAKE_AWS_FAIL=elbv2:create-load-balancer deploy
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"An error occurred (FakeFailure) when calling the CreateLoadBalancer operation"* ]]
	[[ $output == *'FAILED in step "application load balancer"'* ]]
	[[ $output == *"env NAME=fastingest AWS_REGION=us-east-1 bash scripts/teardown-ec2.sh"* ]]
	# Nothing ran after the failing call.
	[ "$(tail -n 1 "$FAKE_AWS_LOG" | cut -d' ' -f1,2)" = "elbv2 create-load-balancer" ]
	[[ $output != *"fastingest is serving"* ]]
}

@test "deploy: a failure inside a command substitution is reported once" {
	FAKE_AWS_FAIL=ec2:create-launch-template deploy
	[ "$status" -ne 0 ]
	[ "$(grep -c 'FAILED in step' <<<"$output")" -eq 1 ]
	[[ $output == *'FAILED in step "launch template (IMDSv2 required)"'* ]]
	not grep -q '^autoscaling' "$FAKE_AWS_LOG"
}

@test "deploy: waits for healthy targets, bounded by WAIT_TIMEOUT" {
	printf 'initial\tinitial\tunhealthy\thealthy\n' >"$BATS_TEST_TMPDIR/elbv2.describe-target-health.1.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FAKE_AWS_FIXTURES deploy
	[ "$status" -eq 0 ]
	[ "$(grep -c '^elbv2 describe-target-health' "$FAKE_AWS_LOG")" -eq 2 ]
	[[ $output == *"healthy targets: 1 of 4"* && $output == *"healthy targets: 4 of 4"* ]]

	: >"$FAKE_AWS_LOG"
	rm -rf "$FAKE_AWS_LOG.state"
	printf 'unhealthy\tunhealthy\tunhealthy\thealthy\n' >"$BATS_TEST_TMPDIR/elbv2.describe-target-health.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FAKE_AWS_FIXTURES WAIT_TIMEOUT=0 deploy
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *'FAILED in step "wait for 4 healthy targets (at most 0s)"'* ]]
	[[ $output == *"bash scripts/teardown-ec2.sh"* ]]
}

@test "deploy: a put-scaling-policy answer without the ARN (moto) is looked up" {
	printf 'None\n' >"$BATS_TEST_TMPDIR/autoscaling.put-scaling-policy.out"
	printf '%s\n' "$STEP_ARN" >"$BATS_TEST_TMPDIR/autoscaling.describe-policies.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FAKE_AWS_FIXTURES deploy
	[ "$status" -eq 0 ]
	has "autoscaling describe-policies" "--policy-names fastingest-p99-latency-step"
	has "cloudwatch put-metric-alarm" "--alarm-actions $STEP_ARN"
}

@test "deploy: DRY_RUN=1 calls nothing and prints shell-quoted commands" {
	unset BINARY
	DRY_RUN=1 deploy
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -s "$FAKE_AWS_LOG" ]
	# The build is printed, not run.
	[[ $output == *"env CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go -C $ROOT build"* ]]
	[[ $output == *"aws elbv2 create-load-balancer --name fastingest-lb --type application"* ]]
	[[ $output == *"aws cloudwatch put-metric-alarm --alarm-name fastingest-p99-latency-high"* ]]
	# Each printed command is valid shell that gives back the exact arguments.
	local -a args=()
	line=$(grep '^aws autoscaling create-auto-scaling-group ' <<<"$output")
	eval "args=($line)"
	# shellcheck disable=SC2016 # a literal $Latest
	[[ " ${args[*]} " == *' LaunchTemplateId=lt-0dryrun000000000,Version=$Latest '* ]]
	line=$(grep '^aws cloudwatch put-metric-alarm ' <<<"$output")
	eval "args=($line)"
	for ((i = 0; i < ${#args[@]}; i++)); do
		if [[ ${args[i]} == --alarm-description ]]; then desc=${args[i + 1]}; fi
	done
	[ "$desc" = "fastingest fastingest: p99 TargetResponseTime above 0.25s for 3 minutes adds instances" ]
	line=$(grep '^aws ec2 create-launch-template ' <<<"$output")
	eval "args=($line)"
	[ "${args[6]}" = "fastingest linux/amd64" ]
	[[ ${args[7]} == --launch-template-data ]]
	[[ ${args[8]} == '{"ImageId":"ami-0dryrun000000000","InstanceType":"c6i.large",'* ]]
	[[ $output == *"nothing is created"* ]]
}

@test "deploy: invalid settings stop it before any call" {
	for setting in LB=gwlb ARCH=386 PORT=80 DESIRED=0 MIN_SIZE=5 NAME=-bad 'NAME=a_b' LATENCY_P99_SECONDS=fast \
		INSTANCE_TYPE=big BUCKET=Bad_Bucket CLIENT_CIDR=everyone VPC_ID=vpc-1; do
		run env "$setting" bash scripts/deploy-ec2.sh </dev/null
		echo "$setting: $output"
		[ "$status" -eq 2 ]
	done
	run env -u AWS_REGION bash scripts/deploy-ec2.sh </dev/null
	[ "$status" -eq 2 ]
	[[ $output == *"no region"* ]]
	run bash scripts/deploy-ec2.sh --bogus
	[ "$status" -eq 2 ]
	[ ! -s "$FAKE_AWS_LOG" ]
}
