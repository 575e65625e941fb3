#!/usr/bin/env python3
"""helm-rdma model download: fetch only what vLLM loads, once per directory, resumable, verified, with progress.

    fetch_model.py --repo ORG/NAME --revision REV --dest DIR [--allow PATTERN]... [--ignore PATTERN]...
                   [--workers N] [--progress-seconds S] [--wait-only SECONDS]
                   [--boot-volume-probe FILE [--allow-boot-volume]]
                   [--termination-log FILE] [--hold-on-failure SECONDS]
                   [--pipeline-parallel-size PP --tensor-parallel-size TP --gpus-per-node G --nodes N
                    --backend native|ray --storage KIND --workload KIND --role leader|worker
                    [--loader-extra-config JSON] [--quantize-flag] [--speculative-flag]]

- A marker file (DIR/.helm-rdma-download.json, written last, only when every file is in place and verified) lists
  every file with its size. When it is there and the files are, the run ends at once without reaching the Hub: a
  group restart does not download again.
- Otherwise the repository's files are listed with their sizes and sha256 (huggingface_hub's model_info with
  files_metadata, pinned to the commit the revision points at), filtered with the allow and ignore patterns (fnmatch
  on repository paths, as huggingface_hub filters them); *.bin, *.pt and *.pth are fetched only where the repository
  has no *.safetensors, and where it has model.safetensors.index.json only the *.safetensors its weight_map names
  (as vLLM loads them). A name that is absolute or has a ".." component is refused: nothing leaves DIR.
- Before the Hub is contacted, DIR must not be on the node's boot volume (the filesystem of --boot-volume-probe, a
  file of the node's root filesystem the chart mounts) unless --allow-boot-volume; before a file is written, DIR must
  have free space for what is left to fetch; otherwise one line says the figures and the fix.
- Files are fetched over HTTP from the Hub's resolve URLs, --workers at a time, each under an advisory lock
  (fcntl.flock on DIR/.helm-rdma-partial/NAME.lock): two downloaders on one directory (a shared claim) never write
  the same file; the second waits, then finds it complete. A file goes to DIR/.helm-rdma-partial/NAME.COMMIT.part,
  resumed with an HTTP Range request (huggingface_hub since 2.x starts every partial download afresh, so it is not
  used for the transfer), checked against the listing's sha256 and moved into place; a partial of another commit is
  never resumed, a complete partial is moved without a request, and a file of the wrong sha256 is fetched again.
  The token goes to the Hub only, never to the storage a file redirects to.
- Every --progress-seconds a line says the bytes on disk, the rate over the interval and the time left.
- --wait-only SECONDS (pods that share a volume with the one that downloads): wait for the marker instead.
- With --pipeline-parallel-size (the model's download container), a node fetches only the shards holding the tensors
  of the pipeline stages it runs, and the small files (pipeline_stages.py says which and why, from vLLM's source):
  its node rank comes from LWS_WORKER_INDEX (LeaderWorkerSet, v0.6.0 or later: without it the run fails) or the
  pod's ordinal in POD_NAME (StatefulSet, as entrypoint.sh's locate reads it), its layers from config.json and
  VLLM_PP_LAYER_PARTITION if set. After the download every tensor its stages need must be in the fetched shards'
  headers (the guard of record: vLLM's own check exempts most weights of an unquantized model). The Hub's index is
  kept as DIR/.helm-rdma-partial/model.safetensors.index.json.COMMIT.hub, and DIR/model.safetensors.index.json is
  node-local: its weight_map restricted to the shards the node holds (vLLM refuses an index naming a shard that is
  not on disk). The marker records the stages and the local index's size; a later run for stages it covers ends at
  once, one for other stages fetches only what is missing, records both and names both in the local index. The whole
  checkpoint (with the Hub's index untouched), with the reason in the log: pvc storage, Ray beyond 2 nodes,
  speculative decoding, a quantized model whose loaded weights vLLM does not check, no index, a node running every
  stage.
Exit 0 when DIR holds every file; 1 with one line saying why (gated or missing repository, no space, ...). That
line also goes to --termination-log (the pod's termination message, which outlives the container's log), and a
failed run first holds --hold-on-failure seconds: under LeaderWorkerSet a failed init container recreates the whole
group at once, with no restart back-off, so without the hold a lasting failure would loop every few seconds.
Honours HF_TOKEN, HF_ENDPOINT and HF_HOME like huggingface_hub itself. Needs only huggingface_hub (in vLLM images).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import glob
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import pipeline_stages as ps

MARKER = ".helm-rdma-download.json"
PARTIAL = ".helm-rdma-partial"
INDEX = "model.safetensors.index.json"
LEGACY_WEIGHTS = ("*.bin", "*.pt", "*.pth")
CHUNK = 1 << 20


class Refused(Exception):
    """A download that must not start: its one-line reason is the message."""


class TimedOut(Exception):
    """The Hub did not answer in every attempt: its one-line reason is the message."""


class Failed(Exception):
    """A run that ends with exit 1: its one-line reason is the message."""


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


def indexed(files: dict[str, int], index: dict[str, Any]) -> dict[str, int]:
    """Of ``files``, the *.safetensors the index's weight_map names and every other file (vLLM's default loader
    keeps only the shards of the index, so Mistral-format consolidated*.safetensors beside HF shards are not loaded).

    Raises:
        Refused: The index is not one, or names a shard the repository does not have.
    """
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise Refused(f"{INDEX} has no weight_map of tensor names to files")
    shards = set(weight_map.values())
    missing = sorted(shards - set(files))
    if missing:
        raise Refused(f"{INDEX} names {', '.join(missing[:3])}, which the repository does not have")
    return {f: size for f, size in files.items() if not f.endswith(".safetensors") or f in shards}


def confined(name: str) -> str:
    """``name`` when it stays inside the model directory: relative, without a ".." component.

    Raises:
        Refused: An absolute name or one with "..".
    """
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise Refused(f'the listing names "{name}", which is outside the model directory (an absolute path or a '
                      '".." component): refusing to download; check that HF_ENDPOINT is the Hub or a mirror you trust')
    return name


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


@dataclass(frozen=True)
class File:
    """One file to fetch: its repository path, size and (LFS files) sha256 from the Hub's listing."""

    name: str
    size: int
    sha256: str | None


