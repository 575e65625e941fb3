"""The container images a chart's values make it run, each as the reference the pods pull.

The chart writes every reference with one helper, `vllm-rdma.imageRef` (templates/_images.tpl): repository:tag, with
@digest when a digest is set. This module lists the same references for what needs them outside a render: Artifact
Hub's `artifacthub.io/images` annotation of Chart.yaml (`artifacthub_images`), and `generate --pin-digests`
(chart/registry.py), which fills the digests. tests/test_images.py checks the list against the rendered manifests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from helm_rdma import __version__
from helm_rdma.checks.facts import oci_hooks, port_guard
from helm_rdma.contract import PORT_GUARD_CONTAINER


@dataclass(frozen=True)
class ChartImage:
    """One image the chart runs: its name (the role), the values key that sets it, and the reference pulled."""

    name: str
    key: str
    repository: str
    tag: str
    digest: str

    @property
    def image(self) -> str:
        """The reference the pods pull (what vllm-rdma.imageRef renders)."""
        ref = self.repository
        if self.tag:
            ref += f":{self.tag}"
        if self.digest:
            ref += f"@{self.digest}"
        return ref


def chart_images(values: dict[str, Any]) -> list[ChartImage]:
    """The images ``values`` make the chart run, in the order the chart's documents use them.

    Args:
        values: Resolved chart values (the provisioner image's tag defaults to helm-rdma's version, the chart's
            appVersion).
    """
    image = values["image"]
    found = [ChartImage("vllm", "image", image["repository"], str(image["tag"]), image.get("digest") or "")]
    if port_guard(values):  # a sidecar of every serving pod under hostNetwork
        guard = values["distributed"]["portGuard"]["image"]
        found.append(ChartImage(PORT_GUARD_CONTAINER, "distributed.portGuard.image", guard["repository"],
                                str(guard["tag"] or ""), guard.get("digest") or ""))
    cn = values.get("clusterNetwork") or {}
    if oci_hooks(values) and cn["image"]["repository"]:  # the hooks run the provisioner image
        prov = cn["image"]
        found.append(ChartImage("provisioner", "clusterNetwork.image", prov["repository"],
                                str(prov["tag"] or __version__), prov.get("digest") or ""))
    router = values.get("router") or {}
    if router.get("enabled"):  # the endpoint picker of the InferencePool
        epp = router["image"]
        found.append(ChartImage("endpoint-picker", "router.image", epp["repository"], str(epp["tag"] or ""),
                                epp.get("digest") or ""))
    tests = (values.get("verify") or {}).get("tests") or {}
    if tests.get("enabled"):
        test = tests["image"]
        found.append(ChartImage("test-api", "verify.tests.image", test["repository"], str(test["tag"] or ""),
                                test.get("digest") or ""))
    return found


def artifacthub_images(values: dict[str, Any]) -> list[dict[str, str]]:
    """The `artifacthub.io/images` annotation's entries (name, image) for ``values``; Chart.yaml carries them as a
    YAML string (Artifact Hub's "Helm charts annotations" docs)."""
    return [{"name": i.name, "image": i.image} for i in chart_images(values)]
