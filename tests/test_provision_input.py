"""provision refuses bad OCIDs, names and node labels before its first OCI call, by the values schema's rules, and
lists every problem of one command line or values file at once. The fake OCI API counts the calls."""
# ruff: noqa: F811  (the fixtures imported from ocitest are redefined as test parameters)

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from helm_rdma.commands.generate import generate
from helm_rdma.commands.provision import plan_from_values

from .fake_oci import FakeOci
from .ocitest import BASE, COMPARTMENT, config, fake, key, run  # noqa: F401  (fixtures)
from .rendering import request


def with_flag(flag: str, value: str) -> list[str]:
    """BASE with ``flag`` set to ``value`` (replaced when BASE has it, else added)."""
    args = list(BASE)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    return args


# Node labels: Kubernetes' rule (kubernetes/apimachinery pkg/util/validation/validation.go: labelValueFmt
# "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", LabelValueMaxLength 63, and IsQualifiedName for the key), which the
# values schema holds as clusterNetwork.oke.nodeLabels; the network's name is also its nodes' label value, so it keeps
# the same rule (clusterNetwork.name).
BAD = [
    ("--compartment", "not-an-ocid", "an OCID of kind compartment or tenancy", "clusterNetwork.compartmentId"),
    ("--subnet", "ocid1.vcn.oc1.iad.aaaa", "an OCID of kind subnet", "clusterNetwork.subnetId"),
    ("--image", "ocid1.subnet.oc1..s", "an OCID of kind image", "clusterNetwork.imageId"),
    ("--oke-cluster", "xyz", "an OCID of kind cluster", "clusterNetwork.oke.clusterId"),
    ("--pod-subnet", "ocid1.vcn.oc1..v", "an OCID of kind subnet", "clusterNetwork.oke.podSubnetId"),
    ("--pod-nsg", "sg-1", "an OCID of kind networksecuritygroup", "clusterNetwork.oke.podNsgIds[0]"),
    ("--instance-configuration", "ocid1.image.oc1..i", "an OCID of kind instanceconfiguration",
     "clusterNetwork.instanceConfigurationId"),
    ("--name", "team/llama", "is not empty or a Kubernetes label value", "clusterNetwork.name"),
    ("--name", "llama\nrm", "is not empty or a Kubernetes label value", "clusterNetwork.name"),
    ("--name", "l" * 1000, "has 1000 characters; at most 63", "clusterNetwork.name"),
    ("--node-label", "a b=c", "the key 'a b' is not a Kubernetes label key", "clusterNetwork.oke.nodeLabels.a b"),
    ("--node-label", "pool=gpu nodes", "is not a Kubernetes label value", "clusterNetwork.oke.nodeLabels.pool"),
    ("--node-label", "pool=gpu!", "is not a Kubernetes label value", "clusterNetwork.oke.nodeLabels.pool"),
    ("--node-label", "pool=", "expected KEY=VALUE", "--node-label 'pool='"),
    # The kubelet's own rule (kubernetes/kubernetes cmd/kubelet/app/options/options.go, ValidateKubeletFlags: a key
    # whose prefix is kubernetes.io, k8s.io or a subdomain of either must pass pkg/kubelet/apis/well_known_labels.go
    # IsKubeletLabel: the kubeletLabels set or a kubelet.kubernetes.io / node.kubernetes.io namespace), or the kubelet
    # exits at start and the billed node never joins.
    ("--node-label", "node-role.kubernetes.io/worker=true", "is not a label the kubelet sets",
     "clusterNetwork.oke.nodeLabels.node-role.kubernetes.io/worker"),
    ("--node-label", "k8s.io/a=b", "e.g. example.com/role", "clusterNetwork.oke.nodeLabels.k8s.io/a"),
    ("--availability-domain", "Uocm:US ASHBURN", "printable ASCII without spaces",
     "clusterNetwork.availabilityDomain"),
    ("--api-server-host", "10.0.0.1 evil", "printable ASCII without spaces", "clusterNetwork.oke.apiServerHost"),
    ("--boot-volume-gbs", "40000", "40000 is greater than the maximum of 32768", "clusterNetwork.bootVolumeSizeGBs"),
]


