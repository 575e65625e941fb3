"""The model download (charts/vllm-rdma/files/fetch_model.py) with the real huggingface_hub client against a local
stand-in for the Hub (tests/hub_standin.py, HF_ENDPOINT): only what vLLM loads, resumable, skipping what is complete,
with progress, and not at all once the directory is complete."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helm_rdma.datafiles import chart_dir

from .hub_standin import Hub, HubServer, Repo

SCRIPT = chart_dir() / "files" / "fetch_model.py"
MB = 1 << 20


def repo_files(big: int = 2 * MB) -> dict[str, bytes]:
    """A small repository shaped like Meta's: sharded safetensors, configs, a tokenizer, and original/."""
    return {
        "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
        "generation_config.json": b"{}",
        "model-00001-of-00002.safetensors": os.urandom(big),
        "model-00002-of-00002.safetensors": os.urandom(MB),
        "model.safetensors.index.json": json.dumps({"metadata": {"total_size": big + MB}, "weight_map": {
            "embed.weight": "model-00001-of-00002.safetensors", "head.weight": "model-00002-of-00002.safetensors"}
        }).encode(),
        "tokenizer.json": b"{}", "tokenizer_config.json": b"{}", "special_tokens_map.json": b"{}",
        "original/consolidated.00.pth": os.urandom(MB), "original/params.json": b"{}",
        "original/tokenizer.model": b"x", "LICENSE": b"license", "README.md": b"readme",
    }


WANTED = {"config.json", "generation_config.json", "model-00001-of-00002.safetensors",
          "model-00002-of-00002.safetensors", "model.safetensors.index.json", "tokenizer.json",
          "tokenizer_config.json", "special_tokens_map.json"}


def env_for(url: str, tmp: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "HF_ENDPOINT": url, "HF_HOME": str(tmp / "hf-home"), "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1", **extra}


def fetch(url: str, tmp: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--repo", "meta-llama/Tiny", "--dest", str(tmp / "m"),
                           "--progress-seconds", "0.2", *args], env=env_for(url, tmp, **extra),
                          capture_output=True, text=True, timeout=120)


def downloaded(hub: Hub) -> set[str]:
    return {path.split("/resolve/", 1)[1].split("/", 1)[1] for _, path, _ in hub.served("GET", "/meta-llama/")}


def test_only_what_vllm_loads_is_fetched_and_a_marker_lists_it(tmp_path: Path) -> None:
    files = repo_files()
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=files)})
    with HubServer(hub) as url:
        run = fetch(url, tmp_path)
    assert run.returncode == 0, run.stderr
    assert downloaded(hub) == WANTED  # no original/, no .pth, no README or LICENSE
    for name in WANTED:
        assert (tmp_path / "m" / name).read_bytes() == files[name]
    marker = json.loads((tmp_path / "m" / ".helm-rdma-download.json").read_text())
    assert marker["commit"] == hub.repos["meta-llama/Tiny"].sha and set(marker["files"]) == WANTED
    assert "skipping 5 files vLLM does not load" in run.stderr
    assert "helm-rdma download: complete: 8 files" in run.stderr


def test_a_second_run_with_a_complete_directory_does_not_reach_the_hub(tmp_path: Path) -> None:
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=repo_files())})
    with HubServer(hub) as url:
        assert fetch(url, tmp_path).returncode == 0
        before = len(hub.requests)
        again = fetch(url, tmp_path, HF_HUB_OFFLINE="1")
    assert again.returncode == 0, again.stderr
    assert len(hub.requests) == before
    assert "is already complete" in again.stderr and "not contacting the Hub" in again.stderr


def test_legacy_weights_are_fetched_only_without_safetensors(tmp_path: Path) -> None:
    files = {"config.json": b"{}", "pytorch_model.bin": os.urandom(1000), "tokenizer.json": b"{}"}
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=files)})
    with HubServer(hub) as url:
        assert fetch(url, tmp_path).returncode == 0
    assert downloaded(hub) == set(files)


