"""OCI clients for provisioning: signers for each auth mode, the service endpoint, retries, and error mapping.

Only the provisioning commands import this module, so `template`, `plan` and `install` never load the OCI SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from .errors import HelmRdmaError, OciAuthError, OciConfigError, OciRequestError, OciSdkMissingError

AUTH_MODES = ("api_key", "instance_principal", "workload_identity")
T = TypeVar("T")


class OciAuth(NamedTuple):
    """How to reach and sign in to OCI."""

    mode: str = "api_key"
    config_file: str = "~/.oci/config"
    profile: str = "DEFAULT"
    endpoint: str | None = None


def _sdk() -> Any:
    try:
        import oci
    except ImportError:
        raise OciSdkMissingError() from None
    return oci


def compute_management_client(auth: OciAuth, *, retry_strategy: Any = None) -> Any:
    """An ``oci.core.ComputeManagementClient`` for ``auth``, retrying throttling and server errors.

    Raises:
        OciSdkMissingError: The oci package is missing.
        OciConfigError: The config file or profile cannot be used (api_key mode).
        OciAuthError: The signer for instance principal or workload identity cannot be built.
    """
    oci = _sdk()
    kwargs: dict[str, Any] = {"retry_strategy": retry_strategy or oci.retry.DEFAULT_RETRY_STRATEGY}
    if auth.endpoint:
        kwargs["service_endpoint"] = auth.endpoint
    if auth.mode == "api_key":
        try:
            config = oci.config.from_file(file_location=auth.config_file, profile_name=auth.profile)
            oci.config.validate_config(config)
        except oci.exceptions.ConfigFileNotFound:
            raise OciConfigError(path=auth.config_file, profile=auth.profile, problem="no such file") from None
        except oci.exceptions.ProfileNotFound:
            raise OciConfigError(path=auth.config_file, profile=auth.profile, problem="no such profile") from None
        except (oci.exceptions.InvalidConfig, oci.exceptions.InvalidKeyFilePath) as exc:
            raise OciConfigError(path=auth.config_file, profile=auth.profile, problem=str(exc)) from None
        return oci.core.ComputeManagementClient(config, **kwargs)
    try:
        if auth.mode == "instance_principal":
            signer = oci.auth.signers.InstancePrincipalsSecurityTokenSigner()
        elif auth.mode == "workload_identity":
            signer = oci.auth.signers.get_oke_workload_identity_resource_principal_signer()
        else:
            raise OciConfigError(path=auth.config_file, profile=auth.profile,
                                 problem=f"unknown auth mode {auth.mode}; expected one of {', '.join(AUTH_MODES)}")
    except HelmRdmaError:
        raise
    except Exception as exc:  # the signers raise many kinds: metadata service unreachable, missing token files...
        raise OciAuthError(auth=auth.mode, detail=f"cannot build its signer ({exc})") from None
    return oci.core.ComputeManagementClient({"region": signer.region}, signer=signer, **kwargs)


class CountingApi:
    """Calls the SDK client, counting calls and turning ServiceErrors into our errors."""

    def __init__(self, client: Any, *, auth: str) -> None:
        self.client = client
        self.auth = auth
        self.calls = 0

    def call(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        """``client.<operation>(*args, **kwargs).data``."""
        return self.response(operation, *args, **kwargs).data

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

    def response(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        oci = _sdk()
        method: Callable[..., Any] = getattr(self.client, operation)
        self.calls += 1
        try:
            return method(*args, **kwargs)
        except oci.exceptions.ServiceError as exc:
            raise service_error(exc, operation=operation, auth=self.auth) from None


def service_error(exc: Any, *, operation: str, auth: str) -> HelmRdmaError:
    """Our error for an ``oci.exceptions.ServiceError``."""
    if exc.status == 401:
        return OciAuthError(auth=auth, detail=f"{exc.status} {exc.code} on {operation} "
                                              f"(opc-request-id {exc.request_id})")
    return OciRequestError(operation=operation, status=exc.status, code=exc.code, message=exc.message,
                           request_id=exc.request_id)