@pytest.mark.parametrize(("flag", "value", "expected", "key"), BAD, ids=[f"{b[0]}={b[1][:20]!r}" for b in BAD])
def test_a_bad_flag_exits_2_naming_it_with_no_oci_call(config: Path, fake: FakeOci, flag: str, value: str,
                                                       expected: str, key: str) -> None:
    result = run(config, fake, args=with_flag(flag, value))
    assert result.exit_code == 2, result.output
    assert f"  - {flag}" in result.output and expected in result.output and key in result.output
    assert "Nothing was sent to OCI" in result.output
    assert fake.calls == []
    assert not fake.cluster_networks and not fake.instance_configurations


def test_every_problem_of_one_command_line_is_listed_together(config: Path, fake: FakeOci) -> None:
    args = with_flag("--compartment", "not-an-ocid")
    args[args.index("--subnet") + 1] = "ocid1.vcn.oc1..v"
    args[args.index("--name") + 1] = "a/b"
    args[args.index("--image")] = "--oke-cluster"  # --image is now missing, and xyz-like
    args += ["--node-label", "a b=c", "--nsg", "ocid1.networksecuritygroup.oc1..ok", "--nsg", "nope"]
    result = run(config, fake, args=args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("  - ")]
    assert [line.split()[1].rstrip(":") for line in lines] == [
        "provision", "--compartment", "--name", "--nsg", "--oke-cluster", "--node-label", "--subnet"], result.output
    assert "provision needs --image" in lines[0]
    assert "clusterNetwork.nsgIds[1]" in result.output and "nsgIds[0]" not in result.output
    assert fake.calls == []


def test_good_flags_still_provision(config: Path, fake: FakeOci) -> None:
    """The checks refuse nothing the chart would accept: OCIDs of the right kinds, a label with a DNS prefix."""
    args = [*BASE, "--oke-cluster", "ocid1.cluster.oc1.iad.aaaa", "--node-label", "example.com/pool=gpu_a-1.b",
            "--node-label", "node.kubernetes.io/pool=a", "--node-label", "x.kubelet.kubernetes.io/a=b",
            "--node-label", "kubernetes.io/arch=amd64",
            "--nsg", "ocid1.networksecuritygroup.oc1..n", "--compartment", "ocid1.tenancy.oc1..t"]
    result = run(config, fake, "--api-server-host", "10.0.0.1", "--cluster-ca-cert-file", "/dev/null", args=args)
    assert "provision's flags" not in result.output
    assert fake.calls  # it went on to OCI


def values_file(tmp_path: Path, oke: dict[str, object] | None = None, **cluster_network: object) -> Path:
    chart = generate(request(), output=tmp_path / "chart").path
    values = yaml.safe_load((chart / "values.yaml").read_text())
    values["clusterNetwork"].update(cluster_network)
    values["clusterNetwork"]["oke"].update(oke or {})
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_from_values_lists_every_problem_before_any_call(config: Path, fake: FakeOci, tmp_path: Path) -> None:
    path = values_file(tmp_path, compartmentId="", availabilityDomain="AD-1", subnetId="ocid1.vcn.oc1..v",
                       imageId="ocid1.image.oc1..i", name="a/b",
                       oke={"clusterId": "xyz", "nodeLabels": {"pool": "gpu nodes"}})
    result = run(config, fake, "--node-label", "a b=c",
                 args=["provision", "--from-values", str(path), "--release", "llama"])
    assert result.exit_code == 2, result.output
    out = result.output
    for part in ("clusterNetwork.compartmentId is empty", "clusterNetwork.subnetId: 'ocid1.vcn.oc1..v' is not",
                 "clusterNetwork.name: 'a/b'", "clusterNetwork.oke.clusterId: 'xyz'",
                 "clusterNetwork.oke.nodeLabels.pool: 'gpu nodes'", "clusterNetwork.oke.nodeLabels.a b: the key"):
        assert part in out, out
    assert f"--from-values {path} is not valid" in out
    assert fake.calls == []


