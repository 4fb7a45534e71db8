#!/usr/bin/env bats
# Tests of scripts/deploy-ec2.sh without AWS: test/deploy/fake-aws stands in
# for the AWS CLI (first on PATH), records every call in $FAKE_AWS_LOG and
# answers from test/deploy/fixtures/aws-new (what a fresh account lacks: the
# role, the bucket, the token parameter), then fixtures/aws. The build is skipped (BINARY), the
# templates are the stand-ins in fixtures/templates, waits do not sleep.

load helpers

setup() { fake_aws_setup "$BATS_TEST_DIRNAME/fixtures/aws-new:$BATS_TEST_DIRNAME/fixtures/aws"; }

deploy() { run bash scripts/deploy-ec2.sh "$@" </dev/null; }

LB_ARN=arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/fastingest-lb/50dc6c495c0c9188
TG_ARN=arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/fastingest-tg/73e2d6bc24d8a067
STEP_ARN=arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:0f01:autoScalingGroupName/fastingest-asg:policyName/fastingest-p99-latency-step
LISTENER_ARN=arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/fastingest-lb/50dc6c495c0c9188/f2f7dc8efc522ab2
CERT_ARN=arn:aws:acm:us-east-1:123456789012:certificate/0f7a1b2c-3d4e-5f60-7182-93a4b5c6d7e8
TOKEN_ARN=arn:aws:ssm:us-east-1:123456789012:parameter/fastingest/auth-token
NOT_FOUND='[{"Type":"fixed-response","FixedResponseConfig":{"StatusCode":"404","ContentType":"application/json","MessageBody":"{\"error\":\"not found: POST parcels to /\"}"}}]'
POST_ROOT='[{"Field":"path-pattern","PathPatternConfig":{"Values":["/"]}},{"Field":"http-request-method","HttpRequestMethodConfig":{"Values":["POST"]}}]'
REDIRECT='[{"Type":"redirect","RedirectConfig":{"Protocol":"HTTPS","Port":"443","StatusCode":"HTTP_301"}}]'

