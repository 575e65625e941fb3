"""A --oci-profile the OCI config does not have is bad input (exit 2) wherever the config is read, and the message
names the profiles the file has.

The SDK's rule (oci 2.189.0, oci/config.py from_file): it reads the file with configparser (no interpolation) and
raises ProfileNotFound for a profile that is not a section; configparser always has DEFAULT, so a file without a
[DEFAULT] section gives DEFAULT as an empty profile, which validate_config then refuses as InvalidConfig.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helm_rdma.cli import main
from helm_rdma.errors import OciConfigError
from helm_rdma.oci.clients import DEFAULT_PATIENCE, OciAuth, make_clients

from .fake_oci import make_key, write_config
from .test_doctor_cluster import SECRETS, install, installs, oci_cluster  # noqa: F401  (fixtures)


def two_profiles(tmp_path: Path) -> Path:
    """A config with the profiles PROD and TEAM, and no [DEFAULT]."""
    key, _, fingerprint = make_key(tmp_path)
    prod = write_config(tmp_path, key, fingerprint, profile="PROD").read_text()
    config = tmp_path / "config"
    config.write_text(prod + "\n" + prod.replace("[PROD]", "[TEAM]"))
    return config


@pytest.mark.parametrize("profile", ["NOPE", "DEFAULT"])
def test_a_profile_the_config_lacks_names_the_ones_it_has(tmp_path: Path, profile: str) -> None:
    config = two_profiles(tmp_path)
    with pytest.raises(OciConfigError, match=rf"^--oci-config {config}, profile \[{profile}\]: no such profile; the "
                                             r"file has PROD, TEAM; fix the file or pass --oci-profile$"):
        make_clients(OciAuth(config_file=str(config), profile=profile), patience=DEFAULT_PATIENCE,
                     retry_strategy=None)
    make_clients(OciAuth(config_file=str(config), profile="TEAM"), patience=DEFAULT_PATIENCE, retry_strategy=None)


def test_install_with_a_profile_the_config_lacks_exits_2_before_oci_or_helm(oci_cluster: tuple[Any, Path],  # noqa: F811
                                                                            installs: Path) -> None:  # noqa: F811
    """Outside review (group ports), minor 9: it was exit 1, "cannot tell whether OCI's ingress rules ...", as if
    OCI had failed."""
    fake, config = oci_cluster
    out = install("-n", "ml", "--oci-config", str(config), "--oci-profile", "NOPE", accept_open_ports=False)
    assert out.exit_code == 2, out.output
    assert f"helm-rdma: error: --oci-config {config}, profile [NOPE]: no such profile; the file has DEFAULT; fix " \
           "the file or pass --oci-profile" in out.output
    assert not installs.exists() and not fake.calls
    assert install("-n", "ml", "--oci-config", str(config), "--oci-profile", "DEFAULT",
                   accept_open_ports=False).exit_code == 1  # the right profile: the open subnet is read and refused


def test_doctor_cluster_with_a_profile_the_config_lacks_exits_2(oci_cluster: tuple[Any, Path]) -> None:  # noqa: F811
    fake, config = oci_cluster
    out = CliRunner().invoke(main, ["doctor", "--preset", "h100", "-n", "ml", "--set", SECRETS, "--cluster",
                                    "--set", "distributed.portGuard.enabled=false",  # OCI's rules are read
                                    "--oci-config", str(config), "--oci-profile", "NOPE"])
    assert out.exit_code == 2, out.output
    assert "profile [NOPE]: no such profile; the file has DEFAULT" in out.output and not fake.calls
