"""`helm-rdma generate`: write a complete chart directory for one release."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import NamedTuple

from helm_rdma.chart.images import chart_images
from helm_rdma.chart.meta import CHANGES_LISTED, change_lines, read_identity, read_previous
from helm_rdma.chart.ownership import MARKER, read_record
from helm_rdma.chart.package import ChartPackage, package_chart
from helm_rdma.chart.registry import resolve_digest
from helm_rdma.chart.write import write_chart
from helm_rdma.commands.doctor import render_checked, require_clean
from helm_rdma.errors import DroppedValuesError, HelmNotFoundError, OutputRefusedError
from helm_rdma.helm import find_helm
from helm_rdma.resolve.carried import dropped_values
from helm_rdma.resolve.values import ChartRequest, Resolved, resolve
from helm_rdma.sizing.planner import Plan
from helm_rdma.yamlfile import STDIN

# What generate writes at the top of every chart: never a user's -f file.
OWN_FILES = ("Chart.yaml", "values.yaml", "values.schema.json", "README.md")
# Paths that name this process's own input (the shell's <(...), /dev/stdin): gone once this run ends, so never
# recorded, even when they lead to a file.
PIPES = ("/dev/", "/proc/")
GENERATE_AGAIN = ("keep them in a values file of yours and pass it with -f (the chart records it, and a regeneration "
                  "without -f reads it again), or pass them again; give the new value explicitly to change it on "
                  "purpose")


class GenerateResult(NamedTuple):
    """The chart that was written and the plan behind it."""

    path: Path
    files: tuple[str, ...]
    plan: Plan
    notice: str | None = None
    package: ChartPackage | None = None


def generate(request: ChartRequest, *, output: Path, force: bool = False, discard_edits: bool = False,
             pin_digests: bool = False, package: bool = False) -> GenerateResult:
    """Resolve and check the values (stopping on errors, as `doctor` reports them), render the chart with helm when
    one is installed (so that plain helm is known to take it), then write it into ``output`` atomically (nothing
    is written on error). With ``package``, `helm package` then writes NAME-VERSION.tgz beside ``output``.

    The user's choices live in values files of their own: the -f files are recorded in the chart (relative to
    ``output``), and a regeneration given no -f reads the recorded ones again. ``force`` allows regenerating a chart
    generate wrote: it rewrites only generate's own files, keeps every other file, and stops on a hand edit of one of
    generate's files unless ``discard_edits`` (see chart/ownership.py).

    ``pin_digests`` asks each image's registry for the digest its tag points at and writes it into the image's
    ``digest`` value (images whose digest is set already are left alone).

    Raises:
        ChartEditedError: A file generate wrote was edited by hand since (nothing is written).
        OutputRefusedError: -f names a file generate writes in ``output``, or ``output`` cannot take the chart.
        RegistryError: With ``pin_digests``, a registry that did not answer with a digest (nothing is written).
        HelmNotFoundError: ``package`` without a helm binary.
    """
    _reachable(output)
    output = output.resolve()
    helm = find_helm() if package else ""  # before anything is written: a chart with no package is half the job
    inside = _inside(output)  # before: the working directory may be gone after
    request, recorded, lines = _user_files(request, output)
    resolved = resolve(request)
    _name_files_from_chart(resolved, recorded)
    previous = read_previous(output) if force and read_record(output) is not None else None
    if previous is not None:
        dropped = dropped_values(previous.values, resolved, model_given=request.model is not None,
                                 where=f"in {output.name}")
        if dropped:
            raise DroppedValuesError(action=f"regenerating {output}", holder="the chart there", lines=dropped,
                                     fix=GENERATE_AGAIN)
        lines.append(_changes(change_lines(previous.values, resolved.values), chart=output.name))
    warnings = [f.line() for f in require_clean(resolved)]
    pinned = _pin_digests(resolved) if pin_digests else []
    unchecked: list[str] = []
    written = write_chart(resolved, output=output, force=force, discard_edits=discard_edits,
                          value_files=tuple(recorded.values()),
                          check=lambda chart: _render(resolved, chart, unchecked))
    if inside:
        lines.append(f"the chart directory was replaced as a whole: run `cd {output}` in a shell that was in it")
    notice = "\n".join([*lines, *warnings, *pinned, *unchecked]) or None
    packaged = None
    if package:
        name, version = read_identity(written.path)
        packaged = package_chart(written.path, destination=written.path.parent, name=name, version=version,
                                 helm=helm)
    return GenerateResult(path=written.path, files=written.files, plan=resolved.plan, notice=notice,
                          package=packaged)


def _changes(changed: list[str], *, chart: str) -> str:
    """The values a regeneration changes, as generate says them: the first CHANGES_LISTED, as Chart.yaml lists them."""
    if not changed:
        return f"no value changes in {chart}"
    more = ["..."] if len(changed) > CHANGES_LISTED else []
    return "\n  ".join([f"{len(changed)} value(s) change in {chart}", *changed[:CHANGES_LISTED], *more])


def _inside(output: Path) -> bool:
    """Whether the working directory is ``output`` or below it (a shell there now holds a removed directory)."""
    try:
        here = Path.cwd()
    except OSError:
        return False
    return here == output or output in here.parents


def _reachable(output: Path) -> None:
    """Refuse an output path the system cannot even look up (a name over 255 bytes, a loop of links, no permission).

    Raises:
        OutputRefusedError: Naming the path and the system's reason.
    """
    try:
        os.stat(output)
    except (FileNotFoundError, NotADirectoryError):
        return  # not there yet, or under a file: the write's own checks say so
    except OSError as exc:
        raise OutputRefusedError(path=str(output), problem=exc.strerror or str(exc),
                                 fix="choose another --output-dir (each name at most 255 bytes)") from None


def _user_files(request: ChartRequest, output: Path) -> tuple[ChartRequest, dict[str, str], list[str]]:
    """The request with the values files the chart records when it names none; each file (as given) with its path
    relative to ``output`` for the record; the lines that say so."""
    record = read_record(output) if output.is_dir() else None
    lines = []
    files = request.sources.files
    if not files and record is not None and record.value_files:
        files = tuple(Path(os.path.normpath(output / name)) for name in record.value_files)
        for name, path in zip(record.value_files, files, strict=True):
            if not path.is_file():
                raise OutputRefusedError(path=str(output), problem=f"its record ({MARKER}) names the values file "
                                         f"{name}, and {path} is not a file (moved, renamed, or never one)",
                                         fix="pass it with -f where it is now (that replaces the record), or put it "
                                         "back")
        request = dataclasses.replace(request, sources=dataclasses.replace(request.sources, files=files))
        lines.append(f"read the values files {output.name} records: {', '.join(record.value_files)}")
    recorded: dict[str, str] = {}
    for path in files:
        if str(path).strip() == STDIN:
            lines.append("values read from standard input (-f -) are not recorded: a regeneration without -f will "
                         "not apply them; keep them in a file")
            continue
        if str(path).startswith(PIPES) or not os.path.isfile(path):
            lines.append(f"values read from {path} (not a regular file: a pipe, such as the shell's <(...), or a "
                         "device) are not recorded: a regeneration without -f will not apply them; keep them in a file")
            continue
        absolute = Path(os.path.abspath(path))
        if absolute.parent == output or output in absolute.parents:
            owned = record.files if record is not None else {}
            name = absolute.relative_to(output).as_posix()
            if name in owned or name in OWN_FILES:
                raise OutputRefusedError(path=str(output), problem=f"-f {path} is a file generate writes in this "
                                         "chart, so your choices in it would be overwritten and every value in it "
                                         "would become yours (preset fixes would never arrive)",
                                         fix="keep only the keys you changed in a values file of your own, beside "
                                         "the chart, and pass that with -f")
        recorded[str(path)] = os.path.relpath(absolute, output).replace(os.sep, "/")
    return request, recorded, lines


def _name_files_from_chart(resolved: Resolved, recorded: dict[str, str]) -> None:
    """Name each values file in values.yaml's comments by its path from the chart, so a regeneration run from
    another directory writes the same bytes."""
    for key, origin in resolved.origins.items():
        given = origin.removeprefix("-f ")
        if origin.startswith("-f ") and given in recorded:
            resolved.notes[key] = f"Set by your values file {recorded[given]} (-f)."


def _pin_digests(resolved: Resolved) -> list[str]:
    """Set the digest of every image of the chart that has none to what its tag points at now; one line each."""
    lines = []
    for image in chart_images(resolved.values):
        if image.digest:
            continue
        tag = image.tag or "latest"
        digest = resolve_digest(repository=image.repository, tag=tag, key=image.key)
        target = resolved.values
        for part in image.key.split("."):
            target = target[part]
        target["digest"] = digest
        resolved.notes[f"{image.key}.digest"] = (f"Pinned by `helm-rdma generate --pin-digests`: what "
                                                 f"{image.repository}:{tag} pointed at when this chart was written.")
        lines.append(f"pinned {image.key} {image.repository}:{tag} to {digest}")
    return lines


def _render(resolved: Resolved, chart: Path, unchecked: list[str]) -> None:
    """Render the staged chart with `helm template`, as Argo CD or Flux will; a chart helm refuses is not written.
    This render is also the check of the chart's rules (ValuesCheckError, in `doctor`'s words)."""
    try:
        helm = find_helm()
    except HelmNotFoundError:
        unchecked.append("helm was not found, so the chart was not rendered before it was written and its rules "
                         "were not checked; check it with `helm template` (or set HELM_BIN)")
        return
    render_checked(["template", resolved.release, str(chart)], helm=helm, resolved=resolved)
