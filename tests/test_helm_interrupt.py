"""An interrupt while helm changes a release (a terminal's Ctrl-C, SIGTERM from CI, `timeout` or `kill`) reaches helm
once, and helm-rdma waits for helm to record the release before it exits 1 saying what to do next.

Upstream rules: helm install and upgrade handle SIGINT and SIGTERM themselves, cancelling the operation so that the
release is marked failed (and rolled back with --atomic / --rollback-on-failure) rather than left pending (helm/helm
v4.1.4 pkg/cmd/upgrade.go:245 and pkg/cmd/install.go:320 `signal.Notify(cSignal, os.Interrupt, syscall.SIGTERM)`;
pkg/action/upgrade.go:437 handleContext -> failRelease :523). CPython's subprocess.run kills its child on any
exception (Lib/subprocess.py, run: `except: process.kill(); raise`), after 0.25 s for a KeyboardInterrupt
(Popen._sigint_wait_secs) and at once for SystemExit. A terminal's Ctrl-C goes to its whole foreground process group
(POSIX, General Terminal Interface, 11.1.9 "Special Characters", INTR).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from helm_rdma import helm as helm_module
from helm_rdma.cli import main
from helm_rdma.commands.generate import generate
from helm_rdma.errors import HelmInterruptedError
from helm_rdma.helm import run_helm

from .conftest import BIN
from .helm_stand_in import trapping_helm
from .rendering import request


def _wait_for(log: Path, line: str, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.is_file() and line in log.read_text().splitlines():
            return
        time.sleep(0.05)
    pytest.fail(f"{line!r} never reached {log}")


@pytest.mark.parametrize(("signum", "whole_group"), [
    (signal.SIGINT, True),    # Ctrl-C at a terminal: the whole foreground group gets it
    (signal.SIGTERM, False),  # CI cancelling a job, `timeout`, `kill`: helm-rdma alone gets it
    (signal.SIGHUP, False),   # the terminal closed, the ssh session dropped: helm handles no SIGHUP, so it gets SIGTERM
])
def test_an_interrupted_upgrade_reaches_helm_once_and_waits_for_it_to_record_the_release(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signum: int, whole_group: bool) -> None:
    log = trapping_helm(tmp_path, monkeypatch, BIN / "helm4")
    monkeypatch.setenv("KUBECONFIG", os.devnull)
    cli = [sys.executable, "-m", "helm_rdma", "upgrade", "llama405b", "--preset", "h100", "-n", "llm",
           "--skip-cluster-checks"]
    # a session of its own, as a shell gives a job its process group: the test can then signal the whole group
    proc = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(log, "start upgrade", seconds=180)
        if whole_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    name = signal.Signals(signal.SIGTERM if signum == signal.SIGHUP else signum).name.removeprefix("SIG")
    assert log.read_text().splitlines() == ["start upgrade", f"got {name}", "recorded the release as failed"]
    assert proc.returncode == 1, stderr
    assert "upgrade --install llama405b" in stderr and f"was interrupted ({signal.Signals(signum).name})" in stderr
    assert "ended (exit 1)" in stderr
    assert "Error: UPGRADE FAILED: context canceled" in stderr  # what helm said of it
    where = f"llama405b --namespace llm --kubeconfig {os.devnull}"  # where the release is, as helm was told
    assert f"`helm status {where}` shows the release's state" in stderr
    assert f"`helm rollback {where}`" in stderr and "pending-upgrade" in stderr
    assert not (tmp_path / "cache" / "rdma" / "llm" / "llama405b").exists()  # nothing kept of an upgrade that failed


def test_a_helm_that_does_not_end_after_the_signal_is_killed_after_the_grace_period(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = trapping_helm(tmp_path, monkeypatch, BIN / "helm4")
    monkeypatch.setenv("IGNORE_SIGNALS", "1")
    monkeypatch.setattr(helm_module, "HELM_SIGNAL_GRACE_SECONDS", 1.0)
    seen: list[int] = []
    # the test's own handler: were run_helm not to take SIGTERM over, this records it instead of ending pytest
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        sender = threading.Thread(target=lambda: (_wait_for(log, "start upgrade", seconds=30),
                                                  os.kill(os.getpid(), signal.SIGTERM)))
        sender.start()
        started = time.monotonic()
        with pytest.raises(HelmInterruptedError, match=r"did not end within 1 s, so it was killed") as caught:
            run_helm(["upgrade", "--install", "llama405b", "chart", "--namespace", "llm"])
        took = time.monotonic() - started
        sender.join()
        handler_after = signal.getsignal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert seen == [] and callable(handler_after) and handler_after.__name__ == "<lambda>"  # handed back
    assert log.read_text().splitlines() == ["start upgrade", "got TERM"]
    assert took < 15
    assert caught.value.exit_code == 1


def test_an_interrupted_uninstall_keeps_the_chart_and_says_to_run_it_again(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    log = trapping_helm(tmp_path, monkeypatch, BIN / "helm4")
    kept = generate(request(), output=tmp_path / "cache" / "rdma" / "ml" / "llama405b").path
    sender = threading.Thread(target=lambda: (_wait_for(log, "start uninstall", seconds=30),
                                              os.kill(os.getpid(), signal.SIGINT)))
    sender.start()
    out = CliRunner().invoke(main, ["uninstall", "llama405b", "-n", "ml"])
    sender.join()
    assert out.exit_code == 1, out.output
    assert log.read_text().splitlines() == ["start uninstall", "got INT", "recorded the release as failed"]
    assert "was interrupted (SIGINT)" in out.output and "left uninstalling is removed by running the uninstall " \
        "again" in out.output and "`helm status llama405b --namespace ml`" in out.output
    assert kept.is_dir()  # nothing was uninstalled for sure: the chart (and the timeout it gives) stays


@pytest.mark.parametrize(("command", "returncode", "says"), [
    (("helm", "install", "r", "chart", "--dry-run=server"), 1, "it was a dry run: nothing was changed"),
    (("helm", "rollback", "r", "--namespace", "ml"), 1, "left pending-rollback is cleared by running the rollback"),
    # helm ended by the signal's default action: before helm's own handler was set up (it is set just before the
    # release operation starts, pkg/cmd/upgrade.go:245), as for the commands that set none
    (("helm", "uninstall", "r"), -2, "ended by signal 2"),
])
def test_the_interrupted_message_says_what_helm_did_and_what_is_next(command: tuple[str, ...], returncode: int,
                                                                     says: str) -> None:
    message = str(HelmInterruptedError(command=command, signal_name="SIGINT", returncode=returncode, output="",
                                       killed=False, grace_seconds=60))
    assert message.startswith(f"`{' '.join(command)}` was interrupted (SIGINT): helm was sent SIGINT once")
    assert says in message


def test_a_sighup_that_nohup_ignores_stays_ignored_and_helm_finishes(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """nohup ignores SIGHUP for the run and what it starts: taking it over would cancel the upgrade nohup keeps."""
    log = trapping_helm(tmp_path, monkeypatch, BIN / "helm4")
    monkeypatch.setenv("KUBECONFIG", os.devnull)
    cli = ["nohup", sys.executable, "-m", "helm_rdma", "upgrade", "llama405b", "--preset", "h100", "-n", "llm",
           "--skip-cluster-checks"]
    proc = subprocess.Popen(cli, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            cwd=tmp_path)
    try:
        _wait_for(log, "start upgrade", seconds=180)
        os.killpg(proc.pid, signal.SIGHUP)
        time.sleep(2)
        assert proc.poll() is None and log.read_text().splitlines() == ["start upgrade"]  # both go on
        proc.send_signal(signal.SIGTERM)  # (the end of the test: helm-rdma hands it on and waits)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert log.read_text().splitlines() == ["start upgrade", "got TERM", "recorded the release as failed"]
