#!/usr/bin/env python3
"""What merging the user's values costs per command: our port of helm's merge against helm itself.

For 1, 2 and 3 sources (-f a.yaml, then --set ..., then -f b.yaml) it times, as medians in milliseconds:
  port:        a fresh Python that merges them with helm_rdma.resolve.valuesources, less one that only imports what
               `helm rdma template` imports anyway (dataclasses, PyYAML, yamlfile): what the port adds to a command
  helm:        one `helm template` of a tiny chart whose only template is `{{ toJson .Values }}`, with those flags
  helm+origin: that run and, with more than one source, one run per source alone (two at a time, as this machine has
               two cores), which is what telling the file or flag that set each key (for messages and the notes of
               values.yaml) would cost with helm as the engine
A figure, not a test: nothing is asserted. ARCHITECTURE.md ("The values engine") keeps the result.

Usage: .venv/bin/python bench/values_engine.py [--runs N] [--output FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from figures import machine, publish

BIN = Path(sys.executable).parent
# As a user runs it: Python may keep the compiled modules (the first, warming round writes them).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PORT = """from pathlib import Path
from helm_rdma.resolve.overrides import coalesce
from helm_rdma.resolve.valuesources import ValueSources, user_values
args = {args!r}
files = tuple(Path(v) for f, v in args if f == "-f")
sets = tuple(v for f, v in args if f == "--set")
coalesce({{}}, user_values(ValueSources(files=files, set=sets)).values)
"""
FLOOR = "import dataclasses, json, re\nimport yaml\nimport helm_rdma.errors, helm_rdma.yamlfile\n"


def timed(*cmds: list[str]) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        for out in pool.map(lambda c: subprocess.run(c, capture_output=True, env=ENV), cmds):
            out.check_returncode()
    return (time.perf_counter() - start) * 1000


def medians(runs: int, commands: dict[str, list[list[str]]]) -> dict[str, float]:
    """Median of each command group, the groups alternated so that machine noise hits each alike."""
    samples: dict[str, list[float]] = {key: [] for key in commands}
    for round_ in range(runs + 1):  # the first round warms the page cache
        for key, cmds in commands.items():
            took = timed(*cmds)
            if round_:
                samples[key].append(took)
    return {key: round(statistics.median(values), 1) for key, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    results: dict[str, object] = {"runs": args.runs, **machine(), "load_before": round(os.getloadavg()[0], 1)}
    with tempfile.TemporaryDirectory(prefix="helm-rdma-bench-") as tmp:
        home = Path(tmp)
        (home / "tiny" / "templates").mkdir(parents=True)
        (home / "tiny" / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
        (home / "tiny" / "templates" / "values.yaml").write_text("{{ toJson .Values }}\n")
        (home / "a.yaml").write_text("vllm:\n  maxModelLen: 16384\n  gpuMemoryUtilization: 0.8\nreplicas: 2\n")
        (home / "b.yaml").write_text("podLabels: {team: ml}\nmodel:\n  hfTokenSecret: {name: hf}\n")
        sources = [("-f", str(home / "a.yaml")), ("--set", "replicas=3,vllm.maxModelLen=4096"),
                   ("-f", str(home / "b.yaml"))]
        python = str(BIN / "python")
        for n in (1, 2, 3):
            chosen = sources[:n]
            commands = {"floor": [[python, "-c", FLOOR]], "port": [[python, "-c", PORT.format(args=chosen)]]}
            for name in ("helm3", "helm4"):
                def run(flags: list[tuple[str, str]], name: str = name) -> list[str]:
                    return [str(BIN / name), "template", "t", str(home / "tiny"), *(x for pair in flags for x in pair)]
                commands[name] = [run(chosen)]
                commands[f"{name}+origin"] = [run(chosen), *(run([s]) for s in chosen if n > 1)]
            row = medians(args.runs, commands)
            row["port"] = round(row["port"] - row.pop("floor"), 1)
            results[f"sources={n}"] = row
    results["load_after"] = round(os.getloadavg()[0], 1)
    publish(results, args.output)


if __name__ == "__main__":
    main()
