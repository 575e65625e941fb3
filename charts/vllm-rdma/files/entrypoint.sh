#!/bin/bash
# helm-rdma entrypoint: one container of a pod of a multi-node vLLM group.
#
# HELM_RDMA_TASK says what the container does: serve (vLLM, or a Ray worker), preflight (the NCCL bandwidth check),
# barrier (the group's barrier when the preflight is off) or preflight-verdict (holds, then fails, after a measured
# failure). Under LeaderWorkerSet the last three are init containers after the download; in StatefulSet mode the
# preflight or barrier runs in the serving container before vLLM. Either way every node of a group has its weights
# before any node starts vLLM, whose peers must meet within its distributed timeout. For serve, the container's
# arguments are the `vllm serve` arguments common to every pod; this script adds what the pod's role needs; for
# preflight they go to nccl_allreduce.py. Settings come from the environment (set by the chart):
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
#   HELM_RDMA_BARRIER_SECONDS how long the group's barrier (and a StatefulSet worker) waits for the slowest node
#   HELM_RDMA_GPUS_PER_NODE, HELM_RDMA_PREFLIGHT_SECONDS, HELM_RDMA_PREFLIGHT_HOLD_SECONDS   the preflight
#   HELM_RDMA_PREFLIGHT_ARGS StatefulSet serve: run the preflight with these arguments before vLLM
#   HELM_RDMA_BARRIER       StatefulSet serve, preflight off: run the group's barrier before vLLM
#   HELM_RDMA_PREFLIGHT_EVENTS set: the leader records the preflight's summary as an Event (preflight_event.py)
#   HELM_RDMA_TERMINATION_LOG where the preflight's summary goes (default /dev/termination-log, the container's
#                           termination message, which outlives the container in the pod's status)
#   HELM_RDMA_VERDICT_MIN_HOLD_SECONDS  the least a measured failure holds (default 120: the alert's scrapes)
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
      rank=${LWS_WORKER_INDEX:?LWS_WORKER_INDEX is not set: LeaderWorkerSet v0.6.0 or later sets it; upgrade the LWS controller}
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
  local limit=${1:-${HELM_RDMA_WAIT_SECONDS:-900}} start=$SECONDS
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
  # The leader's watch answers once the leader has its weights: wait as long as the group's barrier does.
  wait_for_leader "$(barrier_seconds)"
  exec python3 "$scripts/group_watch.py" follow --host "$leader_ip" --port "$HELM_RDMA_WATCH_PORT" \
    --rank "$rank" --wait "$(barrier_seconds)" -- /bin/bash "$0" "$@"
}

role=${HELM_RDMA_ROLE:?HELM_RDMA_ROLE is not set}
nnodes=${HELM_RDMA_NNODES:?HELM_RDMA_NNODES is not set}
host_ip=${VLLM_HOST_IP:?VLLM_HOST_IP is not set}

# How long the group's barrier waits for the slowest node: HELM_RDMA_BARRIER_SECONDS, never less than the wait for
# the leader's address.
barrier_seconds() {
  local barrier=${HELM_RDMA_BARRIER_SECONDS:-0} wait=${HELM_RDMA_WAIT_SECONDS:-900}
  echo $((barrier > wait ? barrier : wait))
}

# torchrun across the group ("$1" processes per node, at most "$2" seconds after the barrier, then the script and
# its arguments): rank 0 (the leader) hosts torchrun's rendezvous on its own address, and every node waits there for
# the slowest, up to barrier_seconds. Sets $group, $rank, $master.
group_torchrun() {
  local nproc=$1 limit=$2 wait
  shift 2
  wait=$(barrier_seconds)
  locate "$nnodes"
  if [ "$rank" -eq 0 ]; then
    master=$host_ip
  else
    wait_for_leader "$wait"
    master=$leader_ip
  fi
  # torchrun's static rendezvous waits 600 s by default (torch/distributed/elastic/rendezvous/
  # static_tcp_rendezvous.py): give it the barrier's wait, as nodes finish their downloads minutes apart.
  timeout $((wait + limit)) torchrun --nnodes "$nnodes" --nproc-per-node "$nproc" --node-rank "$rank" \
    --master-addr "$master" --master-port "${HELM_RDMA_MASTER_PORT:?}" --rdzv-conf "timeout=$wait" "$@"
}

# The group's barrier without the preflight: every node meets the others (torchrun's rendezvous and a gloo barrier,
# no GPU), so that no node starts vLLM before all have their weights.
run_barrier() {
  local status=0
  log "barrier: waiting up to $(barrier_seconds)s for the $nnodes nodes of the group (distributed.barrierMinutes)"
  group_torchrun 1 120 "$scripts/nccl_allreduce.py" --barrier-only || status=$?
  if [ "$status" -eq 124 ]; then
    log "error: barrier: not every node of the group arrived within $(barrier_seconds)s (distributed.barrierMinutes); see the other pods' download logs"
  fi
  return "$status"
}