@dataclass(frozen=True)
class Job:
    """Where every file of one download comes from and goes to."""

    repo: str
    commit: str
    dest: Path
    headers: dict[str, str]
    fetched: dict[str, bytes] = field(default_factory=dict)  # small files already read into memory (the index)
    timeout: float = 60.0  # seconds one connect or one read may wait (never the whole of a file: they take hours)
    hub_index: Path | None = None  # a stage split keeps the Hub's index here; the model directory gets a node-local one

    def url(self, name: str) -> str:
        from huggingface_hub import hf_hub_url

        return str(hf_hub_url(self.repo, name, revision=self.commit))

    def target(self, name: str) -> Path:
        if name == INDEX and self.hub_index is not None:
            return self.hub_index
        return self.dest / name

    def part(self, name: str) -> Path:
        """The partial file, keyed by the commit: a partial of another commit is never resumed."""
        return self.dest / PARTIAL / f"{name}.{self.commit}.part"

    def verified_record(self, name: str) -> Path:
        return self.dest / PARTIAL / f"{name}.{self.commit}.ok"


class Counter:
    """Bytes of the wanted files on disk, complete or partial, updated as chunks arrive."""

    def __init__(self, start: int) -> None:
        self.value, self.lock = start, threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.value += n


def present(job: Job, file: File) -> int:
    """Bytes of a wanted file on disk: the whole file, or its partial of this commit."""
    for path in (job.target(file.name), job.part(file.name)):
        try:
            return min(path.stat().st_size, file.size)
        except OSError:
            continue
    return 0


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


@contextlib.contextmanager
def locked(job: Job, name: str) -> Iterator[None]:
    """Hold the advisory lock of one file (DIR/.helm-rdma-partial/NAME.lock) while it is fetched.

    The lock files are never deleted: one removed while another downloader waits on it would let a third take a
    new file of the same name, and two would write at once.
    """
    lock = job.dest / PARTIAL / f"{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"{name}: another downloader is fetching it; waiting")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def sha256_of(path: Path, into: Any = None) -> Any:
    digest = into or hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest


def stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ino}"