def test_from_values_still_takes_the_hooks_name_and_label(tmp_path: Path) -> None:
    path = values_file(tmp_path, compartmentId=COMPARTMENT, availabilityDomain="AD-1", subnetId="ocid1.subnet.oc1..s",
                       imageId="ocid1.image.oc1..i", oke={"nodeLabels": {"pool": "gpu"}})
    plan = plan_from_values(path, release="llama", namespace="ml", name="llama.ml",
                            node_label="helm-rdma.io/cluster-network=llama.ml")
    assert plan.spec.name == "llama.ml"
    assert plan.setup.labels == {"pool": "gpu", "helm-rdma.io/cluster-network": "llama.ml"}


# OCI's bound on instance metadata: oci SDK core/models/instance_configuration_launch_instance_details.py, "The
# combined size of the `metadata` and `extendedMetadata` objects can be a maximum of 32,000 bytes".
@pytest.mark.parametrize("flag", ["--ssh-key-file", "--cloud-init-file", "--cluster-ca-cert-file"])
def test_a_file_flag_refuses_endless_binary_and_unreadable_files_before_any_call(
        config: Path, fake: FakeOci, tmp_path: Path, flag: str) -> None:
    binary = tmp_path / "key.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    big = tmp_path / "big.txt"
    big.write_text("a" * 32_001)
    cases = [("/dev/zero", "larger than 32,000 bytes"), (str(binary), "not UTF-8 text"),
             (str(big), "larger than 32,000 bytes"), (str(tmp_path), "is a directory"),
             (str(tmp_path / "absent"), "no such file")]
    for path, expected in cases:
        started = time.monotonic()
        result = run(config, fake, flag, path)
        assert result.exit_code == 2, result.output
        assert f"  - {flag} {path}: {expected}" in result.output, result.output
        assert time.monotonic() - started < 5
    assert fake.calls == []


def test_an_unreadable_file_is_listed_with_the_flags_problems(config: Path, fake: FakeOci) -> None:
    result = run(config, fake, "--ssh-key-file", "/dev/zero", args=with_flag("--subnet", "ocid1.vcn.oc1..v"))
    assert result.exit_code == 2
    assert "--ssh-key-file /dev/zero: larger than" in result.output and "--subnet: 'ocid1.vcn" in result.output
    assert fake.calls == []


