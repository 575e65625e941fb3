#!/bin/bash
# helm-rdma entrypoint: starts one pod of a multi-node vLLM group (or downloads the model, as an init container).
#
# The container's arguments are the `vllm serve` arguments common to every pod; this script adds what the pod's
# role needs. Settings come from the environment (set by the chart):
#   HELM_RDMA_ROLE          leader | worker | download | preflight
#   HELM_RDMA_BACKEND       native | ray
#   HELM_RDMA_WORKLOAD      LeaderWorkerSet | StatefulSet
#   HELM_RDMA_NNODES        nodes in one group
#   HELM_RDMA_MASTER_PORT   rendezvous port (native)
#   HELM_RDMA_WAIT_SECONDS  how long a worker waits for the leader
#   HELM_RDMA_LEADER_PREFIX StatefulSet only: the leader StatefulSet's name (also its headless Service's)
#   HELM_RDMA_RAY_*         Ray ports and the join timeout (ray)
#   HELM_RDMA_RETRY_SECONDS pause between retries (default 5)
#   POD_NAME, POD_NAMESPACE, VLLM_HOST_IP from the downward API; LWS_* from the LeaderWorkerSet controller.
set -euo pipefail

log() { echo "helm-rdma: $*" >&2; }
die() { log "error: $*"; exit 1; }

role=${HELM_RDMA_ROLE:?HELM_RDMA_ROLE is not set}
retry=${HELM_RDMA_RETRY_SECONDS:-5}

download_model() {
  local repo=${HELM_RDMA_MODEL:?} dir=${HELM_RDMA_MODEL_DIR:?}
  if [ -f "$dir/config.json" ]; then
    log "model $repo already in $dir"
    return 0
  fi
  log "downloading $repo into $dir"
  python3 - "$repo" "$dir" <<'PY'
import sys
from huggingface_hub import snapshot_download
snapshot_download(repo_id=sys.argv[1], local_dir=sys.argv[2])
PY
  log "downloaded $repo"
}

# Sets $group, $rank and $leader (the leader's DNS name) for this pod.
locate() {
  local nnodes=$1
  case "${HELM_RDMA_WORKLOAD:?}" in
    LeaderWorkerSet)
      leader=${LWS_LEADER_ADDRESS:?LWS_LEADER_ADDRESS is not set: is the LeaderWorkerSet controller running?}
      rank=${LWS_WORKER_INDEX:-0}
      group=${HELM_RDMA_GROUP:-0}
      ;;
    StatefulSet)
      # Under hostNetwork $HOSTNAME is the node's name: the ordinal comes from the pod name.
      local pod=${POD_NAME:?POD_NAME is not set} ordinal
      ordinal=${pod##*-}
      case "$ordinal" in ''|*[!0-9]*) die "cannot read a StatefulSet ordinal from pod name $pod" ;; esac
      if [ "$role" = leader ]; then
        group=$ordinal
        rank=0
      else
        group=$((ordinal / (nnodes - 1)))
        rank=$((ordinal % (nnodes - 1) + 1))
      fi
      leader="${HELM_RDMA_LEADER_PREFIX:?}-${group}.${HELM_RDMA_LEADER_PREFIX}.${POD_NAMESPACE:?}.svc"
      ;;
    *) die "HELM_RDMA_WORKLOAD=$HELM_RDMA_WORKLOAD; expected LeaderWorkerSet or StatefulSet" ;;
  esac
}

# Waits (bounded) until $leader resolves; sets $leader_ip.
wait_for_leader() {
  local limit=${HELM_RDMA_WAIT_SECONDS:-900} start=$SECONDS
  until leader_ip=$(getent hosts "$leader" | awk '{print $1; exit}') && [ -n "$leader_ip" ]; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      die "leader address $leader did not resolve within ${limit}s; is the leader pod running, and does its headless Service publish not-ready addresses?"
    fi
    log "waiting for leader address $leader to resolve ($((SECONDS - start))s of ${limit}s)"
    sleep "$retry"
  done
  log "leader $leader is $leader_ip"
}

# Waits (bounded) until host:port accepts TCP connections.
wait_for_port() {
  local host=$1 port=$2 what=$3 limit=${HELM_RDMA_WAIT_SECONDS:-900} start=$SECONDS
  until timeout 3 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      die "$what at $host:$port did not answer within ${limit}s"
    fi
    log "waiting for $what at $host:$port ($((SECONDS - start))s of ${limit}s)"
    sleep "$retry"
  done
}