def verified(job: Job, file: File) -> bool:
    """Whether the file in place is the listed one: its size, and its sha256 (read again unless this file, as it is
    on disk, was checked before)."""
    target = job.target(file.name)
    if not target.is_file() or target.stat().st_size != file.size:
        return False
    if file.sha256 is None:
        return True
    record = job.verified_record(file.name)
    with contextlib.suppress(OSError):
        if record.read_text() == f"{file.sha256} {stamp(target)}":
            return True
    if sha256_of(target).hexdigest() != file.sha256:
        return False
    record.write_text(f"{file.sha256} {stamp(target)}")
    return True


def fetch_file(job: Job, file: File, counter: Counter, attempts: int = 5) -> None:
    """Put FILE in place under its lock: verified as it is, else resumed or fetched, checked, and moved there."""
    with locked(job, file.name):
        target = job.target(file.name)
        if target.exists():
            if verified(job, file):
                return
            log(f"{file.name}: on disk with another size or sha256 than the Hub lists; fetching it again")
            counter.add(-min(target.stat().st_size, file.size))
            target.unlink()
        part = job.part(file.name)
        for other in glob.glob(glob.escape(str(part.parent / Path(file.name).name)) + ".*.part"):
            if Path(other) != part:  # a partial of another commit: never completed with this commit's bytes
                Path(other).unlink(missing_ok=True)
        for attempt in range(1, attempts + 1):
            try:
                transfer(job, file, part, counter)
                digest = sha256_of(part) if file.sha256 else None
                if digest is not None and digest.hexdigest() != file.sha256:
                    counter.add(-file.size)
                    part.unlink()
                    problem = f"{file.name}: sha256 {digest.hexdigest()}, the Hub lists {file.sha256}"
                    if attempt == attempts:
                        raise OSError(problem)
                    log(f"{problem}; fetching it again")
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, target)
                if digest is not None:
                    job.verified_record(file.name).write_text(f"{file.sha256} {stamp(target)}")
                return
            except urllib.error.HTTPError as exc:
                if (exc.code < 500 and exc.code != 429) or attempt == attempts:
                    raise
            except (OSError, TimeoutError) as exc:
                if getattr(exc, "errno", None) == 28 or attempt == attempts:  # ENOSPC: no retry helps
                    raise
            log(f"{file.name}: attempt {attempt} of {attempts} broke off; resuming in {2 ** attempt}s")
            time.sleep(2 ** attempt)


def transfer(job: Job, file: File, part: Path, counter: Counter) -> None:
    """Bring PART to the file's size: nothing to do when it is complete, else a (Range) request for the rest."""
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > file.size:
        counter.add(-file.size)
        part.unlink()
        have = 0
    if have == file.size:  # complete but not moved (a kill before the rename): no request, a Range would get 416
        return
    if len(job.fetched.get(file.name, b"")) == file.size:
        part.write_bytes(job.fetched[file.name])
        counter.add(file.size - have)
        return
    request = urllib.request.Request(job.url(file.name),
                                     headers={**job.headers, **({"Range": f"bytes={have}-"} if have else {})})
    with OPENER.open(request, timeout=job.timeout) as response:
        if have and response.status != 206:  # the server ignored the Range: start over
            counter.add(-have)
            have = 0
        with part.open("ab" if have else "wb") as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                counter.add(len(chunk))
    if part.stat().st_size != file.size:
        raise OSError(f"{file.name}: got {part.stat().st_size} of {file.size} bytes")


def wait_for_marker(dest: Path, seconds: float, every: float) -> int:
    start = time.monotonic()
    while complete(dest) is None:
        if time.monotonic() - start >= seconds:
            raise Failed(f"{dest} was not complete within {seconds:.0f}s; the leader's download container says why")
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
    if isinstance(exc, (Refused, TimedOut)):
        return str(exc)
    return f"{kind}: {exc}"


def existing(path: Path) -> Path:
    """PATH, or its nearest ancestor that exists (the directory the download would create it in)."""
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def free_bytes(args: argparse.Namespace) -> int:
    st = os.statvfs(existing(Path(args.dest)))
    return st.f_bavail * st.f_frsize


