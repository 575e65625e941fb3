"""How messages show what the user gave: the valid name nearest to a mistyped one (a preset, a model, a command, a
values key), and text clipped to a length."""

from __future__ import annotations

from collections.abc import Iterable

CUTOFF = 0.6  # difflib's own default: "h10" finds "h100", "gpt5" finds nothing


def nearest(name: str, known: Iterable[str]) -> str | None:
    """The name of ``known`` nearest to ``name``, or None when none is near.

    A name that differs only in case wins outright (``H100`` -> ``h100``); otherwise difflib's similarity ratio
    decides, ignoring case (``maxModelLength`` -> ``maxModelLen``).
    """
    import difflib  # only when a name was wrong

    names = sorted(set(known))
    if not name or not names:
        return None
    folded = {n.lower(): n for n in names}
    if name.lower() in folded and folded[name.lower()] != name:
        return folded[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(folded), n=1, cutoff=CUTOFF)
    return folded[close[0]] if close and folded[close[0]] != name else None


def did_you_mean(name: str, known: Iterable[str], *, before: str = "; ", after: str = "") -> str:
    """``did you mean "x"?`` for the name nearest to ``name``, between ``before`` and ``after``; else ``""``."""
    found = nearest(name, known)
    return f'{before}did you mean "{found}"?{after}' if found else ""


def clip(text: str, limit: int) -> str:
    """``text`` as a message shows it: at most ``limit`` characters, a cut one ending in "..."."""
    return text if len(text) <= limit else text[:limit - 3] + "..."
