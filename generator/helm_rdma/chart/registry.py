"""What digest an image tag points at, asked of its registry over the registry HTTP API (OCI distribution spec).

`generate --pin-digests` uses it: HEAD /v2/<repository>/manifests/<tag> answers with the Docker-Content-Digest
header (the digest of the manifest or multi-platform index the tag names; a GET's body is hashed when a registry
omits the header). A registry that asks for a token (401 with `WWW-Authenticate: Bearer realm=...`, as Docker Hub
does) gets an anonymous one from its realm. Docker Hub names are expanded as docker does (`python` is
`docker.io/library/python`, served by registry-1.docker.io); loopback registries are spoken to over plain HTTP.
HELM_RDMA_REGISTRY_ENDPOINT (a URL) replaces every registry's endpoint: a mirror, or the tests' local server.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from helm_rdma.errors import RegistryError

ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
DOCKER_HUB = "registry-1.docker.io"
ENDPOINT_ENV = "HELM_RDMA_REGISTRY_ENDPOINT"
TIMEOUT = 30
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageName:
    """An image name split as docker splits it."""

    registry: str
    repository: str

    def endpoint(self) -> str:
        """The base URL of the registry's API."""
        override = os.environ.get(ENDPOINT_ENV)
        if override:
            return override.rstrip("/")
        if self.registry == "docker.io":
            return f"https://{DOCKER_HUB}"
        host = self.registry.rsplit(":", 1)[0]
        local = host in ("localhost", "::1") or host.startswith("127.")
        return f"{'http' if local else 'https'}://{self.registry}"


def split_name(repository: str) -> ImageName:
    """``python`` -> docker.io/library/python; ``iad.ocir.io/ns/x`` -> iad.ocir.io, ns/x (docker's rules)."""
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return ImageName(first, rest)
    if not rest:
        return ImageName("docker.io", f"library/{repository}")
    return ImageName("docker.io", repository)


def resolve_digest(*, repository: str, tag: str, key: str) -> str:
    """The digest ``repository:tag`` points at now.

    Raises:
        RegistryError: The registry did not answer with a digest (unknown name or tag, no network, refused token).
    """
    name = split_name(repository)
    url = f"{name.endpoint()}/v2/{name.repository}/manifests/{urllib.parse.quote(tag, safe='')}"
    image = f"{repository}:{tag}"
    token: str | None = None
    for method in ("HEAD", "GET"):
        try:
            try:
                digest, body = _request(url, method=method, token=token)
            except urllib.error.HTTPError as exc:  # a 401 with a bearer challenge: once more, with a token
                challenge = exc.headers.get("WWW-Authenticate", "") if exc.headers else ""
                if exc.code != 401 or not challenge.lower().startswith("bearer") or token is not None:
                    raise
                token = _token(challenge, image=image, key=key)
                digest, body = _request(url, method=method, token=token)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RegistryError(image=image, key=key, problem=_why(exc)) from None
        if digest is None and body is not None:
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if digest is not None:
            if not _DIGEST.match(digest):
                raise RegistryError(image=image, key=key, problem=f"the registry answered {digest!r}, not a sha256 "
                                    "digest")
            return digest
    raise RegistryError(image=image, key=key, problem="the registry sent no digest")


def _request(url: str, *, method: str, token: str | None) -> tuple[str | None, bytes | None]:
    headers = {"Accept": ACCEPT, "User-Agent": "helm-rdma"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 (http(s) only, see endpoint)
        body = response.read() if method == "GET" else None
        return response.headers.get("Docker-Content-Digest"), body


def _token(challenge: str, *, image: str, key: str) -> str:
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    realm = params.pop("realm", "")
    if not realm.startswith(("https://", "http://")):
        raise RegistryError(image=image, key=key, problem=f"the registry asked for a token with no usable realm "
                            f"({challenge!r})")
    query = urllib.parse.urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
    try:
        with urllib.request.urlopen(f"{realm}?{query}", timeout=TIMEOUT) as response:  # noqa: S310
            answer = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RegistryError(image=image, key=key, problem=f"no anonymous token from {realm}: {_why(exc)}") from None
    token = answer.get("token") or answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise RegistryError(image=image, key=key, problem=f"{realm} sent no token")
    return token


def _why(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code in (401, 403):
            return f"the registry refused access ({exc.code}; a private repository needs its digest set by hand)"
        if exc.code == 404:
            return "the registry has no such repository or tag (404)"
        return f"the registry answered {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"the registry could not be reached ({exc.reason})"
    return str(exc) or type(exc).__name__
