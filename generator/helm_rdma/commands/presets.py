"""`helm-rdma presets`: list the shape presets, or show one."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..presets import load_preset, preset_names


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
        raw = p.raw
        rows.append(PresetSummary(
            name=name, shape=p.shape,
            gpus=f"{raw['gpu']['count']}x {raw['gpu']['model']} {raw['gpu']['memoryGiB']}GB",
            rdma=f"{raw['rdma']['nics']} x {raw['rdma']['nicGbps']} Gb/s",
            busbw_threshold_gbps=raw["busBandwidth"]["thresholdGBps"],
            image=f"{raw['image']['repository']}:{raw['image']['tag']}",
        ))
    return rows


def show_preset(name: str) -> dict[str, Any]:
    """One preset's full content, with NCCL_IB_HCA as the chart sets it."""
    p = load_preset(name)
    data = dict(p.raw)
    data["ncclIbHca"] = "=" + ",".join(p.hcas)
    return data
