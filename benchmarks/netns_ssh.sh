#!/usr/bin/env bash
# An `ssh` stand-in for MPI launchers (hydra's -launcher-exec, PRRTE's plm_ssh_agent):
# `netns_ssh.sh [ssh options] HOST COMMAND...` runs COMMAND, as ssh would (the words joined
# and read by a shell), inside the network namespace HOST made by netns_cluster.sh.
set -euo pipefail
while [ $# -gt 0 ]; do
  case "$1" in
  -[46AaCfGgKkMNnqsTtVvXxYy]*) shift ;;   # ssh flags without a value
  -[BbcDEeFIiJLlmOopQRSWw]) shift 2 ;;    # ssh options with a value
  -[BbcDEeFIiJLlmOopQRSWw]*) shift ;;     # the same, value attached
  *) break ;;
  esac
done
[ $# -ge 2 ] || {
  echo "netns_ssh.sh: usage: netns_ssh.sh [ssh options] HOST COMMAND..." >&2
  exit 255
}
host=${1#*@}
shift
exec "$(dirname "${BASH_SOURCE[0]}")/netns_cluster.sh" exec "$host" sh -c "$*"
