#!/bin/bash
# helm-rdma entrypoint: one container of a pod of a multi-node vLLM group.
#
# HELM_RDMA_TASK says what the container does: serve (vLLM, or a Ray worker) or preflight (the NCCL bandwidth check,
# an init container before serve under LeaderWorkerSet). For serve, the container's arguments are the `vllm serve`
# arguments common to every pod; this script adds what the pod's role needs; for preflight they go to
# nccl_allreduce.py. Settings come from the environment (set by the chart):
#   HELM_RDMA_ROLE          leader | worker: the pod's place in its group
#   HELM_RDMA_BACKEND       native | ray
#   HELM_RDMA_WORKLOAD      LeaderWorkerSet | StatefulSet
#   HELM_RDMA_NNODES        nodes in one group
#   HELM_RDMA_MASTER_PORT   rendezvous port (native serve, and the preflight)
#   HELM_RDMA_WAIT_SECONDS  how long a worker waits for the leader
#   HELM_RDMA_LEADER_PREFIX StatefulSet only: the leader StatefulSet's name (also its headless Service's)
#   HELM_RDMA_WATCH_PORT    StatefulSet only: the leader's group watch (group_watch.py), so the group restarts as one
#   HELM_RDMA_WORKER_PREFIX StatefulSet only: the worker StatefulSet's name (also its headless Service's)
#   HELM_RDMA_RAY_*         Ray ports and the join timeout (ray)
#   HELM_RDMA_GPUS_PER_NODE, HELM_RDMA_PREFLIGHT_SECONDS, HELM_RDMA_PREFLIGHT_HOLD_SECONDS   the preflight
#   HELM_RDMA_PREFLIGHT_ARGS StatefulSet serve: run the preflight with these arguments before vLLM
#   HELM_RDMA_RETRY_SECONDS pause between retries (default 5)
#   HELM_RDMA_SCRIPTS       where the chart's scripts are mounted (default /opt/helm-rdma)
#   POD_NAME, POD_NAMESPACE, VLLM_HOST_IP from the downward API; LWS_* from the LeaderWorkerSet controller (which
#   sets them in init containers too: kubernetes-sigs/lws pkg/utils/pod/pod_utils.go, AddLWSVariables).
set -euo pipefail

log() { echo "helm-rdma: $*" >&2; }
die() { log "error: $*"; exit 1; }

task=${HELM_RDMA_TASK:-serve}
retry=${HELM_RDMA_RETRY_SECONDS:-5}
scripts=${HELM_RDMA_SCRIPTS:-/opt/helm-rdma}

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
  if [ "${RAY_AUTH_MODE:-}" = token ]; then
    local version
    version=$(python3 -c 'import ray; print(ray.__version__)' 2>/dev/null || echo unknown)
    # Token authentication exists from Ray 2.52.0 on (docs.ray.io, ray-security/token-auth).
    python3 - "$version" <<'PY' || die "this image's Ray ($version) predates token authentication (Ray 2.52.0); use an image with Ray 2.52 or newer, or drop distributed.ray.authTokenSecret and set distributed.ray.allowUnauthenticated=true"
import re, sys
m = re.match(r"(\d+)\.(\d+)", sys.argv[1])
sys.exit(0 if m and (int(m.group(1)), int(m.group(2))) >= (2, 52) else 1)
PY
  fi
}

ray_nodes_alive() {
  python3 -c 'import ray; ray.init(address="auto", logging_level="ERROR"); print(sum(1 for n in ray.nodes() if n["Alive"]))' 2>/dev/null || echo 0
}

# In StatefulSet mode the group watch (group_watch.py) supervises everything this script starts for serve: the
# leader's watch ends when a worker's connection drops, a worker's when the leader's does, and either then stops the
# processes and exits non-zero, so the kubelet restarts the container and the group forms again. LeaderWorkerSet
# restarts groups by itself (RecreateGroupOnPodRestart), so it runs without.
watch_group() {
  export HELM_RDMA_WATCHED=1
  if [ "$role" = leader ]; then
    # Only this group's workers may join: worker j of group g is ordinal g*(nnodes-1) + j - 1 of the worker
    # StatefulSet, named by its headless Service (which publishes not-ready addresses).
    local allow=() j ordinal
    for ((j = 1; j < nnodes; j++)); do
      ordinal=$((group * (nnodes - 1) + j - 1))
      allow+=(--allow-dns "${HELM_RDMA_WORKER_PREFIX:?}-${ordinal}.${HELM_RDMA_WORKER_PREFIX}.${POD_NAMESPACE:?}.svc")
    done
    exec python3 "$scripts/group_watch.py" lead --port "$HELM_RDMA_WATCH_PORT" --size "$nnodes" "${allow[@]}" \
      -- /bin/bash "$0" "$@"
  fi
  wait_for_leader
  exec python3 "$scripts/group_watch.py" follow --host "$leader_ip" --port "$HELM_RDMA_WATCH_PORT" \
    --rank "$rank" --wait "${HELM_RDMA_WAIT_SECONDS:-900}" -- /bin/bash "$0" "$@"
}