# no_token_anywhere TOKEN: TOKEN is 64 hex digits (32 random bytes) and is in
# none of the recorded calls, the script's output, nor the launch template's
# user-data.
no_token_anywhere() {
	[[ $1 =~ ^[0-9a-f]{64}$ ]]
	not grep -qF "$1" "$FAKE_AWS_LOG"
	[[ $output != *"$1"* ]]
	if grep -q '^ec2 create-launch-template' "$FAKE_AWS_LOG"; then
		not grep -qF "$1" <(user_data)
	fi
}

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
ec2 describe-instance-types
ssm get-parameter
ssm describe-parameters
s3api head-bucket
s3api create-bucket
s3 cp
ssm put-parameter
iam create-role
iam put-role-policy
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
elbv2 create-rule
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
	# The token: a SecureString parameter, its value sent from a file, tagged
	# as the deploy's own; the role may read that parameter alone.
	has "ssm describe-parameters" "--parameter-filters Key=Name,Option=Equals,Values=/fastingest/auth-token"
	[[ $(call "ssm put-parameter") == *" --name /fastingest/auth-token --type SecureString --value file:///"* ]]
	has "ssm put-parameter" "--tags Key=fastingest:deployment,Value=fastingest"
	has "iam put-role-policy" "--policy-name read-auth-token" 2
	[[ $(call "iam put-role-policy" 2) == *'"Statement":[{"Effect":"Allow","Action":"ssm:GetParameter","Resource":"'$TOKEN_ARN'"}]}'* ]]
	no_token_anywhere "$(sent_file "ssm put-parameter")"
	# Security groups: the LB's open on 80 to ALLOWED_CIDRS; the instances' on
	# 8080 from the LB's group and the VPC (METRICS_CIDRS), nothing else.
	has "ec2 create-security-group" fastingest-lb-sg 1
	has "ec2 create-security-group" vpc-0fake000000000001 1
	has "ec2 authorize-security-group-ingress" '--group-id sg-0fake000000000001 --ip-permissions [{"IpProtocol":"tcp","FromPort":80,"ToPort":80,"IpRanges":[{"CidrIp":"0.0.0.0/0","Description":"producers (ALLOWED_CIDRS)"}]}]' 1
	has "ec2 create-security-group" fastingest-instance-sg 2
	has "ec2 authorize-security-group-ingress" '--group-id sg-0fake000000000002 --ip-permissions [{"IpProtocol":"tcp","FromPort":8080,"ToPort":8080,"UserIdGroupPairs":[{"GroupId":"sg-0fake000000000001","Description":"the load balancer"}],"IpRanges":[{"CidrIp":"172.31.0.0/16","Description":"metrics scrapers (METRICS_CIDRS)"}]}]' 2
	# Target group: HTTP, health check GET /readyz, short deregistration delay.
	has "elbv2 create-target-group" "--name fastingest-tg --protocol HTTP --port 8080"
	has "elbv2 create-target-group" "--health-check-protocol HTTP --health-check-path /readyz"
	has "elbv2 modify-target-group-attributes" "--target-group-arn $TG_ARN --attributes Key=deregistration_delay.timeout_seconds,Value=30"
	# ALB in one subnet per zone that offers the type (not us-east-1e), behind its group; listener on 80.
	has "elbv2 create-load-balancer" "--name fastingest-lb --type application --scheme internet-facing"
	has "elbv2 create-load-balancer" "--subnets subnet-0fake00000000001a subnet-0fake00000000001b --security-groups sg-0fake000000000001"
	# No certificate: HTTP on 80, a fixed 404 but for the one rule, POST /.
	has "elbv2 create-listener" "--load-balancer-arn $LB_ARN --protocol HTTP --port 80 --default-actions $NOT_FOUND"
	has "elbv2 create-rule" "--listener-arn $LISTENER_ARN --priority 1 --conditions $POST_ROOT --actions Type=forward,TargetGroupArn=$TG_ARN"
	[[ $output == *"WARNING: plain HTTP (no CERTIFICATE_ARN)"* ]]
	# Launch template: IMDSv2 required, the profile, the instances' group, the AMI from SSM.
	has "ssm get-parameter" "--name /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
	lt=$(call "ec2 create-launch-template")
	[[ $lt == *'"MetadataOptions":{"HttpTokens":"required"'* ]]
	[[ $lt == *'"IamInstanceProfile":{"Name":"fastingest-instance-profile"}'* ]]
	[[ $lt == *'"SecurityGroupIds":["sg-0fake000000000002"]'* ]]
	[[ $lt == *'"ImageId":"ami-0fake000000000001","InstanceType":"c6i.large"'* ]]
	has "iam wait" "instance-profile-exists --instance-profile-name fastingest-instance-profile"
	# Auto Scaling group: 4 instances over two zones, in the target group,
	# replaced on ELB health checks after a grace period.
	# shellcheck disable=SC2016 # a literal $Latest
	has "autoscaling create-auto-scaling-group" '--launch-template LaunchTemplateId=lt-0fake000000000001,Version=$Latest'
	has "autoscaling create-auto-scaling-group" "--min-size 4 --max-size 12 --desired-capacity 4"
	has "autoscaling create-auto-scaling-group" "--vpc-zone-identifier subnet-0fake00000000001a,subnet-0fake00000000001b"
	has "autoscaling create-auto-scaling-group" "--target-group-arns $TG_ARN --health-check-type ELB --health-check-grace-period 300"
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
	# How to read the token, not the token.
	[[ $output == *"aws ssm get-parameter --region us-east-1 --name /fastingest/auth-token --with-decryption --query Parameter.Value --output text"* ]]
}

@test "deploy: the launch template's user-data is the rendered template" {
	printf 'MAX_WORKERS=2000\n# a comment\n\nSINK=null\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env deploy
	[ "$status" -eq 0 ]
	# gzip-compressed (cloud-init reads gzip; EC2 takes 16 KiB).
	b64=$(call "ec2 create-launch-template" | grep -o '"UserData":"[^"]*"' | cut -d'"' -f4)
	printf '%s' "$b64" | base64 -d | gunzip >"$BATS_TEST_TMPDIR/user-data"
	ENV_FILE=$BATS_TEST_TMPDIR/env BUCKET=fastingest-artifacts-123456789012-us-east-1 \
		INSTANCE_MEMORY_MIB=4096 INSTANCE_VCPUS=2 run bash scripts/deploy-ec2.sh --print-user-data
	[ "$status" -eq 0 ]
	diff -u <(printf '%s\n' "$output") "$BATS_TEST_TMPDIR/user-data"
	grep -qx '  - aws s3 cp --region us-east-1 s3://fastingest-artifacts-123456789012-us-east-1/fastingest/fastingest /usr/local/bin/fastingest' "$BATS_TEST_TMPDIR/user-data"
}

