"""`helm-rdma provision` and `deprovision`: the OCI cluster network of a release, from flags or chart values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from helm_rdma.clock import SYSTEM_CLOCK, Clock, Polling
from helm_rdma.cluster.kube import NetworkNode, NodeProgress, cordon, network_nodes, wait_for_nodes
from helm_rdma.commands.groupports import judged_ports, pod_vnics, require_closed
from helm_rdma.datafiles import values_default
from helm_rdma.errors import (
    BusyNodesError,
    InputError,
    MissingSettingError,
    NodesNotReadyError,
    NodesTimeout,
    YamlFileError,
)
from helm_rdma.helmenv import HelmEnv
from helm_rdma.oci.clients import (
    DEFAULT_PATIENCE,
    CountingApi,
    OciAuth,
    OciPatience,
    Waiting,
    canonical_auth,
    check_endpoint,
)
from helm_rdma.oci.console import unjoined_consoles
from helm_rdma.oci.groupports import GroupPorts
from helm_rdma.oci.inputs import check_flags, check_values, label_pair
from helm_rdma.oci.network import (
    Chooser,
    NetworkSpec,
    Provisioned,
    deprovision_command,
    provision_network,
)
from helm_rdma.oci.nodejoin import NodeSetup, node_metadata, read_cluster
from helm_rdma.oci.teardown import Deprovisioned, deprovision_network, ours_to_remove
from helm_rdma.oci.waiting import Progress
from helm_rdma.sizing.presets import load_preset
from helm_rdma.yamlfile import load_yaml_file, read_input

# The provisioning defaults, each the chart's (schemas/values.schema.json is their one home).
TIMEOUT_SECONDS: float = values_default("clusterNetwork.timeoutMinutes") * 60
NODE_TIMEOUT_SECONDS: float = values_default("clusterNetwork.nodeTimeoutMinutes") * 60
WAIT_NODES: bool = values_default("clusterNetwork.waitForNodes")
BOOT_VOLUME_GBS: int = values_default("clusterNetwork.bootVolumeSizeGBs")
MAX_PODS: int = values_default("clusterNetwork.oke.maxPods")


class ProvisionPlan(NamedTuple):
    """Everything one provisioning run needs, whether it came from flags or from chart values."""

    spec: NetworkSpec
    auth: OciAuth
    setup: NodeSetup = NodeSetup()
    timeout_seconds: float = TIMEOUT_SECONDS
    wait_nodes: bool = WAIT_NODES
    node_label: tuple[str, str] | None = None
    node_timeout_seconds: float = NODE_TIMEOUT_SECONDS
    resize: str = "any"  # the one direction this run may resize in: any, grow (pre-* hooks), shrink (post-* hooks)
    group_ports: GroupPorts | None = None  # judged before anything is created (see ``provision``); None: not judged


@dataclass(frozen=True)
class ProvisionResult:
    """The network and, when waited for, its nodes."""

    network: Provisioned
    nodes: NodeProgress | None

    def to_dict(self) -> dict[str, Any]:
        return {**self.network._asdict(), "nodes_ready": None if self.nodes is None else self.nodes.ready}


@dataclass(frozen=True)
class ProvisionFlags:
    """The network, its nodes and the waits, as the provision command's flags give them (None: not given)."""

    preset: str | None = None
    nodes: int | None = None
    name: str | None = None
    compartment: str | None = None
    availability_domain: str | None = None
    subnet: str | None = None
    image: str | None = None
    boot_volume_gbs: int = BOOT_VOLUME_GBS
    placement_constraint: str | None = None
    instance_configuration: str | None = None
    node_label: str | None = None
    ssh_key_file: Path | None = None
    oke_cluster: str | None = None
    pod_subnet: str | None = None
    pod_nsgs: tuple[str, ...] = ()
    nsgs: tuple[str, ...] = ()
    nvme_raid_level: int | None = None
    node_package_repository: str | None = None
    max_pods: int = MAX_PODS
    api_server_host: str | None = None
    cluster_ca_cert_file: Path | None = None
    cloud_init_file: Path | None = None
    timeout_seconds: float = TIMEOUT_SECONDS
    node_timeout_seconds: float = NODE_TIMEOUT_SECONDS
    wait_nodes: bool = WAIT_NODES


