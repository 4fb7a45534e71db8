#!/usr/bin/env bash
# teardown-ec2.sh: remove what scripts/deploy-ec2.sh created, in reverse
# order. It finds every resource by its name (derived from NAME, as in the
# deploy), not from a state file, so it also cleans up after a failed deploy;
# what is already gone is skipped with a message, so it is safe to run twice.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/aws.sh
source "$ROOT/scripts/lib/aws.sh"

usage() {
	cat <<'EOF'
Usage: bash scripts/teardown-ec2.sh [--yes] [--dry-run] [--region REGION] [--name NAME]
                                    [--delete-bucket]

Removes what scripts/deploy-ec2.sh created with the same NAME and region, in
reverse order: the latency alarm, the Auto Scaling group (its instances and
scaling policies go with it), the launch template, the listeners (with their
rules) and the load balancer, the target group, the security groups, the
instance profile and role, the token's SSM parameter; the S3 object and
bucket only with --delete-bucket. Missing resources are skipped, so it is
safe to run again. It asks first unless --yes.

It never deletes the certificate (CERTIFICATE_ARN is yours), nor a parameter
it did not create: the token's parameter goes only when it carries the tag
fastingest:deployment=NAME that the deploy gives the parameter it creates,
and is kept when it is AUTH_TOKEN_PARAM (a parameter the deploy reused).

  --yes, -y          do not ask for confirmation (YES=1)
  --dry-run          print the AWS commands instead of running them (DRY_RUN=1)
  --region REGION    AWS region (else AWS_REGION, else AWS_DEFAULT_REGION)
  --name NAME        the deployment's NAME (default fastingest)
  --delete-bucket    also delete the binary and the bucket (DELETE_BUCKET=1);
                     a bucket that holds anything else is kept
  --help, -h         this help

Environment: the settings the deploy was given that name things: NAME, VPC_ID,
BUCKET, BINARY_KEY, LB_NAME, TG_NAME, LB_SG_NAME, INSTANCE_SG_NAME, ROLE_NAME,
PROFILE_NAME, LT_NAME, ASG_NAME, ALARM_NAME, TOKEN_PARAM_NAME, AUTH_TOKEN_PARAM;
AWS_ENDPOINT_URL;
WAIT_TIMEOUT (longest wait for each deletion, seconds, default 600) and
POLL_INTERVAL (seconds between checks, default 10).
EOF
}

failure_hint() {
	log "Fix the cause and run the teardown again; it skips what is already gone:"
	log "    $(aws_teardown_cmd)"
}

parse_args() {
	while (($# > 0)); do
		case $1 in
		-h | --help) usage; exit 0 ;;
		-y | --yes) YES=1 ;;
		--dry-run) DRY_RUN=1 ;;
		--delete-bucket) DELETE_BUCKET=1 ;;
		--region | --name)
			if (($# < 2)); then
				log "teardown-ec2.sh: $1 needs a value (see --help)"
				exit 2
			fi
			if [[ $1 == --region ]]; then REGION=$2; else NAME=$2; fi
			shift
			;;
		*)
			log "teardown-ec2.sh: unknown argument \"$1\" (see --help)"
			exit 2
			;;
		esac
		shift
	done
}

# skip WHAT: report a resource that is not there.
skip() { log "  $1: not found, skipped"; }

# deleted WHAT: report a deletion.
deleted() { log "  $1: deleted"; }

# gone CHECK ARGS...: true once the lookup CHECK ARGS finds nothing.
gone() { ! aws_lookup "$@"; }

alarm() {
	step "CloudWatch alarm $ALARM_NAME"
	if aws_lookup cloudwatch describe-alarms --alarm-names "$ALARM_NAME" --query 'MetricAlarms[].AlarmName'; then
		aws_cli cloudwatch delete-alarms --alarm-names "$ALARM_NAME"
		deleted "alarm $ALARM_NAME"
	else
		skip "alarm $ALARM_NAME"
	fi
}

auto_scaling_group() {
	step "scaling policies and auto scaling group $ASG_NAME (with its instances)"
	local -a describe=(autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$ASG_NAME"
		--query 'AutoScalingGroups[].[AutoScalingGroupName,Status]')
	if ! aws_lookup "${describe[@]}"; then
		skip "auto scaling group $ASG_NAME"
		return
	fi
	local name status
	IFS=$'\t' read -r name status <<<"$AWS_OUT"
	if [[ $status == "Delete in progress" ]]; then
		log "  $name is already being deleted"
	else
		# The group's deletion takes its policies along; deleting them first
		# keeps the reverse order and stops scaling during the teardown.
		local policy found=""
		if aws_lookup autoscaling describe-policies --auto-scaling-group-name "$ASG_NAME" \
			--policy-names "$TT_POLICY_NAME" "$STEP_POLICY_NAME" --query 'ScalingPolicies[].PolicyName'; then
			found=" $(printf '%s' "$AWS_OUT" | tr '\t\n' '  ') "
		fi
		for policy in "$STEP_POLICY_NAME" "$TT_POLICY_NAME"; do
			if [[ $found == *" $policy "* ]]; then
				aws_cli autoscaling delete-policy --auto-scaling-group-name "$ASG_NAME" --policy-name "$policy"
				deleted "scaling policy $policy"
			fi
		done
		# --force-delete terminates the instances without waiting for them to
		# be detached first.
		aws_cli autoscaling delete-auto-scaling-group --auto-scaling-group-name "$ASG_NAME" --force-delete
	fi
	aws_poll "auto scaling group $ASG_NAME to be deleted" gone "${describe[@]}" ||
		aws_fail "auto scaling group $ASG_NAME is still being deleted"
	deleted "auto scaling group $ASG_NAME"
}

