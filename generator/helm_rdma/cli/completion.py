"""Shell completion of `helm rdma` values, as helm's plugin.complete protocol asks.

helm completes a plugin from two files of the plugin (helm's pkg/cmd/load_plugins.go): completion.yaml gives it the
sub-commands and flag names, and for a command with no sub-command it runs plugin.complete with the command path,
the words typed after it (helm's own global flags removed; they arrive as HELM_NAMESPACE, HELM_KUBECONTEXT,
KUBECONFIG) and the word being completed. plugin.complete prints one candidate a line, then a directive line `:N`
(cobra's ShellCompDirective). This module is plugin.complete's Python side: presets, models, release names from the
cluster, the choices of enum options, files for file options.

It reads the command tree from completion_data.json, generated from the click commands (`make docs`), so that a
completion neither imports click nor the commands. Run as ``python -m helm_rdma.cli.completion WORDS...``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).with_name("completion_data.json")

# cobra's ShellCompDirective (spf13/cobra completions.go): what the shell does besides the candidates.
ERROR = 1  # ignore the completions
DEFAULT = 0  # the shell completes file names when there is no candidate
NO_FILES = 4  # ShellCompDirectiveNoFileComp
FILTER_DIRS = 16  # ShellCompDirectiveFilterDirs

RELEASES_TIMEOUT_SECONDS = 3.0  # `helm list` on an unreachable cluster would hang for much longer


@dataclass(frozen=True)
class Completion:
    """Candidates for the word being completed, and cobra's directive for the shell."""

    candidates: list[str]
    directive: int

    def lines(self) -> list[str]:
        """What plugin.complete prints: one candidate a line, then `:DIRECTIVE`."""
        return [*self.candidates, f":{self.directive}"]


@cache
def command_tree() -> dict[str, Any]:
    """The command tree of completion_data.json: commands, their options and arguments, and what completes them."""
    data: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return data


def release_names(environ: Mapping[str, str] | None = None, *,
                  timeout: float = RELEASES_TIMEOUT_SECONDS) -> list[str]:
    """Releases in the namespace helm targets (`helm list --short --all` through $HELM_BIN); empty when no cluster
    answers within ``timeout`` seconds or helm fails: completion stays quiet."""
    from helm_rdma.errors import HelmRdmaError
    from helm_rdma.helm import find_helm
    from helm_rdma.helmenv import HelmEnv

    env = os.environ if environ is None else environ
    try:
        helm_env = HelmEnv.from_environ(env)
        helm = env.get("HELM_BIN") or find_helm()
    except HelmRdmaError:
        return []
    flags = [f for f in helm_env.global_flags() if f != "--debug"]
    try:
        proc = subprocess.Popen([helm, "list", "--short", "--all", *flags], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env=dict(env), start_new_session=True)
    except OSError:
        return []
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # helm, and whatever a wrapper in HELM_BIN started
        proc.communicate()
        return []
    return [line.strip() for line in out.splitlines() if line.strip()] if proc.returncode == 0 else []


SOURCES: dict[str, Callable[[], list[str]]] = {}


def _presets() -> list[str]:
    from helm_rdma.sizing.presets import preset_names

    return preset_names()


def _models() -> list[str]:
    from helm_rdma.sizing.catalog import model_names

    return model_names()


SOURCES.update(presets=_presets, models=_models, releases=release_names)


def source_values(sources: Iterable[str]) -> list[str]:
    """Every value of the named sources (``presets``, ``models``, ``releases``), in order, without repeats."""
    out: list[str] = []
    for source in sources:
        out += [v for v in SOURCES[source]() if v not in out]
    return out


def _values(spec: Mapping[str, Any], prefix: str) -> Completion:
    """Completion of one option value or argument from its ``spec`` in the command tree."""
    if "choices" in spec:
        return Completion([c for c in spec["choices"] if c.startswith(prefix)], NO_FILES)
    if spec.get("paths") == "dirs":
        return Completion([], FILTER_DIRS)
    if spec.get("paths"):
        return Completion([], DEFAULT)
    if spec.get("sources"):
        return Completion([v for v in source_values(spec["sources"]) if v.startswith(prefix)], NO_FILES)
    return Completion([], NO_FILES)


def _option(node: Mapping[str, Any], word: str) -> dict[str, Any] | None:
    name = word.split("=", 1)[0] if word.startswith("--") else word[:2]
    return next((o for o in node.get("options", []) if name in o["names"]), None)


def complete(words: list[str], tree: Mapping[str, Any] | None = None) -> Completion:
    """Completion of the last of ``words`` (the word being typed, possibly empty), the others being the command
    path and the words typed after it, as helm passes them to plugin.complete.

    Flag names are left to completion.yaml (helm lists them itself); after `--` the words are helm's, and the
    shell completes file names.
    """
    node = command_tree() if tree is None else tree
    *done, current = words or [""]
    pending: dict[str, Any] | None = None
    positionals: list[str] = []
    for word in done:
        if pending is not None:
            pending = None
        elif word == "--":
            return Completion([], DEFAULT) if node.get("passthrough") else Completion([], NO_FILES)
        elif word.startswith("-") and len(word) > 1:
            option = _option(node, word)
            attached = "=" in word if word.startswith("--") else len(word) > 2
            if option is not None and option["value"] is not None and not attached:
                pending = option
        elif not positionals and word in node.get("commands", {}):
            node = node["commands"][word]
        else:
            positionals.append(word)
    if pending is not None:
        return _values(pending["value"], current)
    if current.startswith("--") and "=" in current:
        option = _option(node, current)
        name, _, value = current.partition("=")
        if option is None or option["value"] is None:
            return Completion([], NO_FILES)
        found = _values(option["value"], value)
        return Completion([f"{name}={c}" for c in found.candidates], found.directive)
    if current.startswith("-"):
        return Completion([], NO_FILES)
    if node.get("commands") and not positionals:
        return Completion([c for c in node["commands"] if c.startswith(current)], NO_FILES)
    arguments = node.get("arguments", [])
    if len(positionals) < len(arguments):
        return _values(arguments[len(positionals)]["value"], current)
    return Completion([], NO_FILES)


def main(argv: list[str]) -> int:
    """plugin.complete: print the candidates for ``argv`` and the directive; `:1` (ignore them) on any failure."""
    try:
        lines = complete(argv).lines()
    except Exception:  # completion must never print a traceback where the shell reads candidates
        lines = [f":{ERROR}"]
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
