#!/usr/bin/env python3
"""How the chart's model download (charts/vllm-rdma/files/fetch_model.py) moves a repository, measured in one run.

A repository shaped like Meta's is generated on disk (sparse files, so making it costs no I/O): sharded safetensors of
--gb GB, configs and a tokenizer, and original/ holding the same size again, as Meta's consolidated checkpoints do.
The Hub stand-in of the tests (tests/hub_standin.py: Python's threading HTTP server, streaming the files from disk)
serves it over loopback, and the download script runs against it as the chart runs it (HF_ENDPOINT):
  filtered:   the chart's default patterns: only what vLLM loads (no original/)
  unfiltered: every file of the repository (--allow '*'), as a download without filters fetches it
  resume:     the filtered download killed (SIGKILL) halfway through, then run again: what the second run sends
(after one filtered download that is not counted: the first run pays for cold caches)
and prints, as JSON, the bytes the server sent and the bytes on disk, the seconds and GB/s of each, and the ratios
unfiltered / filtered. Loopback and one Python server bound the rate here: the figures compare the ways, they do not
predict a node's download from the Hub. A figure, not a test: nothing is asserted.

Usage: .venv/bin/python bench/download_speed.py [--gb 2] [--workers 8] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import machine, publish

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.hub_standin import Hub, HubServer, Repo  # noqa: E402

SCRIPT = REPO / "charts" / "vllm-rdma" / "files" / "fetch_model.py"
GB = 1000**3
SHARD = 250 * 1000**2
NAME = "bench/Generated-Model"


def make_repo(root: Path, gb: float) -> Repo:
    """Sparse shards of ``gb`` GB in all, original/ of the same size, and the small files of a model repository."""
    root.mkdir(parents=True)
    count = max(1, round(gb * GB / SHARD))
    disk: dict[str, Path] = {}
    for i in range(1, count + 1):
        for name in (f"model-{i:05d}-of-{count:05d}.safetensors", f"original/consolidated.{i - 1:02d}.pth"):
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as f:
                f.truncate(SHARD)
            disk[name] = path
    index = {"metadata": {"total_size": count * SHARD},
             "weight_map": {f"layers.{i}.weight": n for i, n in enumerate(sorted(disk)) if n.endswith(".safetensors")}}
    files = {"config.json": b'{"architectures": ["LlamaForCausalLM"]}', "generation_config.json": b"{}",
             "model.safetensors.index.json": json.dumps(index).encode(), "tokenizer.json": b"{}",
             "tokenizer_config.json": b"{}", "original/params.json": b"{}", "README.md": b"readme"}
    return Repo(files=files, disk=disk)


def run(url: str, home: Path, dest: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_ENDPOINT": url, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1"}
    return subprocess.Popen([sys.executable, str(SCRIPT), "--repo", NAME, "--dest", str(dest),
                             "--progress-seconds", "5", *extra], env=env, stderr=subprocess.PIPE, text=True)


def on_disk(dest: Path) -> int:
    return sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and not p.name.startswith(".helm-rdma"))


def timed(hub: Hub, url: str, home: Path, dest: Path, *extra: str) -> dict[str, float]:
    sent, start = hub.sent, time.perf_counter()
    proc = run(url, home, dest, *extra)
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"the download failed:\n{err}")
    moved = hub.sent - sent
    return {"seconds": round(seconds, 2), "bytes_sent": moved, "bytes_on_disk": on_disk(dest),
            "gb_per_second": round(moved / GB / seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=2.0, help="size of the safetensors (original/ adds as much)")
    parser.add_argument("--workers", type=int, default=8, help="files fetched at a time (model.download.maxWorkers)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    workers = ("--workers", str(args.workers))
    with tempfile.TemporaryDirectory(prefix="helm-rdma-bench-", dir=REPO / ".cache" if (REPO / ".cache").is_dir()
                                     else None) as tmp:
        work = Path(tmp)
        repo = make_repo(work / "repo", args.gb)
        hub = Hub(repos={NAME: repo})
        server = HubServer(hub)
        server.server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # the killed client
        results: dict[str, object] = {
            **machine(),
            "server": "tests/hub_standin.py over loopback (Python ThreadingHTTPServer, files streamed from disk)",
            "repository_bytes": sum(repo.size(n) for n in repo.names()), "workers": args.workers,
        }
        with server as url:
            timed(hub, url, work / "home", work / "warm-up", *workers)  # the first run pays for cold caches: not kept
            shutil.rmtree(work / "warm-up")
            filtered = timed(hub, url, work / "home", work / "filtered", *workers)
            shutil.rmtree(work / "filtered")
            unfiltered = timed(hub, url, work / "home", work / "unfiltered", *workers, "--allow", "*",
                               "--ignore", "(nothing)")
            shutil.rmtree(work / "unfiltered")
            # Kill the filtered download halfway, then run it again.
            dest, half = work / "resumed", filtered["bytes_sent"] // 2
            sent, start = hub.sent, time.perf_counter()
            proc = run(url, work / "home", dest, *workers)
            while proc.poll() is None and hub.sent - sent < half:
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            killed_at = hub.sent - sent
            kept = on_disk(dest)  # complete files and partial ones
            second = timed(hub, url, work / "home", dest, *workers)
            total = filtered["bytes_sent"]
        results["filtered"] = filtered
        results["unfiltered"] = unfiltered
        results["resume"] = {
            "sent_before_kill": killed_at, "kept_on_disk_after_kill": kept, "sent_after_restart": second["bytes_sent"],
            "sent_again": max(0, killed_at + second["bytes_sent"] - total),
            "seconds_after_restart": second["seconds"],
            "seconds_in_all": round(time.perf_counter() - start, 2),
            "complete": second["bytes_on_disk"] == filtered["bytes_on_disk"],
        }
        results["ratio_unfiltered_over_filtered"] = {
            "bytes": round(unfiltered["bytes_sent"] / filtered["bytes_sent"], 2),
            "seconds": round(unfiltered["seconds"] / filtered["seconds"], 2),
        }
    publish(results, args.output)


if __name__ == "__main__":
    main()
