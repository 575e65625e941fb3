"""helm-rdma: serve one large model with vLLM across RDMA-connected OCI GPU nodes, as a Helm chart."""

from __future__ import annotations

__version__ = "0.1.0"
