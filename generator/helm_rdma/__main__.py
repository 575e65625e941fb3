"""`python -m helm_rdma`: the helm-rdma command line (the provisioner image's entry point)."""

from __future__ import annotations

from helm_rdma.cli import main

main(prog_name="helm-rdma")
