"""`helm-rdma presets`: list the shape presets, or show one."""

from __future__ import annotations

from typing import Any, NamedTuple

from helm_rdma.sizing.presets import load_preset, preset_names


class PresetSummary(NamedTuple):
    """One row of `helm-rdma presets`."""

    name: str
    shape: str
    gpus: str
    rdma: str
    busbw_threshold_gbps: float
    image: str


def list_presets() -> list[PresetSummary]:
    """Every preset, summarised."""
    rows = []
    for name in preset_names():
        p = load_preset(name)
        rows.append(PresetSummary(
            name=name, shape=p.shape,
            gpus=f"{p.gpu.count}x {p.gpu.model} {p.gpu.memory_gib}GB",
            rdma=f"{p.rdma.nics} x {p.rdma.nic_gbps} Gb/s",
            busbw_threshold_gbps=p.bus_bandwidth.threshold_gbps,
            image=f"{p.image.repository}:{p.image.tag}",
        ))
    return rows


def show_preset(name: str) -> dict[str, Any]:
    """One preset's full content, with NCCL_IB_HCA as the chart sets it."""
    p = load_preset(name)
    data = p.document()
    data["ncclIbHca"] = "=" + ",".join(p.hcas)
    return data