def check_boot_volume(args: argparse.Namespace) -> None:
    """Refuse a target on the node's boot volume (unless allowed). Needs no listing, so it runs before the Hub is
    contacted.

    Raises:
        Refused: One line with the free space and the fix.
    """
    try:
        probe = os.stat(args.boot_volume_probe).st_dev if args.boot_volume_probe else None
    except OSError as exc:
        raise Refused(f"cannot read {args.boot_volume_probe}, the file of the node's root filesystem the chart mounts "
                      f"({exc.strerror})") from exc
    if probe is not None and not args.allow_boot_volume and os.stat(existing(Path(args.dest))).st_dev == probe:
        raise Refused(f"{args.dest} is on the node's boot volume (the filesystem of {args.boot_volume_probe}), not on "
                      f"a volume of its own ({human(free_bytes(args))} free, before the Hub was asked what to fetch); "
                      "mount the NVMe RAID at /mnt/nvme (the node set-up does), or set model.storage.hostPath to a "
                      "mounted volume, or model.storage.allowBootVolume=true")


def check_space(args: argparse.Namespace, need: int) -> None:
    """Refuse a target without room for NEED more bytes.

    Raises:
        Refused: One line with both figures and the fix.
    """
    free = free_bytes(args)
    if need > free:
        raise Refused(f"{args.dest} has {human(free)} free ({free} bytes) but {human(need)} ({need} bytes) remain to "
                      "be fetched: free space on that volume or point model.storage at a larger one")


def read_json(job: Job, files: dict[str, File], name: str) -> dict[str, Any] | None:
    """A small JSON file of the listing (the safetensors index, config.json), from the model directory when it is
    there whole, else read from the Hub into memory (nothing is written before the disk is checked; the bytes are kept
    for the job, so it is fetched once). None when the listing has no such file.

    Raises:
        Refused: The file is not a JSON object.
    """
    if name not in files:
        return None
    path = job.target(name)
    if path.is_file() and path.stat().st_size == files[name].size:
        data = path.read_bytes()
    else:
        with OPENER.open(urllib.request.Request(job.url(name), headers=job.headers), timeout=job.timeout) as response:
            data = response.read(files[name].size + 1)
        job.fetched[name] = data
    try:
        content = json.loads(data)
    except ValueError as exc:
        raise Refused(f"{name} is not JSON ({exc})") from exc
    if not isinstance(content, dict):
        raise Refused(f"{name} is not a JSON object")
    return content


@dataclass(frozen=True)
class Stages:
    """The pipeline stages this node fetches for (None: the whole checkpoint, for the reason in ``why``)."""

    stages: tuple[int, ...] | None
    pp: int = 1
    partition: str | None = None
    why: str = ""
    needed: frozenset[str] = frozenset()  # the tensors the stages load, once the index is read

    def record(self) -> dict[str, Any] | None:
        if self.stages is None:
            return None
        return {"stages": list(self.stages), "pipeline_parallel_size": self.pp, "partition": self.partition}

    def whole(self, why: str) -> Stages:
        return Stages(stages=None, pp=self.pp, partition=self.partition, why=why)


def node_rank(args: argparse.Namespace, env: dict[str, str]) -> int:
    """This pod's node rank in its group, as entrypoint.sh's locate reads it.

    Raises:
        Failed: LWS_WORKER_INDEX is not set under LeaderWorkerSet (an LWS controller before v0.6.0).
        ps.StageError: The environment does not say.
    """
    if args.workload == "LeaderWorkerSet":
        # Set in init containers too (kubernetes-sigs/lws pkg/utils/pod/pod_utils.go, AddLWSVariables), from LWS
        # v0.6.0 on; without it every node would take rank 0 and fetch the first stage.
        value = env.get("LWS_WORKER_INDEX")
        if value is None:
            raise Failed("LWS_WORKER_INDEX is not set: LeaderWorkerSet v0.6.0 or later sets it; upgrade the LWS "
                         "controller")
        if not value.isdigit():
            raise ps.StageError(f"LWS_WORKER_INDEX={value!r} is not a worker index")
        return int(value)
    if args.role == "leader":
        return 0
    ordinal = env.get("POD_NAME", "").rsplit("-", 1)[-1]
    if not ordinal.isdigit() or args.nodes < 2:
        raise ps.StageError(f"cannot read a StatefulSet ordinal from POD_NAME={env.get('POD_NAME', '')!r}")
    return int(ordinal) % (args.nodes - 1) + 1


