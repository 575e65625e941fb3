#!/usr/bin/env bash
# Puts the node's local NVMe drives in one RAID 0 array mounted at /mnt/nvme, and bind-mounts the container
# runtime's, the kubelet's and the pods' log directories onto it, so images, emptyDir volumes and model caches land
# on the fast local drives instead of the boot volume. Oracle's stack does the same before the node joins
# (oracle-quickstart/oci-hpc-oke, files/oke-nvme-raid.sh). Safe to run again: an array or file system that exists is
# kept. A node without NVMe drives is left as it is.
set -euo pipefail
shopt -s nullglob

mount_point=/mnt/nvme
array=/dev/md/helm-rdma-nvme
drives=(/dev/nvme*n1)

if [ "${#drives[@]}" -eq 0 ]; then
    echo "helm-rdma: no local NVMe drives; nothing to do"
    exit 0
fi

mdadm --assemble --scan || true
if [ ! -e "$array" ]; then
    echo "helm-rdma: RAID 0 over ${#drives[*]} drive(s): ${drives[*]}"
    mdadm --create "$array" --run --force --level=0 --chunk=256 --raid-devices="${#drives[@]}" "${drives[@]}"
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
