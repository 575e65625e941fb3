"""Names from the command line that end up in Kubernetes and on disk: release names and namespaces.

helm's rule for a release name (pkg/chartutil/validate_name.go): at most 53 characters of lower-case letters,
digits, "-" and ".", each dot-separated part starting and ending with a letter or digit. The chart names its
Services after the release, and a Service name is a DNS-1035 label (no dots, a letter first: Kubernetes'
ValidateServiceName), so the commands that write or install a chart ask for that stricter form.
"""

from __future__ import annotations

import re
from typing import Any

from helm_rdma.errors import NamespaceError, ReleaseNameError

RELEASE_MAX = 53
_HELM_RELEASE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", re.ASCII)
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?", re.ASCII)
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", re.ASCII)
NAMESPACE_MAX = 63


def _suggest(name: str) -> str:
    text = re.sub(r"[^a-z0-9-]+", "-", name.lower(), flags=re.ASCII).strip("-")
    text = re.sub(r"^[0-9-]+", "", text)[:RELEASE_MAX].rstrip("-")
    return text or "llama405b"


def check_release(name: Any, *, for_chart: bool = True) -> str:
    """``name`` if helm takes it as a release name and, with ``for_chart``, the chart's Services can carry it.

    Raises:
        ReleaseNameError: The name breaks the rule, with the reason and a name that would do.
    """
    if not isinstance(name, str) or not name:
        raise ReleaseNameError(name="", problem="is empty", suggestion="llama405b")
    if len(name) > RELEASE_MAX:
        raise ReleaseNameError(name=name, problem=f"has {len(name)} characters; helm allows at most {RELEASE_MAX}",
                               suggestion=_suggest(name))
    if not _HELM_RELEASE.fullmatch(name):
        raise ReleaseNameError(name=name, problem="is not a name helm accepts: only lower-case letters, digits, "
                               "'-' and '.', starting and ending with a letter or digit", suggestion=_suggest(name))
    if for_chart and not _DNS1035_LABEL.fullmatch(name):
        raise ReleaseNameError(name=name, problem="is a name helm accepts, but the chart's Services are named after "
                               "it and Kubernetes wants a Service name without dots that starts with a letter",
                               suggestion=_suggest(name))
    return name


def check_namespace(name: Any) -> str:
    """``name`` if Kubernetes takes it as a namespace (a DNS-1123 label of at most 63 characters).

    Raises:
        NamespaceError: It is not one.
    """
    if not isinstance(name, str) or len(name) > NAMESPACE_MAX or not _DNS1123_LABEL.fullmatch(name):
        raise NamespaceError(name=str(name))
    return name
