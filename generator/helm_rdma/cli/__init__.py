"""The helm-rdma command line: parse options, call one core function, turn a HelmRdmaError into an exit code.

One module per family of commands; importing them registers their commands on ``main``.
"""

from __future__ import annotations

from helm_rdma.cli import charts, cloud, diff, releases  # noqa: F401  (registers the commands)
from helm_rdma.cli.base import main

__all__ = ["main"]
