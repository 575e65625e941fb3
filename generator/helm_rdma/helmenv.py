"""What helm tells its plugins through the environment, where helm-rdma keeps installed charts, and its own cache.

Helm strips its global flags (-n/--namespace, --kube-context, --kubeconfig, --debug) from a plugin's arguments and
passes them as HELM_NAMESPACE, HELM_KUBECONTEXT, KUBECONFIG and HELM_DEBUG; HELM_BIN is the helm that called us. Its
connection overrides (--kube-apiserver, --kube-token, --kube-ca-file, --kube-insecure-skip-tls-verify,
--kube-tls-server-name, --kube-as-user, --kube-as-group) arrive as HELM_KUBEAPISERVER, HELM_KUBETOKEN, HELM_KUBECAFILE,
HELM_KUBEINSECURE_SKIP_TLS_VERIFY, HELM_KUBETLS_SERVER_NAME, HELM_KUBEASUSER and HELM_KUBEASGROUPS (helm
pkg/cli/environment.go, New and EnvVars); the helm we run reads them from the same environment, and helm-rdma's own
cluster checks apply them over the kubeconfig as helm does (cluster/kube.py), so both talk to one API server as one
user.
A KUBECONFIG that lists several files (a:b) is left to helm's environment: helm's --kubeconfig names one file.

helm-rdma's own cache (HELM_RDMA_CACHE, else XDG_CACHE_HOME/helm-rdma, else ~/.cache/helm-rdma) only ever holds
shortcuts (shipped documents already checked, helm binaries already asked their version), each keyed by what it was
made from: an unwritable or emptied cache only means doing the work again.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helm_rdma.errors import InputError
from helm_rdma.names import check_namespace, check_release


@dataclass(frozen=True)
class KubeOverrides:
    """helm's connection overrides, applied over the kubeconfig (k8s.io/cli-runtime genericclioptions.ConfigFlags,
    which helm binds them to): the API server, a bearer token, the CA, TLS checks, and whom to impersonate."""

    api_server: str = ""
    token: str = ""
    ca_file: str = ""
    tls_server_name: str = ""
    insecure: bool = False
    as_user: str = ""
    as_groups: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> KubeOverrides | None:
        """The overrides helm passed (each variable is set for every plugin, empty when unused); None when none."""
        found = cls(api_server=env.get("HELM_KUBEAPISERVER", ""), token=env.get("HELM_KUBETOKEN", ""),
                    ca_file=env.get("HELM_KUBECAFILE", ""), tls_server_name=env.get("HELM_KUBETLS_SERVER_NAME", ""),
                    insecure=env.get("HELM_KUBEINSECURE_SKIP_TLS_VERIFY", "").lower() in ("1", "t", "true"),
                    as_user=env.get("HELM_KUBEASUSER", ""),
                    as_groups=tuple(g.strip() for g in env.get("HELM_KUBEASGROUPS", "").split(",") if g.strip()))
        return None if found == cls() else found


@dataclass(frozen=True)
class HelmEnv:
    """The cluster coordinates and settings a command passes on to helm."""

    namespace: str | None = None
    kube_context: str | None = None
    kubeconfig: str | None = None
    debug: bool = False
    cache_home: Path = Path.home() / ".cache" / "helm"
    overrides: KubeOverrides | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *, namespace: str | None = None) -> HelmEnv:
        """Read the environment helm sets for plugins; an explicit ``namespace`` wins over HELM_NAMESPACE.

        Raises:
            NamespaceError: The namespace is not one Kubernetes accepts.
        """
        env = os.environ if environ is None else environ
        chosen = namespace or env.get("HELM_NAMESPACE") or None
        return cls(
            namespace=check_namespace(chosen) if chosen is not None else None,
            kube_context=env.get("HELM_KUBECONTEXT") or None,
            kubeconfig=env.get("KUBECONFIG") or None,
            debug=env.get("HELM_DEBUG", "").lower() in ("1", "true"),
            cache_home=_cache_home(env),
            overrides=KubeOverrides.from_environ(env),
        )

    def global_flags(self) -> list[str]:
        """helm's global flags that carry these settings to the helm we call."""
        flags = []
        if self.namespace:
            flags += ["--namespace", self.namespace]
        if self.kube_context:
            flags += ["--kube-context", self.kube_context]
        if self.kubeconfig and os.pathsep not in self.kubeconfig:
            # --kubeconfig is one file; a list (a:b, kubectl's merge) reaches helm as KUBECONFIG in its environment,
            # which it splits and merges as kubectl does
            flags += ["--kubeconfig", self.kubeconfig]
        if self.debug:
            flags.append("--debug")
        return flags

    def chart_cache(self, release: str) -> Path:
        """Where the chart of an installed release is kept: $HELM_CACHE_HOME/rdma/<namespace>/<release>.

        Raises:
            ReleaseNameError, NamespaceError: A name that is not helm's or Kubernetes', so never a path of its own.
            InputError: The path would leave $HELM_CACHE_HOME/rdma (a symbolic link pointing elsewhere).
        """
        check_release(release, for_chart=False)
        namespace = check_namespace(self.namespace or "default")
        root = (self.cache_home / "rdma").resolve()
        path = (root / namespace / release).resolve()
        if not path.is_relative_to(root):
            raise InputError(f"the kept chart of release {release} would be {path}, outside {root}; remove the "
                             "symbolic link that leads there")
        return path


def _cache_home(env: Mapping[str, str]) -> Path:
    if env.get("HELM_CACHE_HOME"):
        return Path(env["HELM_CACHE_HOME"])
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "helm"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "helm"
    return Path.home() / ".cache" / "helm"


def cache_dir(part: str) -> Path:
    """The directory of one kind of cache entry (``part``) under helm-rdma's cache."""
    base = os.environ.get("HELM_RDMA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "helm-rdma")
    return Path(base) / part


def _cache_file(part: str, key: str) -> Path:
    return cache_dir(part) / f"{zlib.crc32(key.encode()):08x}.json"


def cache_get(part: str, key: str) -> dict[str, Any] | None:
    """The entry cached under ``key`` in ``part``, or None (the full key is stored: a crc32 clash only misses)."""
    try:
        entry = json.loads(_cache_file(part, key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("key") == key else None


def cache_put(part: str, key: str, entry: dict[str, Any]) -> None:
    """Cache ``entry`` under ``key`` in ``part``, atomically; an unwritable cache only means a miss next time."""
    target = _cache_file(part, key)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**entry, "key": key}), encoding="utf-8")
        os.replace(tmp, target)
    except OSError:
        pass
