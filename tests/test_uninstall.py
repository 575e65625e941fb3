"""`helm rdma uninstall` with a stand-in helm that records its call: helm gives each hook only --timeout (5m by
default; helm/helm pkg/action/uninstall.go runs pre-delete hooks within it), and the deprovisioning hook waits for
the cluster network to be TERMINATED (clusterNetwork.timeoutMinutes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from helm_rdma.cli import main
from helm_rdma.commands.generate import generate

from .helm_stand_in import recording_helm
from .rendering import PROVISION, request

HELM = '#!/bin/sh\necho "$@" >> "{log}"\n[ "$1" = uninstall ] && echo "release \\"$2\\" uninstalled"\nexit 0\n'


@pytest.fixture
def helm_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return recording_helm(tmp_path, monkeypatch, HELM)


def kept(tmp_path: Path, *sets: str) -> Path:
    return generate(request(sets=sets), output=tmp_path / "cache" / "rdma" / "ml" / "llama405b").path


@pytest.mark.parametrize(("sets", "extra", "timeout"), [
    ((*PROVISION, "clusterNetwork.deleteOnUninstall=true"), (), "130m"),
    ((*PROVISION, "clusterNetwork.deleteOnUninstall=true", "clusterNetwork.timeoutMinutes=30"), (), "40m"),
    ((*PROVISION, "clusterNetwork.deleteOnUninstall=true"), ("--", "--timeout", "3h"), None),
    ((), (), None),
])
def test_uninstall_gives_the_deprovisioning_hook_time_to_finish(helm_log: Path, tmp_path: Path, sets: tuple[str, ...],
                                                               extra: tuple[str, ...], timeout: str | None) -> None:
    kept(tmp_path, *sets)
    out = CliRunner().invoke(main, ["uninstall", "llama405b", "-n", "ml", *extra])
    assert out.exit_code == 0, out.output
    [call] = [line for line in helm_log.read_text().splitlines() if line.startswith("uninstall")]
    args = call.split()
    if timeout:
        assert args[-2:] == ["--timeout", timeout]
    else:
        assert args.count("--timeout") == (1 if extra else 0)
    assert not (tmp_path / "cache" / "rdma" / "ml" / "llama405b").exists()


@pytest.mark.parametrize(("extra", "dropped"), [
    (("--dry-run",), False),
    (("--dry-run=true",), False),
    (("--dry-run=false",), True),
    (("--dry-run", "--dry-run=false"), True),  # pflag: the last one wins
    (("--keep-history",), True),
])
def test_a_dry_run_uninstall_keeps_the_chart(helm_log: Path, tmp_path: Path, extra: tuple[str, ...],
                                             dropped: bool) -> None:
    # helm uninstall --dry-run "simulate[s] a uninstall" (helm/helm v4.1.4 pkg/cmd/uninstall.go:75, a bool flag that
    # pflag reads with strconv.ParseBool), so the release and its pre-delete hook's --timeout stay: so does the chart.
    kept(tmp_path, *PROVISION, "clusterNetwork.deleteOnUninstall=true")
    out = CliRunner().invoke(main, ["uninstall", "llama405b", "-n", "ml", "--", *extra])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "cache" / "rdma" / "ml" / "llama405b").exists() != dropped
    if not dropped:  # the real uninstall after it still gives the deprovisioning hook its time
        out = CliRunner().invoke(main, ["uninstall", "llama405b", "-n", "ml"])
        assert out.exit_code == 0, out.output
        assert helm_log.read_text().splitlines()[-1].split()[-2:] == ["--timeout", "130m"]
        assert not (tmp_path / "cache" / "rdma" / "ml" / "llama405b").exists()
