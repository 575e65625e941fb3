"""Candidates for shell completion of `helm rdma` (helm calls the plugin's plugin.complete with the words so far)."""

from __future__ import annotations

from .models import model_names
from .presets import preset_names

COMMANDS = ("install", "upgrade", "template", "generate", "plan", "presets", "status", "uninstall", "verify",
            "diagnose", "doctor", "provision", "deprovision")
TAKES_MODEL = ("install", "upgrade", "template", "generate", "plan", "doctor")
# Options whose next word is a value (to skip when counting positionals).
VALUED = {"--preset", "-p", "--model", "-m", "--nodes", "--max-model-len", "-f", "--values", "--set", "-o",
          "--output", "--timeout", "-n", "--namespace", "--gpu-memory-utilization", "--logs", "--interface"}


def candidates(words: list[str]) -> list[str]:
    """Completions for the last of ``words`` (the word being typed, possibly empty)."""
    if not words:
        words = [""]
    *done, current = words
    if not done:
        return [c for c in COMMANDS if c.startswith(current)]
    command, previous = done[0], done[-1]
    if previous in ("--preset", "-p"):
        pool = preset_names()
    elif previous in ("--model", "-m"):
        pool = model_names()
    elif command == "presets":
        pool = ["show"] if len(done) == 1 else (preset_names() if done[1:] == ["show"] else [])
    elif command in TAKES_MODEL and not _positionals(done[1:]) and not current.startswith("-"):
        pool = model_names()
    else:
        pool = []
    return [c for c in pool if c.startswith(current)]


def _positionals(words: list[str]) -> list[str]:
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in VALUED:
            skip = True
        elif not word.startswith("-"):
            out.append(word)
    return out
