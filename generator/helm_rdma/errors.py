"""The one error hierarchy of helm-rdma.

Core code raises these; only the CLI turns them into a message and an exit code (2 for bad input, 1 for a failure
at run time). Every message names the file, flag or key, what was expected, and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from helm_rdma.contract import VALIDATE_MARKER
from helm_rdma.suggest import clip, did_you_mean

EXIT_RUNTIME = 1
EXIT_INPUT = 2


class HelmRdmaError(Exception):
    """Base class of every error helm-rdma reports to its user."""

    exit_code = EXIT_RUNTIME


class InputError(HelmRdmaError):
    """Bad input from the user: flags, values, presets or files (exit 2)."""

    exit_code = EXIT_INPUT


class RuntimeFailure(HelmRdmaError):
    """A failure while running: helm, OCI, the cluster (exit 1)."""

    exit_code = EXIT_RUNTIME


def _known(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "(none)"


def _indented(lines: Sequence[str]) -> str:
    return "\n".join(f"  {line}" for line in lines)


class UnknownPresetError(InputError):
    """A preset name that has no file under presets/."""

    def __init__(self, *, name: str, known: Iterable[str]) -> None:
        known = list(known)
        super().__init__(f'unknown preset "{name}"; known: {_known(known)}{did_you_mean(name, known)} '
                         "(see `helm-rdma presets`)")


class UnknownModelError(InputError):
    """A model alias that is not in the catalog."""

    def __init__(self, *, name: str, known: Iterable[str]) -> None:
        known = list(known)
        super().__init__(
            f'unknown model "{name}"; known: {_known(known)}{did_you_mean(name, known) or "."} Give a '
            "catalog alias with --model, or name the release after one"
        )


class NoModelError(InputError):
    """A release name that names no catalog model, with no --model: never serve a model nobody asked for."""

    def __init__(self, *, release: str, known: Iterable[str]) -> None:
        super().__init__(
            f'release "{release}" names no catalog model and no --model was given: pass --model (one of '
            f"{_known(known)}, or a Hugging Face repository id ORG/NAME), or name the release after one (an alias, or "
            f"an alias and a suffix such as {sorted(known)[0] if known else 'ALIAS'}-prod)"
        )


class YamlFileError(InputError):
    """A YAML file that cannot be read or parsed."""

    def __init__(self, *, path: str, problem: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}")


class SchemaViolation(InputError):
    """A document (preset, catalog, values) that its JSON Schema rejects; lists every problem."""

    LISTED = 25

    def __init__(self, *, what: str, problems: Sequence[str], fix: str) -> None:
        self.problems = list(problems)
        lines = _indented([f"- {p}" for p in self.problems[:self.LISTED]])
        if len(self.problems) > self.LISTED:
            lines += f"\n  ... and {len(self.problems) - self.LISTED} more"
        super().__init__(f"{what} is not valid:\n{lines}\n{fix}")


class SetSyntaxError(InputError):
    """An argument of the --set family that helm's rules refuse."""

    EXAMPLES = {"--set-json": 'vllm.extraArgs=["--enforce-eager"]', "--set-file": "clusterNetwork.cloudInit=init.yaml"}

    def __init__(self, *, argument: str, problem: str, flag: str = "--set") -> None:
        example = self.EXAMPLES.get(flag, "vllm.maxModelLen=32768")
        super().__init__(f'{flag} "{clip(argument, 200)}": {problem}; expected KEY=VALUE such as {flag} {example}')


class DurationError(InputError):
    """A duration flag (--timeout and the like) that Go's time.ParseDuration, and so helm, would refuse."""

    def __init__(self, *, flag: str, text: str, problem: str) -> None:
        super().__init__(f"{flag} {self.explain(text=text, problem=problem, flag=flag)}")

    @staticmethod
    def explain(*, text: str, problem: str, flag: str) -> str:
        """What is wrong with ``text`` and the fix, without the flag's name in front (click puts it there)."""
        shown = clip(text, 80)
        fix = f"{shown}s" if re.fullmatch(r"[0-9]+(\.[0-9]*)?", text) else "300s"
        return (f'"{shown}" is not a duration helm reads ({problem}); use for example {flag} {fix}: a number and a '
                "unit each (h, m, s, ms, us, ns), as in 5m, 1h30m, 1m30s500ms")

    @staticmethod
    def out_of_range(*, text: str, flag: str, positive: bool, most: str | None, example: str) -> str:
        """A duration that parses but is negative, zero where that means nothing, or absurdly long, and the fix
        (click puts the flag in front)."""
        expected = ("above 0s" if positive else "of 0s or more") + (f" and at most {most}" if most else "")
        return f'"{clip(text, 80)}" is out of range: expected a duration {expected}; use for example {flag} {example}'


