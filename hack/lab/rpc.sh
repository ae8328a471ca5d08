#!/usr/bin/env bash
# Run a shell script in a held lab's dom0 (lab.sh hold): rpc.sh PORT 'script' (or the script on
# stdin). Prints its output; exits with its status. Only 127.0.0.1 is used. The connection is
# not half-closed after the request: QEMU's user network drops the reply then.
set -euo pipefail
port=$1; shift
if (($#)); then script=$*; else script=$(cat); fi
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf '%s\n' "$(printf '%s' "$script" | base64 -w0)" >&3
out=$(timeout "${RPC_TIMEOUT:-600}" cat <&3)
exec 3<&-
rc=${out##*__LAB_RC=}
printf '%s\n' "${out%__LAB_RC=*}"
exit "${rc//[^0-9]/}"
