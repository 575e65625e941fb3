"""What every benchmark prints: the machine it ran on, and its figures as JSON on stdout and, if asked, in a file."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def machine() -> dict[str, str]:
    return {"machine": f"{platform.machine()}, {os.cpu_count()} cpus", "python": platform.python_version()}


def publish(results: dict[str, object], output: Path | None) -> None:
    text = json.dumps(results, indent=2)
    print(text)
    if output:
        output.write_text(text + "\n")
