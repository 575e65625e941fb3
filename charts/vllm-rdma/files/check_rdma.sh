#!/bin/bash
# helm test: the RDMA NICs this node should have are present and their ports ACTIVE.
# Usage: check_rdma.sh "=mlx5_0,mlx5_1,..."   (NCCL_IB_HCA syntax: a leading = or ^ is dropped)
set -u
list=${1:?usage: check_rdma.sh NCCL_IB_HCA}
list=${list#=}
list=${list#^}
sysfs=${HELM_RDMA_SYSFS:-/sys/class/infiniband}
node=${NODE_NAME:-$(hostname)}
bad=0
total=0
for hca in ${list//,/ }; do
  hca=${hca%%:*}
  total=$((total + 1))
  if [ ! -d "$sysfs/$hca" ]; then
    echo "$node $hca MISSING"
    bad=$((bad + 1))
    continue
  fi
  state=$(cat "$sysfs/$hca/ports/1/state" 2>/dev/null || echo "unknown")
  case "$state" in
    *ACTIVE*) echo "$node $hca ACTIVE" ;;
    *) echo "$node $hca ${state#*: }"; bad=$((bad + 1)) ;;
  esac
done
if [ "$bad" -gt 0 ]; then
  echo "helm-rdma test: $node: $bad of $total RDMA NICs missing or not ACTIVE (check with rdma link; device names can change with the node image)"
  exit 1
fi
echo "helm-rdma test: $node: all $total RDMA NICs ACTIVE"
