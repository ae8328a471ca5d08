#!/usr/bin/env bash
# Run a shell script in a held lab's dom0 (lab.sh hold): rpc.sh PORT 'script' (or the script on
# stdin). Prints its output; exits with its status. Only 127.0.0.1 is used.
set -euo pipefail
port=$1; shift
if (($#)); then script=$*; else script=$(cat); fi
out=$(printf '%s\n' "$(printf '%s' "$script" | base64 -w0)" | timeout "${RPC_TIMEOUT:-600}" socat -t 600 - "TCP:127.0.0.1:$port")
rc=${out##*__LAB_RC=}
printf '%s\n' "${out%__LAB_RC=*}"
exit "${rc//[^0-9]/}"