def wanted_stages(args: argparse.Namespace, env: dict[str, str]) -> Stages:
    """The stages this node runs, from the flags and the pod's environment, before the Hub is asked; the whole
    checkpoint (with the reason) where the split does not apply."""
    if args.pipeline_parallel_size is None:
        return Stages(stages=None)
    pp, partition = args.pipeline_parallel_size, env.get("VLLM_PP_LAYER_PARTITION") or None
    why = ps.whole_reason(backend=args.backend, nodes=args.nodes, storage=args.storage,
                          speculative=args.speculative_flag)
    if why:
        return Stages(stages=None, pp=pp, partition=partition, why=why)
    layout = ps.Layout(tensor_parallel_size=args.tensor_parallel_size, pipeline_parallel_size=pp,
                       gpus_per_node=args.gpus_per_node, nodes=args.nodes, partition=partition)
    try:
        stages = layout.node_stages(node_rank(args, env))
    except ps.StageError as exc:
        return Stages(stages=None, pp=pp, partition=partition, why=str(exc))
    if len(stages) == pp:
        return Stages(stages=None, pp=pp, partition=partition, why="this node runs every pipeline stage")
    return Stages(stages=stages, pp=pp, partition=partition)


def covers(marker: dict[str, Any], want: Stages) -> bool:
    """Whether a complete directory's marker holds what ``want`` needs: the whole checkpoint (a marker without
    stages), or a superset of the stages of the same partition. A split without the Hub's index kept beside it
    (``hub_index``) left the Hub's whole index in place, which vLLM refuses with shards missing: it covers nothing."""
    had = marker.get("split")
    if had is None:
        return True
    if want.stages is None or not isinstance(had, dict) or not had.get("hub_index"):
        return False
    return (had.get("pipeline_parallel_size") == want.pp and had.get("partition") == want.partition
            and set(want.stages) <= set(had.get("stages") or []))


def split_shards(args: argparse.Namespace, job: Job, chosen: dict[str, File], index: dict[str, Any] | None,
                 want: Stages) -> tuple[dict[str, File], Stages]:
    """Of the chosen files, the shards holding the tensors of ``want``'s stages and every other file; or all of
    them, with the reason, where vLLM would not notice a missing tensor or config.json does not say the layers.

    Raises:
        Refused: config.json is not a JSON object, or the partition does not fit the layers.
    """
    if want.stages is None:
        return chosen, want
    if index is None:
        return chosen, want.whole(f"no {INDEX}: the weights are one file")
    config = read_json(job, chosen, "config.json") or {}
    try:
        loader = json.loads(args.loader_extra_config or "{}")
    except ValueError as exc:
        raise Refused(f"--model-loader-extra-config {args.loader_extra_config!r} is not JSON ({exc})") from exc
    why = ps.tracking_reason(config=config, loader_config=loader if isinstance(loader, dict) else {},
                             quantize_flag=args.quantize_flag, hf_quant_config="hf_quant_config.json" in chosen)
    layers = ps.layer_count(config)
    if why or layers is None:
        return chosen, want.whole(why or "config.json does not say num_hidden_layers")
    try:
        needed = ps.needed_tensors(index["weight_map"], layers=layers, stages=want.stages, pp=want.pp,
                                   partition=want.partition)
    except ps.StageError as exc:
        raise Refused(str(exc)) from exc
    shards = {index["weight_map"][t] for t in needed}
    kept = {n: f for n, f in chosen.items() if not n.endswith(".safetensors") or n in shards}
    return kept, Stages(stages=want.stages, pp=want.pp, partition=want.partition, needed=frozenset(needed))


def check_tensors(job: Job, files: dict[str, File], stages: Stages) -> None:
    """Every tensor the stages load is in a fetched shard's header (the index could name it in another).

    Raises:
        Failed: Tensors are missing, or a shard is not a safetensors file.
    """
    if not stages.needed:
        return
    found: set[str] = set()
    try:
        for name in files:
            if name.endswith(".safetensors"):
                found |= ps.tensors_in(job.target(name))
    except ps.StageError as exc:
        raise Failed(str(exc)) from exc
    missing = sorted(stages.needed - found)
    if missing:
        raise Failed(f"{len(missing)} tensors of stages {list(stages.stages or ())} are in no fetched shard, though "
                     f"{INDEX} names them: {', '.join(missing[:3])}; the index does not match the shards")


