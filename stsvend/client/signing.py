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

from stsvend.client.reentry import recursion_tag

GET_CALLER_IDENTITY_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
SERVER_ID_HEADER = "X-Stsvend-Server-Id"
REQUEST_HEADER = "X-Stsvend-Request"
PROOF_HEADER = "X-Stsvend-Identity"
# The providers of botocore's default chain that do not read a profile: what stsvend signs with when
# the selected profile is the one running stsvend.
PROFILELESS_PROVIDERS = ("env", "assume-role-with-web-identity", "container-role", "iam-role")


class CredentialsUnavailable(Exception):
    """The ambient AWS credentials could not be loaded; the message is safe to print."""


class _Recursion(Exception):
    """Loading a profile's credentials ran stsvend (it refused at once, naming this run's marker)."""


class Source:
    """Where stsvend's own credentials came from: `profile` (None for the profile-less chain:
    environment, web identity, container, instance role), botocore's `method`, and the profiles
    passed over because loading them ran stsvend (`skipped`)."""

    __slots__ = ("session", "credentials", "method", "profile", "skipped")

    def __init__(self, session: Any, credentials: Any, method: str, profile: str | None,
                 skipped: tuple[str, ...]) -> None:
        self.session = session
        self.credentials = credentials
        self.method = method
        self.profile = profile
        self.skipped = skipped

    def describe(self) -> str:
        where = f"profile {self.profile!r}" if self.profile else "the chain without a profile"
        return f"{where} ({self.method})"


class Signer:
    """Signs with the ambient credentials (`resolve_source`)."""

    def __init__(
        self,
        region: str,
        session: Any = None,
        source_profile: str | None = None,
        env: Mapping[str, str] | None = None,
        marker: str = "",
    ) -> None:
        self.region = region
        if session is None:
            self.source = resolve_source(source_profile, os.environ if env is None else env, marker)
        else:
            self.source = Source(session, _load_credentials(session), "given", None, ())
        self._session = self.source.session
        self._credentials = self.source.credentials
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


def resolve_source(source_profile: str | None, env: Mapping[str, str], marker: str = "") -> Source:
    """The credentials that sign stsvend's requests, found where the SDK would find them.

    `--source-profile NAME` names the profile, as the CLI's `source_profile`. Without it: the
    selected profile (AWS_PROFILE, AWS_DEFAULT_PROFILE, else `default`) with the SDK's whole chain;
    if loading it runs stsvend (stsvend was run *for* that profile), the chain as it would be
    without AWS_PROFILE, which reads `[default]`; if that runs stsvend too, the chain without any
    profile (environment keys, web identity, container, instance role). A profile "runs stsvend"
    when loading it started an stsvend that saw this run's `marker` in its environment and
    refused (stsvend.client.reentry.RESOLVING_ENV): the run itself, never a word in a command line.
    """
    if source_profile:
        session = botocore.session.Session(profile=source_profile)
        if source_profile not in _profiles(session):
            raise CredentialsUnavailable(
                f"--source-profile {source_profile!r}: no such profile in the AWS config or "
                "credentials file"
            )
        try:
            return _source(session, source_profile, marker, ())
        except _Recursion:
            raise CredentialsUnavailable(
                f"--source-profile {source_profile!r} runs stsvend itself (loading it ran "
                "stsvend): name the profile that holds this machine's own credentials"
            ) from None
    selected = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    skipped: tuple[str, ...] = ()
    if selected != "default":
        try:
            return _source(botocore.session.Session(), selected, marker, skipped)
        except _Recursion:
            skipped += (selected,)
    # As the SDK without AWS_PROFILE / AWS_DEFAULT_PROFILE: the default profile's chain.
    unselected: dict[str, Any] = {"profile": (None, [], None, None)}
    try:
        return _source(botocore.session.Session(session_vars=unselected), "default", marker, skipped)
    except _Recursion:
        skipped += ("default",)
    session = botocore.session.Session(session_vars=unselected)
    resolver = session.get_component("credential_provider")
    resolver.providers = [p for p in resolver.providers if p.METHOD in PROFILELESS_PROVIDERS]
    return _source(session, None, marker, skipped)


def _source(session: Any, profile: str | None, marker: str, skipped: tuple[str, ...]) -> Source:
    try:
        credentials = session.get_credentials()
        # Refreshable credentials (credential_process, SSO, roles) are fetched here.
        frozen = None if credentials is None else credentials.get_frozen_credentials()
    except BotoCoreError as exc:
        if marker and recursion_tag(marker) in str(exc):
            raise _Recursion from None
        raise CredentialsUnavailable(f"cannot load AWS credentials: {exc}") from exc
    if frozen is None:
        raise CredentialsUnavailable(_nothing_found(skipped))
    method = str(getattr(credentials, "method", "") or "unknown")
    _check(frozen)
    return Source(session, frozen, method, None if method in PROFILELESS_PROVIDERS else profile,
                  skipped)


def _nothing_found(skipped: tuple[str, ...]) -> str:
    if not skipped:
        return ("no AWS credentials found (environment, profile, SSO, container or instance role;"
                " stsvend doctor shows where it looked)")
    names = " and ".join(repr(name) for name in skipped)
    return (
        f"no AWS credentials found outside profile {names}, whose credential_process runs "
        "stsvend (a profile must not use stsvend as its credential_process for stsvend's own "
        "credentials): pass --source-profile NAME naming the profile with this machine's own "
        "credentials, or provide them in [default], the environment, by web identity, a "
        "container or an instance role (stsvend doctor --profile NAME shows where it looked)"
    )


def _profiles(session: Any) -> dict[str, Any]:
    try:
        profiles = session.full_config.get("profiles", {})
    except BotoCoreError as exc:
        raise CredentialsUnavailable(f"cannot read the AWS config files: {exc}") from exc
    return profiles if isinstance(profiles, dict) else {}


def _load_credentials(session: Any) -> Any:
    return _source(session, None, "", ()).credentials


def _check(frozen: Any) -> None:
    problem = credentials_problem(frozen.access_key, frozen.secret_key, frozen.token)
    if problem:
        raise CredentialsUnavailable(f"the ambient AWS credentials are malformed: {problem}")


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