@test "deploy --print-user-data: placeholders replaced literally, blocks indented 6 spaces" {
	printf 'MAX_WORKERS=2000\nSIM_LATENCY=1ms-2ms\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env PORT=9000 BUCKET=my-bucket INSTANCE_MEMORY_MIB=4096 INSTANCE_VCPUS=2 \
		run bash scripts/deploy-ec2.sh --print-user-data
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -s "$FAKE_AWS_LOG" ]
	[[ $output != *@@* ]]
	want=$(
		cat <<'EOF'
#cloud-config
# Stand-in for deploy/cloud-init.yaml in the bats tests: the same nine
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
  - path: /etc/systemd/system/fastingest.service.d/credentials.conf
    permissions: '0644'
    content: |
      # Written by scripts/deploy-ec2.sh. fastingest-credentials fetches each credential
      # from SSM Parameter Store at boot into /etc/fastingest/credentials (root only);
      # systemd hands it to the service, readable by its dynamic user alone.
      [Service]
      LoadCredential=auth-token:/etc/fastingest/credentials/auth-token
      Environment=AUTH_TOKEN_FILE=%d/auth-token
  - path: /usr/local/sbin/fastingest-credentials
    permissions: '0700'
    content: |
      #!/bin/bash
      # Stand-in for deploy/fastingest-credentials.sh: 'quotes', "double", \backslash.
      echo "fetch $*"
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
      # Memory (scripts/deploy-ec2.sh): c6i.large: 4096 MiB, 2 vCPUs; 512 MiB left to the OS; fastingest's worst case 3580 MiB of 3584 MiB with MAX_CONNS=44032 MAX_QUEUE_BYTES=420MiB MAX_BODY_BYTES=1MiB.
      MAX_CONNS=44032
      MAX_QUEUE_BYTES=420MiB
      MAX_BODY_BYTES=1MiB
      GOMEMLIMIT=3584MiB
      # /metrics: not forwarded by the load balancer, reachable from METRICS_CIDRS only, so no token.
      METRICS_PUBLIC=1
      # ENV_FILE
      MAX_WORKERS=2000
      SIM_LATENCY=1ms-2ms
runcmd:
  - aws s3 cp --region us-east-1 s3://my-bucket/fastingest/fastingest /usr/local/bin/fastingest
  - /usr/local/sbin/fastingest-credentials us-east-1 auth-token=/fastingest/auth-token
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
assert d["write_files"][2]["content"] == open(sys.argv[2]).read()
assert d["write_files"][4]["content"].endswith("# ENV_FILE\nMAX_WORKERS=2000\nSIM_LATENCY=1ms-2ms\n")
' "$SERVICE_UNIT_FILE" "$CREDENTIALS_SCRIPT_FILE"
	fi
}

