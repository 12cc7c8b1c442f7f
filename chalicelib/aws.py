"""AWS clients, created on first use and kept while the Lambda is warm.

Endpoints come from botocore's own resolution, so the standard `AWS_ENDPOINT_URL*` variables
point them at the local emulator; nothing here ever takes a host from a caller.

Service models: the deployment package built the documented way (`make package-prep`) holds
botocore service models cut down to the operations the function's role may call
(PACKAGED_MODELS, next to chalicelib/ in the task root). botocore finds them before its own, for
those services only; every other service, and a checkout without them, gets botocore's own.
"""

from __future__ import annotations

import gc
import os
import threading
from typing import Any

# Written by tools/package_prep.py into vendor/, which Chalice puts at the package's root.
PACKAGED_MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "botocore_models")

_CONFIG_ARGS: dict[str, Any] = {
    "retries": {"mode": "standard", "total_max_attempts": 3},
    "connect_timeout": 2,
    "read_timeout": 5,
    "max_pool_connections": 20,
}


def _loader(session: Any) -> Any:
    """botocore's data loader, looking first in the package's cut-down models (if any), and
    checking that a service exists in that service's own directories: botocore's Loader lists all
    of its 400+ service directories (a listdir and stats each) the first time it loads each kind
    of model, only to check a service name."""
    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import Loader, instance_cache

    class ServiceDirectoryLoader(Loader):  # type: ignore[misc]
        @instance_cache  # type: ignore[untyped-decorator]
        def load_service_model(
            self, service_name: str, type_name: str, api_version: str | None = None
        ) -> Any:
            try:
                latest = self.determine_latest_version(service_name, type_name)
            except DataNotFoundError:
                # Unknown here: botocore's own check raises its UnknownServiceError.
                return super().load_service_model(service_name, type_name, api_version)
            version = api_version or latest
            model = self.load_data(os.path.join(service_name, version, type_name))
            self._extras_processor.process(model, self._find_extras(service_name, type_name, version))
            return model

    configured = session.get_config_variable("data_path")
    paths = [PACKAGED_MODELS] if os.path.isdir(PACKAGED_MODELS) else []
    paths += [os.path.expanduser(os.path.expandvars(p)) for p in (configured or "").split(os.pathsep) if p]
    return ServiceDirectoryLoader(extra_search_paths=paths)


class AwsClients:
    def __init__(self, region: str) -> None:
        self._region = region
        self._clients: dict[str, Any] = {}
        self._session: Any = None
        self._lock = threading.Lock()
        self._http: Any = None

    def client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    client = self._create(service)
                    self._clients[service] = client
        return client

    def _create(self, service: str) -> Any:
        # Loading botocore and its JSON models allocates a large, permanent object graph; cyclic
        # garbage collections in the middle of that rescan it again and again, on the cold path
        # (bench/README.md, cold start). Collect nothing while it is built, then freeze what exists
        # (it lives as long as the process) so that later collections, on the warm path too, skip it.
        collecting = gc.isenabled()
        gc.disable()
        try:
            from botocore.config import Config

            if self._session is None:
                import botocore.session

                # One session for every client: each new session reads and parses botocore's
                # endpoint data again.
                self._session = botocore.session.get_session()
                self._session.register_component("data_loader", _loader(self._session))
            return self._session.create_client(
                service, region_name=self._region, config=Config(**_CONFIG_ARGS)
            )
        finally:
            if collecting:
                gc.freeze()
                gc.enable()

    def sts(self) -> Any:
        return self.client("sts")

    def dynamodb(self) -> Any:
        return self.client("dynamodb")

    def sts_endpoint(self) -> str:
        return str(self.sts().meta.endpoint_url)

    def post(self, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """POST to an endpoint this module resolved itself (the STS endpoint for identity proofs)."""
        import urllib3

        if self._http is None:
            self._http = urllib3.PoolManager(
                maxsize=_CONFIG_ARGS["max_pool_connections"],
                timeout=urllib3.Timeout(connect=2.0, read=5.0),
                # One upstream call per request: a failure is a 503 and the caller retries, so a
                # bad proof can never make the service call STS again and again.
                retries=False,
            )
        try:
            response = self._http.request(
                "POST", url, body=body, headers=headers, redirect=False, preload_content=True
            )
        except urllib3.exceptions.HTTPError as exc:
            from chalicelib.errors import ServiceUnavailable

            raise ServiceUnavailable("STS could not be reached to verify the caller; try again") from exc
        except (ValueError, UnicodeError) as exc:  # headers http.client will not send
            from chalicelib.errors import NotAuthenticated

            raise NotAuthenticated("the identity proof's headers cannot be sent") from exc
        return int(response.status), bytes(response.data[:65536])