class ReleaseNameError(InputError):
    """A release name that helm, or the Kubernetes names the chart derives from it, would refuse."""

    def __init__(self, *, name: str, problem: str, suggestion: str) -> None:
        super().__init__(f'release name "{name}" {problem}; choose a name such as "{suggestion}" (lower-case '
                         f"letters, digits and '-', a letter first, at most 53 characters)")


class NamespaceError(InputError):
    """A namespace (-n, --namespace or HELM_NAMESPACE) that Kubernetes would refuse."""

    def __init__(self, *, name: str) -> None:
        super().__init__(f'namespace "{clip(name, 80)}" is not a Kubernetes namespace name: at most 63 lower-case '
                         "letters, digits and '-', starting and ending with a letter or digit; fix -n/--namespace or "
                         "HELM_NAMESPACE")


class TooFewNodesError(InputError):
    """--nodes (or values `nodes`) below what the model needs on the preset."""

    def __init__(self, *, model: str, preset: str, nodes: int, minimum: int, detail: str) -> None:
        super().__init__(
            f"{model} needs at least {minimum} node(s) of preset {preset}, got nodes={nodes} ({detail}); "
            f"use --nodes {minimum} or more, a shorter --max-model-len, or a larger preset"
        )


class LoraSizeUnknownError(InputError):
    """LoRA asked for a model whose layer sizes the catalog does not give, so its memory cannot be planned."""

    def __init__(self, *, model: str) -> None:
        super().__init__(
            f"{model}: the model's hidden and intermediate sizes are not known (catalog hiddenSize and "
            "intermediateSize, or config.json hidden_size and intermediate_size), so the memory vLLM reserves for "
            "LoRA adapters cannot be planned; add them from the model's config.json to its catalog entry, or set "
            "vllm.lora.enabled=false"
        )


class ModelTooLargeError(InputError):
    """A model that does not fit in the most nodes a group may have."""

    def __init__(self, *, model: str, preset: str, max_nodes: int, detail: str) -> None:
        super().__init__(
            f"{model} does not fit in {max_nodes} nodes of preset {preset}, the most a group may have (nodes: at "
            f"most {max_nodes}) ({detail}); use a larger preset, a shorter --max-model-len, or a higher "
            "vllm.gpuMemoryUtilization"
        )


class ContextTooLongError(InputError):
    """A context length above what the model supports."""

    def __init__(self, *, model: str, asked: int, maximum: int) -> None:
        super().__init__(
            f"max model length {asked} (--max-model-len or vllm.maxModelLen) is above {model}'s context of "
            f"{maximum} tokens; use {maximum} or less"
        )


class ParallelismError(InputError):
    """A tensor-parallel size that the model's attention heads cannot be split by."""

    def __init__(self, *, model: str, tp: int, heads: int, kind: str) -> None:
        super().__init__(
            f"{model}: tensor parallel size {tp} does not split its {heads} {kind} evenly; "
            "choose a preset or vllm.tensorParallelSize that divides it"
        )


class ValuesLimitError(InputError):
    """Values that helm or Kubernetes would refuse for their size (a chart file, the chart, an object's
    annotations)."""

    def __init__(self, *, key: str, origin: str, problem: str, fix: str) -> None:
        # clipped: a --set flag may carry the large value itself
        where = f" (from {clip(origin, 100)})" if origin not in ("defaults", "flags", "") else ""
        super().__init__(f"{key}{where}: {problem}; fix: {fix}")


class OutputExistsError(InputError):
    """An output directory that is not empty, without --force."""

    def __init__(self, *, path: str) -> None:
        super().__init__(f"--output-dir {path}: directory is not empty; choose another directory, or pass --force to "
                         "regenerate the chart generate wrote there (it stops on a hand edit, and on any file "
                         "of yours other than a recorded values file)")


class OutputRefusedError(InputError):
    """An output path that generate may not write or replace (not a generated chart, a git work tree, a file)."""

    def __init__(self, *, path: str, problem: str, fix: str) -> None:
        super().__init__(f"--output-dir {path}: {problem}; {fix}")


class DamagedRecordError(InputError):
    """A chart's record (.helm-rdma) that cannot be read: nothing then says which files are generate's."""

    def __init__(self, *, path: str, problem: str) -> None:
        super().__init__(
            f"{path}: {problem}, so nothing tells generate's files from yours and nothing was changed (not even with "
            f"--discard-edits); fix: restore it from version control (e.g. `git checkout -- {path}`, or resolve the "
            "merge conflict by taking either side and run generate --force again), or remove the chart directory "
            "yourself and generate it anew")