def plan_from_flags(flags: ProvisionFlags, *, auth: OciAuth, release: str | None, namespace: str) -> ProvisionPlan:
    """A provisioning plan from command-line flags, signed in with ``auth``.

    Raises:
        InputError: A required flag is missing, the preset is unknown, or a file cannot be read.
    """

    f = flags
    required = {"--preset": f.preset, "--nodes": f.nodes, "--name": f.name, "--compartment": f.compartment,
                "--availability-domain": f.availability_domain, "--subnet": f.subnet, "--image": f.image}
    missing = [flag for flag, value in required.items() if not value]
    unread: list[str] = []
    ssh_keys = _read(f.ssh_key_file, "--ssh-key-file", unread)
    ca_cert = _base64_pem(_read(f.cluster_ca_cert_file, "--cluster-ca-cert-file", unread))
    cloud_init = _read(f.cloud_init_file, "--cloud-init-file", unread)
    check_flags({
        "--name": f.name, "--compartment": f.compartment, "--availability-domain": f.availability_domain,
        "--subnet": f.subnet, "--image": f.image, "--boot-volume-gbs": f.boot_volume_gbs,
        "--placement-constraint": f.placement_constraint, "--instance-configuration": f.instance_configuration,
        "--nsg": f.nsgs, "--nvme-raid-level": f.nvme_raid_level, "--ssh-key-file": ssh_keys,
        "--oke-cluster": f.oke_cluster, "--pod-subnet": f.pod_subnet, "--pod-nsg": f.pod_nsgs,
        "--max-pods": f.max_pods, "--api-server-host": f.api_server_host, "--cluster-ca-cert-file": ca_cert,
        "--cloud-init-file": cloud_init, "--node-package-repository": f.node_package_repository,
        "--node-label": f.node_label,
    }, missing=missing, extra=unread)
    assert f.preset and f.nodes and f.name and f.compartment and f.availability_domain and f.subnet and f.image
    pair = label_pair(f.node_label or f"helm-rdma.io/cluster-network={f.name}")
    assert pair is not None  # check_flags refused a --node-label that is not KEY=VALUE; a --name holds no '='
    key, value = pair
    spec = NetworkSpec(
        name=f.name, compartment_id=f.compartment, availability_domain=f.availability_domain, subnet_id=f.subnet,
        image_id=f.image, shape=load_preset(f.preset).shape, size=f.nodes, release=release or f.name,
        namespace=namespace, boot_volume_gbs=f.boot_volume_gbs, placement_constraint=f.placement_constraint or "",
        instance_configuration_id=f.instance_configuration or "", nsg_ids=tuple(f.nsgs),
    )
    setup = NodeSetup(
        labels={key: value}, ssh_authorized_keys=ssh_keys,
        cluster_id=f.oke_cluster or "", api_server_host=f.api_server_host or "",
        cluster_ca_cert=ca_cert, pod_subnet_id=f.pod_subnet or "",
        pod_nsg_ids=tuple(f.pod_nsgs), max_pods=f.max_pods, cloud_init=cloud_init,
        raid_level=_or_default(f.nvme_raid_level, "clusterNetwork.nvmeRaidLevel"),
        package_repository=_or_default(f.node_package_repository, "clusterNetwork.oke.nodePackageRepository"),
    )
    return ProvisionPlan(spec=spec, setup=setup, auth=auth, timeout_seconds=f.timeout_seconds, wait_nodes=f.wait_nodes,
                         node_label=(key, value), node_timeout_seconds=f.node_timeout_seconds)


def _or_default(given: Any, key: str) -> Any:
    """``given``, or when None the chart's default of ``key`` (the values schema is its one home)."""
    return values_default(key) if given is None else given


# OCI's bound on an instance's metadata, which carries the SSH keys, the cluster CA and the cloud-init (oci SDK,
# core/models/instance_configuration_launch_instance_details.py: "The combined size of the `metadata` and
# `extendedMetadata` objects can be a maximum of 32,000 bytes"): a larger file can never be sent.
METADATA_BYTES = 32_000


