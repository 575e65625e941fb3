"""Shape presets: one YAML file per OCI GPU shape under presets/, validated against schemas/preset.schema.json."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from helm_rdma.datafiles import presets_dir, schema_path
from helm_rdma.errors import SchemaViolation, UnknownPresetError
from helm_rdma.sizing.doccache import load_checked

CATALOG_FILE = "models.yaml"


@dataclass(frozen=True)
class NcclSetting:
    """One NCCL variable with the public source that recommends it (the source's text, not its key)."""

    name: str
    value: str
    source: str
    note: str


@dataclass(frozen=True)
class GpuFacts:
    """`gpu`: the shape's accelerators."""

    vendor: str
    model: str
    count: int
    memory_gib: float  # as the preset writes it (80, not 80.0): it is copied into values
    resource: str
    taint: str
    source: str


@dataclass(frozen=True)
class RdmaFacts:
    """`rdma`: the cluster-network NICs."""

    nics: int
    nic_gbps: int
    hcas: tuple[str, ...]
    front_end_nics: tuple[str, ...]
    sriov_vfs: int
    gpu_direct_rdma: bool
    source: str


@dataclass(frozen=True)
class NcclFacts:
    """`nccl`: where the settings go, and the settings in the preset's order."""

    config_file: str
    settings: tuple[NcclSetting, ...]


@dataclass(frozen=True)
class NetworkFacts:
    """`network`: the pods' interface for NCCL's bootstrap and vLLM."""

    interface: str
    source: str


@dataclass(frozen=True)
class BusBandwidthFacts:
    """`busBandwidth`: the 2-node all_reduce figures the preflight is measured against."""

    expected_gbps: float | None
    threshold_gbps: float
    source: str


@dataclass(frozen=True)
class PodFacts:
    """`pod`: the requests of one pod (which takes the whole node)."""

    shm_size: str
    cpu: str
    memory: str
    source: str


@dataclass(frozen=True)
class ImageFacts:
    """`image`: the vLLM image of the shape's vendor."""

    repository: str
    tag: str
    source: str


@dataclass(frozen=True)
class Preset:
    """A validated shape preset, one typed field per section of the file."""

    name: str
    shape: str
    description: str
    sources: Mapping[str, str] = field(hash=False)
    gpu: GpuFacts
    rdma: RdmaFacts
    nccl: NcclFacts
    network: NetworkFacts
    bus_bandwidth: BusBandwidthFacts
    pod: PodFacts
    image: ImageFacts
    _document: Mapping[str, Any] = field(repr=False, compare=False, hash=False)

    @property
    def gpus_per_node(self) -> int:
        return self.gpu.count

    @property
    def gpu_memory_gib(self) -> float:
        return float(self.gpu.memory_gib)

    @property
    def hcas(self) -> list[str]:
        return list(self.rdma.hcas)

    @property
    def front_end_nics(self) -> list[str]:
        return list(self.rdma.front_end_nics)

    @property
    def gpu_direct_rdma(self) -> bool:
        """Whether the shape supports GPUDirect RDMA (rdma.gpuDirectRdma; the schema's default is true)."""
        return self.rdma.gpu_direct_rdma

    @property
    def line_rate_gbps(self) -> int:
        """Total RDMA line rate of one node in Gb/s."""
        return self.rdma.nics * self.rdma.nic_gbps

    def source(self, key: str) -> str:
        """The text of one of the preset's sources."""
        return self.sources[key]

    def document(self) -> dict[str, Any]:
        """The preset file as parsed, every key as written (a copy: for showing the file, not for reading facts)."""
        return copy.deepcopy(dict(self._document))


def preset_names() -> list[str]:
    """Names of every preset shipped, sorted."""
    return sorted(p.stem for p in presets_dir().glob("*.yaml") if p.name != CATALOG_FILE)


def load_preset(name: str) -> Preset:
    """Load and validate one preset by name.

    Raises:
        UnknownPresetError: No such preset (the message lists the known ones).
        YamlFileError: The file is not valid YAML.
        SchemaViolation: The file breaks the preset schema or cites a source it does not define.
    """
    known = preset_names()
    if name not in known:
        raise UnknownPresetError(name=name, known=known)
    path = presets_dir() / f"{name}.yaml"
    return preset_from_file(path)


def preset_from_file(path: Path) -> Preset:
    """Load and validate a preset file (any path; used for the shipped presets and for tests)."""
    data, found = load_checked(path, schema=schema_path("preset.schema.json"))
    label = f"preset file {path}"
    problems = [f"{key}: {msg}" for key, msg in found]
    if not problems:
        problems = _cross_checks(data, path)
    if problems:
        raise SchemaViolation(what=label, problems=problems, fix=f"Fix {path.name} against schemas/preset.schema.json.")
    return _typed(data)


def _typed(data: dict[str, Any]) -> Preset:
    """The typed preset of a document that passed the schema and the cross-checks."""
    sources = {str(k): str(v) for k, v in data["sources"].items()}
    gpu, rdma, nccl, bus, pod, image = (data[k] for k in ("gpu", "rdma", "nccl", "busBandwidth", "pod", "image"))
    settings = tuple(NcclSetting(name=k, value=v["value"], source=sources[v["source"]], note=v.get("note", ""))
                     for k, v in nccl["settings"].items())
    return Preset(
        name=data["name"], shape=data["shape"], description=data["description"], sources=MappingProxyType(sources),
        gpu=GpuFacts(vendor=gpu["vendor"], model=gpu["model"], count=gpu["count"], memory_gib=gpu["memoryGiB"],
                     resource=gpu["resource"], taint=gpu["taint"], source=gpu["source"]),
        rdma=RdmaFacts(nics=rdma["nics"], nic_gbps=rdma["nicGbps"], hcas=tuple(rdma["hcas"]),
                       front_end_nics=tuple(rdma["frontEndNics"]), sriov_vfs=rdma["sriovVfs"],
                       gpu_direct_rdma=bool(rdma.get("gpuDirectRdma", True)), source=rdma["source"]),
        nccl=NcclFacts(config_file=nccl["configFile"], settings=settings),
        network=NetworkFacts(interface=data["network"]["interface"], source=data["network"]["source"]),
        bus_bandwidth=BusBandwidthFacts(expected_gbps=bus["expectedGBps"], threshold_gbps=bus["thresholdGBps"],
                                        source=bus["source"]),
        pod=PodFacts(shm_size=pod["shmSize"], cpu=pod["cpu"], memory=pod["memory"], source=pod["source"]),
        image=ImageFacts(repository=image["repository"], tag=image["tag"], source=image["source"]),
        _document=MappingProxyType(data),
    )


def _cross_checks(data: dict[str, Any], path: Path) -> list[str]:
    problems = []
    if data["name"] != path.stem:
        problems.append(f'name: "{data["name"]}" must equal the file name "{path.stem}"')
    sources = set(data["sources"])
    cited = [(f"{section}.source", data[section]["source"]) for section in
             ("gpu", "rdma", "network", "busBandwidth", "pod", "image")]
    cited += [(f"nccl.settings.{k}.source", v["source"]) for k, v in data["nccl"]["settings"].items()]
    for key, ref in cited:
        if ref not in sources:
            problems.append(f'{key}: "{ref}" is not a key of sources ({", ".join(sorted(sources))})')
    if "NCCL_IB_HCA" in data["nccl"]["settings"]:
        problems.append("nccl.settings.NCCL_IB_HCA: list the devices under rdma.hcas instead; it is derived from them")
    overlap = set(data["rdma"]["hcas"]) & set(data["rdma"]["frontEndNics"])
    if overlap:
        problems.append(f"rdma.hcas: {', '.join(sorted(overlap))} are listed as front-end NICs too")
    if data["gpu"]["vendor"] == "amd" and data["nccl"]["configFile"] != "/etc/rccl.conf":
        problems.append("nccl.configFile: AMD presets use /etc/rccl.conf")
    return problems
