#!/usr/bin/env bash
# A local cluster of 4 nodes x 4 cores, a few OAR jobs on it, their results, and a clean stop.
set -euo pipefail
export OAR_STATE_DIR="${OAR_STATE_DIR:-$PWD/.demo-state}"
rm -rf "$OAR_STATE_DIR"
mkdir -p "$OAR_STATE_DIR/work"
oar-celery up --nodes 4 --cores 4 --detach
trap 'oar-celery down' EXIT
cd "$OAR_STATE_DIR/work"

ids=()
submit() { local out; out=$(oarsub "$@"); echo "$out"; ids+=("$(echo "$out" | sed -n 's/^OAR_JOB_ID=//p')"); }
submit -n hello -l /core=1 'echo "hello from job $OAR_JOB_ID on $(hostname)"'
submit -n span -l /nodes=2/core=2,walltime=0:10:00 'echo "nodes of job $OAR_JOB_ID:"; sort -u "$OAR_NODEFILE"; wc -l < "$OAR_NODEFILE"'
submit -n sleeper -l /nodes=1/core=4 'sleep 2; echo slept'
submit -n failing -l /core=1 'echo about to fail >&2; exit 3'

echo "waiting for the jobs to end..."
for _ in $(seq 1 120); do
  pending=$(oarstat -s -j "${ids[0]}" -j "${ids[1]}" -j "${ids[2]}" -j "${ids[3]}" | grep -cvE 'Terminated|Error' || true)
  [ "$pending" = "0" ] && break
  sleep 0.5
done
echo
oarstat -j "${ids[0]}" -j "${ids[1]}" -j "${ids[2]}" -j "${ids[3]}"
echo
echo "== output of the two-node job (OAR.span.${ids[1]}.stdout) =="
cat "OAR.span.${ids[1]}.stdout"
echo "== oarnodes -S =="
oarnodes -S