@test "deploy --print-user-data: the real deploy/cloud-init.yaml renders to valid YAML holding the real unit" {
	unset CLOUD_INIT_TEMPLATE SERVICE_UNIT_FILE SYSCTL_FILE CREDENTIALS_SCRIPT_FILE
	if ! python3 -c 'import yaml' 2>/dev/null; then skip "python3 with PyYAML is not installed"; fi
	INSTANCE_MEMORY_MIB=4096 INSTANCE_VCPUS=2 run bash scripts/deploy-ec2.sh --print-user-data
	[ "$status" -eq 0 ]
	[[ $output != *@@* ]]
	printf '%s\n' "$output" | python3 -c '
import sys, yaml
d = yaml.safe_load(sys.stdin)
files = {f["path"]: f["content"] for f in d["write_files"]}
assert files["/etc/systemd/system/fastingest.service"] == open("deploy/fastingest.service").read()
assert files["/usr/local/sbin/fastingest-credentials"] == open("deploy/fastingest-credentials.sh").read()
assert any(c == open("deploy/sysctl.conf").read() for c in files.values())
'
	# EC2 takes 16 KiB of user-data, compressed.
	[ "$(printf '%s\n' "$output" | gzip -9n | wc -c)" -le 16384 ]
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
	has "s3api create-bucket" "--bucket demo-bucket --create-bucket-configuration LocationConstraint=eu-west-1"
	has "iam create-role" "--role-name demo-instance-role"
	has "ec2 create-security-group" demo-lb-sg 1
	has "ec2 create-security-group" demo-instance-sg 2
	[[ $(call "ec2 authorize-security-group-ingress" 2) == *'"FromPort":9000,"ToPort":9000,"UserIdGroupPairs":[{"GroupId":"sg-0fake000000000001"'* ]]
	has "elbv2 create-target-group" "--name demo-tg --protocol HTTP --port 9000"
	has "elbv2 create-load-balancer" "--name demo-lb"
	has "ec2 create-launch-template" "--launch-template-name demo-lt"
	[[ $(call "ec2 create-launch-template") == *'"InstanceType":"c6i.xlarge"'* ]]
	has "autoscaling create-auto-scaling-group" "--auto-scaling-group-name custom-asg"
	has "autoscaling create-auto-scaling-group" "--min-size 2 --max-size 6 --desired-capacity 2"
	[[ $(call "autoscaling put-scaling-policy" 1) == *'"TargetValue":100000}'* ]]
	has "cloudwatch put-metric-alarm" "--alarm-name demo-p99-latency-high"
	has "cloudwatch put-metric-alarm" "--threshold 0.5"
	has "ssm put-parameter" "--name /demo/auth-token"
	[[ $(call "iam put-role-policy" 2) == *'"Resource":"arn:aws:ssm:eu-west-1:123456789012:parameter/demo/auth-token"'* ]]
	[[ $output == *"ASG_NAME=custom-asg"* ]] # the teardown hint repeats overridden names

	# With BUCKET set and no token to name, no account lookup.
	: >"$FAKE_AWS_LOG"
	rm -rf "$FAKE_AWS_LOG.state"
	AUTH=none BUCKET=demo-bucket deploy
	[ "$status" -eq 0 ]
	not grep -q '^sts ' "$FAKE_AWS_LOG"
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
	not grep -q '^ssm get-parameter' "$FAKE_AWS_LOG"
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
ec2 describe-instance-types
ssm get-parameter
ssm describe-parameters
s3api head-bucket
s3api create-bucket
s3 cp
ssm put-parameter
iam create-role
iam put-role-policy
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
elbv2 describe-target-health
EOF
	# The NLB has a security group too (ALLOWED_CIDRS), and the instances admit
	# the port from it: its traffic comes from its own addresses.
	has "ec2 create-security-group" fastingest-lb-sg 1
	[[ $(call "ec2 authorize-security-group-ingress" 2) == *'"FromPort":8080,"ToPort":8080,"UserIdGroupPairs":[{"GroupId":"sg-0fake000000000001"'* ]]
	has "elbv2 create-target-group" "--protocol TCP --port 8080"
	has "elbv2 create-target-group" "--health-check-protocol HTTP --health-check-path /readyz"
	has "elbv2 modify-target-group-attributes" "Key=deregistration_delay.timeout_seconds,Value=30 Key=preserve_client_ip.enabled,Value=false"
	has "elbv2 create-load-balancer" "--type network"
	has "elbv2 create-load-balancer" "--security-groups sg-0fake000000000001"
	has "elbv2 create-listener" "--protocol TCP --port 80 --default-actions Type=forward,TargetGroupArn=$TG_ARN"
	[[ $(call "autoscaling put-scaling-policy") == *'"PredefinedMetricType":"ASGAverageCPUUtilization"},"TargetValue":60}'* ]]
	[[ $output == *"no p99 latency alarm"* ]]
	[[ $output == *"every path reaches fastingest"* ]]
	# No METRICS_PUBLIC: /metrics is reachable through an NLB, so it keeps the token.
	not grep -q METRICS_PUBLIC <(user_data)

	# With a certificate: TLS on 443 only (an NLB cannot redirect).
	: >"$FAKE_AWS_LOG"
	rm -rf "$FAKE_AWS_LOG.state"
	LB=nlb CERTIFICATE_ARN=$CERT_ARN deploy
	[ "$status" -eq 0 ]
	[ "$(grep -c '^elbv2 create-listener' "$FAKE_AWS_LOG")" -eq 1 ]
	has "elbv2 create-listener" "--protocol TLS --port 443 --ssl-policy ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09 --certificates CertificateArn=$CERT_ARN --default-actions Type=forward,TargetGroupArn=$TG_ARN"
	[[ $(call "ec2 authorize-security-group-ingress" 1) == *'"FromPort":443,"ToPort":443,'* ]]
	[[ $(call "ec2 authorize-security-group-ingress" 1) != *'"FromPort":80,'* ]]
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
		INSTANCE_TYPE=big BUCKET=Bad_Bucket CLIENT_CIDR=everyone VPC_ID=vpc-1 AUTH=basic \
		ALLOWED_CIDRS=everyone ALLOWED_CIDRS=10.0.0.0/8,300.1.1.1/32 ALLOWED_CIDRS=10.0.0.0/33 METRICS_CIDRS=vpc \
		CERTIFICATE_ARN=mycert CERTIFICATE_ARN=arn:aws:acm:eu-west-1:123456789012:certificate/abc \
		'TLS_POLICY=a b' HEALTH_CHECK_TYPE=http AUTH_TOKEN_PARAM=arn:aws:ssm:x 'TOKEN_PARAM_NAME=/a b' \
		INSTANCE_MEMORY_MIB=lots MEMORY_RESERVE_MIB=-1; do
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

@test "deploy: DRY_RUN=1 shows the token parameter, HTTPS, the redirect, the POST / rule and ELB health checks; no token" {
	unset BINARY
	DRY_RUN=1 CERTIFICATE_ARN=$CERT_ARN deploy
	echo "$output"
	[ "$status" -eq 0 ]
	[ ! -s "$FAKE_AWS_LOG" ]
	local -a args=()
	# The parameter: a SecureString whose value comes from a file, never an argument.
	line=$(grep '^aws ssm put-parameter ' <<<"$output")
	eval "args=($line)"
	[[ " ${args[*]} " == *" --name /fastingest/auth-token --type SecureString --value file://"* ]]
	# HTTPS on 443 with the certificate and a TLS 1.3/1.2 policy; a fixed 404 by default.
	line=$(grep '^aws elbv2 create-listener .* --port 443 ' <<<"$output")
	eval "args=($line)"
	[[ " ${args[*]} " == *" --protocol HTTPS --port 443 --ssl-policy ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09 --certificates CertificateArn=$CERT_ARN --default-actions $NOT_FOUND "* ]]
	# HTTP on 80 answers a 301 to HTTPS.
	line=$(grep '^aws elbv2 create-listener .* --port 80 ' <<<"$output")
	eval "args=($line)"
	[[ " ${args[*]} " == *" --protocol HTTP --port 80 --default-actions $REDIRECT "* ]]
	# The one rule: POST and the path exactly /.
	line=$(grep '^aws elbv2 create-rule ' <<<"$output")
	eval "args=($line)"
	[[ " ${args[*]} " == *" --priority 1 --conditions $POST_ROOT --actions Type=forward,TargetGroupArn="* ]]
	# The group replaces instances the load balancer finds unhealthy.
	[[ $output == *"aws autoscaling create-auto-scaling-group "*"--health-check-type ELB --health-check-grace-period 300 "* ]]
	# The role may read that parameter.
	[[ $output == *'ssm:GetParameter\"\,\"Resource\":\"arn:aws:ssm:us-east-1:123456789012:parameter/fastingest/auth-token\"'* ]]
	# No token anywhere: nothing that looks like one (64 hex digits), and how to read it instead.
	not grep -Eq '[0-9a-f]{64}' <<<"$output"
	[[ $output == *"--name /fastingest/auth-token --with-decryption --query Parameter.Value"* ]]
	[[ $output != *"WARNING"* ]]
}

@test "deploy: CERTIFICATE_ARN: HTTPS on 443, HTTP 80 redirects, only POST / forwarded, both ports open to ALLOWED_CIDRS" {
	CERTIFICATE_ARN=$CERT_ARN deploy
	echo "$output"
	[ "$status" -eq 0 ]
	has "acm describe-certificate" "--certificate-arn $CERT_ARN"
	[ "$(grep -c '^elbv2 create-listener' "$FAKE_AWS_LOG")" -eq 2 ]
	has "elbv2 create-listener" "--load-balancer-arn $LB_ARN --protocol HTTPS --port 443 --ssl-policy ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09 --certificates CertificateArn=$CERT_ARN --default-actions $NOT_FOUND" 1
	has "elbv2 create-listener" "--load-balancer-arn $LB_ARN --protocol HTTP --port 80 --default-actions $REDIRECT" 2
	# The rule is on the HTTPS listener (the first created).
	diff -u - <(calls | grep '^elbv2 create-\(listener\|rule\)') <<'EOF'
elbv2 create-listener
elbv2 create-rule
elbv2 create-listener
EOF
	has "elbv2 create-rule" "--listener-arn $LISTENER_ARN --priority 1 --conditions $POST_ROOT --actions Type=forward,TargetGroupArn=$TG_ARN"
	has "ec2 authorize-security-group-ingress" '--group-id sg-0fake000000000001 --ip-permissions [{"IpProtocol":"tcp","FromPort":443,"ToPort":443,"IpRanges":[{"CidrIp":"0.0.0.0/0","Description":"producers (ALLOWED_CIDRS)"}]},{"IpProtocol":"tcp","FromPort":80,"ToPort":80,"IpRanges":[{"CidrIp":"0.0.0.0/0","Description":"producers (ALLOWED_CIDRS)"}]}]' 1
	[[ $output == *"fastingest is serving at https://fastingest-lb-1234567890.us-east-1.elb.amazonaws.com/"* ]]
	[[ $output == *"The certificate is for ingest.example.com"* ]]
	[[ $output == *"--data-binary @scripts/payload.json https://ingest.example.com/"* ]]
	[[ $output != *"WARNING"* ]]
	no_token_anywhere "$(sent_file "ssm put-parameter")"

	# A TLS_POLICY of one's choice.
	: >"$FAKE_AWS_LOG"
	rm -rf "$FAKE_AWS_LOG.state"
	CERTIFICATE_ARN=$CERT_ARN TLS_POLICY=ELBSecurityPolicy-TLS13-1-3-2021-06 deploy
	[ "$status" -eq 0 ]
	has "elbv2 create-listener" "--ssl-policy ELBSecurityPolicy-TLS13-1-3-2021-06" 1
}

@test "deploy: a certificate that is not issued, or in another region, stops it before anything is created" {
	printf 'PENDING_VALIDATION\tingest.example.com\n' >"$BATS_TEST_TMPDIR/acm.describe-certificate.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FAKE_AWS_FIXTURES CERTIFICATE_ARN=$CERT_ARN deploy
	[ "$status" -ne 0 ]
	[[ $output == *"is PENDING_VALIDATION, not ISSUED"* ]]
	[[ $output == *"Nothing was created yet"* ]]
	not grep -q create "$FAKE_AWS_LOG"

	CERTIFICATE_ARN=${CERT_ARN/us-east-1/eu-west-1} deploy
	[ "$status" -eq 2 ]
	[[ $output == *"CERTIFICATE_ARN is in eu-west-1, the load balancer in us-east-1"* ]]
}

@test "deploy: AUTH=none: no parameter, no policy for it, no credential for the unit, and loud warnings" {
	AUTH=none deploy
	echo "$output"
	[ "$status" -eq 0 ]
	not grep -q '^ssm \(put-parameter\|describe-parameters\)' "$FAKE_AWS_LOG"
	[ "$(grep -c '^iam put-role-policy' "$FAKE_AWS_LOG")" -eq 1 ]
	has "iam put-role-policy" "--policy-name read-binary"
	# Said before asking, and again at the end.
	[ "$(grep -c 'WARNING: AUTH=none: fastingest runs WITHOUT a bearer token' <<<"$output")" -eq 2 ]
	[[ $output == *"NO bearer token (AUTH=none)"* ]]
	[[ $output != *"aws ssm get-parameter"* ]]
	user_data >"$BATS_TEST_TMPDIR/user-data"
	not grep -q 'LoadCredential\|AUTH_TOKEN' "$BATS_TEST_TMPDIR/user-data"
	grep -q 'AUTH=none: no credentials' "$BATS_TEST_TMPDIR/user-data"
	grep -qx '  - /usr/local/sbin/fastingest-credentials us-east-1' "$BATS_TEST_TMPDIR/user-data"
}

@test "deploy: the token reaches the instances by name: fetched at boot, handed over by LoadCredential" {
	deploy
	[ "$status" -eq 0 ]
	user_data >"$BATS_TEST_TMPDIR/user-data"
	grep -qx '  - /usr/local/sbin/fastingest-credentials us-east-1 auth-token=/fastingest/auth-token' "$BATS_TEST_TMPDIR/user-data"
	grep -qx '      LoadCredential=auth-token:/etc/fastingest/credentials/auth-token' "$BATS_TEST_TMPDIR/user-data"
	grep -qx '      Environment=AUTH_TOKEN_FILE=%d/auth-token' "$BATS_TEST_TMPDIR/user-data"
	# Not in the environment file, which holds no secret.
	not grep -q '^      AUTH_TOKEN' "$BATS_TEST_TMPDIR/user-data"
	no_token_anywhere "$(sent_file "ssm put-parameter")"
}

@test "deploy: AUTH_TOKEN_PARAM reuses a SecureString parameter (created nowhere, read by the role), refuses a String one" {
	printf '/shared/ingest-token\tSecureString\n' >"$BATS_TEST_TMPDIR/ssm.describe-parameters.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FAKE_AWS_FIXTURES AUTH_TOKEN_PARAM=/shared/ingest-token deploy
	echo "$output"
	[ "$status" -eq 0 ]
	has "ssm describe-parameters" "--parameter-filters Key=Name,Option=Equals,Values=/shared/ingest-token"
	not grep -q '^ssm put-parameter' "$FAKE_AWS_LOG"
	[[ $(call "iam put-role-policy" 2) == *'"Resource":"arn:aws:ssm:us-east-1:123456789012:parameter/shared/ingest-token"'* ]]
	grep -q 'fastingest-credentials us-east-1 auth-token=/shared/ingest-token$' <(user_data)
	[[ $output == *"--name /shared/ingest-token --with-decryption"* ]]
	[[ $output == *"AUTH_TOKEN_PARAM=/shared/ingest-token"* ]] # the teardown hint keeps it

	: >"$FAKE_AWS_LOG"
	rm -rf "$FAKE_AWS_LOG.state"
	printf '/shared/ingest-token\tString\n' >"$BATS_TEST_TMPDIR/ssm.describe-parameters.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FAKE_AWS_FIXTURES AUTH_TOKEN_PARAM=/shared/ingest-token deploy
	[ "$status" -ne 0 ]
	[[ $output == *"is a String parameter: want a SecureString"* ]]
	not grep -q create "$FAKE_AWS_LOG"

	: >"$BATS_TEST_TMPDIR/ssm.describe-parameters.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FAKE_AWS_FIXTURES AUTH_TOKEN_PARAM=/shared/missing deploy
	[ "$status" -ne 0 ]
	[[ $output == *"AUTH_TOKEN_PARAM /shared/missing: no such SSM parameter"* ]]
}

@test "deploy: a token parameter left by an earlier deploy is refused before anything is created" {
	printf '/fastingest/auth-token\n' >"$BATS_TEST_TMPDIR/ssm.describe-parameters.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FIX/aws-new:$FIX/aws deploy
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"the SSM parameter /fastingest/auth-token exists"* ]]
	[[ $output == *"AUTH_TOKEN_PARAM=/fastingest/auth-token"* ]]
	[[ $output == *"Nothing was created yet"* ]]
	not grep -q create "$FAKE_AWS_LOG"
}