launch_template() {
	step "launch template $LT_NAME"
	if aws_lookup ec2 describe-launch-templates --filters "Name=launch-template-name,Values=$LT_NAME" \
		--query 'LaunchTemplates[].LaunchTemplateId'; then
		aws_cli ec2 delete-launch-template --launch-template-id "$AWS_OUT" >/dev/null
		deleted "launch template $LT_NAME"
	else
		skip "launch template $LT_NAME"
	fi
}

load_balancer() {
	step "listeners and load balancer $LB_NAME"
	local -a describe=(elbv2 describe-load-balancers --names "$LB_NAME" --query 'LoadBalancers[].LoadBalancerArn')
	if ! aws_lookup "${describe[@]}"; then
		skip "load balancer $LB_NAME (and its listeners)"
		return
	fi
	local lb_arn=$AWS_OUT listener
	if aws_lookup elbv2 describe-listeners --load-balancer-arn "$lb_arn" --query 'Listeners[].ListenerArn'; then
		for listener in $AWS_OUT; do
			aws_cli elbv2 delete-listener --listener-arn "$listener"
			deleted "listener ${listener##*/} (and its rules)"
		done
	else
		skip "listeners of $LB_NAME"
	fi
	aws_cli elbv2 delete-load-balancer --load-balancer-arn "$lb_arn"
	aws_poll "load balancer $LB_NAME to be deleted" gone "${describe[@]}" ||
		aws_fail "load balancer $LB_NAME is still being deleted"
	deleted "load balancer $LB_NAME"
}

target_group() {
	step "target group $TG_NAME"
	if aws_lookup elbv2 describe-target-groups --names "$TG_NAME" --query 'TargetGroups[].TargetGroupArn'; then
		aws_cli elbv2 delete-target-group --target-group-arn "$AWS_OUT"
		deleted "target group $TG_NAME"
	else
		skip "target group $TG_NAME"
	fi
}

# delete_sg ID NAME: delete a security group, retrying while the network
# interfaces of the deleted load balancer and instances still use it.
delete_sg() {
	local id=$1 name=$2 err="$AWS_LIB_TMP/sg.err" deadline=$((SECONDS + WAIT_TIMEOUT))
	while :; do
		if aws_cli ec2 delete-security-group --group-id "$id" 2>"$err"; then
			deleted "security group $name"
			return 0
		fi
		if grep -q 'InvalidGroup.NotFound' "$err"; then
			skip "security group $name"
			return 0
		fi
		if ! grep -q DependencyViolation "$err"; then
			cat "$err" >&2
			aws_fail "cannot delete security group $name ($id)"
		fi
		if ((SECONDS >= deadline)); then
			cat "$err" >&2
			aws_fail "security group $name ($id) is still in use after ${WAIT_TIMEOUT}s"
		fi
		log "  security group $name is still in use (network interfaces detaching); retrying in ${POLL_INTERVAL}s"
		sleep "$POLL_INTERVAL"
	done
}

security_groups() {
	step "security groups $INSTANCE_SG_NAME and $LB_SG_NAME"
	local -a vpc_sel
	if [[ -n ${VPC_ID:-} ]]; then vpc_sel=(--vpc-ids "$VPC_ID"); else vpc_sel=(--filters "Name=is-default,Values=true"); fi
	if ! aws_lookup ec2 describe-vpcs "${vpc_sel[@]}" --query 'Vpcs[0].[VpcId,CidrBlock]'; then
		skip "VPC ${VPC_ID:-(the default VPC)} and so the security groups"
		return
	fi
	local vpc_id name
	IFS=$'\t' read -r vpc_id _ <<<"$AWS_OUT"
	# The instances' group first: its rule names the load balancer's group.
	for name in "$INSTANCE_SG_NAME" "$LB_SG_NAME"; do
		if aws_lookup ec2 describe-security-groups \
			--filters "Name=vpc-id,Values=$vpc_id" "Name=group-name,Values=$name" \
			--query 'SecurityGroups[].GroupId'; then
			delete_sg "$AWS_OUT" "$name"
		else
			skip "security group $name"
		fi
	done
}