def _base64_pem(text: str) -> str:
    """A CA file as the instance metadata takes it: a plain PEM certificate (ca.crt) is base64-encoded, anything
    else is left for the values schema's rule to judge."""
    if text.startswith("-----BEGIN CERTIFICATE-----"):
        import base64

        return base64.b64encode((text + "\n").encode()).decode()
    return text


def _read(path: Path | None, flag: str, problems: list[str]) -> str:
    """The text of the file a flag names, bounded; a file larger than OCI's metadata, binary or unreadable adds a
    problem naming the flag to ``problems`` and reads as empty."""
    if path is None:
        return ""
    try:
        return read_input(path, label=f"{flag} {path}", max_bytes=METADATA_BYTES,
                          too_large="OCI takes at most that much instance metadata (SSH keys, CA, cloud-init) in "
                                    "all; pass a smaller file").strip()
    except YamlFileError as exc:
        problems.append(str(exc))
        return ""


def _lookup(values: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    """``values`` at the dotted ``key``, of type ``kind``, or an error naming the key."""
    node: Any = values
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None or not isinstance(node, kind) or isinstance(node, bool) and kind is not bool:
        raise InputError(f"--from-values {path}: {key} is missing or not a {getattr(kind, '__name__', kind)}; pass "
                         "the complete values of a vllm-rdma chart (the hook's ConfigMap holds them, as does "
                         "`helm get values --all RELEASE -o json`)")
    return node


def network_size(values: dict[str, Any]) -> int:
    """How many nodes the cluster network of these values has: every group's nodes (``nodes`` x ``replicas``), or,
    when a scaler owns the group count (autoscaling.enabled), the nodes of its largest count (``maxReplicas``): until
    nodes follow load on their own, the network is sized once for the most groups the scaler may ask for, so the
    provisioner never fights the scaler over the count (the plan prices it). The one place the size comes from."""
    auto = values.get("autoscaling") or {}
    groups = auto.get("maxReplicas", 1) if auto.get("enabled") else values.get("replicas", 1)
    return int(values["nodes"]) * int(groups)


def plan_from_values(path: Path, *, release: str, namespace: str, name: str | None = None,
                     node_label: str | None = None) -> ProvisionPlan:
    """Read a chart's values (YAML or JSON, as the hook mounts them) into a provisioning plan.

    The chart's hook passes the cluster network's ``name`` and the ``node_label`` (KEY=VALUE) its pods select on,
    as its helpers compute them (they depend on the release's namespace); without them the values must name both.

    Raises:
        YamlFileError: The file cannot be read.
        MissingSettingError: A required clusterNetwork key is empty.
        InputError: A key the plan needs is missing or of the wrong type, or the endpoint is malformed.
    """

    values = load_yaml_file(path)
    if not isinstance(values, dict) or not isinstance(values.get("clusterNetwork"), dict):
        raise InputError(f"--from-values {path}: no clusterNetwork section; pass a values file of the vllm-rdma chart")
    cn = values["clusterNetwork"]
    # Every problem at once, before any OCI call: the schema's rules, the settings provisioning needs, and the name
    # and label the hook passes (checked as the keys they become).
    missing = [str(MissingSettingError(key=f"clusterNetwork.{key}", flag=f"--set clusterNetwork.{key}=... ({flag})"))
               for key, flag in (("compartmentId", "--compartment"), ("availabilityDomain", "--availability-domain"),
                                 ("subnetId", "--subnet"), ("imageId", "--image")) if not cn.get(key)]
    name = name or cn.get("name")
    if not name:
        missing.append(str(MissingSettingError(key="clusterNetwork.name", flag="--name")))
    pair = label_pair(node_label) if node_label else None
    if node_label and pair is None:
        missing.append(f'--node-label "{node_label}": expected KEY=VALUE')
    checked = {**cn, "name": name or ""}
    if pair is not None and isinstance(cn.get("oke"), dict) and isinstance(cn["oke"].get("nodeLabels"), dict):
        checked["oke"] = {**cn["oke"], "nodeLabels": {**cn["oke"]["nodeLabels"], pair[0]: pair[1]}}
    elif pair is not None:
        checked["oke"] = {**(cn["oke"] if isinstance(cn.get("oke"), dict) else {}), "nodeLabels": dict([pair])}
    check_values(checked, source=f"--from-values {path}", extra=missing)
    oke = cn.get("oke") if isinstance(cn.get("oke"), dict) else {}

    def net(key: str) -> Any:
        """clusterNetwork's ``key`` (dotted below it) as the values give it, else the chart's default."""
        section, _, leaf = key.rpartition(".")
        return _or_default((oke if section else cn).get(leaf), f"clusterNetwork.{key}")

    node_labels = dict(oke.get("nodeLabels") or {})
    label = pair
    if label is None:
        chosen = (values.get("placement") or {}).get("clusterNetworkLabel") or {}
        if chosen.get("enabled") and chosen.get("key") and chosen.get("value"):
            label = (chosen["key"], chosen["value"])
    if label is not None:
        node_labels[label[0]] = label[1]
    spec = NetworkSpec(
        name=name, compartment_id=cn["compartmentId"],
        availability_domain=cn["availabilityDomain"], subnet_id=cn["subnetId"], image_id=cn["imageId"],
        shape=_lookup(values, "preset.shape", str, path),
        size=network_size({**values, "nodes": _lookup(values, "nodes", int, path)}),
        release=release, namespace=namespace, boot_volume_gbs=int(net("bootVolumeSizeGBs")),
        placement_constraint=cn.get("placementConstraint", ""),
        instance_configuration_id=cn.get("instanceConfigurationId", ""), nsg_ids=tuple(cn.get("nsgIds") or ()),
    )
    setup = NodeSetup(
        labels=node_labels, ssh_authorized_keys=cn.get("sshAuthorizedKeys", ""),
        cluster_id=oke.get("clusterId", ""), api_server_host=oke.get("apiServerHost", ""),
        cluster_ca_cert=oke.get("clusterCaCert", ""), pod_subnet_id=oke.get("podSubnetId", ""),
        pod_nsg_ids=tuple(oke.get("podNsgIds") or ()), max_pods=int(net("oke.maxPods")),
        cloud_init=oke.get("cloudInit", ""),
        raid_level=int(net("nvmeRaidLevel")),
        package_repository=str(net("oke.nodePackageRepository")),
    )
    endpoint = cn.get("endpoint") or None
    auth = OciAuth(mode=canonical_auth(net("auth")), config_file="/etc/oci/config",
                   profile=net("apiKeyProfile") or values_default("clusterNetwork.apiKeyProfile"),
                   endpoint=check_endpoint(endpoint, source="clusterNetwork.endpoint") if endpoint else None)
    return ProvisionPlan(spec=spec, auth=auth, setup=setup, timeout_seconds=float(net("timeoutMinutes")) * 60,
                         wait_nodes=bool(net("waitForNodes")), node_label=label,
                         node_timeout_seconds=float(net("nodeTimeoutMinutes")) * 60,
                         group_ports=judged_ports(_group_values(values, nodes=int(values["nodes"]))))


def _group_values(values: dict[str, Any], *, nodes: int) -> dict[str, Any]:
    """The keys the group's ports depend on, as the values give them, else the chart's defaults."""

    def given(key: str) -> Any:
        section, _, leaf = key.partition(".")
        found = (values.get(section) or {}).get(leaf)
        return values_default(key) if found is None else found

    distributed = {k: given(f"distributed.{k}") for k in ("masterPort", "groupWatchPort", "allowOpenGroupPorts")}
    guard = ((values.get("distributed") or {}).get("portGuard") or {}).get("enabled")
    distributed["portGuard"] = {"enabled": values_default("distributed.portGuard.enabled") if guard is None else guard}
    return {"nodes": nodes, "rdma": {"mode": given("rdma.mode")}, "workload": {"kind": given("workload.kind")},
            "distributed": distributed}


DEPROVISION_TIMEOUT_SECONDS = 3600  # terminating a network takes minutes; deprovision again to keep waiting
CONSOLE_TIMEOUT_SECONDS = 120  # a console capture takes seconds


def _ignore(_: Any) -> None:
    pass


@dataclass(frozen=True)
class Watch:
    """How a provisioning run talks to OCI, how often it looks, and whom it tells while it waits.

    Attributes:
        poll_seconds: The first pause between status checks (they back off to 60 s).
        on_progress: Each status check of the cluster network.
        on_wait: An OCI request still unanswered (see oci.clients.OciPatience).
        patience: How long one OCI request may take and be retried.
        retry_strategy: The oci SDK's retry strategy; None: oci.clients'.
        clock: Time, replaceable in tests.
    """

    poll_seconds: float = 10
    on_progress: Callable[[Progress], None] = _ignore
    on_wait: Callable[[Waiting], None] = _ignore
    patience: OciPatience = DEFAULT_PATIENCE
    retry_strategy: Any = None
    clock: Clock = SYSTEM_CLOCK

    def connect(self, auth: OciAuth) -> CountingApi:
        """An OCI API session signed in with ``auth``."""
        return CountingApi.connect(auth, patience=self.patience, retry_strategy=self.retry_strategy,
                                   on_wait=self.on_wait)

    def polling(self, timeout_seconds: float) -> Polling:
        """Waiting up to ``timeout_seconds``, first after ``poll_seconds``."""
        return Polling(timeout_seconds=timeout_seconds, poll_seconds=self.poll_seconds, clock=self.clock)


def provision(plan: ProvisionPlan, *, env: HelmEnv, watch: Watch = Watch(),
              on_nodes: Callable[[NodeProgress], None] = _ignore) -> ProvisionResult:
    """Provision the cluster network of ``plan`` and, unless told not to, wait for its nodes to be Ready. With
    ``plan.group_ports`` (the hook, under hostNetwork), first refuse when the subnet's security lists, the nodes'
    NSGs (planned, and those of the network's nodes when it exists) or the pod network open them, or when the
    network's nodes have other NSGs or another subnet than the plan: nothing is created or billed.

    Raises:
        GroupPortsOpenError, GroupPortsUncheckedError, NetworkMismatchError: See commands.groupports.require_closed.
        NodesNotReadyError: The network runs but its nodes did not join in time (the message says how to delete it).
        HelmRdmaError: See ``provision_network``, ``read_cluster`` and ``node_metadata``.
    """

    api = watch.connect(plan.auth)
    require_closed(api, spec=plan.spec, cluster_id=plan.setup.cluster_id,
                   ports=None if plan.resize == "shrink" else plan.group_ports,  # a shrink creates nothing
                   pods=pod_vnics({"podSubnetId": plan.setup.pod_subnet_id, "podNsgIds": plan.setup.pod_nsg_ids}))

    def metadata() -> dict[str, str]:
        cluster = read_cluster(api, plan.setup.cluster_id) if plan.setup.cluster_id else None
        return node_metadata(plan.setup, cluster, tenancy=api.tenancy)

    network = provision_network(api, plan.spec, node_metadata=metadata, polling=watch.polling(plan.timeout_seconds),
                                on_progress=watch.on_progress, resize=plan.resize,
                                choose=idle_instances(plan, env=env, watch=watch))
    nodes = None
    if plan.wait_nodes and plan.node_label is not None and plan.resize != "shrink":
        try:
            pace = max(watch.poll_seconds, 0.05)
            polling = Polling(timeout_seconds=plan.node_timeout_seconds, poll_seconds=pace, max_poll_seconds=pace,
                              clock=watch.clock)
            nodes = wait_for_nodes(label=plan.node_label[0], value=plan.node_label[1], count=plan.spec.size, env=env,
                                   polling=polling, on_progress=on_nodes)
        except NodesTimeout as exc:
            seen = exc.progress
            # The nodes' own words (their cloud-init and join script) say why they did not join.
            consoles = unjoined_consoles(api, compartment_id=plan.spec.compartment_id,
                                         network_id=network.cluster_network_id, joined=set(seen.ready_ids),
                                         polling=Polling(timeout_seconds=CONSOLE_TIMEOUT_SECONDS, poll_seconds=pace,
                                                         max_poll_seconds=max(pace, 5), clock=watch.clock))
            raise NodesNotReadyError(name=plan.spec.name, network_id=network.cluster_network_id, progress=seen,
                                     selector=exc.selector, deprovision=deprovision_command(plan.spec),
                                     consoles=tuple(c.text() for c in consoles)) from None
    return ProvisionResult(network=network, nodes=nodes)


def idle_instances(plan: ProvisionPlan, *, env: HelmEnv, watch: Watch) -> Chooser:
    """The chooser of a shrink: of the pool's instances, those whose node runs no pod but DaemonSet, static (mirror)
    or finished ones, in any namespace (cluster/kube.py network_nodes), cordoned.

    Instances that never became a node go first, then free nodes, newest first. Pods that are still leaving (the
    workload shrank a moment ago, or the user drains a node) are waited for, up to the node timeout; then, with too
    few free, nothing is cordoned or removed and nothing is evicted (BusyNodesError names each busy node and its
    pods). After the cordon the pods are read again: a pod scheduled in between keeps its node (uncordoned) and the
    shrink is refused.
    """

    def look(instances: list[Any]) -> tuple[list[str], list[str], dict[str, NetworkNode]]:
        nodes = {n.instance_id: n for n in network_nodes(label=plan.node_label, env=env)}
        newest_first = sorted(instances, key=lambda i: str(i.time_created), reverse=True)
        unjoined = [i.id for i in newest_first if i.id not in nodes]
        idle = unjoined + [i.id for i in newest_first if i.id in nodes and not nodes[i.id].pods]
        busy = [busy_line(nodes[i.id]) for i in instances if i.id in nodes and nodes[i.id].pods]
        return idle, busy, nodes

    def busy_line(node: NetworkNode) -> str:
        return f"{node.name} ({', '.join(node.pods)})"

    def named(ids: list[str], nodes: dict[str, NetworkNode]) -> list[str]:
        return [nodes[i].name if i in nodes else f"{i} (no node)" for i in ids]

    def choose(instances: list[Any], count: int) -> tuple[str, ...]:
        start, clock = watch.clock.now(), watch.clock
        idle, busy, nodes = look(instances)
        while len(idle) < count and clock.now() - start < plan.node_timeout_seconds:
            clock.sleep(max(watch.poll_seconds, 0.05))
            idle, busy, nodes = look(instances)
        if len(idle) < count:
            raise BusyNodesError(name=plan.spec.name, wanted=count, idle=named(idle, nodes), busy=busy)
        chosen = idle[:count]
        cordoned = [nodes[i].name for i in chosen if i in nodes]
        cordon(names=cordoned, env=env)
        _, _, again = look(instances)
        taken = [i for i in chosen if i in again and again[i].pods]
        if taken:
            cordon(names=cordoned, env=env, unschedulable=False)
            raise BusyNodesError(name=plan.spec.name, wanted=count, idle=named([i for i in chosen if i not in taken],
                                                                               again),
                                 busy=[busy_line(again[i]) for i in taken])
        return tuple(chosen)

    return choose


class DeprovisionResult(NamedTuple):
    """What was removed, or that the user declined."""

    removed: Deprovisioned | None
    found_networks: tuple[str, ...]
    found_configurations: tuple[str, ...]


def deprovision(spec: NetworkSpec, auth: OciAuth, *, confirm: Callable[[list[str]], bool],
                watch: Watch = Watch()) -> DeprovisionResult:
    """Terminate the cluster network and delete the instance configuration tagged as ours, once ``confirm`` agrees
    (it gets a line per resource)."""
    api = watch.connect(auth)
    networks, configs = ours_to_remove(api, spec)
    lines = [f"cluster network {n.display_name} {n.id} ({n.lifecycle_state})" for n in networks]
    lines += [f"instance configuration {c.display_name} {c.id}" for c in configs]
    found = (tuple(n.id for n in networks), tuple(c.id for c in configs))
    if not lines or not confirm(lines):
        return DeprovisionResult(removed=None, found_networks=found[0], found_configurations=found[1])
    removed = deprovision_network(api, spec, networks, configs, polling=watch.polling(DEPROVISION_TIMEOUT_SECONDS),
                                  on_progress=watch.on_progress)
    return DeprovisionResult(removed=removed, found_networks=found[0], found_configurations=found[1])