def listing(args: argparse.Namespace, want: Stages) -> tuple[Job, dict[str, File], int, Stages]:
    """The job, the files to fetch, how many files of the repository are skipped, and the stages they are for.

    Raises:
        Refused, or the Hub's errors (gated, missing repository or revision, unreachable).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.utils import build_hf_headers

    info = HfApi().model_info(args.repo, revision=args.revision, files_metadata=True, timeout=args.read_timeout)
    commit = str(info.sha)
    everything = {s.rfilename: File(name=s.rfilename, size=int(s.size or 0),
                                    sha256=s.lfs.sha256 if s.lfs else None) for s in info.siblings or []}
    chosen = select({n: f.size for n, f in everything.items()}, args.allow, args.ignore)
    for name in chosen:
        confined(name)
    job = Job(repo=args.repo, commit=commit, dest=Path(args.dest), headers=build_hf_headers(),
              timeout=args.read_timeout,
              hub_index=None if want.stages is None else Path(args.dest) / PARTIAL / f"{INDEX}.{commit}.hub")
    index = read_json(job, {n: everything[n] for n in chosen}, INDEX)
    if index is not None:
        chosen = indexed(chosen, index)
    files, got = split_shards(args, job, {n: everything[n] for n in chosen}, index, want)
    if got.stages is None and job.hub_index is not None:
        # The whole checkpoint after all: the Hub's index goes into the model directory, where a node-local one of
        # an earlier split may be (a small file, fetched again rather than told apart).
        job = replace(job, hub_index=None)
        (job.dest / INDEX).unlink(missing_ok=True)
    return job, files, len(everything) - len(files), got


def describe_stages(stages: Stages, files: dict[str, File]) -> str:
    if stages.stages is None:
        return f"; the whole checkpoint: {stages.why}" if stages.why else ""
    return (f"; pipeline stages {', '.join(map(str, stages.stages))} of {stages.pp}: "
            f"{sum(n.endswith('.safetensors') for n in files)} shards")


def transient(exc: BaseException) -> bool:
    """A timeout or a broken connection (of urllib, httpx or requests, whichever huggingface_hub the image has):
    worth another attempt, unlike the Hub's answers (gated, missing)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "HfHubHTTPError" in names or isinstance(exc, urllib.error.HTTPError):  # an answer: only 429 and 5xx pass
        status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(exc, "code", 0)
        return status == 429 or status >= 500
    return bool(names & {"TimeoutException", "NetworkError", "RemoteProtocolError", "Timeout", "ConnectionError"}) \
        or isinstance(exc, OSError)


def listing_with_retries(args: argparse.Namespace, want: Stages) -> tuple[Job, dict[str, File], int, Stages]:
    """listing(), tried again after a timeout or a broken connection: each try waits at most --read-timeout for any
    one read, and --attempts tries in all.

    Raises:
        TimedOut: The Hub did not answer any try.
    """
    for attempt in range(1, args.attempts + 1):
        try:
            return listing(args, want)
        except Exception as exc:
            if not transient(exc):
                raise
            if attempt == args.attempts:
                endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
                raise TimedOut(f"the Hub at HF_ENDPOINT={endpoint} did not answer the file list of {args.repo} in "
                               f"{args.attempts} attempts ({type(exc).__name__}: {exc}; each read waits at most "
                               f"{args.read_timeout:g}s): check HF_ENDPOINT and the node's network") from exc
            log(f"listing {args.repo}: attempt {attempt} of {args.attempts} got no answer ({type(exc).__name__}); "
                f"trying again in {2 ** attempt}s")
            time.sleep(2 ** attempt)
    raise AssertionError("unreachable")  # attempts >= 1


