"""SigV4 for requests to the stsvend API, and the `X-Stsvend-Identity` proof (DESIGN.md section 2).

This module imports botocore, so the client imports it only on a cache miss.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError

GET_CALLER_IDENTITY_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
SERVER_ID_HEADER = "X-Stsvend-Server-Id"
REQUEST_HEADER = "X-Stsvend-Request"
PROOF_HEADER = "X-Stsvend-Identity"


class CredentialsUnavailable(Exception):
    """The ambient AWS credentials could not be loaded; the message is safe to print."""


class Signer:
    """Signs with the ambient credential chain (env, profile, SSO, container, instance role)."""

    def __init__(self, region: str, session: Any = None) -> None:
        self.region = region
        self._session = session if session is not None else botocore.session.get_session()
        self._credentials = _load_credentials(self._session)
        self._sts_endpoint: str | None = None

    def sign(self, method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """The headers to send: `headers` plus SigV4 for API Gateway (service `execute-api`)."""
        request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
        SigV4Auth(self._credentials, "execute-api", self.region).add_auth(request)
        return {str(k): str(v) for k, v in request.headers.items()}

    def sts_endpoint(self) -> str:
        """The STS endpoint botocore resolves for the region, honouring AWS_ENDPOINT_URL(_STS)."""
        if self._sts_endpoint is None:
            try:
                client = self._session.create_client("sts", region_name=self.region)
            except BotoCoreError as exc:
                raise CredentialsUnavailable(f"cannot resolve the STS endpoint: {exc}") from exc
            self._sts_endpoint = str(client.meta.endpoint_url)
        return self._sts_endpoint

    def identity_proof(self, server_id: str, binding: str) -> str:
        return build_identity_proof(
            self._credentials, self.region, self.sts_endpoint(), server_id, binding
        )


def request_binding(method: str, route: str, body: bytes) -> str:
    """The `X-Stsvend-Request` value: the API request a proof travels with (method, route path
    relative to the API base, SHA-256 of the body), which the server recomputes."""
    return f"{method.upper()} {route} {hashlib.sha256(body).hexdigest()}"


def build_identity_proof(
    credentials: Any, region: str, sts_endpoint: str, server_id: str, binding: str
) -> str:
    """A signed-but-unsent sts:GetCallerIdentity, bound to `server_id` and to one API request
    (`binding`, from `request_binding`), as the header value.

    The URL is the endpoint with path `/`, exactly what the server posts to. The proof carries every
    header that was signed except Host, which the URL implies and the server sets when forwarding.
    """
    url = sts_endpoint.rstrip("/") + "/"
    request = AWSRequest(
        method="POST",
        url=url,
        data=GET_CALLER_IDENTITY_BODY.encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            SERVER_ID_HEADER: server_id,
            REQUEST_HEADER: binding,
        },
    )
    SigV4Auth(credentials, "sts", region).add_auth(request)
    proof = {
        "method": "POST",
        "url": url,
        "headers": {str(k): str(v) for k, v in request.headers.items()},
        "body": GET_CALLER_IDENTITY_BODY,
    }
    return base64.b64encode(json.dumps(proof, separators=(",", ":")).encode()).decode("ascii")


def _load_credentials(session: Any) -> Any:
    try:
        credentials = session.get_credentials()
        # Refreshable credentials (credential_process, SSO, roles) are fetched here.
        frozen = None if credentials is None else credentials.get_frozen_credentials()
    except BotoCoreError as exc:
        raise CredentialsUnavailable(f"cannot load AWS credentials: {exc}") from exc
    if frozen is None:
        raise CredentialsUnavailable(
            "no AWS credentials found (environment, profile, SSO, container or instance role)"
        )
    return frozen