@test "deploy: ENV_FILE may not carry AUTH_TOKEN or AUTH_TOKEN_FILE (the user-data is no place for secrets)" {
	for line in AUTH_TOKEN=s3cr3t-v4lue AUTH_TOKEN_FILE=/etc/token; do
		printf 'MAX_WORKERS=10\n%s\n' "$line" >"$BATS_TEST_TMPDIR/env"
		ENV_FILE=$BATS_TEST_TMPDIR/env deploy
		[ "$status" -eq 2 ]
		[[ $output == *"line 2: ${line%%=*} is refused"* ]]
		[[ $output != *"${line#*=}"* ]]
	done
	[ ! -s "$FAKE_AWS_LOG" ]
}

@test "deploy: ALLOWED_CIDRS and METRICS_CIDRS shape the security groups" {
	ALLOWED_CIDRS=203.0.113.0/24,198.51.100.7/32 METRICS_CIDRS=10.1.0.0/16 deploy
	[ "$status" -eq 0 ]
	has "ec2 authorize-security-group-ingress" '--group-id sg-0fake000000000001 --ip-permissions [{"IpProtocol":"tcp","FromPort":80,"ToPort":80,"IpRanges":[{"CidrIp":"203.0.113.0/24","Description":"producers (ALLOWED_CIDRS)"},{"CidrIp":"198.51.100.7/32","Description":"producers (ALLOWED_CIDRS)"}]}]' 1
	[[ $(call "ec2 authorize-security-group-ingress" 2) == *'"IpRanges":[{"CidrIp":"10.1.0.0/16","Description":"metrics scrapers (METRICS_CIDRS)"}]}]'* ]]
	[[ $output == *"from 203.0.113.0/24,198.51.100.7/32"* ]]

	# METRICS_CIDRS=none: the load balancer's group alone.
	: >"$FAKE_AWS_LOG"
	rm -rf "$FAKE_AWS_LOG.state"
	METRICS_CIDRS=none deploy
	[ "$status" -eq 0 ]
	has "ec2 authorize-security-group-ingress" '--group-id sg-0fake000000000002 --ip-permissions [{"IpProtocol":"tcp","FromPort":8080,"ToPort":8080,"UserIdGroupPairs":[{"GroupId":"sg-0fake000000000001","Description":"the load balancer"}]}]' 2
}