require_ray() {
  command -v ray >/dev/null 2>&1 || die "this image has no 'ray' command, which distributed.backend=ray needs; use an image that ships Ray (stock vllm/vllm-openai up to v0.17.1) or set distributed.backend=native"
}

ray_nodes_alive() {
  python3 -c 'import ray; ray.init(address="auto", logging_level="ERROR"); print(sum(1 for n in ray.nodes() if n["Alive"]))' 2>/dev/null || echo 0
}

if [ "$role" = download ]; then
  download_model
  exit 0
fi

if [ "$role" = preflight ]; then
  # One pod per node of an Indexed Job; pod 0 hosts torchrun's rendezvous, the others find it by DNS.
  nnodes=${HELM_RDMA_NNODES:?HELM_RDMA_NNODES is not set}
  rank=${JOB_COMPLETION_INDEX:?JOB_COMPLETION_INDEX is not set: the preflight runs as an Indexed Job}
  host_ip=${VLLM_HOST_IP:?VLLM_HOST_IP is not set}
  if [ "$rank" -eq 0 ]; then
    master=$host_ip
  else
    leader="${HELM_RDMA_PREFLIGHT_JOB:?}-0.${HELM_RDMA_PREFLIGHT_SERVICE:?}.${POD_NAMESPACE:?}.svc"
    wait_for_leader
    master=$leader_ip
  fi
  log "preflight: node $rank of $nnodes, ${HELM_RDMA_GPUS_PER_NODE:?} GPUs each, rendezvous $master:${HELM_RDMA_MASTER_PORT:?}"
  exec torchrun --nnodes "$nnodes" --nproc-per-node "$HELM_RDMA_GPUS_PER_NODE" --node-rank "$rank" \
    --master-addr "$master" --master-port "$HELM_RDMA_MASTER_PORT" /opt/helm-rdma/nccl_allreduce.py "$@"
fi

nnodes=${HELM_RDMA_NNODES:?HELM_RDMA_NNODES is not set}
backend=${HELM_RDMA_BACKEND:?HELM_RDMA_BACKEND is not set}
host_ip=${VLLM_HOST_IP:?VLLM_HOST_IP is not set}

if [ "$nnodes" -le 1 ]; then
  log "single-node group: vllm serve on this pod alone"
  exec vllm serve "$@"
fi

locate "$nnodes"
log "role $role, group $group, node rank $rank of $nnodes, backend $backend, pod IP $host_ip"

case "$backend/$role" in
  native/leader)
    exec vllm serve "$@" --nnodes "$nnodes" --node-rank 0 \
      --master-addr "$host_ip" --master-port "${HELM_RDMA_MASTER_PORT:?}"
    ;;
  native/worker)
    wait_for_leader
    exec vllm serve "$@" --nnodes "$nnodes" --node-rank "$rank" \
      --master-addr "$leader_ip" --master-port "${HELM_RDMA_MASTER_PORT:?}" --headless
    ;;
  ray/leader)
    require_ray
    ray start --head --node-ip-address="$host_ip" --port="${HELM_RDMA_RAY_PORT:?}" \
      --dashboard-host=0.0.0.0 --dashboard-port="${HELM_RDMA_RAY_DASHBOARD_PORT:?}" \
      --ray-client-server-port="${HELM_RDMA_RAY_CLIENT_PORT:?}"
    limit=${HELM_RDMA_RAY_JOIN_TIMEOUT:-1800}
    start=$SECONDS
    while alive=$(ray_nodes_alive) && [ "$alive" -lt "$nnodes" ]; do
      if [ $((SECONDS - start)) -ge "$limit" ]; then
        die "only $alive of $nnodes nodes joined the Ray cluster within ${limit}s; check the worker pods' logs"
      fi
      log "waiting for Ray nodes: $alive of $nnodes joined ($((SECONDS - start))s of ${limit}s)"
      sleep "$retry"
    done
    log "all $nnodes nodes joined the Ray cluster"
    exec vllm serve "$@" --distributed-executor-backend ray
    ;;
  ray/worker)
    require_ray
    wait_for_leader
    wait_for_port "$leader_ip" "${HELM_RDMA_RAY_PORT:?}" "the Ray head"
    exec ray start --address="$leader_ip:${HELM_RDMA_RAY_PORT}" --node-ip-address="$host_ip" --block
    ;;
  *)
    die "unknown backend/role $backend/$role; expected native or ray, leader or worker"
    ;;
esac
