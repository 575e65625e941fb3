#!/usr/bin/env python3
"""helm-rdma model download: fetch only what vLLM loads, once per directory, resumable, with progress.

    fetch_model.py --repo ORG/NAME --revision REV --dest DIR [--allow PATTERN]... [--ignore PATTERN]...
                   [--workers N] [--progress-seconds S] [--wait-only SECONDS]

- A marker file (DIR/.helm-rdma-download.json, written last) lists every file with its size. When it is there and
  the files are, the run ends at once without reaching the Hub: a group restart does not download again.
- Otherwise the repository's files are listed with their sizes (huggingface_hub's model_info, pinned to the commit
  the revision points at), filtered with the allow and ignore patterns (fnmatch on repository paths, as
  huggingface_hub filters them); *.bin, *.pt and *.pth are fetched only where the repository has no *.safetensors.
  Files are fetched over HTTP from the Hub's resolve URLs, --workers at a time, into DIR/.helm-rdma-partial/ and
  moved into place when complete: a file already in DIR with its size is skipped, and a partial one is resumed with
  an HTTP Range request (huggingface_hub since 2.x starts every partial download afresh, so it is not used for the
  transfer). The token goes to the Hub only, never to the storage a file redirects to.
- Every --progress-seconds a line says the bytes on disk, the rate over the interval and the time left.
- --wait-only SECONDS (pods that share a volume with the one that downloads): wait for the marker instead.
Exit 0 when DIR holds every file; 1 with one line saying why (gated or missing repository, no space, ...).
Honours HF_TOKEN, HF_ENDPOINT and HF_HOME like huggingface_hub itself. Needs only huggingface_hub (in vLLM images).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

MARKER = ".helm-rdma-download.json"
LEGACY_WEIGHTS = ("*.bin", "*.pt", "*.pth")


def log(message: str) -> None:
    print(f"helm-rdma download: {message}", file=sys.stderr, flush=True)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} TiB"


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def select(files: dict[str, int], allow: list[str], ignore: list[str]) -> dict[str, int]:
    """The files vLLM loads: allowed, not ignored, and legacy weight formats only without safetensors."""
    allow = list(allow)
    if not any(f.endswith(".safetensors") for f in files):
        allow += list(LEGACY_WEIGHTS)
    return {f: size for f, size in sorted(files.items())
            if any(fnmatch.fnmatch(f, p) for p in allow) and not any(fnmatch.fnmatch(f, p) for p in ignore)}


def complete(dest: Path) -> dict[str, Any] | None:
    """The marker's content when every file it lists is there with its size, else None."""
    try:
        marker = json.loads((dest / MARKER).read_text())
        files = marker["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for name, size in files.items():
        try:
            if (dest / name).stat().st_size != size:
                return None
        except OSError:
            return None
    return dict(marker)


PARTIAL = ".helm-rdma-partial"
CHUNK = 1 << 20


class Counter:
    """Bytes of the wanted files on disk, complete or partial, updated as chunks arrive."""

    def __init__(self, start: int) -> None:
        self.value, self.lock = start, threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.value += n


def on_disk(dest: Path, files: dict[str, int]) -> int:
    """Bytes of the wanted files on disk: complete files, and partial downloads."""
    total = 0
    for name, size in files.items():
        for path in (dest / name, dest / PARTIAL / (name + ".part")):
            try:
                total += min(path.stat().st_size, size)
                break
            except OSError:
                continue
    return total


class Progress(threading.Thread):
    """Prints how far the download is, every ``every`` seconds, until stopped."""

    def __init__(self, counter: Counter, total: int, every: float) -> None:
        super().__init__(daemon=True)
        self.counter, self.total, self.every = counter, total, every
        self.stop = threading.Event()

    def run(self) -> None:
        last_bytes, last_time = self.counter.value, time.monotonic()
        while not self.stop.wait(self.every):
            now_bytes, now = self.counter.value, time.monotonic()
            rate = max(now_bytes - last_bytes, 0) / max(now - last_time, 1e-6)
            left = max(self.total - now_bytes, 0)
            eta = duration(left / rate) if rate > 0 else "unknown"
            pct = 100 * now_bytes / self.total if self.total else 100.0
            log(f"{human(now_bytes)} of {human(self.total)} ({pct:.0f}%), {human(rate)}/s, ETA {eta}")
            last_bytes, last_time = now_bytes, now


class _NoTokenAcrossHosts(urllib.request.HTTPRedirectHandler):
    """Follow the Hub's redirects to its file storage without sending the token there."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


OPENER = urllib.request.build_opener(_NoTokenAcrossHosts)


def fetch_file(url: str, headers: dict[str, str], dest: Path, name: str, size: int, counter: Counter,
               attempts: int = 5) -> None:
    """Fetch one file into DEST/NAME, resuming DEST/.helm-rdma-partial/NAME.part; retry transient failures."""
    target = dest / name
    if target.is_file() and target.stat().st_size == size:
        return
    part = dest / PARTIAL / (name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            counter.add(-have)
            part.unlink()
            have = 0
        request = urllib.request.Request(url, headers={**headers, **({"Range": f"bytes={have}-"} if have else {})})
        try:
            with OPENER.open(request, timeout=60) as response:
                if have and response.status != 206:  # the server ignored the Range: start over
                    counter.add(-have)
                    have = 0
                with part.open("ab" if have else "wb") as out:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        counter.add(len(chunk))
            if part.stat().st_size == size:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, target)
                return
            raise OSError(f"{name}: got {part.stat().st_size} of {size} bytes")
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:
                raise
            if attempt == attempts:
                raise
        except (OSError, TimeoutError) as exc:
            if getattr(exc, "errno", None) == 28 or attempt == attempts:  # ENOSPC: no retry helps
                raise
        log(f"{name}: attempt {attempt} of {attempts} broke off; resuming in {2 ** attempt}s")
        time.sleep(2 ** attempt)


def wait_for_marker(dest: Path, seconds: float, every: float) -> int:
    start = time.monotonic()
    while complete(dest) is None:
        if time.monotonic() - start >= seconds:
            log(f"error: {dest} was not complete within {seconds:.0f}s; the leader's download container says why")
            return 1
        log(f"waiting for the leader to finish downloading into {dest} ({time.monotonic() - start:.0f}s)")
        time.sleep(every)
    log(f"{dest} is complete")
    return 0


def describe(exc: BaseException, repo: str, revision: str) -> str:
    """One line for a Hub error, with what to do."""
    kind = type(exc).__name__
    if kind == "GatedRepoError":
        return (f"{repo} is gated and the token cannot read it: accept its license on the Hub with the account of the "
                "token in model.hfTokenSecret, or name a Secret holding such a token")
    if kind == "RepositoryNotFoundError":
        return (f"{repo} does not exist, or is private and the token cannot see it: check model.name and "
                "model.hfTokenSecret")
    if isinstance(exc, urllib.error.HTTPError):
        return f"the Hub answered HTTP {exc.code} for {exc.url}"
    if kind == "RevisionNotFoundError":
        return f"{repo} has no revision {revision}: check model.revision"
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
        return f"no space left on the volume: {exc}"
    return f"{kind}: {exc}"


def download(args: argparse.Namespace) -> int:
    dest = Path(args.dest)
    done = complete(dest)
    if done is not None:
        log(f"{args.repo}@{args.revision} is already complete in {dest} ({len(done['files'])} files, "
            f"{human(sum(done['files'].values()))}, commit {done.get('commit', '?')}); not contacting the Hub")
        return 0
    from huggingface_hub import HfApi, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    try:
        info = HfApi().model_info(args.repo, revision=args.revision, files_metadata=True)
    except Exception as exc:  # the Hub's errors: gated, missing, unreachable
        log(f"error: {describe(exc, args.repo, args.revision)}")
        return 1
    listed = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
    files = select(listed, args.allow, args.ignore)
    if not files:
        log(f"error: no file of {args.repo}@{args.revision} matches model.download.allowPatterns {args.allow}")
        return 1
    skipped = sorted(set(listed) - set(files))
    total = sum(files.values())
    log(f"{args.repo}@{args.revision} (commit {info.sha}): {len(files)} files, {human(total)} into {dest}; "
        f"skipping {len(skipped)} files vLLM does not load ({human(sum(listed[f] for f in skipped))})"
        + (f", among them {', '.join(skipped[:3])}" if skipped else ""))
    dest.mkdir(parents=True, exist_ok=True)
    already = on_disk(dest, files)
    if already:
        log(f"{human(already)} already on disk: resuming")
    counter = Counter(already)
    progress = Progress(counter, total, args.progress_seconds)
    progress.start()
    started = time.monotonic()
    headers = build_hf_headers()
    from concurrent.futures import ThreadPoolExecutor

    try:
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            jobs = [pool.submit(fetch_file, hf_hub_url(args.repo, name, revision=info.sha), headers, dest, name, size,
                                counter) for name, size in sorted(files.items(), key=lambda f: -f[1])]
            for job in jobs:
                job.result()
    except Exception as exc:
        log(f"error: {describe(exc, args.repo, args.revision)}")
        return 1
    finally:
        progress.stop.set()
    wrong = [f for f, size in files.items() if not (dest / f).is_file() or (dest / f).stat().st_size != size]
    if wrong:
        log(f"error: {len(wrong)} files are missing or of the wrong size after the download: {', '.join(wrong[:5])}")
        return 1
    import shutil

    shutil.rmtree(dest / PARTIAL, ignore_errors=True)
    marker = {"repo": args.repo, "revision": args.revision, "commit": info.sha, "files": files}
    tmp = dest / (MARKER + ".tmp")
    tmp.write_text(json.dumps(marker, indent=1))
    os.replace(tmp, dest / MARKER)
    took = time.monotonic() - started
    log(f"complete: {len(files)} files, {human(total)} in {duration(took)} "
        f"({human((total - already) / max(took, 1e-6))}/s)")
    return 0


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--revision", default="main")
    parser.add_argument("--dest", required=True)
    parser.add_argument("--allow", action="append", default=[])
    parser.add_argument("--ignore", action="append", default=[])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--progress-seconds", type=float, default=30)
    parser.add_argument("--wait-only", type=float, default=None, metavar="SECONDS")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if not args.allow:
        args.allow = ["*.safetensors", "*.json", "tokenizer*", "*.model", "*.tiktoken", "*.txt", "*.jinja", "*.py"]
    if not args.ignore:
        args.ignore = ["original/*", "*/original/*"]
    if args.wait_only is not None:
        return wait_for_marker(Path(args.dest), args.wait_only, args.progress_seconds)
    return download(args)


if __name__ == "__main__":
    sys.exit(main())