def download(args: argparse.Namespace) -> int:
    dest = Path(args.dest)
    want = wanted_stages(args, dict(os.environ))
    done = complete(dest)
    if done is not None and covers(done, want):
        log(f"{args.repo}@{args.revision} is already complete in {dest} ({len(done['files'])} files, "
            f"{human(sum(done['files'].values()))}, commit {done.get('commit', '?')}); not contacting the Hub")
        return 0
    if want.stages is None and done is not None and done.get("split") is not None:
        (dest / INDEX).unlink(missing_ok=True)  # node-local, of the stages held: never taken for the Hub's
    try:
        check_boot_volume(args)
    except Refused as exc:
        raise Failed(str(exc)) from exc
    try:
        job, files, skipped, stages = listing_with_retries(args, want)
    except Exception as exc:  # the Hub's errors (gated, missing, unreachable) and refused listings
        raise Failed(describe(exc, args.repo, args.revision)) from exc
    if not files:
        raise Failed(f"no file of {args.repo}@{args.revision} matches model.download.allowPatterns {args.allow}")
    commit = job.commit
    total = sum(f.size for f in files.values())
    already = sum(present(job, f) for f in files.values())
    log(f"{args.repo}@{args.revision} (commit {commit}): {len(files)} files, {human(total)} into {dest}; "
        f"skipping {skipped} files vLLM does not load{describe_stages(stages, files)}")
    if stages.stages is not None and args.revision != commit:
        log(f"the revision {args.revision} is not a commit: each node resolves it when it starts, so the stages of "
            "one group could come from two commits if the repository changes meanwhile; pin model.revision to "
            f"{commit} (helm rdma generate pins it for a Hub model)")
    try:
        check_space(args, total - already)
    except Refused as exc:
        raise Failed(str(exc)) from exc
    dest.mkdir(parents=True, exist_ok=True)
    if already:
        log(f"{human(already)} already on disk: resuming")
    counter = Counter(already)
    progress = Progress(counter, total, args.progress_seconds)
    progress.start()
    started = time.monotonic()
    from concurrent.futures import ThreadPoolExecutor

    try:
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            jobs = [pool.submit(fetch_file, job, f, counter, args.attempts)
                    for f in sorted(files.values(), key=lambda f: -f.size)]
            for running in jobs:
                running.result()
    except Exception as exc:
        raise Failed(describe(exc, args.repo, args.revision)) from exc
    finally:
        progress.stop.set()
    wrong = [f.name for f in files.values() if not verified(job, f)]
    if wrong:
        raise Failed(f"{len(wrong)} files are missing or not as the Hub lists them after the download: "
                     f"{', '.join(wrong[:5])}")
    check_tensors(job, files, stages)
    marker = marker_of(args, commit, files, stages, done)
    if job.hub_index is not None and INDEX in files:
        write_local_index(job, marker)
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=MARKER + ".", suffix=".tmp")  # one per writer
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(marker, indent=1, sort_keys=True))
    os.replace(tmp, dest / MARKER)
    took = time.monotonic() - started
    log(f"complete: {len(files)} files, {human(total)} in {duration(took)} "
        f"({human((total - already) / max(took, 1e-6))}/s)")
    return 0