class ChartEditedError(InputError):
    """Files generate wrote that were edited by hand since, found before a regeneration would overwrite them."""

    def __init__(self, *, path: str, edited: Sequence[str], value_files: Sequence[str],
                 foreign: Sequence[str] = ()) -> None:
        yours = (f"your values file ({', '.join(value_files)}, which generate reads on every regeneration)"
                 if value_files else "a values file of your own (pass it once with -f: the chart records it and "
                 "generate reads it on every regeneration)")
        also = (f". It also holds files generate did not write, which --discard-edits does not touch and which stop "
                f"the run too: {', '.join(foreign[:ForeignFilesError.LISTED])}"
                + (f" and {len(foreign) - ForeignFilesError.LISTED} more" if len(foreign) > ForeignFilesError.LISTED
                   else "") + "; move each out of the chart directory" if foreign else "")
        super().__init__(
            f"--output-dir {path}: generate wrote these files and they were edited by hand since: "
            f"{'; '.join(edited)}. Regenerating would discard those edits, so nothing was written. Move each change "
            f"into {yours}, or restore the files (git checkout), then run generate again; or pass --discard-edits "
            f"to overwrite them{also}"
        )


class ForeignFilesError(InputError):
    """Files in a generated chart's directory that generate did not write and no recorded values file is."""

    LISTED = 20

    def __init__(self, *, path: str, files: Sequence[str]) -> None:
        listed = ", ".join(files[:self.LISTED]) + (f" and {len(files) - self.LISTED} more"
                                                   if len(files) > self.LISTED else "")
        super().__init__(
            f"--output-dir {path}: holds files generate did not write: {listed}. --force regenerates only the files "
            "generate wrote and never deletes or carries along a file of yours, so nothing was written. Move each "
            "out of the chart directory (a values file may stay: pass it with -f, and the chart records it and keeps "
            "it), then run generate --force again"
        )


class HelmNotFoundError(RuntimeFailure):
    """No helm binary where HELM_BIN or PATH says."""

    def __init__(self, *, tried: str) -> None:
        super().__init__(
            f"helm not found ({tried}); install helm 3.17+ or 4.x (https://helm.sh/docs/intro/install/), "
            "run `make setup` in a checkout, or set HELM_BIN to its path"
        )


