#!/usr/bin/env bash
# Joins this node to its OKE cluster as a self-managed node. helm-rdma's provisioner puts this file in the node's
# cloud-init, with the API server host in /etc/oke/oke-apiserver and the cluster CA in /etc/kubernetes/ca.crt, and
# runs it as: oke-join KUBERNETES_VERSION NODE_PACKAGE_REPOSITORY (the cluster's version, e.g. v1.34.1, as the
# Container Engine API gives it; the remote repository's URIs, {codename} and {kubernetes} standing for the Ubuntu
# release's codename and the version's major.minor).
#
# The steps follow Oracle's own stack (oracle-quickstart/oci-hpc-oke files/oke-ubuntu-cloud-init.sh and
# terraform/oke-workers.tf): Oracle's GPU and RDMA images carry the OKE node package uninstalled, so on Ubuntu a node
# without the `oke` command installs oci-oke-node-all-<version> from the image's own repository
# (/opt/oke-node-client-packages/ubuntu-<codename>/kubernetes-<major.minor>), or else from the remote repository,
# then joins with `oke bootstrap`. Oracle Linux OKE images join with `oke bootstrap` when they have it, else with
# /etc/oke/oke-install.sh given the endpoint and the base64 CA, else with the init script OKE leaves in the instance
# metadata. The API server may not answer at once (a new node's instance-principal certificate, a busy control
# plane), so each attempt is retried.
#
# HELM_RDMA_NODE_ROOT (default: /) and HELM_RDMA_JOIN_ATTEMPTS / HELM_RDMA_JOIN_PAUSE let the tests run this script
# against a directory and fake commands.
set -euo pipefail

version="${1:-}"
remote_repository="${2:-}"
root="${HELM_RDMA_NODE_ROOT:-}"
attempts="${HELM_RDMA_JOIN_ATTEMPTS:-20}"
pause="${HELM_RDMA_JOIN_PAUSE:-15}"
lock_wait=600

say() {
    echo "helm-rdma: $*" >&2
}

retry() {
    local attempt=1
    until "$@"; do
        if [ "$attempt" -ge "$attempts" ]; then
            say "'$*' failed $attempts times; giving up"
            return 1
        fi
        say "'$*' failed (attempt $attempt of $attempts); retrying in ${pause}s"
        sleep "$pause"
        attempt=$((attempt + 1))
    done
}

# apt and unattended-upgrades may hold dpkg's and apt's locks at first boot (Oracle's script waits the same way).
wait_for_apt() {
    local waited=0
    while command -v fuser > /dev/null 2>&1 && fuser "$root"/var/lib/dpkg/lock "$root"/var/lib/dpkg/lock-frontend \
            "$root"/var/lib/apt/lists/lock "$root"/var/cache/apt/archives/lock > /dev/null 2>&1; do
        if [ "$waited" -ge "$lock_wait" ]; then
            say "apt's lock is still held after ${lock_wait}s; trying anyway"
            return 0
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

# Installs the package from the apt source whose URIs are "$1" (one or more, space-separated).
install_from() {
    mkdir -p "$root/etc/apt/sources.list.d"
    # The repositories are unsigned (Oracle writes them with Trusted: yes); the remote one is a value of the chart,
    # clusterNetwork.oke.nodePackageRepository, so that it can point at a mirror of your own.
    printf 'Enabled: yes\nTypes: deb\nURIs: %s\nSuites: stable\nComponents: main\nTrusted: yes\n' "$1" \
        > "$root/etc/apt/sources.list.d/oke-node-client.sources"
    wait_for_apt
    apt-get -o DPkg::Lock::Timeout="$lock_wait" -y update || true
    wait_for_apt
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$lock_wait" -y install "$package"
}

install_oke_ubuntu() {
    if [ -z "$version" ]; then
        say "this image has no oke command and the cluster's Kubernetes version is unknown, so the OKE node package" \
            "cannot be chosen: set clusterNetwork.oke.clusterId (--oke-cluster), or use an image with the package"
        exit 1
    fi
    local number="${version#v}"
    local minor
    minor=$(echo "$number" | cut -d. -f1,2)
    package="oci-oke-node-all-${number}"
    local local_repository="$root/opt/oke-node-client-packages/ubuntu-${VERSION_CODENAME}/kubernetes-${minor}"
    local remote="${remote_repository//\{codename\}/$VERSION_CODENAME}"
    remote="${remote//\{kubernetes\}/$minor}"
    local tried=()
    if [ -d "$local_repository/dists" ]; then
        say "installing $package from the image's repository file://$local_repository"
        if install_from "file://$local_repository"; then
            return 0
        fi
        tried+=("the image's repository file://$local_repository")
    else
        tried+=("the image's repository file://$local_repository (absent)")
    fi
    if [ -n "$remote" ]; then
        say "installing $package from $remote (clusterNetwork.oke.nodePackageRepository)"
        if install_from "$remote"; then
            return 0
        fi
        tried+=("$remote (clusterNetwork.oke.nodePackageRepository)")
    fi
    say "could not install $package from ${tried[*]}: check that the image is an OKE image of this Ubuntu release" \
        "and that the node reaches the repository (a NAT or service gateway), or set" \
        "clusterNetwork.oke.nodePackageRepository to a mirror"
    exit 1
}

# shellcheck source=/dev/null
. "$root/etc/os-release"
apiserver=$(tr -d '[:space:]' < "$root/etc/oke/oke-apiserver")
ca_file="$root/etc/kubernetes/ca.crt"

if ! command -v oke > /dev/null 2>&1 && [ "$ID" = ubuntu ]; then
    install_oke_ubuntu
fi

# Oracle Linux boots with SELinux enforcing, and CRI-O then keeps unprivileged containers (the model download) from
# writing the unlabelled hostPath the weights live in; Oracle's script sets it permissive before the node joins
# (oci-hpc-oke files/oke-ubuntu-cloud-init.sh, its `ol` branch: setenforce 0 and SELINUX=permissive).
if [ "$ID" = ol ]; then
    if command -v setenforce > /dev/null 2>&1; then
        setenforce 0 || say "setenforce 0 failed; SELinux stays as it is until the next boot"
    fi
    if [ -f "$root/etc/selinux/config" ]; then
        sed -i 's/^SELINUX=enforcing/SELINUX=permissive/' "$root/etc/selinux/config"
    fi
fi

if command -v oke > /dev/null 2>&1; then
    say "joining ${apiserver} with oke bootstrap"
    retry oke bootstrap
elif [ -f "$root/etc/oke/oke-install.sh" ]; then
    say "joining ${apiserver} with /etc/oke/oke-install.sh"
    ca_b64=$(base64 -w 0 < "$ca_file")
    retry bash "$root/etc/oke/oke-install.sh" --apiserver-endpoint "$apiserver" --kubelet-ca-cert "$ca_b64"
elif curl --silent --fail --max-time 30 -H "Authorization: Bearer Oracle" \
        http://169.254.169.254/opc/v2/instance/metadata/oke_init_script 2> /dev/null | base64 --decode \
        > "$root/var/run/oke-init.sh" && [ -s "$root/var/run/oke-init.sh" ]; then
    say "joining ${apiserver} with the instance metadata's oke_init_script"
    retry bash "$root/var/run/oke-init.sh"
else
    say "this ${PRETTY_NAME:-$ID} image has no oke command, no /etc/oke/oke-install.sh and no oke_init_script in its" \
        "metadata: use an OKE node image (Oracle's GPU images for OKE)"
    exit 1
fi
say "the node joined the cluster"
