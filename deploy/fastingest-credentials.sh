#!/bin/bash
# fastingest-credentials: fetch fastingest's secrets (the bearer token, the
# Kafka SASL password) from SSM Parameter Store at boot, into root-only files
# that systemd hands to the service (LoadCredential= in the drop-in the deploy
# writes). Installed by deploy/cloud-init.yaml as
# /usr/local/sbin/fastingest-credentials and run by its runcmd, before
# fastingest starts:
#
#   fastingest-credentials REGION [ID=PARAMETER ...]
#
# Each PARAMETER (a SecureString, decrypted) is written to
# /etc/fastingest/credentials/ID, mode 0600, owned by root. A value is never
# printed, logged or passed as an argument. A parameter that cannot be read
# after the retries is reported on stderr (the console output) and its file
# is not written, so the service's start fails (243/CREDENTIALS) rather than
# run without its token. Exit status: 0, or 1 when any parameter failed.
#
# Environment (for tests): FASTINGEST_CREDENTIALS_DIR, FASTINGEST_CREDENTIALS_ATTEMPTS
# (6), FASTINGEST_CREDENTIALS_DELAY (seconds before the first retry, doubling: 2).
set -uo pipefail
umask 077
# AWS CLI v2 may page its output or prompt; neither at boot.
export AWS_PAGER="" AWS_CLI_AUTO_PROMPT=off

dir=${FASTINGEST_CREDENTIALS_DIR:-/etc/fastingest/credentials}
attempts=${FASTINGEST_CREDENTIALS_ATTEMPTS:-6}
delay=${FASTINGEST_CREDENTIALS_DELAY:-2}

say() { printf 'fastingest-credentials: %s\n' "$*" >&2; }

if (($# < 1)); then
	say "usage: fastingest-credentials REGION [ID=PARAMETER ...]"
	exit 2
fi
region=$1
shift
if (($# == 0)); then
	say "no credentials to fetch"
	exit 0
fi
if ! mkdir -p "$dir" || ! chmod 0700 "$dir"; then
	say "cannot create $dir"
	exit 1
fi

failed=0
for spec in "$@"; do
	id=${spec%%=*} param=${spec#*=}
	if [[ $spec != *=* || ! $id =~ ^[a-z0-9][a-z0-9-]*$ || -z $param ]]; then
		say "invalid argument \"$spec\": want ID=PARAMETER"
		failed=1
		continue
	fi
	tmp=$(mktemp "$dir/.$id.XXXXXX") || {
		say "$id: cannot create a file in $dir"
		failed=1
		continue
	}
	err=$(mktemp) || err=/dev/null
	ok=0 wait=$delay
	# The instance profile's credentials and the network can lag at boot.
	for ((try = 1; try <= attempts; try++)); do
		if aws ssm get-parameter --region "$region" --name "$param" --with-decryption \
			--query Parameter.Value --output text >"$tmp" 2>"$err" && [[ -s $tmp ]]; then
			ok=1
			break
		fi
		if ((try < attempts)); then
			sleep "$wait"
			wait=$((wait * 2))
		fi
	done
	if ((ok)) && mv -f "$tmp" "$dir/$id"; then
		say "$id: read from $param into $dir/$id"
	else
		# The CLI's error names the parameter and the cause, never a value.
		say "$id: cannot read the SSM parameter $param after $attempts attempts: $(tail -n 1 "$err" 2>/dev/null)"
		say "$id: fastingest will not start without it (the instance role must allow ssm:GetParameter on it)"
		rm -f "$tmp"
		failed=1
	fi
	if [[ $err != /dev/null ]]; then rm -f "$err"; fi
done
exit "$failed"
