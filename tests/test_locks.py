"""The hash-locked dependencies (locks/) agree with pyproject.toml and say how to make them again.

`make lock` writes them with uv's universal resolver; these checks need no network. That a lock is complete (every
dependency of every pin pinned too, for this platform) is proven where it is used: pip's --require-hashes refuses to
install from an incomplete lock (tests/test_plugin.py installs the plugin from it).
"""

from __future__ import annotations

import re

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .conftest import REPO
from .lockfile import OCI, RUNTIME, pins

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
DEPENDENCIES = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
OCI_EXTRA = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["oci"]]


@pytest.mark.parametrize(("lock", "required"), [(RUNTIME, DEPENDENCIES), (OCI, DEPENDENCIES + OCI_EXTRA)],
                         ids=["runtime", "oci"])
def test_every_declared_dependency_is_pinned_within_its_range(lock, required) -> None:
    locked = pins(lock)
    for req in required:
        versions = [p.version for p in locked if p.name == canonicalize_name(req.name)]
        assert versions, f"{lock.name}: {req.name} is not locked; run `make lock`"
        for version in versions:
            assert req.specifier.contains(version, prereleases=True), (
                f"{lock.name}: {req.name}=={version} is outside {req}; run `make lock`")


@pytest.mark.parametrize("lock", [RUNTIME, OCI], ids=["runtime", "oci"])
def test_every_pin_carries_hashes_and_nothing_is_left_unpinned(lock) -> None:
    text = lock.read_text(encoding="utf-8")
    locked = pins(lock)
    assert locked and all(p.hashes for p in locked)
    requirement_lines = [line for line in text.splitlines() if line and not line[0].isspace() and line[0] != "#"]
    assert len(requirement_lines) == len(locked), "a line of the lock is not name==version"
    assert "--index-url" not in text and "-e " not in text


def test_the_runtime_lock_holds_no_build_backend_and_not_the_project_itself() -> None:
    names = {p.name for p in pins(RUNTIME)}
    assert not names & {"hatchling", "setuptools", "wheel", "helm-rdma"}
    assert not {p.name for p in pins(OCI)} & {"hatchling", "helm-rdma"}


def test_the_locks_name_the_command_that_makes_them_and_cover_every_python_pyproject_accepts() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    args = re.search(r"^LOCK_ARGS := (.*)$", makefile, re.M)
    assert args and "--universal" in args[1] and "--generate-hashes" in args[1]
    lowest = re.search(r"--python-version (\S+)", args[1])
    assert lowest and PYPROJECT["project"]["requires-python"] == f">={lowest[1]}"
    for lock in (RUNTIME, OCI):
        assert lock.read_text(encoding="utf-8").splitlines()[1].strip() == "#    make lock"
        assert f"-o locks/{lock.name}" in makefile


def test_the_plugin_hook_and_the_provisioner_image_install_from_the_locks_with_hashes_and_no_build() -> None:
    hook = (REPO / "scripts" / "plugin-venv").read_text(encoding="utf-8")
    assert "--require-hashes --only-binary :all: -r \"$lock\"" in hook
    assert "locks/runtime.txt" in hook and "locks/oci.txt" in hook
    assert hook.count("-m pip install") == 1  # the locked wheels, and nothing else
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:[0-9.]+-slim@sha256:[0-9a-f]{64}$", dockerfile, re.M)
    assert "--require-hashes --only-binary :all: -r /tmp/oci.txt" in dockerfile


def test_the_version_has_one_home() -> None:
    # pyproject reads it from the package (hatch's version source); plugin.yaml is rewritten from it by `make docs`
    # (tests/test_help.py fails on drift); the Makefile's image tag reads the same line.
    from helm_rdma import __version__

    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "generator/helm_rdma/__init__.py"
    assert f'version: "{__version__}"' in (REPO / "plugin.yaml").read_text(encoding="utf-8")
    assert "generator/helm_rdma/__init__.py" in (REPO / "Makefile").read_text(encoding="utf-8")
