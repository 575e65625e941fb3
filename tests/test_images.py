"""Every image the chart runs: one reference format with an optional digest, listed the same way in Python, and a
cited source for each default."""

from __future__ import annotations

import re
from typing import Any

import pytest

from helm_rdma.chart.images import artifacthub_images, chart_images
from helm_rdma.datafiles import schema_path
from helm_rdma.resolve.values import resolve
from helm_rdma.sizing.presets import load_preset
from helm_rdma.yamlfile import load_json_schema

from .conftest import REPO
from .rendering import PROVISION, render, request

DIGEST = {"vllm": "sha256:" + "a" * 64, "provisioner": "sha256:" + "b" * 64, "test-api": "sha256:" + "c" * 64,
          "port-guard": "sha256:" + "d" * 64}
PINNED = (f"image.digest={DIGEST['vllm']}", f"clusterNetwork.image.digest={DIGEST['provisioner']}",
          f"verify.tests.image.digest={DIGEST['test-api']}", f"distributed.portGuard.image.digest={DIGEST['port-guard']}")
PRESETS = ("a100-v2", "b200", "gpu4", "h100", "h200", "mi300x")


def rendered_images(docs: list[dict[str, Any]]) -> set[str]:
    found = set()
    for d in docs:
        spec = d.get("spec") or {}
        templates = [spec.get("template"), (spec.get("leaderWorkerTemplate") or {}).get("leaderTemplate"),
                     (spec.get("leaderWorkerTemplate") or {}).get("workerTemplate")]
        for pod in [t["spec"] for t in templates if t] + ([spec] if d["kind"] == "Pod" else []):
            found |= {c["image"] for c in pod.get("containers", []) + pod.get("initContainers", [])}
    return found


def values_of(*sets: str) -> dict[str, Any]:
    return resolve(request(sets=sets)).values


@pytest.mark.parametrize("sets", [(), PROVISION, (*PROVISION, "verify.tests.enabled=false"), PINNED + PROVISION,
                                  ("router.enabled=true", f"router.image.digest={DIGEST['vllm']}")],
                         ids=["default", "provision", "no-tests", "pinned", "router"])
def test_the_python_list_of_images_is_what_the_chart_runs(sets: tuple[str, ...]) -> None:
    assert rendered_images(list(render(*sets))) == {i.image for i in chart_images(values_of(*sets))}


def test_a_digest_pins_every_image_as_repository_tag_at_digest() -> None:
    images = rendered_images(list(render(*PROVISION, *PINNED)))
    assert images == {f"docker.io/vllm/vllm-openai:v0.33.0@{DIGEST['vllm']}",
                      f"iad.ocir.io/example/helm-rdma-provisioner:0.1.0@{DIGEST['provisioner']}",
                      f"docker.io/nicolaka/netshoot:v0.16@{DIGEST['port-guard']}",
                      f"docker.io/library/python:3.13-alpine@{DIGEST['test-api']}"}
    # a digest without a tag: repository@digest
    docs = list(render("verify.tests.image.tag=", f"verify.tests.image.digest={DIGEST['test-api']}"))
    assert f"docker.io/library/python@{DIGEST['test-api']}" in rendered_images(docs)


def test_a_malformed_digest_is_refused_by_the_schema() -> None:
    from helm_rdma.errors import SchemaViolation

    with pytest.raises(SchemaViolation, match=r"image\.digest"):
        values_of("image.digest=sha256:1234")


def test_the_artifact_hub_images_list_names_each_image_and_its_reference() -> None:
    assert artifacthub_images(values_of(*PROVISION, *PINNED)) == [
        {"name": "vllm", "image": f"docker.io/vllm/vllm-openai:v0.33.0@{DIGEST['vllm']}"},
        {"name": "port-guard", "image": f"docker.io/nicolaka/netshoot:v0.16@{DIGEST['port-guard']}"},
        {"name": "provisioner", "image": f"iad.ocir.io/example/helm-rdma-provisioner:0.1.0@{DIGEST['provisioner']}"},
        {"name": "test-api", "image": f"docker.io/library/python:3.13-alpine@{DIGEST['test-api']}"},
    ]


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_image_cites_where_its_tag_is_published(name: str) -> None:
    preset = load_preset(name)
    image = preset.image
    cited = preset.source(image.source)
    assert image.repository in cited and "publish-release-images.sh" in cited
    assert re.fullmatch(r"v\d+\.\d+\.\d+", image.tag) and image.tag in cited
    if preset.gpu.vendor == "amd":
        assert image.repository == "docker.io/vllm/vllm-openai-rocm"
        assert "ROCm 7.2.4" in cited  # what Oracle's MI300X node images carry, next to what the image is built on


def test_the_test_image_and_the_provisioner_base_cite_their_sources() -> None:
    tests = load_json_schema(schema_path("values.schema.json"))["properties"]["verify"]["properties"]["tests"]
    image = tests["properties"]["image"]
    assert "docker-library/official-images" in image["description"]
    assert {k: v["default"] for k, v in image["properties"].items()} == {"repository": "docker.io/library/python", "tag": "3.13-alpine",
                                                                          "digest": ""}
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "docker-library/repo-info" in dockerfile and "repos/python/remote/3.12-slim.md" in dockerfile
