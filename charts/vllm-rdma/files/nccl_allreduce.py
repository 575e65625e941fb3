#!/usr/bin/env python3
"""All-reduce bus bandwidth across every GPU of every node, measured as nccl-tests does (helm-rdma's preflight).

torchrun starts one process per GPU on each node. Every process all-reduces float32 tensors of each message size,
rank 0 reports the time per operation (the slowest rank's), the algorithm bandwidth (bytes / time) and the bus
bandwidth (algbw x 2(n-1)/n for n ranks, nccl-tests' definition for all_reduce), reads NCCL's own log to tell which
transport it used (NET/IB, with GDRDMA when GPUDirect RDMA is on, or NET/Socket when RDMA is not used), and judges:
the largest message's bus bandwidth must reach the threshold, and the transport must be IB. The result goes to stdout
as one line starting with "helm-rdma preflight result: " and a JSON object (`helm rdma verify` and `diagnose` read
it from the leader's log). The first process of every node writes the result to --result-file and a short summary
(the figure, the threshold, the verdict) to --summary-file: the chart points that at the container's termination
message, which Kubernetes keeps in the pod's status after the container ended. With --on-failure warn a measured
failure is reported and recorded, and the exit code is 0.

--barrier-only measures nothing: every node's process meets the others (torchrun's rendezvous, then a gloo barrier)
and exits. It is the group's barrier when the preflight is off, so that no node starts vLLM before every node has
its weights.

The measuring and judging functions use the standard library only, so they can be tested without GPUs; torch is
imported by main() alone.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
import time
from typing import Any

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
RESULT_PREFIX = "helm-rdma preflight result: "


def parse_size(text: str) -> int:
    """Bytes in "512K", "16M", "8G" (binary units) or a plain number."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)I?B?\s*", text.upper())
    if not match:
        raise ValueError(f"{text!r} is not a size like 1M, 256M or 8G")
    return int(match.group(1)) * UNITS[match.group(2)]


def parse_sizes(text: str) -> list[int]:
    return sorted(parse_size(part) for part in text.split(",") if part.strip())


def bandwidth(size_bytes: int, seconds: float, ranks: int) -> tuple[float, float]:
    """(algbw, busbw) in GB/s (1e9 bytes) of one all_reduce of ``size_bytes`` taking ``seconds`` over ``ranks``."""
    if seconds <= 0 or ranks < 1:
        raise ValueError("time and ranks must be positive")
    algbw = size_bytes / seconds / 1e9
    return algbw, algbw * 2 * (ranks - 1) / ranks


def detect_transport(log: str) -> dict[str, Any]:
    """The network transport NCCL chose, from its INFO log: IB (RDMA), Socket (TCP), or unknown."""
    ib = bool(re.search(r"NET/IB\b|Using network IB\b", log))
    socket = bool(re.search(r"via NET/Socket|Using network Socket\b|NET/Socket : Using", log)) and not re.search(
        r"via NET/IB|Using network IB\b", log)
    devices = sorted(set(re.findall(r"\[\d+\](mlx5_\d+):\d+/(?:RoCE|IB)", log)), key=lambda d: int(d.split("_")[1]))
    kind = "Socket" if socket else "IB" if ib else "unknown"
    return {"kind": kind, "gdrdma": kind == "IB" and "GDRDMA" in log, "devices": devices}


def nccl_version(log: str) -> str | None:
    match = re.search(r"NCCL version (\S+)", log)
    return match.group(1) if match else None


def judge(results: list[dict[str, Any]], *, threshold_gbps: float, transport: str,
          require_ib: bool) -> tuple[bool, str]:
    """Whether the fabric passes: the largest message's busbw reaches the threshold, over IB when required."""
    if not results:
        return False, "no measurement"
    largest = max(results, key=lambda r: r["bytes"])
    problems = []
    if largest["busbw_gbps"] < threshold_gbps:
        problems.append(f"bus bandwidth {largest['busbw_gbps']:.1f} GB/s at {largest['bytes']} bytes is below "
                        f"{threshold_gbps:g} GB/s")
    if require_ib and transport != "IB":
        problems.append(f"NCCL used {transport} instead of NET/IB: RDMA is not in use (libibverbs missing in the "
                        "image, wrong NCCL_IB_HCA, or no RDMA devices in the pod)")
    if problems:
        return False, "; ".join(problems)
    return True, f"bus bandwidth {largest['busbw_gbps']:.1f} GB/s >= {threshold_gbps:g} GB/s over {transport}"


def table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'bytes':>12} {'time (us)':>12} {'algbw (GB/s)':>13} {'busbw (GB/s)':>13}"]
    lines += [f"{r['bytes']:>12} {r['time_us']:>12.1f} {r['algbw_gbps']:>13.2f} {r['busbw_gbps']:>13.2f}"
              for r in results]
    return "\n".join(lines)