@pytest.mark.parametrize(("content", "expected"), [
    (None, "larger than 1,048,576 bytes"), (b"[DEFAULT]\nuser=\xff\xfe\n", "not UTF-8 text"),
    (b"no section\n", "not an OCI config file (File contains no section headers"),
])
def test_an_oci_config_that_is_endless_or_binary_exits_2_naming_the_flag(
        fake: FakeOci, tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = "/dev/zero" if content is None else str(tmp_path / "config")
    if content is not None:
        Path(path).write_bytes(content)
    started = time.monotonic()
    result = run(Path(path), fake)
    assert result.exit_code == 2, result.output
    assert f"--oci-config {path}, profile [DEFAULT]: {expected}" in result.output
    assert time.monotonic() - started < 5
    assert fake.calls == []


def test_deprovision_checks_its_name_and_compartment_before_any_call(config: Path, fake: FakeOci) -> None:
    result = run(config, fake, args=["deprovision", "--name", "a/b", "--compartment", "ocid1.vcn.oc1..v", "--yes"])
    assert result.exit_code == 2, result.output
    assert "deprovision's flags is not valid" in result.output
    assert "  - --compartment: 'ocid1.vcn.oc1..v'" in result.output and "  - --name: 'a/b'" in result.output
    assert fake.calls == []


# OCI's answer to an id it cannot parse or does not know is final: 400 InvalidParameter or CannotParseRequest, 404
# NotAuthorizedOrNotFound (https://docs.oracle.com/en-us/iaas/Content/API/References/apierrors.htm). The SDK's retry
# rules leave them alone (oci/retry/retry_checkers.py RETRYABLE_STATUSES_AND_CODES: -1, 409 IncorrectState and
# LockConflict, 429; and 5xx with retry_any_5xx), so each is one request and exit 1 with the request id, never
# --oci-retry-for's five minutes.
FINAL = [(400, "InvalidParameter"), (400, "CannotParseRequest"), (404, "NotAuthorizedOrNotFound")]


@pytest.mark.parametrize(("status", "code"), FINAL)
def test_deprovision_of_an_id_oci_refuses_fails_at_once_with_the_request_id(config: Path, fake: FakeOci,
                                                                            status: int, code: str) -> None:
    fake.fail("GET", r".*/clusterNetworks", status, code, "Invalid compartmentId", times=100)
    started = time.monotonic()
    result = run(config, fake, args=["deprovision", "--name", "llama", "--compartment",
                                     "ocid1.compartment.oc1..aaaaaaaaunknown", "--yes"])
    assert result.exit_code == 1, result.output
    assert time.monotonic() - started < 10
    assert f"{status} {code}" in result.output and "opc-request-id fake-" in result.output
    assert [c for c in fake.calls if c[0] == "GET" and c[1].endswith("/clusterNetworks")] == fake.calls[:1]
    assert len(fake.calls) == 1


@pytest.mark.parametrize(("status", "code"), FINAL)
def test_provision_with_an_instance_configuration_oci_refuses_fails_at_once(config: Path, fake: FakeOci,
                                                                           status: int, code: str) -> None:
    fake.fail("POST", r".*/clusterNetworks", status, code, "instance configuration not found", times=100)
    started = time.monotonic()
    result = run(config, fake, "--instance-configuration", "ocid1.instanceconfiguration.oc1..unknown")
    assert result.exit_code == 1, result.output
    assert time.monotonic() - started < 10
    assert f"{status} {code}" in result.output and "opc-request-id fake-" in result.output
    assert sum(1 for method, path in fake.calls if method == "POST" and path.endswith("/clusterNetworks")) == 1


def _ssh_keys() -> tuple[str, str]:
    """(an OpenSSH public key line, the OpenSSH private key file of the same key), as ssh-keygen writes them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    return public.decode() + " me@laptop\n", pem.decode()


# ssh_authorized_keys is an authorized_keys file: one public key per line, "keytype, base64-encoded key, comment"
# (OpenBSD sshd(8), AUTHORIZED_KEYS FILE FORMAT; the key types it lists: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/
# 521, sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com, ssh-dss).
def test_a_private_key_or_any_text_as_ssh_key_file_exits_2_with_no_oci_call(config: Path, fake: FakeOci,
                                                                          tmp_path: Path) -> None:
    _, private = _ssh_keys()
    secret = private.splitlines()[3]
    (tmp_path / "id_ed25519").write_text(private)
    (tmp_path / "hi").write_text("hi\n")
    result = run(config, fake, "--ssh-key-file", str(tmp_path / "id_ed25519"))
    assert result.exit_code == 2, result.output
    assert "  - --ssh-key-file: this is a private key: pass the .pub file" in result.output, result.output
    assert secret not in result.output and "clusterNetwork.sshAuthorizedKeys" in result.output
    result = run(config, fake, "--ssh-key-file", str(tmp_path / "hi"))
    assert result.exit_code == 2, result.output
    assert "--ssh-key-file: 'hi' is not an OpenSSH public key (the .pub file)" in result.output, result.output
    assert fake.calls == []


def test_public_keys_as_ssh_key_file_still_provision(config: Path, fake: FakeOci, tmp_path: Path) -> None:
    public, _ = _ssh_keys()
    body = public.split()[1]
    text = (f"# team keys\r\n{public}\n  ssh-rsa {body}\necdsa-sha2-nistp384 {body} a b c\r\n"
            f"sk-ssh-ed25519@openssh.com {body}== yubi\n")
    (tmp_path / "keys.pub").write_text(text)
    result = run(config, fake, "--ssh-key-file", str(tmp_path / "keys.pub"))
    assert "provision's flags" not in result.output, result.output
    assert fake.calls


@pytest.mark.parametrize("good", [False, True])
def test_helm_checks_ssh_authorized_keys_with_the_same_pattern(helm_bin: Path, tmp_path: Path, good: bool) -> None:
    """The pattern is RE2 (helm validates the schema in Go): helm refuses a private key and takes a public one."""
    import subprocess

    public, private = _ssh_keys()
    chart = generate(request(), output=tmp_path / "chart").path
    (tmp_path / "v.yaml").write_text(yaml.safe_dump({"clusterNetwork": {"sshAuthorizedKeys":
                                                                        public if good else private}}))
    done = subprocess.run([str(helm_bin), "template", "x", str(chart), "-f", str(tmp_path / "v.yaml")],
                          capture_output=True, text=True, check=False)
    assert (done.returncode == 0) is good, done.stderr
    assert good or "sshAuthorizedKeys" in done.stderr


@pytest.mark.parametrize(("key", "good"), [("node-role.kubernetes.io/worker", False), ("k8s.io/a", False),
                                           ("node.kubernetes.io/pool", True), ("example.com/role", True)])
def test_helm_refuses_a_node_label_the_kubelet_refuses(helm_bin: Path, tmp_path: Path, key: str, good: bool) -> None:
    """The same rule in values: helm's schema check (Go) refuses clusterNetwork.oke.nodeLabels the kubelet refuses."""
    import subprocess

    chart = generate(request(), output=tmp_path / "chart").path
    (tmp_path / "v.yaml").write_text(yaml.safe_dump({"clusterNetwork": {"oke": {"nodeLabels": {key: "x"}}}}))
    done = subprocess.run([str(helm_bin), "template", "x", str(chart), "-f", str(tmp_path / "v.yaml")],
                          capture_output=True, text=True, check=False)
    assert (done.returncode == 0) is good, done.stderr
    assert good or "kubelet" in done.stderr  # the pattern helm quotes


# The CA goes to instance metadata cluster_ca_cert, which OKE's bootstrap base64-decodes into /etc/kubernetes/ca.crt
# (oracle-quickstart/oci-hpc-oke modules/workers/instanceconfig.tf passes the kubeconfig's certificate-authority-data,
# base64 of the PEM); the repositories become apt source URIs. Either wrong means billed nodes that never join.
def test_a_ca_that_is_no_certificate_or_a_repository_that_is_no_uri_exits_2_with_no_oci_call(
        config: Path, fake: FakeOci, tmp_path: Path) -> None:
    (tmp_path / "ca").write_text("hi\n")
    result = run(config, fake, "--api-server-host", "10.0.0.1", "--cluster-ca-cert-file", str(tmp_path / "ca"),
                 "--node-package-repository", "not a uri")
    assert result.exit_code == 2, result.output
    assert "--cluster-ca-cert-file: 'hi' is not empty or a PEM certificate" in result.output, result.output
    assert "--node-package-repository: 'not a uri' is not empty or apt repository URIs" in result.output
    for repository in ("https://a.example/x\nrm", "ftp://a.example/x"):
        result = run(config, fake, "--node-package-repository", repository)
        assert result.exit_code == 2 and "(clusterNetwork.oke.nodePackageRepository)" in result.output
    assert fake.calls == []


def test_a_plain_pem_ca_file_is_sent_base64_encoded(config: Path, fake: FakeOci, tmp_path: Path) -> None:
    import base64

    pem = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
    (tmp_path / "ca.crt").write_text(pem)
    result = run(config, fake, "--api-server-host", "10.0.0.1", "--cluster-ca-cert-file", str(tmp_path / "ca.crt"),
                 "--node-package-repository", "https://m.example/ubuntu-{codename} file:///srv/okn")
    assert "provision's flags" not in result.output, result.output
    [configuration] = fake.instance_configurations.values()
    metadata = json.dumps(configuration)
    assert base64.b64encode(pem.encode()).decode() in metadata, metadata[:2000]
