"""AWS clients, created on first use and kept while the Lambda is warm.

Endpoints come from botocore's own resolution, so the standard `AWS_ENDPOINT_URL*` variables
point them at the local emulator; nothing here ever takes a host from a caller.
"""

from __future__ import annotations

import gc
import threading
from typing import Any

_CONFIG_ARGS: dict[str, Any] = {
    "retries": {"mode": "standard", "total_max_attempts": 3},
    "connect_timeout": 2,
    "read_timeout": 5,
    "max_pool_connections": 20,
}


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
        # garbage collections in the middle of that rescan it again and again (~30 ms of a cold
        # start). Collect nothing while it is built, then freeze what exists (it lives as long as
        # the process) so that later collections, on the warm path too, skip it.
        collecting = gc.isenabled()
        gc.disable()
        try:
            from botocore.config import Config

            if self._session is None:
                import botocore.session

                # One session for every client: each new session reads and parses botocore's
                # endpoint data again (~15 ms of a cold start).
                self._session = botocore.session.get_session()
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