def test_a_kill_mid_file_resumes_where_it_stopped_and_skips_complete_files(tmp_path: Path) -> None:
    files = repo_files(big=24 * MB)
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=files)}, throttle=8 * MB)
    big = "model-00001-of-00002.safetensors"
    with HubServer(hub) as url:
        proc = subprocess.Popen([sys.executable, str(SCRIPT), "--repo", "meta-llama/Tiny", "--dest",
                                 str(tmp_path / "m"), "--progress-seconds", "0.3", "--workers", "2"],
                                env=env_for(url, tmp_path), stderr=subprocess.PIPE, text=True)
        partial = tmp_path / "m" / ".helm-rdma-partial"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sizes = [p.stat().st_size for p in partial.rglob("*.part")] if partial.is_dir() else []
            if any(s > 8 * MB for s in sizes):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # the pod dies mid-download
        _, first_err = proc.communicate()
        assert not (tmp_path / "m" / big).exists()
        progress = [line for line in first_err.splitlines() if "of 25.0 MiB" in line and "/s, ETA" in line]
        assert len(progress) >= 2 and any("MiB/s" in line for line in progress)  # steady progress while it ran
        completed_before = {n for n in WANTED if (tmp_path / "m" / n).is_file()}
        hub.throttle = None
        gets_before = len(hub.served("GET", "/meta-llama/"))
        run = fetch(url, tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "m" / big).read_bytes() == files[big]
    again = hub.served("GET", "/meta-llama/")[gets_before:]
    resumed = [r for r in again if r[1].endswith(big)]
    assert resumed and resumed[0][2].startswith("bytes=") and int(resumed[0][2][6:].split("-")[0]) > 8 * MB
    refetched = {p.rsplit("/", 1)[1] for _, p, _ in again}
    assert not (refetched & completed_before)  # complete files are not fetched again
    assert "already on disk: resuming" in run.stderr


@pytest.mark.parametrize(("gated", "repo", "message"), [
    (True, "meta-llama/Tiny", "meta-llama/Tiny is gated and the token cannot read it"),
    (False, "meta-llama/Missing", "meta-llama/Missing does not exist, or is private"),
])
def test_a_gated_or_missing_repository_is_one_clear_line(tmp_path: Path, gated: bool, repo: str,
                                                         message: str) -> None:
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=repo_files(), gated=gated)}, token="hf_good")
    with HubServer(hub) as url:
        run = subprocess.run([sys.executable, str(SCRIPT), "--repo", repo, "--dest", str(tmp_path / "m")],
                             env=env_for(url, tmp_path, HF_TOKEN="hf_wrong"), capture_output=True, text=True,
                             timeout=60)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in run.stderr


def test_a_failed_download_writes_its_reason_to_the_termination_message_and_holds_before_exiting(
        tmp_path: Path) -> None:
    # Under LeaderWorkerSet a failed init container recreates the group at once (no kubelet back-off) and the pod's
    # log goes with it (tests/consumer_rules.py, failed_downloads_hold_and_say_why): the reason goes to the
    # termination message, and the exit waits --hold-on-failure seconds.
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=repo_files(), gated=True)}, token="hf_good")
    message = tmp_path / "termination-log"
    with HubServer(hub) as url:
        started = time.monotonic()
        held = fetch(url, tmp_path, "--termination-log", str(message), "--hold-on-failure", "2", HF_TOKEN="hf_wrong")
        took = time.monotonic() - started
        good = fetch(url, tmp_path, "--termination-log", str(tmp_path / "unused"), "--hold-on-failure", "30",
                     HF_TOKEN="hf_good")
    assert held.returncode == 1 and took >= 2
    assert message.read_text() == ("meta-llama/Tiny is gated and the token cannot read it: accept its license on the "
                                   "Hub with the account of the token in model.hfTokenSecret, or name a Secret holding "
                                   "such a token\n")
    assert "holding 2s before exiting" in held.stderr
    assert good.returncode == 0 and not (tmp_path / "unused").exists()  # a success neither writes nor holds


def test_a_worker_that_never_sees_the_marker_says_so_in_its_termination_message(tmp_path: Path) -> None:
    message = tmp_path / "termination-log"
    run = subprocess.run([sys.executable, str(SCRIPT), "--repo", "meta-llama/Tiny", "--dest", str(tmp_path / "m"),
                          "--wait-only", "0.3", "--progress-seconds", "0.1", "--termination-log", str(message)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert message.read_text().startswith(f"{tmp_path / 'm'} was not complete within 0s")


def test_a_gated_repository_downloads_with_the_right_token(tmp_path: Path) -> None:
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=repo_files(), gated=True)}, token="hf_good")
    with HubServer(hub) as url:
        run = fetch(url, tmp_path, HF_TOKEN="hf_good")
    assert run.returncode == 0, run.stderr


