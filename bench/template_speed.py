#!/usr/bin/env python3
"""How much `helm rdma template` costs over plain `helm template` of the same chart, on helm 3 and helm 4.

In one run, alternating the commands so that machine noise hits each alike, it times:
  plugin: helm rdma template llama405b --preset h100   (helm -> plugin entry -> Python -> helm template)
  plain:  helm template llama405b <the chart generate wrote for the same release>
  python: the plugin venv's `python -c pass` (the floor: what starting the plugin's Python alone costs)
  direct: helm-rdma template llama405b --preset h100   (the same without helm's plugin layer)
  helm:   helm version                                 (what starting helm itself costs, paid twice by `plugin`)
and prints medians in milliseconds and the ratio plugin / plain as JSON. A figure, not a test: nothing is asserted.

Usage: .venv/bin/python bench/template_speed.py [--runs N] [--output FILE]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from figures import machine, publish

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    results: dict[str, object] = {"runs": args.runs, **machine()}
    with tempfile.TemporaryDirectory(prefix="helm-rdma-bench-") as tmp:
        home = Path(tmp)
        chart = home / "chart"
        subprocess.run([str(BIN / "helm-rdma"), "generate", "llama405b", "--preset", "h100",
                        "--output-dir", str(chart)], check=True, stdout=subprocess.DEVNULL)
        for name in ("helm3", "helm4"):
            helm = str(BIN / name)
            env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(home), "HELM_DATA_HOME": str(home / name / "data"),
                   "HELM_PLUGINS": str(home / name / "data" / "plugins"), "HELM_CACHE_HOME": str(home / name / "cache"),
                   "HELM_CONFIG_HOME": str(home / name / "config"),
                   # this checkout's code, also where .venv links to another checkout's environment (a work tree)
                   "PYTHONPATH": str(REPO / "generator")}
            subprocess.run([helm, "plugin", "install", str(REPO)], env=env, check=True, stdout=subprocess.DEVNULL)
            commands = {
                "plugin": [helm, "rdma", "template", "llama405b", "--preset", "h100"],
                "plain": [helm, "template", "llama405b", str(chart)],
                "python": [str(BIN / "python"), "-c", "pass"],
                "direct": [str(BIN / "helm-rdma"), "template", "llama405b", "--preset", "h100"],
                "helm": [helm, "version"],
            }
            env["HELM_BIN"] = helm  # for `direct`; helm sets it itself for the plugin
            for cmd in commands.values():  # warm the page cache and helm-rdma's document cache
                timed(cmd, env)
            samples: dict[str, list[float]] = {k: [] for k in commands}
            for _ in range(args.runs):
                for key, cmd in commands.items():
                    samples[key].append(timed(cmd, env))
            medians = {k: round(statistics.median(v), 1) for k, v in samples.items()}
            results[name] = {
                "median_ms": medians,
                "ratio_plugin_over_plain": round(medians["plugin"] / medians["plain"], 2),
                "floor_ratio_plain_plus_python": round((medians["plain"] + medians["python"]) / medians["plain"], 2),
                "floor_ratio_two_helms_plus_python": round(
                    (medians["plain"] + medians["helm"] + medians["python"]) / medians["plain"], 2),
            }
    publish(results, args.output)


if __name__ == "__main__":
    main()