# Whether the preflight result in "$1" (nccl_allreduce.py's json.dumps of it) says the fabric failed the measurement.
measured_failure() {
  [ -f "$1" ] && grep -q '"passed": false' "$1"
}

# The NCCL preflight of this pod's group ("$@": nccl_allreduce.py's arguments), which is also the group's barrier.
# Returns 0 when it passed (or only warned), 78 when the fabric failed the measurement, and other codes when the
# preflight itself failed (a node missing at the barrier, NCCL hanging); in that last case it prints NCCL's own log
# and keeps the container for HELM_RDMA_PREFLIGHT_HOLD_SECONDS, so the result can be read before the group restarts.
# The summary goes to the container's termination message, the whole result to $logs/preflight-result.json.
run_preflight() {
  local limit=${HELM_RDMA_PREFLIGHT_SECONDS:-1800} hold=${HELM_RDMA_PREFLIGHT_HOLD_SECONDS:-0} status=0
  local logs=${HELM_RDMA_NCCL_LOG_DIR:-/tmp} summary=${HELM_RDMA_TERMINATION_LOG:-/dev/termination-log}
  log "preflight: node of a group of $nnodes, ${HELM_RDMA_GPUS_PER_NODE:?} GPUs each, waiting up to $(barrier_seconds)s for every node, then at most ${limit}s"
  rm -f "$logs/preflight-result.json"
  NCCL_DEBUG_FILE="$logs/nccl.%h.%p.log" group_torchrun "$HELM_RDMA_GPUS_PER_NODE" "$limit" \
    "$scripts/nccl_allreduce.py" --result-file "$logs/preflight-result.json" --summary-file "$summary" "$@" \
    || status=$?
  log "preflight: group $group, node $rank of $nnodes"
  record_event "$logs/preflight-result.json" "$summary"
  [ "$status" -eq 0 ] && return 0
  if measured_failure "$logs/preflight-result.json"; then
    return 78
  fi
  if [ "$status" -eq 124 ]; then
    log "error: preflight: no result within $(barrier_seconds)s + ${limit}s (distributed.barrierMinutes, verify.preflight.timeoutMinutes): a node that never reached the barrier, or NCCL hanging; see the other pods' logs"
  fi
  for f in "$logs"/nccl.*.log; do
    [ -f "$f" ] || continue
    log "the last lines of NCCL's log $f:"
    tail -n 40 "$f" >&2
  done
  hold_then_fail "$status" "$hold"
}

# With HELM_RDMA_PREFLIGHT_EVENTS set, the group's leader (node rank 0) records the summary "$2" as an Event when the
# measurement produced a result "$1" (preflight_event.py): the figure outlives the pods when the group is recreated.
# Best-effort: the preflight's verdict never depends on it.
record_event() {
  if [ -n "${HELM_RDMA_PREFLIGHT_EVENTS:-}" ] && [ "$rank" -eq 0 ] && [ -f "$1" ] && [ -s "$2" ]; then
    HELM_RDMA_GROUP=$group python3 "$scripts/preflight_event.py" "$2" || log "preflight: the Event was not recorded"
  fi
}

# Keeps the container for "$2" seconds so that its log can be read, then returns "$1".
hold_then_fail() {
  if [ "$2" -gt 0 ]; then
    log "preflight failed (exit $1); keeping this container for ${2}s so that its log can be read (verify.preflight.holdOnFailureMinutes)"
    sleep "$2"
  fi
  return "$1"
}

# After a measured failure: hold (at least two minutes, so that the failure is seen running by kube-state-metrics'
# scrapes, which is what the chart's alert reads), then fail with 78.
verdict() {
  local hold=${HELM_RDMA_PREFLIGHT_HOLD_SECONDS:-0} result=${HELM_RDMA_NCCL_LOG_DIR:-/tmp}/preflight-result.json
  if measured_failure "$result"; then
    log "preflight: the fabric failed its measurement: $(cat "$result")"
    hold_then_fail 78 $((hold > ${HELM_RDMA_VERDICT_MIN_HOLD_SECONDS:-120} ? hold : ${HELM_RDMA_VERDICT_MIN_HOLD_SECONDS:-120}))
    return
  fi
  log "preflight: passed"
}

case "$task" in
  preflight)
    # Under LeaderWorkerSet a measured failure passes on to the preflight-verdict init container, which holds
    # and fails; a preflight that failed itself fails here.
    status=0
    run_preflight "$@" || status=$?
    [ "$status" -eq 78 ] && status=0
    exit "$status"
    ;;
  preflight-verdict)
    status=0
    verdict || status=$?
    exit "$status"
    ;;
  barrier)
    status=0
    run_barrier || status=$?
    exit "$status"
    ;;
esac

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
  status=0
  # shellcheck disable=SC2086  # the chart writes plain space-separated arguments
  run_preflight $HELM_RDMA_PREFLIGHT_ARGS || status=$?
  if [ "$status" -eq 78 ]; then
    verdict || status=$?
  fi
  [ "$status" -eq 0 ] || exit "$status"
elif [ -n "${HELM_RDMA_BARRIER:-}" ]; then
  run_barrier
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
