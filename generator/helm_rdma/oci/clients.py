"""OCI clients for provisioning and the group-ports check: signers for each auth mode, one endpoint for every client,
time-outs, retries that report progress, and OCI's failures turned into our errors (a network failure or a 404 becomes
one message saying what to check, never a traceback). The SDK is imported only when a client is made.
"""

from __future__ import annotations

import configparser
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from helm_rdma.errors import (
    HelmRdmaError,
    InputError,
    OciAuthError,
    OciConfigError,
    OciEndpointError,
    OciNotFoundError,
    OciRequestError,
    OciSdkMissingError,
    OciUnreachableError,
)

# The chart's values spell the auth modes in camelCase, and that spelling is canonical everywhere; the CLI also
# accepts the snake_case spelling that earlier releases used, as an alias.
AUTH_MODES = ("apiKey", "instancePrincipal", "workloadIdentity")
AUTH_ALIASES = {"api_key": "apiKey", "instance_principal": "instancePrincipal", "workload_identity": "workloadIdentity"}

# Which client serves an operation; every other operation is Compute Management's.
SERVICES = {"get_image": "compute", "get_cluster": "container_engine", "create_kubeconfig": "container_engine",
            "capture_console_history": "compute", "get_console_history": "compute",
            "get_console_history_content": "compute", "delete_console_history": "compute",
            "get_instance": "compute", "list_vnic_attachments": "compute", "get_vnic": "virtual_network",
            "get_subnet": "virtual_network", "get_security_list": "virtual_network",
            "list_network_security_group_security_rules": "virtual_network",
            "list_network_security_group_vnics": "virtual_network"}

POLICY_CHECK = ("clusterNetwork.compartmentId (--compartment), and that a policy lets auth mode {auth} manage "
                "compute-management-family and instance-family and use virtual-network-family in it (README, "
                "\"OCI policies\")")
NOT_FOUND_CHECKS = {
    "get_cluster": "clusterNetwork.oke.clusterId (--oke-cluster), the region, and that a policy lets auth mode "
                   "{auth} use clusters (GetCluster, CreateKubeconfig) in the cluster's compartment",
    "get_image": "clusterNetwork.imageId (--image): an image OCID of this region that auth mode {auth} may read "
                 "(instance-family)",
}
NOT_FOUND_CHECKS["create_kubeconfig"] = NOT_FOUND_CHECKS["get_cluster"]
NOT_FOUND_CHECKS.update(dict.fromkeys(
    ("get_subnet", "get_security_list", "list_network_security_group_security_rules",
     "list_network_security_group_vnics"),
    "clusterNetwork.subnetId (--subnet) and clusterNetwork.nsgIds (--nsg), or the GPU nodes' VNICs: OCIDs of this "
    "region, and that a policy lets auth mode {auth} read virtual-network-family in their compartments"))


def canonical_auth(mode: str) -> str:
    """The canonical spelling of an auth mode (an alias is mapped; anything else is returned as given)."""
    return AUTH_ALIASES.get(mode, mode)


class OciAuth(NamedTuple):
    """How to reach and sign in to OCI; ``endpoint`` replaces the region's endpoint of every client."""

    mode: str = "apiKey"
    config_file: str = "~/.oci/config"
    profile: str = "DEFAULT"
    endpoint: str | None = None


class OciPatience(NamedTuple):
    """How long to wait on OCI when it does not answer, and how often to say so."""

    connect_timeout: float = 10
    read_timeout: float = 60
    retry_seconds: float = 300
    heartbeat_seconds: float = 30


DEFAULT_PATIENCE = OciPatience()


class Waiting(NamedTuple):
    """A call to OCI still without an answer (the SDK may be retrying it)."""

    operation: str
    endpoint: str
    elapsed_seconds: float
    last_error: str


