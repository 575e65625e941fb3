#!/usr/bin/env python3
"""What the stage split saves per node: each node fetching and reading only its pipeline stage's shards, against
every node fetching the whole checkpoint, measured in one run.

A small Llama-shaped checkpoint is written as real safetensors shards split by layer (tests/checkpoint.py, the
safetensors library vLLM reads them with), --layers layers of --dim wide matrices, the embeddings and the head in
shards of their own. The Hub stand-in of the tests (tests/hub_standin.py) serves it over loopback, and the download
script (charts/vllm-rdma/files/fetch_model.py) runs as the chart runs it for a group of --nodes nodes of 8 GPUs at
TP 8 x PP --nodes (the stage arguments of vllm-rdma.stageArgs; LWS_WORKER_INDEX as the LeaderWorkerSet controller
sets it):
  whole: every node fetches every shard (the script without the stage arguments, as the chart ran it before)
  split: each node fetches the shards of its own stage
then each node's shards are read back from disk as vLLM's loader reads them (every tensor of every shard in the
directory). Each way runs --repeat times, alternating, and each node keeps its median. It prints, as JSON, per node
the bytes the server sent, the seconds of the download and of the read, and the ratios split / whole of the busiest
node's bytes and seconds. Loopback and one Python server bound the rate:
the ratios compare the ways, they do not predict a node's download from the Hub. A figure, not a test: nothing is
asserted.

Usage: .venv/bin/python bench/stage_split.py [--layers 16] [--dim 2048] [--nodes 2] [--repeat 3] [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import machine, publish
from safetensors.numpy import load_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.checkpoint import checkpoint  # noqa: E402
from tests.hub_standin import Hub, HubServer, Repo  # noqa: E402

SCRIPT = REPO / "charts" / "vllm-rdma" / "files" / "fetch_model.py"
NAME = "bench/Tiny-Llama"
GPUS = 8


def stage_args(nodes: int) -> list[str]:
    return ["--pipeline-parallel-size", str(nodes), "--tensor-parallel-size", str(GPUS), "--gpus-per-node", str(GPUS),
            "--nodes", str(nodes), "--backend", "native", "--storage", "hostPath", "--workload", "LeaderWorkerSet"]


def node(hub: Hub, url: str, work: Path, dest: Path, rank: int, args: list[str]) -> dict[str, float]:
    """One node's download (timed, with the bytes the server sent), then the read of its shards."""
    env = {**os.environ, "HF_ENDPOINT": url, "HF_HOME": str(work / "home"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "LWS_WORKER_INDEX": str(rank)}
    role = "leader" if rank == 0 else "worker"
    sent, start = hub.sent, time.perf_counter()
    run = subprocess.run([sys.executable, str(SCRIPT), "--repo", NAME, "--dest", str(dest), "--progress-seconds",
                          "30", *args, "--role", role], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if run.returncode:
        raise SystemExit(f"the download failed:\n{run.stderr}")
    start = time.perf_counter()
    tensors = sum(len(load_file(str(shard))) for shard in sorted(dest.glob("*.safetensors")))
    read = time.perf_counter() - start
    return {"bytes_sent": hub.sent - sent, "download_seconds": round(seconds, 3), "read_seconds": round(read, 3),
            "tensors_read": tensors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--dim", type=int, default=2048, help="width of the layers' square matrices")
    parser.add_argument("--nodes", type=int, default=2, help="nodes of the group, one pipeline stage each")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way; each node keeps its median")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    files = checkpoint(layers=args.layers, dim=args.dim, vocab=4 * args.dim)
    hub = Hub(repos={NAME: Repo(files=files)})
    results: dict[str, object] = {
        **machine(),
        "server": "tests/hub_standin.py over loopback (Python ThreadingHTTPServer)",
        "checkpoint_bytes": sum(len(b) for n, b in files.items() if n.endswith(".safetensors")),
        "layers": args.layers, "nodes": args.nodes, "parallelism": f"TP {GPUS} x PP {args.nodes}",
    }
    with tempfile.TemporaryDirectory(prefix="helm-rdma-bench-") as tmp, HubServer(hub) as url:
        work = Path(tmp)
        node(hub, url, work, work / "warm-up", 0, [])  # the first run pays for cold caches: not kept
        shutil.rmtree(work / "warm-up")
        runs: dict[str, list[list[dict[str, float]]]] = {"whole": [], "split": []}
        for _ in range(args.repeat):
            for way, extra in (("whole", []), ("split", stage_args(args.nodes))):
                runs[way].append([node(hub, url, work, work / f"{way}-{rank}", rank, extra)
                                  for rank in range(args.nodes)])
                for rank in range(args.nodes):
                    shutil.rmtree(work / f"{way}-{rank}")
        ways = {way: [{key: statistics.median(run[rank][key] for run in runs[way]) for key in runs[way][0][rank]}
                      for rank in range(args.nodes)] for way in runs}
        results.update(ways)

    def busiest(way: str, key: str) -> float:
        return max(float(n[key]) for n in ways[way])

    results["ratio_split_over_whole"] = {
        "bytes_per_node": round(busiest("split", "bytes_sent") / busiest("whole", "bytes_sent"), 3),
        "download_seconds_per_node": round(busiest("split", "download_seconds") / busiest("whole", "download_seconds"),
                                           3),
        "read_seconds_per_node": round(busiest("split", "read_seconds") / busiest("whole", "read_seconds"), 3),
        "group_bytes": round(sum(n["bytes_sent"] for n in ways["split"]) / sum(n["bytes_sent"] for n in ways["whole"]),
                             3),
    }
    publish(results, args.output)


if __name__ == "__main__":
    main()
