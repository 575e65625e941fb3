"""The cluster network's settings checked before any OCI call, by the rules of the values schema.

Flags and values files both become clusterNetwork keys; schemas/values.schema.json holds each rule once (OCID by
resource kind, name length and characters, node label key and value), so a flag is checked as the same key in a
values file would be, and every problem of one input is reported at once, with nothing sent to OCI.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from helm_rdma.datafiles import schema_path
from helm_rdma.errors import SchemaViolation
from helm_rdma.validation import schema_problems

# The clusterNetwork key (dotted below clusterNetwork) each provision flag becomes.
FLAG_KEYS: dict[str, str] = {
    "--name": "name",
    "--compartment": "compartmentId",
    "--availability-domain": "availabilityDomain",
    "--subnet": "subnetId",
    "--image": "imageId",
    "--boot-volume-gbs": "bootVolumeSizeGBs",
    "--placement-constraint": "placementConstraint",
    "--instance-configuration": "instanceConfigurationId",
    "--nsg": "nsgIds",
    "--nvme-raid-level": "nvmeRaidLevel",
    "--ssh-key-file": "sshAuthorizedKeys",
    "--oke-cluster": "oke.clusterId",
    "--pod-subnet": "oke.podSubnetId",
    "--pod-nsg": "oke.podNsgIds",
    "--max-pods": "oke.maxPods",
    "--api-server-host": "oke.apiServerHost",
    "--cluster-ca-cert-file": "oke.clusterCaCert",
    "--cloud-init-file": "oke.cloudInit",
    "--node-package-repository": "oke.nodePackageRepository",
    "--node-label": "oke.nodeLabels",
}
FLAGS_FIX = ("Nothing was sent to OCI. Fix the flags above: OCIDs of the kind named (the OCI console's "
             "\"Copy\" link gives them whole), a --name of at most 63 letters, digits, '-', '_' and '.', and "
             "--node-label KEY=VALUE as Kubernetes accepts it.")
VALUES_FIX = ("Nothing was sent to OCI. Fix the keys above in the values file (they are the chart's keys: "
              "`helm-rdma generate` and helm check them with values.schema.json).")


@cache
def _section_schema() -> dict[str, Any]:
    """The values schema's clusterNetwork, with no key required: a flag not given keeps the chart's default."""
    schema = json.loads(schema_path("values.schema.json").read_text(encoding="utf-8"),
                        object_hook=lambda node: {k: v for k, v in node.items() if k != "required"})
    section: dict[str, Any] = schema["properties"]["clusterNetwork"]
    return section


def section_problems(section: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(key dotted below clusterNetwork, what is wrong) for each rule of the values schema ``section`` breaks."""
    return schema_problems(dict(section), _section_schema())


def label_pair(text: str) -> tuple[str, str] | None:
    """``KEY=VALUE`` split at the first '=', or None when either side is empty."""
    key, _, value = text.partition("=")
    return (key, value) if key and value else None


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, leaf = key.rpartition(".")
        (out.setdefault(head, {}) if head else out)[leaf] = value
    return out


def _flag_of(path: str) -> str:
    """The flag whose key ``path`` (dotted below clusterNetwork, maybe with [index] or a label key) lies under."""
    best = ""
    for flag, key in FLAG_KEYS.items():
        if (path == key or path.startswith((key + ".", key + "["))) and len(key) > len(FLAG_KEYS.get(best, "")):
            best = flag
    return best or f"clusterNetwork.{path}"


def check_flags(given: Mapping[str, Any], *, missing: Sequence[str] = (), extra: Sequence[str] = (),
                command: str = "provision") -> None:
    """Check the flags of ``command`` (flag -> value; None: not given) as their clusterNetwork keys.

    ``--node-label`` is given as its KEY=VALUE text; ``missing`` names required flags nobody gave; ``extra`` holds
    problems found before (files that could not be read), listed with the rest.

    Raises:
        SchemaViolation: Listing every missing flag and every flag the values schema rejects, with its key.
    """
    problems = []
    if missing:
        problems.append(f"{command} needs {', '.join(missing)} (or --from-values with a chart's values file)")
    problems += extra
    flat: dict[str, Any] = {}
    for flag, value in given.items():
        if value is None:
            continue
        if flag == "--node-label":
            pair = label_pair(value)
            if pair is None:
                problems.append(f"--node-label {value!r}: expected KEY=VALUE, both sides non-empty")
                continue
            value = {pair[0]: pair[1]}
        flat[FLAG_KEYS[flag]] = list(value) if isinstance(value, tuple) else value
    for path, message in section_problems(_nest(flat)):
        problems.append(f"{_flag_of(path)}: {message} (clusterNetwork.{path})")
    if problems:
        raise SchemaViolation(what=f"{command}'s flags", problems=problems, fix=FLAGS_FIX)


def check_values(section: Mapping[str, Any], *, source: str, extra: Sequence[str] = ()) -> None:
    """Check a values file's clusterNetwork ``section`` by the values schema, with ``extra`` problems found
    beside it.

    Raises:
        SchemaViolation: Listing every problem, each with its key.
    """
    problems = [*(f"clusterNetwork.{path}: {message}" for path, message in section_problems(section)), *extra]
    if problems:
        raise SchemaViolation(what=source, problems=problems, fix=VALUES_FIX)