def test_workers_on_a_shared_volume_wait_for_the_marker(tmp_path: Path) -> None:
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=repo_files())})
    with HubServer(hub) as url:
        waiting = subprocess.Popen([sys.executable, str(SCRIPT), "--repo", "meta-llama/Tiny", "--dest",
                                    str(tmp_path / "m"), "--wait-only", "30", "--progress-seconds", "0.1"],
                                   env=env_for(url, tmp_path), stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        assert waiting.poll() is None
        assert fetch(url, tmp_path).returncode == 0
        _, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0 and "waiting for the leader to finish downloading" in err
    late = subprocess.run([sys.executable, str(SCRIPT), "--repo", "x/y", "--dest", str(tmp_path / "none"),
                           "--wait-only", "0.3", "--progress-seconds", "0.1"], capture_output=True, text=True)
    assert late.returncode == 1 and "was not complete within 0s" in late.stderr


def test_the_charts_own_download_arguments_fetch_only_what_vllm_loads(tmp_path: Path) -> None:
    """The init container as the chart renders it (its args, with the destination moved to a temporary directory)."""
    from .rendering import render

    [lws] = [d for d in render() if d["kind"] == "LeaderWorkerSet"]
    init = {c["name"]: c for c in lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["initContainers"]}
    args = list(init["download-model"]["args"])
    assert init["download-model"]["command"] == ["python3", "/opt/helm-rdma/fetch_model.py"]
    assert args[args.index("--dest") + 1] == "/models/meta-llama/Llama-3.1-405B-Instruct/main"
    args[args.index("--dest") + 1] = str(tmp_path / "m")
    args[args.index("--repo") + 1] = "meta-llama/Tiny"
    # The node's /etc/hostname (hostPath): a filesystem other than the model directory's, as on a node whose NVMe
    # RAID is mounted.
    assert args[args.index("--boot-volume-probe") + 1] == "/helm-rdma/node-root-probe"
    args[args.index("--boot-volume-probe") + 1] = "/proc/version"
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=repo_files())})
    with HubServer(hub) as url:
        # LWS_WORKER_INDEX: the LeaderWorkerSet controller (v0.6.0 or later) sets it in the worker's init containers.
        run = subprocess.run([sys.executable, str(SCRIPT), *args], env={**env_for(url, tmp_path), "LWS_WORKER_INDEX": "1"},
                             capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert downloaded(hub) == WANTED


def test_a_silent_hub_fails_after_bounded_attempts_naming_hf_endpoint(tmp_path: Path) -> None:
    # huggingface_hub's model_info waits without a timeout when none is given (hf_api.py line 3145 model_info,
    # timeout=None, and its shared client is built with timeout=None: utils/_http.py line 341 default_client_factory;
    # huggingface_hub 2.4.0 as locks/runtime.txt pins it):
    # a Hub that accepts and never answers held the download forever. Each read now waits --read-timeout, and the
    # file list is tried --attempts times.
    with socket.socket() as server:  # accepts (the kernel's backlog) and never answers
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        message = tmp_path / "termination-log"
        started = time.monotonic()
        run = fetch(url, tmp_path, "--read-timeout", "0.5", "--attempts", "2", "--termination-log", str(message))
        took = time.monotonic() - started
    assert run.returncode == 1, run.stderr
    assert took < 20, took  # two reads of 0.5 s and one wait of 2 s, plus the interpreter's start
    assert "attempt 1 of 2 got no answer" in run.stderr
    assert message.read_text().startswith(f"the Hub at HF_ENDPOINT={url} did not answer the file list of "
                                          "meta-llama/Tiny in 2 attempts")
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("bad", [["--read-timeout", "0"], ["--read-timeout", "nan"], ["--attempts", "0"]])
def test_a_read_timeout_or_attempts_out_of_range_is_refused(tmp_path: Path, bad: list[str]) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), "--repo", "meta-llama/Tiny", "--dest", str(tmp_path / "m"),
                          *bad], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--read-timeout must be above 0" in run.stderr