@test "deploy: MAX_CONNS, MAX_QUEUE_BYTES, MAX_BODY_BYTES and GOMEMLIMIT follow the instance type's memory" {
	# Checked against `fastingest -h`'s memory bound for the same settings
	# (test/deploy/moto_e2e.sh does it with the built binary).
	env_of() { user_data | sed -n 's/^      \(MAX_CONNS\|MAX_QUEUE_BYTES\|MAX_BODY_BYTES\|GOMEMLIMIT\|MAX_WORKERS\)=/\1=/p' | tr '\n' ' '; }
	deploy
	[ "$status" -eq 0 ]
	has "ec2 describe-instance-types" "--instance-types c6i.large"
	[ "$(env_of)" = "MAX_CONNS=44032 MAX_QUEUE_BYTES=422MiB MAX_BODY_BYTES=1MiB GOMEMLIMIT=3584MiB " ]
	[[ $output == *"fastingest's worst case 3573 MiB of 3584 MiB"* ]]

	# A t3.micro: 1 GiB, 512 MiB of it for the OS.
	: >"$FAKE_AWS_LOG"
	rm -rf "$FAKE_AWS_LOG.state"
	printf '1024\t2\n' >"$BATS_TEST_TMPDIR/ec2.describe-instance-types.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FAKE_AWS_FIXTURES INSTANCE_TYPE=t3.micro deploy
	[ "$status" -eq 0 ]
	[ "$(env_of)" = "MAX_CONNS=4096 MAX_QUEUE_BYTES=47MiB MAX_BODY_BYTES=1MiB GOMEMLIMIT=512MiB " ]

	# A larger type, given without a lookup; ENV_FILE's values win and count.
	: >"$FAKE_AWS_LOG"
	rm -rf "$FAKE_AWS_LOG.state"
	printf 'MAX_WORKERS=2000\nMAX_BODY_BYTES=4MiB\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env INSTANCE_MEMORY_MIB=16384 INSTANCE_VCPUS=8 deploy
	[ "$status" -eq 0 ]
	not grep -q '^ec2 describe-instance-types' "$FAKE_AWS_LOG"
	[ "$(env_of)" = "MAX_CONNS=178176 MAX_QUEUE_BYTES=1736MiB GOMEMLIMIT=14336MiB MAX_WORKERS=2000 MAX_BODY_BYTES=4MiB " ]

	# Too small for fastingest beside the OS, or an ENV_FILE whose worst case
	# does not fit: refused before anything is created.
	: >"$FAKE_AWS_LOG"
	rm -rf "$FAKE_AWS_LOG.state"
	printf '512\t2\n' >"$BATS_TEST_TMPDIR/ec2.describe-instance-types.out"
	FAKE_AWS_FIXTURES=$BATS_TEST_TMPDIR:$FAKE_AWS_FIXTURES INSTANCE_TYPE=t3.nano deploy
	[ "$status" -ne 0 ]
	[[ $output == *"INSTANCE_TYPE t3.nano (512 MiB) is too small"* ]]
	[[ $output == *"Nothing was created yet"* ]]
	printf 'MAX_CONNS=1000000\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env deploy
	[ "$status" -ne 0 ]
	[[ $output == *"fastingest's worst case does not fit: ENV_FILE's MAX_CONNS=1000000"* ]]
	printf 'MAX_CONNS=100000\nMAX_QUEUE_BYTES=1GiB\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env deploy
	[ "$status" -ne 0 ]
	[[ $output == *"fastingest's worst case does not fit: c6i.large: 4096 MiB, 2 vCPUs;"*"MAX_CONNS=100000 MAX_QUEUE_BYTES=1GiB"* ]]
	not grep -q create "$FAKE_AWS_LOG"
	printf 'SINK=nats\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env deploy
	[ "$status" -eq 0 ]
	# The NATS sink holds a copy of the queued bodies: less queue for the same memory.
	[[ $output == *"worst case 3572 MiB of 3584 MiB with MAX_CONNS=44032 MAX_QUEUE_BYTES=284MiB"* ]]
	printf 'SINK=kafak\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env deploy
	[ "$status" -eq 2 ]
	[[ $output == *'invalid SINK "kafak"'* ]]
	printf 'MAX_QUEUE_BYTES=lots\n' >"$BATS_TEST_TMPDIR/env"
	ENV_FILE=$BATS_TEST_TMPDIR/env deploy
	[ "$status" -eq 2 ]
	[[ $output == *'invalid MAX_QUEUE_BYTES "lots"'* ]]
}
