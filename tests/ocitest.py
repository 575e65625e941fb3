"""Fixtures and helpers shared by the provisioning tests: a test key, an OCI config file, the fake OCI API, and the
CLI run against it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from helm_rdma.cli import main
from helm_rdma.oci.network import TAG_NAMESPACE, TAG_NETWORK, TAG_RELEASE

from .fake_oci import FakeOci, make_key, serve, write_config

COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaatest"
BASE = ["provision", "--preset", "h100", "--nodes", "2", "--name", "llama", "--compartment", COMPARTMENT,
        "--availability-domain", "Uocm:US-ASHBURN-AD-1", "--subnet", "ocid1.subnet.oc1..sub",
        "--image", "ocid1.image.oc1..img", "--poll-interval", "0.01"]
OURS = {TAG_RELEASE: "llama", TAG_NAMESPACE: "default", TAG_NETWORK: "llama"}


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, str]:
    return make_key(tmp_path_factory.mktemp("oci-key"))


@pytest.fixture
def config(key: tuple[Path, Any, str], tmp_path: Path) -> Path:
    return write_config(tmp_path, key[0], key[2])


@pytest.fixture
def fake(key: tuple[Path, Any, str]) -> Iterator[FakeOci]:
    with serve(key[1]) as running:
        yield running


def run(config: Path, fake: FakeOci | None, *extra: str, args: list[str] | None = None, wait_nodes: bool = False,
        input: str | None = None, endpoint: str | None = None) -> Result:
    """The CLI against the fake (or ``endpoint``); provision does not wait for nodes unless asked."""
    url = endpoint or (fake.url if fake else "")
    cli = [*(args or BASE), "--oci-config", str(config), "--oci-endpoint", url, *extra]
    if not wait_nodes and cli[0] == "provision":
        cli.append("--no-wait-nodes")
    return CliRunner().invoke(main, cli, input=input)


def posts(fake: FakeOci, what: str) -> int:
    return sum(1 for method, path in fake.calls if method == "POST" and path.endswith(what))


def flags_plan(config: Path, fake: FakeOci, nodes: int) -> Any:
    """The provisioning plan of `provision` with the usual network flags for ``nodes`` nodes, signed in to ``fake``."""
    from helm_rdma.commands.provision import ProvisionFlags, plan_from_flags
    from helm_rdma.oci.clients import OciAuth

    flags = ProvisionFlags(preset="h100", nodes=nodes, name="llama", compartment=COMPARTMENT,
                           availability_domain="Uocm:US-ASHBURN-AD-1", subnet="ocid1.subnet.oc1..sub",
                           image="ocid1.image.oc1..img", wait_nodes=False)
    auth = OciAuth(mode="apiKey", config_file=str(config), profile="DEFAULT", endpoint=fake.url)
    return plan_from_flags(flags, auth=auth, release=None, namespace="default")