role=${HELM_RDMA_ROLE:?HELM_RDMA_ROLE is not set}
nnodes=${HELM_RDMA_NNODES:?HELM_RDMA_NNODES is not set}
host_ip=${VLLM_HOST_IP:?VLLM_HOST_IP is not set}

# The NCCL preflight of this pod's group ("$@": nccl_allreduce.py's arguments): rank 0 (the leader) hosts torchrun's
# rendezvous on its own address. A failure prints NCCL's own log and keeps the container for
# HELM_RDMA_PREFLIGHT_HOLD_SECONDS, so the result can be read before the group restarts.
run_preflight() {
  locate "$nnodes"
  if [ "$rank" -eq 0 ]; then
    master=$host_ip
  else
    wait_for_leader
    master=$leader_ip
  fi
  local limit=${HELM_RDMA_PREFLIGHT_SECONDS:-1800} hold=${HELM_RDMA_PREFLIGHT_HOLD_SECONDS:-0} status=0
  local logs=${HELM_RDMA_NCCL_LOG_DIR:-/tmp}
  log "preflight: group $group, node $rank of $nnodes, ${HELM_RDMA_GPUS_PER_NODE:?} GPUs each, rendezvous $master:${HELM_RDMA_MASTER_PORT:?}, at most ${limit}s"
  # torchrun's static rendezvous waits 600 s by default (torch/distributed/elastic/rendezvous/
  # static_tcp_rendezvous.py): give it the whole limit, as nodes of a group can start minutes apart.
  NCCL_DEBUG_FILE="$logs/nccl.%h.%p.log" timeout "$limit" torchrun --nnodes "$nnodes" \
    --nproc-per-node "$HELM_RDMA_GPUS_PER_NODE" --node-rank "$rank" --master-addr "$master" \
    --master-port "$HELM_RDMA_MASTER_PORT" --rdzv-conf "timeout=$limit" "$scripts/nccl_allreduce.py" "$@" || status=$?
  [ "$status" -eq 0 ] && return 0
  if [ "$status" -eq 124 ]; then
    log "error: preflight: no result within ${limit}s (verify.preflight.timeoutMinutes): a node that never joined the rendezvous, or NCCL hanging; see the other pods' preflight logs"
  fi
  for f in "$logs"/nccl.*.log; do
    [ -f "$f" ] || continue
    log "the last lines of NCCL's log $f:"
    tail -n 40 "$f" >&2
  done
  if [ "$hold" -gt 0 ]; then
    log "preflight failed (exit $status); keeping this container for ${hold}s so that its log can be read (verify.preflight.holdOnFailureMinutes)"
    sleep "$hold"
  fi
  return "$status"
}

if [ "$task" = preflight ]; then
  status=0
  run_preflight "$@" || status=$?
  exit "$status"
fi

[ "$task" = serve ] || die "HELM_RDMA_TASK=$task; expected serve or preflight"
backend=${HELM_RDMA_BACKEND:?HELM_RDMA_BACKEND is not set}

if [ "$nnodes" -le 1 ]; then
  log "single-node group: vllm serve on this pod alone"
  exec vllm serve "$@"
fi

locate "$nnodes"
if [ -n "${HELM_RDMA_WATCH_PORT:-}" ] && [ -z "${HELM_RDMA_WATCHED:-}" ]; then
  watch_group "$@"
fi
if [ -n "${HELM_RDMA_PREFLIGHT_ARGS:-}" ]; then
  # StatefulSet mode: the group (re)formed under the group watch; measure before vLLM, on every node of it.
  # shellcheck disable=SC2086  # the chart writes plain space-separated arguments
  run_preflight $HELM_RDMA_PREFLIGHT_ARGS
fi
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
    # The dashboard answers on the node's loopback only (kubectl port-forward reaches it); GCS and the client port
    # need the token when distributed.ray.authTokenSecret is set.
    ray start --head --node-ip-address="$host_ip" --port="${HELM_RDMA_RAY_PORT:?}" \
      --dashboard-host=127.0.0.1 --dashboard-port="${HELM_RDMA_RAY_DASHBOARD_PORT:?}" \
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
