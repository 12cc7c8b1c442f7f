"""SigV4 for requests to the stsvend API, and the `X-Stsvend-Identity` proof (docs/design.md section 2).

This module imports botocore, so the client imports it only on a cache miss.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError

GET_CALLER_IDENTITY_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
SERVER_ID_HEADER = "X-Stsvend-Server-Id"
REQUEST_HEADER = "X-Stsvend-Request"
PROOF_HEADER = "X-Stsvend-Identity"
# The providers of botocore's default chain that do not read a profile: what stsvend signs with when
# the selected profile is the one running stsvend.
PROFILELESS_PROVIDERS = ("env", "assume-role-with-web-identity", "container-role", "iam-role")


class CredentialsUnavailable(Exception):
    """The ambient AWS credentials could not be loaded; the message is safe to print."""


class Signer:
    """Signs with the ambient credentials (`ambient_session`)."""

    def __init__(
        self,
        region: str,
        session: Any = None,
        source_profile: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.region = region
        if session is None:
            session, skipped = ambient_session(source_profile, os.environ if env is None else env)
        else:
            skipped = None
        self._session = session
        self._credentials = _load_credentials(session, skipped)
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


def runs_stsvend(profile: Mapping[str, Any]) -> bool:
    """Whether a profile's credential_process runs stsvend (it names it: the command or its
    module); such a profile is the one invoking stsvend, never a source of its own credentials."""
    return "stsvend" in str(profile.get("credential_process", ""))


def ambient_session(source_profile: str | None, env: Mapping[str, str]) -> tuple[Any, str | None]:
    """The botocore session whose credentials sign stsvend's requests, and the name of the selected
    profile it skipped (None if none was).

    As the CLI's `source_profile`: `--source-profile NAME` names the profile, which must not run
    stsvend itself. Without it, the profile the SDKs selected (AWS_PROFILE, AWS_DEFAULT_PROFILE,
    else `default`) is used unless its credential_process runs stsvend: then stsvend was run *for*
    that profile, and its credentials come from the chain without any profile (environment keys,
    web identity, container, instance metadata), never from the profile that is waiting for it.
    """
    if source_profile:
        session = botocore.session.Session(profile=source_profile)
        profiles = _profiles(session)
        if source_profile not in profiles:
            raise CredentialsUnavailable(
                f"--source-profile {source_profile!r}: no such profile in the AWS config or "
                "credentials file"
            )
        if runs_stsvend(profiles[source_profile]):
            raise CredentialsUnavailable(
                f"--source-profile {source_profile!r} runs stsvend itself (its credential_process): "
                "name the profile that holds this machine's own credentials"
            )
        return session, None
    session = botocore.session.Session()
    selected = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    if not runs_stsvend(_profiles(session).get(selected, {})):
        return session, None
    resolver = session.get_component("credential_provider")
    resolver.providers = [p for p in resolver.providers if p.METHOD in PROFILELESS_PROVIDERS]
    return session, selected


def _profiles(session: Any) -> dict[str, Any]:
    try:
        profiles = session.full_config.get("profiles", {})
    except BotoCoreError as exc:
        raise CredentialsUnavailable(f"cannot read the AWS config files: {exc}") from exc
    return profiles if isinstance(profiles, dict) else {}


def _load_credentials(session: Any, skipped: str | None = None) -> Any:
    try:
        credentials = session.get_credentials()
        # Refreshable credentials (credential_process, SSO, roles) are fetched here.
        frozen = None if credentials is None else credentials.get_frozen_credentials()
    except BotoCoreError as exc:
        raise CredentialsUnavailable(f"cannot load AWS credentials: {exc}") from exc
    if frozen is None and skipped is not None:
        raise CredentialsUnavailable(
            f"no AWS credentials found outside profile {skipped!r}, whose credential_process runs "
            "stsvend (a profile must not use stsvend as its credential_process for stsvend's own "
            "credentials): pass --source-profile NAME naming the profile with this machine's own "
            "credentials, or provide them in the environment, by web identity, a container or "
            "an instance role"
        )
    if frozen is None:
        raise CredentialsUnavailable(
            "no AWS credentials found (environment, profile, SSO, container or instance role)"
        )
    problem = credentials_problem(frozen.access_key, frozen.secret_key, frozen.token)
    if problem:
        raise CredentialsUnavailable(f"the ambient AWS credentials are malformed: {problem}")
    return frozen


def credentials_problem(access_key: Any, secret_key: Any, token: Any) -> str | None:
    """What is wrong with ambient credentials, naming the field, never quoting a value: they go
    into HTTP headers, where a CR/LF or a non-ASCII character would fail (with the value)."""
    if not (isinstance(access_key, str) and 0 < len(access_key) <= 128 and access_key.isascii()
            and access_key.isalnum()):
        return "the access key id is not 1-128 ASCII letters and digits"
    if not (isinstance(secret_key, str) and _is_token_text(secret_key)):
        return "the secret access key is not printable ASCII without spaces"
    if token and not (isinstance(token, str) and _is_token_text(token)):  # "": long-term keys
        return "the session token (AWS_SESSION_TOKEN?) is not printable ASCII without spaces"
    return None


def _is_token_text(value: str) -> bool:
    return 0 < len(value) <= 65536 and value.isascii() and value.isprintable() and " " not in value
