"""Calls to the stsvend API: SigV4-signed (service `execute-api`) with the ambient AWS credentials,
so they pass API Gateway's AWS_IAM auth, and carrying the `X-Stsvend-Identity` proof for servers in
`sts-proof` mode: a signed sts:GetCallerIdentity naming the server (stsvend.client.location's
server id) and the request it travels with (docs/design.md section 2). A call is retried once after
a connection error or a 503 (per Retry-After); its answer is read by stsvend.client.answers.

Only a cache miss comes here: botocore (stsvend.client.signing) is loaded by the first call.
"""

from __future__ import annotations

import os
import threading
import time

from stsvend.client import plain
from stsvend.client.answers import (
    DEFAULT_RETRY_AFTER_SECONDS,
    checked_credentials,
    decode_answer,
    retry_after,
)
from stsvend.client.cache import Answer
from stsvend.client.location import server_id_for
from stsvend.client.reentry import RESOLVING_ENV
from stsvend.client.transport import HttpAnswer, urllib3_transport
from stsvend.constants import __version__
from stsvend.errors import EXIT_DENIED, EXIT_OTHER, EXIT_UNAVAILABLE, CommandError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from stsvend.client.signing import Signer
    from stsvend.client.transport import Transport

CREDENTIALS_PATH = "/credentials"
# The oldest botocore the client is tested with (pyproject.toml), which reads AWS_ENDPOINT_URL and
# AWS_ENDPOINT_URL_<SERVICE>: the one-file client (`make client-zipapp`) uses whatever is installed.
MIN_BOTOCORE = (1, 34)
# The library's threads load ambient credentials one at a time: RESOLVING_ENV is process-wide, and
# one thread's removal must not pull it from under another (nor fail because it is gone already).
_RESOLVING_LOCK = threading.Lock()


class ApiClient:
    """Signed calls to one stsvend API; botocore is loaded when the first call is made."""

    def __init__(
        self,
        url: str,
        region: str,
        env: Mapping[str, str],
        transport: Transport = urllib3_transport,
        sleep: Callable[[float], None] = time.sleep,
        server_id: str | None = None,
        source_profile: str | None = None,
    ) -> None:
        self.url = url
        self.region = region
        self.server_id = server_id_for(url, server_id, env)
        self._env = env
        self._source_profile = source_profile
        self._transport = transport
        self._sleep = sleep
        self._signer: Signer | None = None

    def call(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Answer:
        """The JSON answer; retried once after a connection error or a 503 (per Retry-After)."""
        import json

        body = None if payload is None else json.dumps(payload).encode()
        for attempt in (1, 2):
            try:
                answer = self._send(method, path, body)
            except ConnectionError as exc:
                if attempt == 2:
                    raise CommandError("ServiceUnreachable", str(exc), EXIT_UNAVAILABLE) from exc
                self._sleep(DEFAULT_RETRY_AFTER_SECONDS)
                continue
            except TimeoutError as exc:
                raise CommandError("ServiceUnreachable", str(exc), EXIT_UNAVAILABLE) from exc
            if answer.status == 503 and attempt == 1:
                self._sleep(retry_after(answer.headers))
                continue
            return decode_answer(answer)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def vend(self, path: str, request: Mapping[str, Any]) -> Answer:
        """One POST of a credential request, its answer checked (never cached or printed otherwise)."""
        return checked_credentials(self.call("POST", path, request), time.time())

    @property
    def source(self) -> Any:
        """Where the credentials that signed came from (signing.Source), once a call was signed."""
        return None if self._signer is None else self._signer.source

    def _send(self, method: str, path: str, body: bytes | None) -> HttpAnswer:
        url = self.url + path
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        headers = self._authorized(method, path, headers, body or b"")
        headers["User-Agent"] = f"stsvend/{__version__}"
        try:
            return self._transport(method, url, headers, body)
        except (ValueError, UnicodeError) as exc:
            # http.client quotes the offending header, which may hold a secret: never show it.
            raise CommandError(
                "InvalidRequest", f"cannot send the request: {type(exc).__name__} in a header",
                EXIT_OTHER,
            ) from None

    def _authorized(self, method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        """`headers` with the identity proof and the SigV4 signature."""
        signer = self._load_signer()
        from stsvend.client.signing import PROOF_HEADER, request_binding

        binding = request_binding(method, path, body)
        headers[PROOF_HEADER] = self._guard(lambda: signer.identity_proof(self.server_id, binding))
        return signer.sign(method, self.url + path, headers, body)

    def _load_signer(self) -> Signer:
        if self._signer is None:
            Signer = import_signing().Signer
            marker = plain.sha256_hex(os.urandom(32))[:32]

            with _RESOLVING_LOCK:
                os.environ[RESOLVING_ENV] = marker
                try:
                    self._signer = self._guard(
                        lambda: Signer(self.region, source_profile=self._source_profile, env=self._env,
                                       marker=marker)
                    )
                finally:
                    del os.environ[RESOLVING_ENV]
        return self._signer

    @staticmethod
    def _guard(action: Callable[[], Any]) -> Any:
        from stsvend.client.signing import CredentialsUnavailable

        try:
            return action()
        except CredentialsUnavailable as exc:
            raise CommandError("NoCredentials", str(exc), EXIT_DENIED) from None


def import_signing() -> Any:
    """stsvend.client.signing, after checking that botocore is there and new enough."""
    try:
        import botocore
    except ImportError:
        raise CommandError(
            "NoBotocore", "a cache miss signs with botocore, which is not installed: pip install "
            f"'botocore>={MIN_BOTOCORE[0]}.{MIN_BOTOCORE[1]}' (or use the stsvend package)", EXIT_OTHER,
        ) from None
    version = str(getattr(botocore, "__version__", "0"))
    found = tuple(int(part) if part.isdigit() else 0 for part in version.split(".")[:2])
    if found < MIN_BOTOCORE:
        raise CommandError(
            "BotocoreTooOld", f"botocore {version[:20]!r} is older than "
            f"{MIN_BOTOCORE[0]}.{MIN_BOTOCORE[1]}, the first stsvend supports (AWS_ENDPOINT_URL): "
            "upgrade it", EXIT_OTHER,
        )
    import stsvend.client.signing as signing

    return signing


def vend(
    url: str,
    region: str,
    env: Mapping[str, str],
    request: Mapping[str, Any],
    server_id: str | None = None,
    source_profile: str | None = None,
) -> Answer:
    """One signed POST /credentials, its answer checked; no cache. `server_id` as in
    location.server_id_for, `source_profile` as in signing.Signer."""
    client = ApiClient(url, region, env, server_id=server_id, source_profile=source_profile)
    return client.vend(CREDENTIALS_PATH, request)
