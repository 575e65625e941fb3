"""Completion of `helm rdma` values (plugin.complete's side), by click's completion engine over the command tree.

The same through the real helm 3 and 4 is in tests/test_plugin.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from helm_rdma.cli import completion, main
from helm_rdma.cli.completion import DEFAULT, ERROR, NO_FILES, Completion, complete
from helm_rdma.cli.params import release_names
from helm_rdma.errors import NoModelError
from helm_rdma.sizing.catalog import pick_model

from .helm_stand_in import stand_in_helm

PRESETS = ["a100-v2", "b200", "gpu4", "h100", "h200", "mi300x"]
MODELS = ["deepseek-r1", "llama405b", "llama405b-fp8", "llama70b", "qwen3-235b"]


@pytest.mark.parametrize(("words", "expected"), [
    (["d"], Completion(["deprovision", "diagnose", "diff", "doctor"], NO_FILES)),
    (["pr"], Completion(["presets", "provision"], NO_FILES)),
    (["template", "--preset", ""], Completion(PRESETS, NO_FILES)),
    (["install", "-p", "h"], Completion(["h100", "h200"], NO_FILES)),
    (["diagnose", "--preset", "m"], Completion(["mi300x"], NO_FILES)),
    (["install", "--preset=h2"], Completion(["--preset=h200"], NO_FILES)),
    (["generate", "--model", "q"], Completion(["qwen3-235b"], NO_FILES)),
    (["plan", "deep"], Completion(["deepseek-r1"], NO_FILES)),
    (["template", "--preset", "h100", "ll"], Completion(["llama405b", "llama405b-fp8", "llama70b"], NO_FILES)),
    (["template", "--set", "nodes=3", ""], Completion(MODELS, NO_FILES)),  # --set took its value
    (["template", "llama405b", ""], Completion([], NO_FILES)),
    (["presets", ""], Completion(["show"], NO_FILES)),
    (["presets", "show", "m"], Completion(["mi300x"], NO_FILES)),
    # enum options offer their choices, without the aliases --auth also takes
    (["install", "--auth", ""], Completion(["apiKey", "instancePrincipal", "workloadIdentity"], NO_FILES)),
    (["provision", "--auth=i"], Completion(["--auth=instancePrincipal"], NO_FILES)),
    (["plan", "llama405b", "-o", ""], Completion(["table", "json", "yaml"], NO_FILES)),
    (["presets", "show", "h100", "--output", "y"], Completion(["yaml"], NO_FILES)),
    (["provision", "--placement-constraint", "SINGLE_"], Completion(["SINGLE_TIER", "SINGLE_BLOCK"], NO_FILES)),
    # file options leave it to the shell's file completion; so do helm's own arguments after --
    (["install", "-f", ""], Completion([], DEFAULT)),
    (["template", "llama405b", "--values", "va"], Completion([], DEFAULT)),
    (["provision", "--ssh-key-file", ""], Completion([], DEFAULT)),
    (["template", "llama405b", "--", "-f", ""], Completion([], DEFAULT)),
    # flag names come from completion.yaml, which helm reads itself; free text gets no file names
    (["install", "--pr"], Completion([], NO_FILES)),
    (["install", "--set", ""], Completion([], NO_FILES)),
    (["provision", "--compartment", ""], Completion([], NO_FILES)),
    (["install", "llama405b", "--nodes", ""], Completion([], NO_FILES)),
])
def test_completion_of_values(words: list[str], expected: Completion) -> None:
    assert complete(words) == expected


@pytest.fixture
def fake_helm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A helm whose `list` prints two releases and records its arguments."""
    stand_in_helm(tmp_path, monkeypatch, f"#!/bin/sh\necho \"$@\" >> {tmp_path}/calls\n"
                                         "[ \"$1\" = list ] && printf 'llama405b\\nqwen-prod\\n'\nexit 0\n")
    return tmp_path / "calls"