iam_role() {
	step "instance profile $PROFILE_NAME and role $ROLE_NAME"
	local role policy
	if aws_lookup iam get-instance-profile --instance-profile-name "$PROFILE_NAME" \
		--query 'InstanceProfile.[InstanceProfileName,Roles[0].RoleName]'; then
		IFS=$'\t' read -r _ role <<<"$AWS_OUT"
		if [[ -n $role && $role != None ]]; then
			aws_cli iam remove-role-from-instance-profile --instance-profile-name "$PROFILE_NAME" --role-name "$role"
		fi
		aws_cli iam delete-instance-profile --instance-profile-name "$PROFILE_NAME"
		deleted "instance profile $PROFILE_NAME"
	else
		skip "instance profile $PROFILE_NAME"
	fi
	if aws_lookup iam get-role --role-name "$ROLE_NAME" --query Role.RoleName; then
		if aws_lookup iam list-role-policies --role-name "$ROLE_NAME" --query PolicyNames; then
			for policy in $AWS_OUT; do
				aws_cli iam delete-role-policy --role-name "$ROLE_NAME" --policy-name "$policy"
			done
		fi
		aws_cli iam delete-role --role-name "$ROLE_NAME"
		deleted "role $ROLE_NAME"
	else
		skip "role $ROLE_NAME"
	fi
}

# The tag deploy-ec2.sh gives the token parameter it creates.
TOKEN_TAG_KEY=fastingest:deployment

token_parameter() {
	step "SSM parameter $TOKEN_PARAM_NAME (the bearer token)"
	if [[ $TOKEN_PARAM_NAME == "${AUTH_TOKEN_PARAM:-}" ]]; then
		log "  parameter $TOKEN_PARAM_NAME: kept (it is AUTH_TOKEN_PARAM, a parameter the deploy reused)"
		return
	fi
	if ! aws_lookup ssm describe-parameters --parameter-filters "Key=Name,Option=Equals,Values=$TOKEN_PARAM_NAME" \
		--query 'Parameters[].Name'; then
		skip "parameter $TOKEN_PARAM_NAME"
		return
	fi
	local owner=""
	if aws_lookup ssm list-tags-for-resource --resource-type Parameter --resource-id "$TOKEN_PARAM_NAME" \
		--query "TagList[?Key=='$TOKEN_TAG_KEY'].Value"; then
		owner=$AWS_OUT
	fi
	if [[ $owner != "$NAME" ]]; then
		log "  parameter $TOKEN_PARAM_NAME: kept (no tag $TOKEN_TAG_KEY=$NAME: deploy-ec2.sh did not create it for \"$NAME\")"
		return
	fi
	aws_cli ssm delete-parameter --name "$TOKEN_PARAM_NAME"
	deleted "parameter $TOKEN_PARAM_NAME"
}

bucket() {
	step "S3 binary and bucket"
	if [[ ${DELETE_BUCKET:-0} != 1 ]]; then
		log "  kept (the binary costs next to nothing; DELETE_BUCKET=1 or --delete-bucket removes it)"
		return
	fi
	if [[ -z ${BUCKET:-} ]]; then
		local account
		account=$(aws_cli sts get-caller-identity --query Account)
		BUCKET=$(default_bucket "$account")
	fi
	if ! aws_exists s3api head-bucket --bucket "$BUCKET"; then
		skip "bucket $BUCKET"
		return
	fi
	aws_cli s3api delete-object --bucket "$BUCKET" --key "$BINARY_KEY" >/dev/null
	deleted "s3://$BUCKET/$BINARY_KEY"
	local err="$AWS_LIB_TMP/bucket.err"
	if aws_cli s3api delete-bucket --bucket "$BUCKET" 2>"$err"; then
		deleted "bucket $BUCKET"
	else
		if grep -q BucketNotEmpty "$err"; then
			log "  bucket $BUCKET holds other objects (or versions): kept; s3://$BUCKET/$BINARY_KEY is deleted"
		else
			cat "$err" >&2
			aws_fail "cannot delete bucket $BUCKET"
		fi
	fi
}

main() {
	parse_args "$@"
	aws_common_settings
	: "${DELETE_BUCKET:=0}"
	if [[ $DELETE_BUCKET != 0 && $DELETE_BUCKET != 1 ]]; then
		log "teardown-ec2.sh: invalid DELETE_BUCKET \"$DELETE_BUCKET\": want 0 or 1."
		exit 2
	fi
	local also=""
	if [[ $DELETE_BUCKET == 1 ]]; then also=", and the S3 binary and bucket"; fi
	aws_confirm "teardown-ec2.sh deletes the fastingest deployment \"$NAME\" in $REGION: its instances,
load balancer, Auto Scaling group, alarm, launch template, target group, security groups,
IAM role and token parameter$also. Charges stop once they are gone."

	alarm
	auto_scaling_group
	launch_template
	load_balancer
	target_group
	security_groups
	iam_role
	token_parameter
	bucket
	step "done"
	if [[ $DRY_RUN == 1 ]]; then
		log "DRY_RUN=1: nothing was deleted."
	else
		log "Deployment \"$NAME\" in $REGION is removed."
	fi
}

main "$@"
