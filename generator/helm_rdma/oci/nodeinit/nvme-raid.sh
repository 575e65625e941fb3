#!/usr/bin/env bash
# Usage: nvme-raid LEVEL (10 or 0; clusterNetwork.nvmeRaidLevel).
# Puts the node's local NVMe drives in one RAID array mounted at /mnt/nvme, and bind-mounts the container
# runtime's, the kubelet's and the pods' log directories onto it, so images, emptyDir volumes and model caches land
# on the fast local drives instead of the boot volume. Oracle's stack does the same before the node joins
# (oracle-quickstart/oci-hpc-oke, files/oke-nvme-raid.sh). Safe to run again: an array or file system that exists is
# kept. A node without NVMe drives is left as it is.
# RAID 10 (Oracle's default, terraform/variables.tf nvme_raid_level) mirrors pairs of drives: half the capacity,
# and the array survives a failed drive. RAID 0 stripes them all: the whole capacity, and one failed drive loses the
# array (the model cache is downloaded again; the node's images and emptyDir volumes are lost). One drive is always
# RAID 0, as in Oracle's files/oke-nvme-raid.sh.
set -euo pipefail
shopt -s nullglob

level="${1:-10}"
case "$level" in
    0|10) ;;
    *) echo "helm-rdma: RAID level $level: expected 10 or 0" >&2; exit 2 ;;
esac

mount_point=/mnt/nvme
array=/dev/md/helm-rdma-nvme
drives=(/dev/nvme*n1)

if [ "${#drives[@]}" -eq 0 ]; then
    echo "helm-rdma: no local NVMe drives; nothing to do"
    exit 0
fi

if [ "${#drives[@]}" -eq 1 ]; then
    level=0
fi
mdadm --assemble --scan || true
if [ ! -e "$array" ]; then
    echo "helm-rdma: RAID ${level} over ${#drives[*]} drive(s): ${drives[*]}"
    mdadm --create "$array" --run --force --level="$level" --chunk=256 --raid-devices="${#drives[@]}" "${drives[@]}"
fi
if [ -z "$(blkid -s TYPE -o value "$array" || true)" ]; then
    mkfs.ext4 -F -m 1 "$array"
fi

uuid=$(blkid -s UUID -o value "$array")
mkdir -p "$mount_point"
if ! grep -q "UUID=${uuid} " /etc/fstab; then
    echo "UUID=${uuid} ${mount_point} ext4 defaults,noatime,nofail 0 2" >> /etc/fstab
fi
mountpoint -q "$mount_point" || mount "$mount_point"

for dir in /var/lib/containers /var/lib/kubelet /var/log/pods; do
    target="${mount_point}/$(basename "$dir")"
    mkdir -p "$target" "$dir"
    if ! grep -q " ${dir} none bind" /etc/fstab; then
        echo "${target} ${dir} none bind,nofail,x-systemd.requires-mounts-for=${mount_point} 0 0" >> /etc/fstab
    fi
    mountpoint -q "$dir" || mount "$dir"
done

# Record the array so that it assembles under the same name at boot.
if [ -d /etc/mdadm ]; then
    conf=/etc/mdadm/mdadm.conf
else
    conf=/etc/mdadm.conf
fi
if ! grep -qs "$uuid" "$conf" && ! grep -qs "helm-rdma-nvme" "$conf"; then
    mdadm --detail --scan >> "$conf"
fi
echo "helm-rdma: ${mount_point} is on ${array}"