class HelmCommandError(RuntimeFailure):
    """A helm command that exited non-zero."""

    def __init__(self, *, command: Sequence[str], returncode: int, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = stderr
        detail = stderr.strip() or "(no output on stderr)"
        super().__init__(f"`{' '.join(command)}` exited {returncode}:\n{detail}")


class HelmDiffMissingError(RuntimeFailure):
    """The helm-diff plugin, which `diff` runs, is not installed in the helm that would run it."""

    SOURCE = "https://github.com/databus23/helm-diff"

    def __init__(self, *, helm: str, major: int) -> None:
        # Helm 4 verifies plugin sources by default and a git URL carries no signature (helm-diff's README).
        verify = " --verify=false" if major >= 4 else ""
        super().__init__(f"diff runs the helm-diff plugin, which {helm} does not have; install it with `helm plugin "
                         f"install {self.SOURCE}{verify}` and run again")


class ChartValuesError(InputError):
    """Values that the chart's validateValues helper rejected when helm rendered it."""

    def __init__(self, *, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)  # each KEY: MESSAGE; fix: FIX
        super().__init__("the values do not fit together:\n" + "\n".join(f"  - {p}" for p in self.problems))

    @classmethod
    def from_helm(cls, error: HelmCommandError) -> HelmRdmaError:
        """Turn helm's failure into this error when the chart's own check failed; otherwise keep helm's error."""
        if VALIDATE_MARKER not in error.stderr:
            return error
        tail = error.stderr.split(VALIDATE_MARKER, 1)[1]
        return cls(problems=[line.strip()[2:] for line in tail.splitlines() if line.strip().startswith("- ")])


class OciSdkMissingError(RuntimeFailure):
    """The oci package is not installed where a provisioning command runs."""

    def __init__(self) -> None:
        super().__init__(
            "the OCI SDK (python package oci) is not installed here; install it with pip install 'helm-rdma[oci]' "
            "(the plugin: HELM_RDMA_EXTRAS=oci HELM_PLUGIN_DIR=DIR sh DIR/scripts/plugin-venv, DIR being the plugin's "
            "directory under `helm env HELM_PLUGINS`), or run provisioning from the chart's hook"
        )


class OciConfigError(InputError):
    """An OCI config file or profile that cannot be used."""

    def __init__(self, *, path: str, profile: str, problem: str) -> None:
        super().__init__(f"--oci-config {path}, profile [{profile}]: {problem}; fix the file or pass --oci-profile")


class OciAuthError(RuntimeFailure):
    """OCI refused the credentials of the auth mode in use."""

    CHECKS = {
        "apiKey": "check user, fingerprint, key_file and tenancy in the config profile, and that the key is uploaded",
        "instancePrincipal": "check that the instance is in a dynamic group that a policy allows to manage "
                             "cluster-networks and instance-configurations in the compartment",
        "workloadIdentity": "check that the cluster is an enhanced cluster and that a policy allows the workload "
                            "(namespace and service account) to manage cluster-networks in the compartment",
    }

    def __init__(self, *, auth: str, detail: str) -> None:
        super().__init__(f"OCI refused auth mode {auth}: {detail}; {self.CHECKS.get(auth, 'check the credentials')}")


class OciRequestError(RuntimeFailure):
    """An OCI API call that failed."""

    def __init__(self, *, operation: str, status: int | str, code: str, message: str, request_id: str,
                 hint: str = "") -> None:
        self.status, self.code, self.oci_message, self.request_id = status, code, message, request_id
        super().__init__(f"OCI {operation} failed: {status} {code}: {message} (opc-request-id {request_id})"
                         + (f"; {hint}" if hint else ""))


class CapacityError(RuntimeFailure):
    """OCI has no hosts for the requested shape in the availability domain."""

    def __init__(self, *, shape: str, size: int, availability_domain: str, request_id: str, left: str) -> None:
        super().__init__(
            f"OCI is out of host capacity for {size} x {shape} in {availability_domain} "
            f"(opc-request-id {request_id}). Try another availability domain, a capacity reservation, or fewer "
            f"nodes. {left}"
        )


class ClusterNetworkFailedError(RuntimeFailure):
    """A cluster network that ended TERMINATED, STOPPED or not RUNNING in time."""

    def __init__(self, *, name: str, network_id: str, state: str, detail: str) -> None:
        super().__init__(f"cluster network {name} ({network_id}) is {state}: {detail}")


class BusyNodesError(RuntimeFailure):
    """A shrink that would have to remove a node still running a pod (a serving pod of the release, or any other pod
    but a DaemonSet's, a static pod's mirror or a finished one): nothing was removed."""

    def __init__(self, *, name: str, wanted: int, idle: Sequence[str], busy: Sequence[str]) -> None:
        super().__init__(
            f"cluster network {name}: not shrunk: {wanted} node(s) must go but only {len(idle)} run no pod but "
            f"DaemonSet, static or finished ones (free: {', '.join(idle) or 'none'}; busy: {'; '.join(busy) or 'none'}"
            "). Nothing was cordoned or removed, and the shrink evicts nothing. The release's serving pods leave "
            "once the workload has shrunk; move any other pod off a busy node yourself (`kubectl drain NODE "
            "--ignore-daemonsets`, which respects PodDisruptionBudgets), then run the hook again (`helm upgrade` with "
            "the same values, or `helm-rdma provision --resize shrink`)")


class ConcurrentResizeError(RuntimeFailure):
    """Another run kept changing the cluster network while this one tried to resize it."""

    def __init__(self, *, name: str, network_id: str, tries: int) -> None:
        super().__init__(
            f"cluster network {name} ({network_id}) changed under this run {tries} times (OCI answered 412 to an "
            "If-Match, or an instance to remove had already gone): another resize is running. Let it finish, then "
            "run again: this run changed nothing it had not read first")


class ValuesCheckError(InputError):
    """Values that helm-rdma's checks (the same as `helm-rdma doctor`) reject before anything is applied."""

    def __init__(self, *, lines: Sequence[str]) -> None:
        super().__init__(f"the values fail helm-rdma's checks:\n{_indented(lines)}\n(`helm-rdma doctor` with the same "
                         "flags prints every finding)")


class ClusterCheckError(RuntimeFailure):
    """A cluster that would not run the release: the errors of `helm-rdma doctor --cluster`, found before helm runs."""

    def __init__(self, *, context: str, namespace: str, lines: Sequence[str]) -> None:
        super().__init__(f"the cluster (kube context {context}, namespace {namespace}) would not run the release:\n"
                         f"{_indented(lines)}\nnothing was installed; fix them, or pass --skip-cluster-checks to "
                         "install anyway")


class OciEndpointError(InputError):
    """An OCI endpoint override that is not an http(s) URL with a host."""

    def __init__(self, *, source: str, endpoint: str) -> None:
        super().__init__(f'{source} "{endpoint}" is not an endpoint URL; give one such as '
                         "https://iaas.us-ashburn-1.oraclecloud.com, or leave it empty for the region's endpoints")


class OciUnreachableError(RuntimeFailure):
    """OCI could not be reached: connection refused, DNS failure, time-out or TLS failure, after the retries."""

    def __init__(self, *, endpoint: str, operation: str, problem: str, check: str, seconds: float) -> None:
        super().__init__(f"cannot reach OCI at {endpoint} ({operation}): {problem}, still after {seconds:.0f}s of "
                         f"retries; check {check}")


class OciNotFoundError(OciRequestError):
    """OCI answered 404 NotAuthorizedOrNotFound: the resource is missing or the policy does not show it."""

    def __init__(self, *, operation: str, status: int | str, code: str, message: str, request_id: str,
                 auth: str, check: str) -> None:
        super().__init__(operation=operation, status=status, code=code, message=message, request_id=request_id,
                         hint=f"it does not exist, or auth mode {auth} may not see it: check {check}")


class OkeClusterError(InputError):
    """An OKE cluster that self-managed nodes cannot join as it is (basic cluster, no private endpoint)."""

    def __init__(self, *, cluster_id: str, problem: str, fix: str) -> None:
        super().__init__(f"OKE cluster {cluster_id} (clusterNetwork.oke.clusterId, --oke-cluster): {problem}; {fix}")


class PodSubnetMissingError(InputError):
    """A VCN-native (OCI_VCN_IP_NATIVE) cluster whose nodes were given no pod subnet."""

    def __init__(self, *, cluster_id: str) -> None:
        super().__init__(
            f"OKE cluster {cluster_id} uses VCN-native pod networking (OCI_VCN_IP_NATIVE), so its nodes need a pod "
            "subnet, or their pods (the GPU device plugin's too) get no IP and no GPU is ever advertised; set "
            "clusterNetwork.oke.podSubnetId (--pod-subnet) to the cluster's pod subnet OCID, and optionally "
            "clusterNetwork.oke.podNsgIds (--pod-nsg)")


class NetworkMismatchError(InputError):
    """A cluster network of this name whose nodes differ from the request in ways a resize cannot fix."""

    def __init__(self, *, name: str, network_id: str, differences: Sequence[tuple[str, str, str]],
                 deprovision: str) -> None:
        listed = "; ".join(f"{what} is {now}, asked {asked}" for what, now, asked in differences)
        super().__init__(
            f"cluster network {name} ({network_id}) exists with other nodes than asked: {listed}. Its nodes cannot "
            f"be changed in place: either give the new nodes a new name (clusterNetwork.name, --name), or delete "
            f"this network first ({deprovision}) and run again")


class NodeCounts(Protocol):
    """The nodes seen while waiting for them (cluster.kube.NodeProgress)."""

    @property
    def ready(self) -> int: ...
    @property
    def wanted(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def elapsed_seconds(self) -> float: ...
    @property
    def ready_ids(self) -> tuple[str, ...]: ...


class NodesNotReadyError(RuntimeFailure):
    """The cluster network is up but its nodes did not all join the cluster in time."""

    def __init__(self, *, name: str, network_id: str, progress: NodeCounts, selector: str, deprovision: str,
                 consoles: tuple[str, ...] = ()) -> None:
        said = "".join(f"\n{c}" for c in consoles)
        ready, wanted, seen, seconds = progress.ready, progress.wanted, progress.total, progress.elapsed_seconds
        super().__init__(
            f"{ready} of {wanted} nodes with {selector} are Ready after {seconds:.0f}s ({seen} joined the cluster). "
            f"Cluster network {name} ({network_id}) is still running and billed: look at a node's cloud-init "
            f"output (/var/log/cloud-init-output.log) and kubelet logs, run provision again to keep waiting, or "
            f"delete it: {deprovision}{said}")


class NoPodsError(RuntimeFailure):
    """A release with no pods to read in the namespace asked."""

    def __init__(self, *, release: str, namespace: str, label: str) -> None:
        super().__init__(f'no pods of release "{release}" in namespace {namespace} (label {label}={release}); check '
                         "the release name and -n/--namespace, or read saved logs with --logs DIR")


class RegistryError(RuntimeFailure):
    """A registry that did not say which digest an image tag points at (generate --pin-digests)."""

    def __init__(self, *, image: str, key: str, problem: str) -> None:
        super().__init__(
            f"{key}: cannot pin {image} to a digest: {problem}. Check the name and that the registry is reachable "
            f"(HELM_RDMA_REGISTRY_ENDPOINT names a mirror), set {key}.digest=sha256:... yourself, or leave "
            "--pin-digests off"
        )


class ModelRefError(InputError):
    """A --model that is neither a catalog alias nor a Hugging Face repository id ORG/NAME[@REVISION]."""

    def __init__(self, *, ref: str, problem: str) -> None:
        super().__init__(f'--model "{ref}": {problem}; give a catalog alias (`helm-rdma plan --help` lists them) or a '
                         "Hugging Face repository id such as Qwen/Qwen2.5-72B-Instruct or "
                         "Qwen/Qwen2.5-72B-Instruct@REVISION")


class HubRepoError(InputError):
    """A Hub repository that cannot be read as asked: gated, missing, no such revision, or not in the offline cache."""

    def __init__(self, *, repo: str, revision: str, endpoint: str, kind: str) -> None:
        where = f"{repo}@{revision}"
        messages = {
            "gated": f"{repo} is gated and this machine's token cannot read it: accept its license on {endpoint} with "
                     "your account, then set HF_TOKEN to a token of that account (or run `hf auth login`)",
            "missing": f"{repo} does not exist on {endpoint}, or is private and the token (HF_TOKEN) cannot see it: "
                       "check the spelling (ORG/NAME, as on the model's page) and the token",
            "revision": f"{repo} has no revision {revision} on {endpoint}: give a branch, tag or commit that exists "
                        f"({repo}@main)",
            "offline": f"{where}: HF_HUB_OFFLINE=1 and the Hugging Face cache holds no config.json for it: run the "
                       "same command once with the Hub reachable (it caches what the plan reads), or unset "
                       "HF_HUB_OFFLINE",
            "not-a-model": f"{where} has no config.json, so it is not a model vLLM can serve: check the repository id",
            "no-weights": f"{where}: the size of its weights could not be read: no model.safetensors.index.json with "
                          "metadata.total_size, and no *.safetensors files in the Hub's file list (which is not asked "
                          "for with HF_HUB_OFFLINE=1): vLLM loads safetensors; check the repository, or plan once with "
                          "the Hub reachable",
        }
        super().__init__(messages[kind])


class HubUnreachableError(RuntimeFailure):
    """The Hugging Face Hub (or the HF_ENDPOINT standing in for it) did not answer."""

    def __init__(self, *, endpoint: str, repo: str, problem: str) -> None:
        super().__init__(f"cannot reach the Hugging Face Hub at {endpoint} to read {repo}: {problem}; check the "
                         "network or HF_ENDPOINT, or plan offline from the Hugging Face cache with HF_HUB_OFFLINE=1")


class HubTimeoutError(RuntimeFailure):
    """The Hub (HF_ENDPOINT) took the whole time budget without answering, and the cache does not hold the file."""

    def __init__(self, *, endpoint: str, repo: str, seconds: float, variable: str) -> None:
        super().__init__(f"the Hugging Face Hub at HF_ENDPOINT={endpoint} did not answer within {seconds:g} s while "
                         f"reading {repo}: check the network and HF_ENDPOINT, give a slow mirror more time with "
                         f"{variable}=SECONDS, or plan offline from the Hugging Face cache with HF_HUB_OFFLINE=1")


class HubEndpointSettingError(InputError):
    """HF_ENDPOINT is not an http(s) URL huggingface_hub can use."""

    def __init__(self, *, value: str, problem: str) -> None:
        super().__init__(f"HF_ENDPOINT={value!r}: not a URL ({problem}); expected http(s)://HOST[:PORT] of the Hub or "
                         "a mirror; fix or unset it")


class HubEnvironmentError(RuntimeFailure):
    """A directory huggingface_hub keeps its token or cache in that cannot be used (HF_HOME, HOME, ...)."""

    def __init__(self, *, variable: str, path: str, problem: str) -> None:
        super().__init__(f"{variable}: {path}: {problem}; huggingface_hub keeps its token and cache there: point "
                         f"{variable} at a directory you can write, or unset it")


class HubSettingError(InputError):
    """A huggingface_hub setting in the environment it cannot read."""

    def __init__(self, *, variable: str, value: str, expected: str) -> None:
        super().__init__(f"{variable}={value!r}: huggingface_hub expects {expected}; fix or unset it")


class HubTimeoutSettingError(InputError):
    """The Hub's time budget variable is not a number of seconds in range."""

    def __init__(self, *, variable: str, value: str, most: int) -> None:
        super().__init__(f"{variable}={value!r}: expected the seconds every read of the Hugging Face Hub may take in "
                         f"all, above 0 and at most {most} (for example {variable}=60); fix or unset it")


class UnsupportedModelError(InputError):
    """A model whose config.json the planner cannot size (an architecture it does not know, or a field missing)."""

    def __init__(self, *, model: str, problem: str) -> None:
        super().__init__(f"{model}: {problem}, so its KV cache cannot be sized; pass --nodes N (and --max-model-len if "
                         "the context length is unknown) to size the group yourself")


class LogsDirError(InputError):
    """A --logs directory that is missing or holds no log files."""

    def __init__(self, *, path: str, problem: str) -> None:
        super().__init__(
            f"--logs {path}: {problem}; save one file per pod, named after it "
            "(kubectl logs POD --all-containers > DIR/POD.log), or omit --logs to read the cluster")


class NotServingError(RuntimeFailure):
    """The release's groups did not all serve within the timeout."""

    def __init__(self, *, release: str, namespace: str, seconds: float, line: str, pod: str | None, step: str,
                 log: str, events: str = "") -> None:
        text = f"{release} is not serving after {seconds:.0f}s: {line}"
        if pod:
            parts = [f"its events:\n{events.rstrip()}"] if events else []
            if log.strip() or not events:  # a pod that never started has no log: its events say why
                parts.append(f"the last lines of its log:\n{log.rstrip() or '  (empty)'}")
            text += (f"\n{pod} is at {step}; " + "\n".join(parts) + f"\nmore: kubectl -n {namespace} describe pod "
                     f"{pod}; kubectl -n {namespace} logs {pod} --all-containers; helm rdma diagnose {release}")
        super().__init__(text)


class NoReleaseError(RuntimeFailure):
    """Neither a Helm release nor the objects of a chart of ours under that name."""

    def __init__(self, *, release: str, namespace: str) -> None:
        super().__init__(f'no release "{release}" in namespace {namespace}: helm knows none, and no ConfigMap '
                         f"labelled app.kubernetes.io/instance={release},app.kubernetes.io/component=release is "
                         "there (charts generated before helm-rdma had it do not render it); check -n/--namespace")


class ClusterError(RuntimeFailure):
    """The cluster could not be reached or refused a request."""

    def __init__(self, *, action: str, reason: str) -> None:
        super().__init__(f"{action} failed: {reason}; check the kube context (--kube-context, KUBECONFIG) and access")


class NodesTimeout(ClusterError):
    """Fewer Ready nodes than wanted when the wait ran out (``progress`` holds the last look)."""

    def __init__(self, *, selector: str, progress: NodeCounts) -> None:
        self.selector, self.progress = selector, progress
        super().__init__(action=f"waiting for {progress.wanted} Ready nodes with {selector}",
                         reason=f"{progress.ready} Ready of {progress.total} after {progress.elapsed_seconds:.0f}s "
                                "(do the nodes join the cluster? see their cloud-init and kubelet logs)")


class PackageError(RuntimeFailure):
    """`helm package` did not write the archive its chart names."""

    def __init__(self, *, chart: Path, expected: Path) -> None:
        super().__init__(f"helm package {chart} did not write {expected}; run it by hand to see why")


class PackagePathError(InputError):
    """The archive's path beside the chart cannot take it (a directory stands there, no permission)."""

    def __init__(self, *, path: Path, chart: Path, problem: str) -> None:
        super().__init__(f"--package {path}: {problem}; the chart was written to {chart}: move or remove what "
                         "stands at the archive's name, then run generate --force --package again")


class MissingSettingError(InputError):
    """A cluster-network setting that provisioning needs and nobody gave."""

    def __init__(self, *, key: str, flag: str) -> None:
        super().__init__(f"{key} is empty: provisioning needs it; set it in the values or pass {flag}")


class StrvalsError(ValueError):
    """An argument of the --set family that helm would refuse too (resolve/ words it as a SetSyntaxError)."""


# Signals between the functions of one module, never shown to the user.

class ArgumentEnd(Exception):  # noqa: N818
    """The end of a --set-family argument: its parser stops there without an error."""


class LogUnavailable(Exception):  # noqa: N818
    """Raised by a log's line iterator when the log cannot be read for a reason worth telling (not started yet)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GroupPortsOpenError(RuntimeFailure):
    """OCI ingress rules open a hostNetwork group's own ports (no authentication) to more than the group."""

    def __init__(self, *, ports: str, lines: Sequence[str], outcome: str, fix: str) -> None:
        super().__init__(f"the group's ports ({ports}) listen on the GPU nodes' VCN addresses with no authentication "
                         "(hostNetwork): whoever these paths admit can read vLLM's broadcast socket, which sends the "
                         "token IDs of every request, and write the torch store's keys, which redirect the group's "
                         "NCCL and gloo peers and vLLM's readers, which unpickle what they receive (code in the "
                         f"serving process):\n{_indented(lines)}\n{outcome}; fix: {fix}; or "
                         "set distributed.allowOpenGroupPorts=true to accept these ports open")


class GroupPortsUncheckedError(RuntimeFailure):
    """Whether OCI's rules keep the group's ports closed could not be judged, so nothing is installed on a guess."""

    def __init__(self, *, ports: str, why: str, outcome: str, sign_in: str) -> None:
        super().__init__(f"cannot tell whether OCI's ingress rules keep the group's ports ({ports}) closed to all but "
                         f"the group (hostNetwork, no authentication on them): {why}; {outcome}; fix: make the check "
                         f"possible ({sign_in}), or set distributed.allowOpenGroupPorts=true to accept these ports "
                         "open")


class HelmArgumentError(InputError):
    """An argument after `--` that would make helm install values, manifests or a target helm-rdma never checked."""

    def __init__(self, *, argument: str, flag: str, command: str, effect: str, fix: str) -> None:
        super().__init__(f"{command} -- {clip(argument, 80)}: the arguments after -- go to helm as they are, and "
                         f"with {flag} helm would {effect}; nothing was run; fix: {fix}")


class DroppedValuesError(InputError):
    """A new chart that would put defaults back over values the chart it replaces has (see resolve/carried.py)."""

    def __init__(self, *, action: str, holder: str, lines: Sequence[str], fix: str) -> None:
        super().__init__(f"{action} would drop values {holder} has, which this run does not set:\n{_indented(lines)}"
                         f"\nnothing was changed; fix: {fix}")


class AtomicUndoError(RuntimeFailure):
    """With --atomic, the groups did not serve: the release was rolled back (or uninstalled), or that failed too."""

    def __init__(self, *, failure: str, command: str, problem: str | None, note: str = "") -> None:
        self.undone = problem is None
        done = (f"--atomic undid it: `{command}` succeeded" if problem is None else
                f"--atomic could not undo it: `{command}` failed ({problem}); run it again, and see `helm history`"
                if command else f"--atomic could not undo it: {problem}; see `helm history`")
        super().__init__(f"{failure}\n{done}" + (f"; {note}" if note else ""))


class HelmInterruptedError(RuntimeFailure):
    """A helm command that changes a release was interrupted (SIGINT, SIGTERM): the signal went on to helm."""

    # helm's global flags that name where the release is, for the commands this message suggests
    _TARGET_FLAGS = ("--namespace", "--kube-context", "--kubeconfig")

    def __init__(self, *, command: Sequence[str], signal_name: str, returncode: int | None, output: str,
                 killed: bool, grace_seconds: float, sent_name: str = "") -> None:
        self.command = tuple(command)
        sent_name = sent_name or signal_name
        verb = command[1] if len(command) > 1 else "helm"
        release = next((a for a in command[2:] if not a.startswith("-")), "RELEASE")
        target = " ".join(f"{flag} {value}" for flag, value in zip(command[:-1], command[1:], strict=True)
                          if flag in self._TARGET_FLAGS)
        where = f"{release} {target}".rstrip()
        if killed:
            ended = (f"did not end within {grace_seconds:g} s, so it was killed and may not have recorded the "
                     "release's state")
        elif returncode is not None and returncode < 0:  # a signal's default action ended it (Popen's -N)
            ended = f"ended by signal {-returncode}"
        else:
            ended = f"ended (exit {returncode})"
        last = "\n".join(output.strip().splitlines()[-5:])
        detail = f":\n{last}\n" if last else "; "
        if any(a.startswith("--dry-run") for a in command):
            fix = "it was a dry run: nothing was changed"
        elif verb == "uninstall":
            fix = (f"`helm status {where}` shows the release's state; a release left uninstalling is removed by "
                   "running the uninstall again")
        elif verb == "rollback":
            fix = (f"`helm status {where}` shows the release's state; a release left pending-rollback is cleared by "
                   "running the rollback again")
        else:
            fix = (f"`helm status {where}` shows the release's state; a release left pending-install or "
                   f"pending-upgrade refuses every later upgrade until `helm rollback {where}` (back to the last "
                   f"deployed revision) or, for a first install, `helm uninstall {where}` clears it")
        super().__init__(f"`{' '.join(command)}` was interrupted ({signal_name}): helm was sent {sent_name} once "
                         f"and {ended}{detail}next: {fix}")
