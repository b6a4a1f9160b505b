#!/usr/bin/env bash
# Start one probseq worker per host of a multi-worker run (tf.distribute's
# MultiWorkerMirroredStrategy). Run this script on every host with the same HOSTS list
# and that host's INDEX; each process reads the cluster from TF_CONFIG.
#
#   HOSTS="10.0.0.1:2222,10.0.0.2:2222" INDEX=0 RUN_DIR=/shared/runs/shk ./launch.sh
#   HOSTS="10.0.0.1:2222,10.0.0.2:2222" INDEX=1 RUN_DIR=/shared/runs/shk ./launch.sh
#
# Worker 0 is the chief: it writes RUN_DIR (checkpoints, TensorBoard, metrics.json). Every
# worker must read the same RUN_DIR (shared storage: NFS, GCS FUSE, ...) so that a restart
# resumes all of them from the chief's checkpoint. Extra arguments go to `probseq train`
# (use the same ones on every host: --batch-size is the global batch).
#
# For a local try-out on one machine (two processes, loopback ports):
#   HOSTS="localhost:12345,localhost:12346" INDEX=0 RUN_DIR=runs/mw ./launch.sh --max-steps 100 &
#   HOSTS="localhost:12345,localhost:12346" INDEX=1 RUN_DIR=runs/mw ./launch.sh --max-steps 100
set -euo pipefail
: "${HOSTS:?comma-separated host:port of every worker, the same on each host}"
: "${INDEX:?position of this host in HOSTS (0 is the chief)}"
: "${RUN_DIR:?run directory on storage every worker can read}"
IFS=',' read -r -a hosts <<< "$HOSTS"
workers=""
for host in "${hosts[@]}"; do workers+="\"${host}\","; done
export TF_CONFIG="{\"cluster\": {\"worker\": [${workers%,}]}, \"task\": {\"type\": \"worker\", \"index\": ${INDEX}}}"
exec probseq train --strategy multi-worker --run-dir "$RUN_DIR" "$@"