def check_endpoint(endpoint: str, *, source: str) -> str:
    """``endpoint`` without a trailing slash, once it is an http(s) URL with a host.

    Raises:
        OciEndpointError: It is not (exit 2, naming ``source``: the flag or the values key).
    """
    parts = urlsplit(endpoint.strip())
    try:
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError:
        raise OciEndpointError(source=source, endpoint=endpoint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise OciEndpointError(source=source, endpoint=endpoint)
    return endpoint.strip().rstrip("/")


def _sdk() -> Any:
    try:
        import oci
    except ImportError:
        raise OciSdkMissingError() from None
    return oci


CONFIG_MAX_BYTES = 1024 * 1024  # an OCI config file or API key is a few kilobytes; /dev/zero is refused at once


def _readable(path: str, *, config_file: str, profile: str, what: str) -> None:
    """Read ``path`` (bounded), so that a file that exists but cannot be read is not reported as missing, and a
    huge, endless or binary one is refused before the SDK parses it."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(CONFIG_MAX_BYTES + 1)
    except FileNotFoundError:
        raise OciConfigError(path=config_file, profile=profile, problem=f"{what}no such file") from None
    except PermissionError:
        info = os.stat(path)
        raise OciConfigError(
            path=config_file, profile=profile,
            problem=f"{what}permission denied (owner uid {info.st_uid}, gid {info.st_gid}, mode "
                    f"{stat.S_IMODE(info.st_mode):04o}; this process runs as uid {os.getuid()}, gid {os.getgid()}); "
                    "in the chart's hook the Secret's files are readable through the pod's fsGroup") from None
    except IsADirectoryError:
        raise OciConfigError(path=config_file, profile=profile, problem=f"{what}a directory, not a file") from None
    except OSError as exc:
        raise OciConfigError(path=config_file, profile=profile, problem=f"{what}{exc.strerror}") from None
    if len(data) > CONFIG_MAX_BYTES:
        raise OciConfigError(path=config_file, profile=profile,
                             problem=f"{what}larger than {CONFIG_MAX_BYTES:,} bytes; an OCI config or key is a few "
                                     "kilobytes")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise OciConfigError(path=config_file, profile=profile,
                             problem=f"{what}not UTF-8 text (a binary file?)") from None


def _profiles(path: str) -> list[str]:
    """The profiles of the OCI config file at ``path`` (read as the SDK's config.from_file reads it: configparser
    without interpolation), DEFAULT first when the file writes it."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return []
    return [*(["DEFAULT"] if parser.defaults() else []), *parser.sections()]


def _no_profile(path: str, auth: OciAuth) -> OciConfigError:
    profiles = _profiles(path)
    return OciConfigError(path=auth.config_file, profile=auth.profile,
                          problem=f"no such profile; the file has {', '.join(profiles)}" if profiles else
                          "no such profile; the file has none")


def _credentials(oci: Any, auth: OciAuth) -> tuple[dict[str, Any], Any, str]:
    """The SDK config, the signer (None for an API key) and the tenancy OCID ("" when the auth mode hides it)."""
    if auth.mode == "apiKey":
        path = os.path.expanduser(auth.config_file)
        _readable(path, config_file=auth.config_file, profile=auth.profile, what="")
        try:
            config: dict[str, Any] = oci.config.from_file(file_location=path, profile_name=auth.profile)
            oci.config.validate_config(config)
        except oci.exceptions.ConfigFileNotFound:
            raise OciConfigError(path=auth.config_file, profile=auth.profile, problem="no such file") from None
        except oci.exceptions.ProfileNotFound:
            raise _no_profile(path, auth) from None
        except (oci.exceptions.InvalidConfig, oci.exceptions.InvalidKeyFilePath) as exc:
            if auth.profile not in _profiles(path):  # DEFAULT: configparser always has it, empty when not written
                raise _no_profile(path, auth) from None
            raise OciConfigError(path=auth.config_file, profile=auth.profile, problem=str(exc)) from None
        except configparser.Error as exc:  # the SDK reads the file with configparser: no [PROFILE] line, a bad line
            first = (str(exc).splitlines()[0] if str(exc) else type(exc).__name__).rstrip(".")
            raise OciConfigError(path=auth.config_file, profile=auth.profile,
                                 problem=f"not an OCI config file ({first}; each profile starts with a [NAME] line, "
                                 "as `oci setup config` writes it)") from None
        if config.get("key_file"):
            key = os.path.expanduser(str(config["key_file"]))
            _readable(key, config_file=auth.config_file, profile=auth.profile, what=f"key_file {key}: ")
        return config, None, str(config.get("tenancy") or "")
    if auth.mode not in AUTH_MODES:
        raise InputError(f'unknown OCI auth mode "{auth.mode}" (clusterNetwork.auth, --auth); expected one of '
                         f"{', '.join(AUTH_MODES)}")
    try:
        if auth.mode == "instancePrincipal":
            signer = oci.auth.signers.InstancePrincipalsSecurityTokenSigner()
        else:
            signer = oci.auth.signers.get_oke_workload_identity_resource_principal_signer()
    except Exception as exc:  # the signers raise many kinds: metadata service unreachable, missing token files...
        raise OciAuthError(auth=auth.mode, detail=f"cannot build its signer ({exc})") from None
    return {"region": signer.region}, signer, str(getattr(signer, "tenancy_id", "") or "")


def reporting_retry_strategy(patience: OciPatience, on_retry: Callable[[BaseException], None]) -> Any:
    """The SDK's retry rules (connection errors, time-outs, 429, 5xx, 409 IncorrectState) within
    ``patience.retry_seconds``, telling ``on_retry`` about each failed attempt before it sleeps."""
    oci = _sdk()
    checkers = oci.retry.retry_checkers
    container = checkers.RetryCheckerContainer(checkers=[
        checkers.TimeoutConnectionAndServiceErrorRetryChecker(
            service_error_retry_config=checkers.RETRYABLE_STATUSES_AND_CODES, retry_any_5xx=True),
        checkers.TotalTimeExceededRetryChecker(time_limit_seconds=patience.retry_seconds),
    ])

    jittered: Any = oci.retry.ExponentialBackOffWithDecorrelatedJitterRetryStrategy

    class Reporting(jittered):  # type: ignore[misc]
        def do_sleep(self, attempt: int, exception: BaseException) -> None:
            on_retry(exception)
            super().do_sleep(attempt, exception)

    base = min(1.0, patience.retry_seconds / 30)
    return Reporting(base_sleep_time_seconds=base, exponent_growth_factor=2,
                     max_wait_between_calls_seconds=max(base, min(20.0, patience.retry_seconds / 4)),
                     checker_container=container, decorrelated_jitter=base)


def make_clients(auth: OciAuth, *, patience: OciPatience, retry_strategy: Any) -> tuple[dict[str, Any], str]:
    """The Compute Management, Compute, Virtual Network and Container Engine clients (by service name) and the
    tenancy OCID.

    Raises:
        OciSdkMissingError: The oci package is missing.
        OciConfigError: The config file, its profile or its key cannot be used (apiKey mode).
        OciAuthError: The signer for instance principal or workload identity cannot be built.
    """
    oci = _sdk()
    config, signer, tenancy = _credentials(oci, auth)
    # No circuit breaker: a one-shot command wants each failure's own message, not "circuit open".
    kwargs: dict[str, Any] = {"retry_strategy": retry_strategy,
                              "timeout": (patience.connect_timeout, patience.read_timeout),
                              "circuit_breaker_strategy": oci.circuit_breaker.NoCircuitBreakerStrategy()}
    if signer is not None:
        kwargs["signer"] = signer
    if auth.endpoint:
        kwargs["service_endpoint"] = auth.endpoint
    clients = {
        "compute_management": oci.core.ComputeManagementClient(config, **kwargs),
        "compute": oci.core.ComputeClient(config, **kwargs),
        "virtual_network": oci.core.VirtualNetworkClient(config, **kwargs),
        "container_engine": oci.container_engine.ContainerEngineClient(config, **kwargs),
    }
    return clients, tenancy


class CountingApi:
    """Calls the SDK clients, counting calls, reporting calls that take long, and turning the SDK's exceptions into
    our errors."""

    def __init__(self, *, auth: str, patience: OciPatience, on_wait: Callable[[Waiting], None]) -> None:
        self.clients: dict[str, Any] = {}  # ``connect`` makes them, with the tenancy
        self.auth, self.tenancy, self.patience, self.on_wait = auth, "", patience, on_wait
        self.calls = 0
        self.last_error = ""

    @classmethod
    def connect(cls, auth: OciAuth, *, patience: OciPatience = DEFAULT_PATIENCE, retry_strategy: Any = None,
                on_wait: Callable[[Waiting], None] = lambda _: None) -> CountingApi:
        """Clients for ``auth`` whose retries report to the returned api (see ``make_clients`` for errors)."""
        api = cls(auth=auth.mode, patience=patience, on_wait=on_wait)
        strategy = retry_strategy or reporting_retry_strategy(patience, api.note_retry)
        api.clients, api.tenancy = make_clients(auth, patience=patience, retry_strategy=strategy)
        return api

    def note_retry(self, exc: BaseException) -> None:
        """Remember why the last attempt failed (the SDK is about to retry it)."""
        status = getattr(exc, "status", None)
        self.last_error = f"{status} {getattr(exc, 'code', '')}".strip() if status else describe_failure(exc)[0]

    def call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<operation>(*args, **kwargs).data``."""
        return self.response(operation, *args, **kwargs).data

    def raw(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        """The JSON of ``operation``'s answer, undecoded: the SDK replaces enum values it does not know (a new
        lifecycle state) by UNKNOWN_ENUM_VALUE, and the raw answer keeps their names."""
        base = self._client(operation).base_client
        base.skip_deserialization = True
        try:
            return self.call(operation, *args, **kwargs)
        finally:
            base.skip_deserialization = False

    def all_pages(self, operation: str, *args: Any, **kwargs: Any) -> list[Any]:
        """Every item of a paged list call (each page counts as one call)."""
        items: list[Any] = []
        page = None
        while True:
            if page:
                kwargs["page"] = page
            response = self.response(operation, *args, **kwargs)
            items.extend(response.data)
            page = response.next_page
            if not page:
                return items

    def endpoint(self, operation: str) -> str:
        """The URL the client of ``operation`` sends to."""
        return str(getattr(self._client(operation).base_client, "endpoint", "") or "the region's endpoint")

    def _client(self, operation: str) -> Any:
        return self.clients[SERVICES.get(operation, "compute_management")]

    def response(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        oci = _sdk()
        method: Callable[..., Any] = getattr(self._client(operation), operation)
        self.calls += 1
        self.last_error = ""
        start = time.monotonic()
        with self._heartbeat(operation, start):
            try:
                return method(*args, **kwargs)
            except oci.exceptions.ServiceError as exc:
                raise service_error(exc, operation=operation, auth=self.auth) from None
            except (oci._vendor.requests.exceptions.RequestException, ConnectionError, TimeoutError) as exc:
                problem, check = describe_failure(exc)
                raise OciUnreachableError(endpoint=self.endpoint(operation), operation=operation, problem=problem,
                                          check=check, seconds=time.monotonic() - start) from None

    @contextmanager
    def _heartbeat(self, operation: str, start: float) -> Iterator[None]:
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.patience.heartbeat_seconds):
                self.on_wait(Waiting(operation=operation, endpoint=self.endpoint(operation),
                                     elapsed_seconds=time.monotonic() - start, last_error=self.last_error))

        thread = threading.Thread(target=beat, name=f"oci-{operation}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it wraps (requests and urllib3 nest them in args, causes and contexts)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 20:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [a for a in current.args if isinstance(a, BaseException)]
        todo += [e for e in (current.__cause__, current.__context__, getattr(current, "reason", None))
                 if isinstance(e, BaseException)]
    return seen


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """What went wrong on the way to OCI, and what to check, for a connection error, time-out or TLS failure."""
    chain = _chain(exc)
    names = {type(e).__name__ for e in chain}
    text = " ".join(str(e) for e in chain).lower()
    endpoint = "the endpoint (clusterNetwork.endpoint, --oci-endpoint)"
    if names & {"SSLError", "SSLCertVerificationError", "SSLZeroReturnError"} or "certificate verify" in text:
        return ("the TLS handshake failed",
                f"{endpoint}, and that this machine trusts its certificate (a proxy that intercepts TLS needs its "
                "CA in REQUESTS_CA_BUNDLE)")
    if "NameResolutionError" in names or any(w in text for w in ("name or service not known", "failed to resolve",
                                                                  "nodename nor servname", "name resolution",
                                                                  "no address associated")):
        return ("its host name does not resolve",
                f"the region (clusterNetwork.region, the config's region), {endpoint}, and the pod's DNS")
    if "ConnectTimeout" in names or "connect timeout" in text:
        return ("connecting timed out",
                f"{endpoint}, and that this pod may reach OCI: a NAT or service gateway on the subnet's route "
                "table, security lists or NSGs, HTTPS_PROXY")
    if "ReadTimeout" in names or "read timed out" in text or "timed out" in text:
        return ("it accepted the connection but sent no answer in time",
                f"{endpoint}, and any proxy or firewall between this pod and OCI")
    if "refused" in text:
        return "connection refused", f"{endpoint} (host and port), and HTTPS_PROXY if a proxy is in use"
    if any(w in text for w in ("reset", "aborted", "remotedisconnected", "remote end closed")):
        return ("the connection was closed without an answer",
                f"{endpoint}, and any proxy or firewall between this pod and OCI")
    return type(exc).__name__, f"{endpoint} and the network between this pod and OCI"


def service_error(exc: Any, *, operation: str, auth: str) -> HelmRdmaError:
    """Our error for an ``oci.exceptions.ServiceError``."""
    if exc.status == 401:
        return OciAuthError(auth=auth, detail=f"{exc.status} {exc.code} on {operation} "
                                              f"(opc-request-id {exc.request_id})")
    if exc.status == 404:
        check = NOT_FOUND_CHECKS.get(operation, POLICY_CHECK).format(auth=auth)
        return OciNotFoundError(operation=operation, status=exc.status, code=exc.code, message=exc.message,
                                request_id=exc.request_id, auth=auth, check=check)
    return OciRequestError(operation=operation, status=exc.status, code=exc.code, message=exc.message,
                           request_id=exc.request_id)
