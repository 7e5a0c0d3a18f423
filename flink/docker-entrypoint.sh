#!/bin/bash
# The Flink image's entry point. `jobmanager [args]` / `taskmanager [args]` run a
# standalone process in the foreground, listening on all interfaces (args are Flink's,
# e.g. -D key=value; JOB_MANAGER_RPC_ADDRESS names the JobManager). Anything else runs
# as given: Flink's native Kubernetes mode starts `bash -c ... kubernetes-jobmanager.sh`.
set -euo pipefail
bind=(-D jobmanager.bind-host=0.0.0.0 -D taskmanager.bind-host=0.0.0.0
  -D rest.bind-address=0.0.0.0)
if [[ -n ${JOB_MANAGER_RPC_ADDRESS:-} ]]; then
  bind+=(-D "jobmanager.rpc.address=$JOB_MANAGER_RPC_ADDRESS" -D "rest.address=$JOB_MANAGER_RPC_ADDRESS")
fi
case ${1:-help} in
  jobmanager) shift; exec "$FLINK_HOME/bin/jobmanager.sh" start-foreground "${bind[@]}" "$@" ;;
  taskmanager) shift; exec "$FLINK_HOME/bin/taskmanager.sh" start-foreground "${bind[@]}" "$@" ;;
  help) echo "usage: jobmanager|taskmanager [flink args] | <command...>"; exit 0 ;;
  *) exec "$@" ;;
esac
