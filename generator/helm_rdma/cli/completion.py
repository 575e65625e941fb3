"""plugin.complete: helm's dynamic completion of `helm rdma`, answered by click's completion engine.

helm completes a plugin from two files of the plugin (helm's pkg/cmd/load_plugins.go): completion.yaml gives it the
sub-commands and flag names, and for a command with no sub-command it runs plugin.complete with the command path,
the words typed after it (helm's own global flags removed; they arrive as HELM_NAMESPACE, HELM_KUBECONTEXT,
KUBECONFIG) and the word being completed. plugin.complete prints one candidate a line, then a directive line `:N`
(cobra's ShellCompDirective). The candidates are click's, from the same command tree that `helm rdma` runs and that
click's own shell scripts complete: each parameter's type completes itself (cli/params.py). Run as
``python -m helm_rdma.cli.completion WORDS...``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from click.shell_completion import ShellComplete

from helm_rdma.cli import main as cli

# cobra's ShellCompDirective (spf13/cobra completions.go): what the shell does besides the candidates.
ERROR = 1  # ignore the completions
DEFAULT = 0  # the shell completes file names when there is no candidate
NO_FILES = 4  # ShellCompDirectiveNoFileComp
FILTER_DIRS = 16  # ShellCompDirectiveFilterDirs


@dataclass(frozen=True)
class Completion:
    """Candidates for the word being completed, and cobra's directive for the shell."""

    candidates: list[str]
    directive: int


def complete(words: list[str]) -> Completion:
    """Completion of the last of ``words`` (the word being typed, possibly empty), the others being the command
    path and the words typed after it, as helm passes them to plugin.complete.

    Flag names are left to helm, which lists them from completion.yaml and adds what plugin.complete prints; after
    `--` the words are helm's own, and the shell completes file names.
    """
    *args, incomplete = words or [""]
    if "--" in args:
        return Completion([], DEFAULT)
    if incomplete.startswith("-") and "=" not in incomplete:
        return Completion([], NO_FILES)
    items = ShellComplete(cli, {}, "helm rdma", "").get_completions(args, incomplete)
    kinds = {item.type for item in items}
    if "file" in kinds:
        return Completion([], DEFAULT)
    if "dir" in kinds:
        return Completion([], FILTER_DIRS)
    # `--preset=h` completes to `--preset=h100`: click completes the value after the `=`, the shell the whole word
    flag = incomplete.partition("=")[0] + "=" if incomplete.startswith("-") else ""
    return Completion([f"{flag}{item.value}" for item in items], NO_FILES)


def main(argv: list[str]) -> int:
    """plugin.complete: print one candidate for ``argv`` a line, then `:DIRECTIVE`; `:1` (ignore them) on any
    failure."""
    try:
        found = complete(argv)
        lines = [*found.candidates, f":{found.directive}"]
    except Exception:  # completion must never print a traceback where the shell reads candidates
        lines = [f":{ERROR}"]
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