@pytest.mark.parametrize(("words", "expected"), [
    (["status", ""], ["llama405b", "qwen-prod"]),
    (["uninstall", "q"], ["qwen-prod"]),
    (["verify", "--timeout", "5m", "l"], ["llama405b"]),
    (["provision", "--release", ""], ["llama405b", "qwen-prod"]),
    (["upgrade", "llama405b-"], ["llama405b-fp8"]),  # releases first, then the catalog's aliases
    (["diff", "llama"], ["llama405b", "llama405b-fp8", "llama70b"]),
])
def test_release_arguments_offer_the_releases_of_the_namespace(fake_helm: Path, monkeypatch: pytest.MonkeyPatch,
                                                               words: list[str], expected: list[str]) -> None:
    monkeypatch.setenv("HELM_NAMESPACE", "team-a")
    monkeypatch.setenv("HELM_KUBECONTEXT", "prod")
    assert complete(words) == Completion(expected, NO_FILES)
    assert fake_helm.read_text().splitlines()[0] == "list --short --all --namespace team-a --kube-context prod"


def test_no_release_names_when_helm_fails_or_hangs(tmp_path: Path) -> None:
    failing = tmp_path / "failing"
    failing.write_text("#!/bin/sh\necho 'Error: Kubernetes cluster unreachable' >&2\nexit 1\n")
    hanging = tmp_path / "hanging"
    hanging.write_text("#!/bin/sh\necho llama405b\nsleep 30 & wait\n")  # a child that holds the pipe, too
    for script in (failing, hanging):
        script.chmod(0o755)
    assert release_names({"HELM_BIN": str(failing)}) == []
    assert release_names({"HELM_BIN": str(hanging)}, timeout=0.3) == []
    assert release_names({"HELM_BIN": str(tmp_path / "missing")}) == []
    assert release_names({"HELM_BIN": str(failing), "HELM_NAMESPACE": "Not A Namespace"}) == []


def test_plugin_complete_prints_candidates_then_the_directive(capsys: pytest.CaptureFixture[str]) -> None:
    assert completion.main(["plan", "llama405b", "--output", "j"]) == 0
    assert capsys.readouterr().out == "json\n:4\n"


def test_a_failure_is_an_error_directive_not_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> list[str]:
        raise ValueError("presets unreadable")

    monkeypatch.setattr("helm_rdma.sizing.presets.preset_names", broken)
    assert completion.main(["install", "--preset", ""]) == 0
    assert capsys.readouterr().out == f":{ERROR}\n"


def click_bash_candidates(words: list[str]) -> list[str]:
    """What click's own bash completion (`_HELM_RDMA_COMPLETE=bash_complete`, README) offers for ``words``."""
    env = {"_HELM_RDMA_COMPLETE": "bash_complete", "COMP_WORDS": " ".join(["helm-rdma", *words]),
           "COMP_CWORD": str(len(words))}
    result = CliRunner().invoke(main, [], env=env, prog_name="helm-rdma")
    assert result.exit_code == 0, result.output
    return [line.split(",", 1)[1] for line in result.output.splitlines()]


@pytest.mark.parametrize("words", [
    ["d"], ["template", "--preset", ""], ["install", "-p", "h"], ["generate", "--model", "q"], ["plan", "deep"],
    ["presets", "show", "m"], ["install", "--auth", ""], ["plan", "llama405b", "-o", ""], ["template", "--set", "nodes=3", ""],
])
def test_plugin_complete_offers_what_clicks_own_shell_completion_offers(words: list[str]) -> None:
    assert complete(words).candidates == click_bash_candidates(words) != []


def test_a_parameter_completes_from_its_type_with_no_generated_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("helm_rdma.sizing.presets.preset_names", lambda: ["h100", "zz-new-shape"])
    assert complete(["template", "--preset", "z"]) == Completion(["zz-new-shape"], NO_FILES)
    assert complete(["diagnose", "x", "--preset", ""]) == Completion(["h100", "zz-new-shape"], NO_FILES)


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