def read_nccl_logs(pattern: str) -> str:
    """NCCL_DEBUG_FILE may hold %h (host) and %p (pid): read every file it can have produced here."""
    paths = glob.glob(re.sub(r"%[hp]", "*", pattern)) if pattern else []
    return "\n".join(open(p, encoding="utf-8", errors="replace").read() for p in sorted(paths))


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,16M,256M,1G,4G,8G", help="message sizes, comma-separated")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threshold-gbps", type=float, default=0.0)
    parser.add_argument("--expected-gbps", type=float, default=None)
    parser.add_argument("--require-ib", action="store_true", help="fail unless NCCL used NET/IB")
    parser.add_argument("--backend", default="nccl", help="nccl (GPUs) or gloo (CPU, for testing the script)")
    parser.add_argument("--result-file", default="", help="the whole result, written on every node")
    parser.add_argument("--summary-file", default="", help="a short summary (a termination message), every node")
    parser.add_argument("--on-failure", choices=["fail", "warn"], default="fail",
                        help="warn: report a measured failure and exit 0")
    parser.add_argument("--barrier-only", action="store_true", help="meet every node of the group, measure nothing")
    return parser.parse_args(argv)


def summary(result: dict[str, Any], *, on_failure: str) -> str:
    """The result in a few hundred bytes (a termination message holds at most 4096)."""
    verdict = "PASS" if result["passed"] else "WARN" if on_failure == "warn" else "FAIL"
    return json.dumps({"verdict": verdict, **{k: result.get(k) for k in (
        "passed", "busbw_gbps", "threshold_gbps", "transport", "nodes", "ranks", "reason", "time")}})


def write(path: str, text: str) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)


def barrier() -> int:
    import torch.distributed as dist

    dist.init_process_group(backend="gloo")
    dist.barrier()
    if dist.get_rank() == 0:
        print(f"helm-rdma barrier: all {dist.get_world_size()} node(s) of the group have their weights", flush=True)
    dist.destroy_process_group()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if args.barrier_only:
        return barrier()
    import torch
    import torch.distributed as dist

    dist.init_process_group(backend=args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if args.backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    results = []
    for size in parse_sizes(args.sizes):
        tensor = torch.ones(max(size // 4, 1), dtype=torch.float32, device=device)
        for _ in range(args.warmup):
            dist.all_reduce(tensor)
        sync()
        dist.barrier()
        start = time.perf_counter()
        for _ in range(args.iters):
            dist.all_reduce(tensor)
        sync()
        elapsed = torch.tensor([(time.perf_counter() - start) / args.iters], dtype=torch.float64, device=device)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # the slowest rank sets the pace
        seconds = float(elapsed.item())
        algbw, busbw = bandwidth(tensor.numel() * 4, seconds, world)
        results.append({"bytes": tensor.numel() * 4, "time_us": seconds * 1e6, "algbw_gbps": algbw,
                        "busbw_gbps": busbw})
        del tensor

    log = read_nccl_logs(os.environ.get("NCCL_DEBUG_FILE", ""))
    transport = detect_transport(log)
    version = nccl_version(log)
    if version is None and device.type == "cuda":
        version = ".".join(str(p) for p in torch.cuda.nccl.version())
    passed, reason = judge(results, threshold_gbps=args.threshold_gbps, transport=transport["kind"],
                           require_ib=args.require_ib)
    verdict = torch.tensor([1 if passed else 0], device=device)
    dist.broadcast(verdict, src=0)  # every rank takes rank 0's verdict (the figures are the same on every rank)
    if bool(int(verdict.item())) != passed:
        passed, reason = bool(int(verdict.item())), f"rank 0's verdict (this node: {reason})"
    largest = max(results, key=lambda r: r["bytes"])
    result = {
        "passed": passed, "reason": reason, "ranks": world,
        "nodes": int(os.environ.get("GROUP_WORLD_SIZE") or os.environ.get("HELM_RDMA_NNODES") or 1),
        "backend": args.backend, "transport": transport["kind"], "gdrdma": transport["gdrdma"],
        "devices": transport["devices"], "nccl_version": version, "busbw_gbps": largest["busbw_gbps"],
        "threshold_gbps": args.threshold_gbps, "expected_gbps": args.expected_gbps, "results": results,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if rank == 0:
        print(table(results), flush=True)
        word = "PASS" if result["passed"] else "WARN" if args.on_failure == "warn" else "FAIL"
        print(f"helm-rdma preflight: {word}: {result['reason']}", flush=True)
        print(RESULT_PREFIX + json.dumps(result), flush=True)
    if local_rank == 0:
        write(args.result_file, json.dumps(result))
        write(args.summary_file, summary(result, on_failure=args.on_failure))
    dist.destroy_process_group()
    return 0 if result["passed"] or args.on_failure == "warn" else 1


if __name__ == "__main__":
    sys.exit(main())
