"""Shape presets: one YAML file per OCI GPU shape under presets/, validated against schemas/preset.schema.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from .doccache import load_checked
from .errors import SchemaViolation, UnknownPresetError
from .resources import presets_dir, schema_path

CATALOG_FILE = "models.yaml"


class NcclSetting(NamedTuple):
    """One NCCL variable with the public source that recommends it."""

    name: str
    value: str
    source: str
    note: str


class Preset(NamedTuple):
    """A validated shape preset."""

    name: str
    shape: str
    description: str
    path: Path
    raw: dict[str, Any]

    @property
    def gpu(self) -> dict[str, Any]:
        return dict(self.raw["gpu"])

    @property
    def gpus_per_node(self) -> int:
        return int(self.raw["gpu"]["count"])

    @property
    def gpu_memory_gib(self) -> float:
        return float(self.raw["gpu"]["memoryGiB"])

    @property
    def vendor(self) -> str:
        return str(self.raw["gpu"]["vendor"])

    @property
    def hcas(self) -> list[str]:
        return list(self.raw["rdma"]["hcas"])

    @property
    def front_end_nics(self) -> list[str]:
        return list(self.raw["rdma"]["frontEndNics"])

    @property
    def gpu_direct_rdma(self) -> bool:
        """Whether the shape supports GPUDirect RDMA (rdma.gpuDirectRdma; the schema's default is true)."""
        return bool(self.raw["rdma"].get("gpuDirectRdma", True))

    @property
    def line_rate_gbps(self) -> int:
        """Total RDMA line rate of one node in Gb/s."""
        return int(self.raw["rdma"]["nics"]) * int(self.raw["rdma"]["nicGbps"])

    @property
    def nccl_settings(self) -> list[NcclSetting]:
        settings = self.raw["nccl"]["settings"]
        return [
            NcclSetting(name=k, value=v["value"], source=self.source(v["source"]), note=v.get("note", ""))
            for k, v in settings.items()
        ]

    def source(self, key: str) -> str:
        """The text of one of the preset's sources."""
        return str(self.raw["sources"][key])


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
    return Preset(name=data["name"], shape=data["shape"], description=data["description"], path=path, raw=data)


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
