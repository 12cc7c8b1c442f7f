"""The Python library: stsvend credentials for internal tools, without running a subprocess.

    import stsvend

    session = stsvend.session(
        role_arn="arn:aws:iam::222222222222:role/deployer",
        tags={"build-id": "81"},
        api_url="https://API-ID.execute-api.eu-west-1.amazonaws.com/api",  # or $STSVEND_API_URL
    )
    session.client("ec2").describe_instances()

`session()` returns a `boto3.Session` (boto3 must be installed), `botocore_session()` a
`botocore.session.Session`; both sessions' credentials are vended by stsvend (signed with the
ambient AWS credentials, as the command does) and vended again with the same request before they
expire (stsvend.client.renewal), so a long-lived client keeps working. `vend()` is the call they make: one
signed POST /credentials, returned as `VendedCredentials`. Failures raise `CommandError` with the
service's `code` and `message` (never a secret).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from stsvend.client.cache import Answer, parse_expiration
from stsvend.client.calls import vend as vend_answer
from stsvend.client.location import api_url as resolve_api_url
from stsvend.client.location import resolve_region, server_id_for
from stsvend.client.renewal import RenewingCredentials, check_window
from stsvend.errors import CommandError

if TYPE_CHECKING:
    import boto3
    import botocore.session

_LOG = logging.getLogger("stsvend")
_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = ["CommandError", "VendedCredentials", "botocore_session", "session", "vend"]


@dataclass(frozen=True)
class VendedCredentials:
    """One answer of POST /credentials. The secret key and the token are left out of `repr`."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime
    assumed_role_arn: str
    role_session_name: str
    source_identity: str
    request_id: str

    @classmethod
    def from_answer(cls, answer: Answer) -> VendedCredentials:
        expiration = parse_expiration(answer["Expiration"])
        assert expiration is not None  # the answer was checked when it was vended
        return cls(
            access_key_id=answer["AccessKeyId"],
            secret_access_key=answer["SecretAccessKey"],
            session_token=answer["SessionToken"],
            expiration=expiration,
            assumed_role_arn=str(answer.get("AssumedRoleArn", "")),
            role_session_name=str(answer.get("RoleSessionName", "")),
            source_identity=str(answer.get("SourceIdentity", "")),
            request_id=str(answer.get("RequestId", "")),
        )


class _Request:
    """Where and what to ask, settled once from the arguments and the environment."""

    def __init__(
        self,
        role_arn: str,
        api_url_: str | None,
        api_region: str | None,
        duration_seconds: int | None,
        tags: Mapping[str, str] | None,
        session_name: str | None,
        server_id: str | None,
        source_profile: str | None,
    ) -> None:
        env = os.environ
        self.source_profile = source_profile
        self.url = resolve_api_url(api_url_, env)
        self.region = resolve_region(api_region, self.url, env)
        self.server_id = server_id_for(self.url, server_id, env)
        self.env = env
        self.body: dict[str, Any] = {"role_arn": role_arn}
        if duration_seconds is not None:
            self.body["duration_seconds"] = duration_seconds
        if tags:
            self.body["tags"] = dict(tags)
        if session_name is not None:
            self.body["session_name"] = session_name

    def vend(self) -> Answer:
        return vend_answer(self.url, self.region, self.env, self.body, self.server_id, self.source_profile)


def vend(
    role_arn: str,
    *,
    api_url: str | None = None,
    api_region: str | None = None,
    duration_seconds: int | None = None,
    tags: Mapping[str, str] | None = None,
    session_name: str | None = None,
    server_id: str | None = None,
    source_profile: str | None = None,
) -> VendedCredentials:
    """Credentials for `role_arn`, vended now (no cache). `api_url` defaults to $STSVEND_API_URL,
    `api_region` (the region signed for) to the API URL's, else $AWS_REGION; `server_id` (what
    identity proofs name) to $STSVEND_SERVER_ID, else the API URL's base, as the command's;
    `source_profile` names the profile whose credentials sign (the command's --source-profile),
    else the ambient chain as the command takes it."""
    request = _Request(
        role_arn, api_url, api_region, duration_seconds, tags, session_name, server_id, source_profile
    )
    return VendedCredentials.from_answer(request.vend())


def botocore_session(
    role_arn: str,
    *,
    api_url: str | None = None,
    api_region: str | None = None,
    duration_seconds: int | None = None,
    tags: Mapping[str, str] | None = None,
    session_name: str | None = None,
    server_id: str | None = None,
    source_profile: str | None = None,
    refresh_window: float | None = None,
    region_name: str | None = None,
) -> botocore.session.Session:
    """A botocore session whose only credentials are stsvend's for `role_arn`, renewed before they
    expire; `refresh_window` as in stsvend.client.renewal, `region_name` the session's region for AWS calls.
    The first credentials are vended before this returns."""
    import botocore.session
    from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials

    check_window(refresh_window, duration_seconds)
    request = _Request(
        role_arn, api_url, api_region, duration_seconds, tags, session_name, server_id, source_profile
    )
    renewing = RenewingCredentials(request.vend, refresh_window, warn=_LOG.warning)

    def metadata() -> dict[str, str]:
        current = VendedCredentials.from_answer(renewing.current())
        return {
            "access_key": current.access_key_id,
            "secret_key": current.secret_access_key,
            "token": current.session_token,
            "expiry_time": current.expiration.isoformat(),
        }

    credentials = RefreshableCredentials.create_from_metadata(
        metadata(), refresh_using=metadata, method="stsvend"
    )

    class StsvendProvider(CredentialProvider):  # type: ignore[misc]
        METHOD = "stsvend"
        CANONICAL_NAME = "stsvend"

        def load(self) -> RefreshableCredentials:
            return credentials

    session = botocore.session.Session()
    # The resolver holds this provider only: the ambient chain must never stand in for the role.
    session.register_component("credential_provider", CredentialResolver([StsvendProvider()]))
    if region_name is not None:
        session.set_config_variable("region", region_name)
    return session


def _arguments_of(origin: Callable[_P, object]) -> Callable[[Callable[..., _R]], Callable[_P, _R]]:
    """The decorated function takes `origin`'s arguments (for type checkers and `help()`)."""

    def decorate(function: Callable[..., _R]) -> Callable[_P, _R]:
        returns = inspect.signature(function).return_annotation
        function.__signature__ = inspect.signature(origin).replace(  # type: ignore[attr-defined]
            return_annotation=returns
        )
        return function

    return decorate


@_arguments_of(botocore_session)
def session(role_arn: str, **options: Any) -> boto3.Session:
    """A boto3 session on `botocore_session(...)` (same arguments); needs boto3 installed."""
    try:
        import boto3
    except ImportError as exc:
        raise ImportError(
            "stsvend.session() returns a boto3.Session: pip install boto3, or use "
            "stsvend.botocore_session()"
        ) from exc
    return boto3.Session(botocore_session=botocore_session(role_arn, **options))
