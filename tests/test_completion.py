from __future__ import annotations

import pytest

from helm_rdma.completion import candidates
from helm_rdma.models import pick_model

PRESETS = ["a100-v2", "b200", "gpu4", "h100", "h200", "mi300x"]


@pytest.mark.parametrize(("words", "expected"), [
    ([""], ["install", "upgrade", "template", "generate", "plan", "presets", "status", "uninstall", "verify",
            "diagnose", "doctor", "provision", "deprovision"]),
    (["d"], ["diagnose", "doctor", "deprovision"]),
    (["diagnose", "--preset", "m"], ["mi300x"]),
    (["diagnose", "llama405b", ""], []),
    (["pr"], ["presets", "provision"]),
    (["template", "--preset", ""], PRESETS),
    (["install", "-p", "h"], ["h100", "h200"]),
    (["generate", "--model", "q"], ["qwen3-235b"]),
    (["plan", "deep"], ["deepseek-r1"]),
    (["template", "llama405b", ""], []),
    (["template", "--preset", "h100", "ll"], ["llama405b", "llama405b-fp8", "llama70b"]),
    (["presets", ""], ["show"]),
    (["presets", "show", "m"], ["mi300x"]),
    (["status", ""], []),
])
def test_completion_candidates(words: list[str], expected: list[str]) -> None:
    assert candidates(words) == expected


@pytest.mark.parametrize(("release", "model", "alias", "noted"), [
    ("llama70b", None, "llama70b", False),
    ("llama405b-fp8-prod", None, "llama405b-fp8", False),
    ("llama405b-prod", None, "llama405b", False),
    ("prod", "qwen3-235b", "qwen3-235b", False),
    ("prod", None, "llama405b", True),
])
def test_release_names_pick_the_model(release: str, model: str | None, alias: str, noted: bool) -> None:
    spec, note = pick_model(release=release, model=model)
    assert spec.alias == alias
    assert (note is not None) == noted
    if note:
        assert "choose with --model" in note
