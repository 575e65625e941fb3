from __future__ import annotations

import pytest

from helm_rdma.completion import candidates
from helm_rdma.errors import NoModelError
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


@pytest.mark.parametrize(("release", "model", "alias"), [
    ("llama70b", None, "llama70b"),
    ("llama405b-fp8-prod", None, "llama405b-fp8"),
    ("llama405b-prod", None, "llama405b"),
    ("prod", "qwen3-235b", "qwen3-235b"),
])
def test_release_names_pick_the_model(release: str, model: str | None, alias: str) -> None:
    assert pick_model(release=release, model=model).alias == alias


def test_a_release_name_that_names_no_model_is_refused_listing_the_aliases() -> None:
    with pytest.raises(NoModelError, match='release "chatbot" names no catalog model and no --model was given: '
                                          r"pass --model \(one of deepseek-r1, llama405b, "):
        pick_model(release="chatbot", model=None)