def write_local_index(job: Job, marker: dict[str, Any]) -> None:
    """Put the node-local index in the model directory: the Hub's (kept under PARTIAL), its weight_map restricted to
    the shards the marker holds. vLLM 0.33.0 refuses an index naming a shard that is not on disk
    (model_executor/model_loader/weight_utils.py:590-616) and reads only the shards the index names, so it reads the
    node's stages and nothing else. The marker then lists the local index with its own size, and keeps the Hub's."""
    hub = json.loads(job.target(INDEX).read_text())
    held = {n for n in marker["files"] if n.endswith(".safetensors")}
    hub["weight_map"] = {t: s for t, s in hub["weight_map"].items() if s in held}
    fd, tmp = tempfile.mkstemp(dir=job.dest, prefix=INDEX + ".", suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(hub, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, job.dest / INDEX)
    marker["files"][INDEX] = (job.dest / INDEX).stat().st_size
    marker["sha256"].pop(INDEX, None)  # the Hub's sha256 is of the Hub's index, kept as split.hub_index
    marker["split"]["hub_index"] = str(job.target(INDEX).relative_to(job.dest))


def marker_of(args: argparse.Namespace, commit: str, files: dict[str, File], stages: Stages,
              before: dict[str, Any] | None) -> dict[str, Any]:
    """The marker of a complete directory: its files and, for a stage split, its stages; with the stages of a
    complete split of the same commit and partition already there, both (their files are still in place)."""
    marker: dict[str, Any] = {"repo": args.repo, "revision": args.revision, "commit": commit,
                              "files": {f.name: f.size for f in files.values()},
                              "sha256": {f.name: f.sha256 for f in files.values() if f.sha256}}
    split = stages.record()
    had = before.get("split") if before else None
    if split is not None and before is not None and isinstance(had, dict) and before.get("commit") == commit \
            and had.get("pipeline_parallel_size") == stages.pp and had.get("partition") == stages.partition:
        split["stages"] = sorted({*split["stages"], *had.get("stages", [])})
        marker["files"] = {**before.get("files", {}), **marker["files"]}
        marker["sha256"] = {**before.get("sha256", {}), **marker["sha256"]}
    if split is not None:
        marker["split"] = split
    return marker


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--revision", default="main")
    parser.add_argument("--dest", required=True)
    parser.add_argument("--allow", action="append", default=[])
    parser.add_argument("--ignore", action="append", default=[])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--read-timeout", type=float, default=60, metavar="SECONDS",
                        help="how long one connect or one read from the Hub may wait (a file is resumed after it)")
    parser.add_argument("--attempts", type=int, default=5, help="tries of the file list and of each file")
    parser.add_argument("--progress-seconds", type=float, default=30)
    parser.add_argument("--wait-only", type=float, default=None, metavar="SECONDS")
    parser.add_argument("--boot-volume-probe", default=None, metavar="FILE",
                        help="a file of the node's root filesystem: DIR must be on another one")
    parser.add_argument("--allow-boot-volume", action="store_true")
    parser.add_argument("--termination-log", default=None, metavar="FILE",
                        help="where the one-line reason of a failure is also written (the pod's termination message)")
    parser.add_argument("--hold-on-failure", type=float, default=0, metavar="SECONDS",
                        help="how long a failed run waits before it exits 1")
    split = parser.add_argument_group("pipeline stages (the model's download: fetch only this node's stages)")
    split.add_argument("--pipeline-parallel-size", type=int, default=None, metavar="PP")
    split.add_argument("--tensor-parallel-size", type=int, default=1, metavar="TP")
    split.add_argument("--gpus-per-node", type=int, default=1, metavar="G")
    split.add_argument("--nodes", type=int, default=1, metavar="N")
    split.add_argument("--backend", default="native", choices=["native", "ray"])
    split.add_argument("--storage", default="hostPath", metavar="KIND", help="model.storage.type")
    split.add_argument("--workload", default="LeaderWorkerSet", choices=["LeaderWorkerSet", "StatefulSet"])
    split.add_argument("--role", default="leader", choices=["leader", "worker"])
    split.add_argument("--loader-extra-config", default=None, metavar="JSON",
                       help="vLLM's --model-loader-extra-config, if vllm.extraArgs sets it")
    split.add_argument("--quantize-flag", action="store_true", help="vllm.extraArgs quantizes (--quantization)")
    split.add_argument("--speculative-flag", action="store_true",
                       help="vllm.extraArgs turns speculative decoding on (--speculative-config)")
    args = parser.parse_args(argv)
    if not (0 < args.read_timeout <= 3600) or args.attempts < 1:
        parser.error("--read-timeout must be above 0 and at most 3600 seconds, --attempts at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if not args.allow:
        args.allow = ["*.safetensors", "*.json", "tokenizer*", "*.model", "*.tiktoken", "*.txt", "*.jinja", "*.py"]
    if not args.ignore:
        args.ignore = ["original/*", "*/original/*"]
    try:
        if args.wait_only is not None:
            return wait_for_marker(Path(args.dest), args.wait_only, args.progress_seconds)
        return download(args)
    except Failed as exc:
        fail(str(exc), args.termination_log, args.hold_on_failure)
        return 1


def fail(reason: str, termination_log: str | None, hold: float) -> None:
    """Say why, where it outlives the container, then hold the pod before it exits (so the group is not recreated
    in a tight loop)."""
    log(f"error: {reason}")
    if termination_log:
        try:
            Path(termination_log).write_text(reason + "\n")
        except OSError as exc:
            log(f"could not write {termination_log}: {exc.strerror}")
    if hold > 0:
        log(f"holding {duration(hold)} before exiting, so that the group is not recreated at once")
        time.sleep(hold)


if __name__ == "__main__":
    sys.exit(main())
