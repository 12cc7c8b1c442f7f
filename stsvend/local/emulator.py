"""The AWS emulator of the local stack: moto in server mode, in its own process, behind stsvend's
guard (`guard`), which authenticates every request itself: before IAM enforcement only the bootstrap
key, after it only keys moto holds, and the control API (`/moto-api/...`) only with the emulator's
secret, which this class makes per run and passes to the process in its environment.

What moto 5.2.5 in server mode does, as checked against this code (check again on an upgrade):

- IAM authentication. `moto.settings.INITIAL_NO_AUTH_ACTION_COUNT` is read from the environment when
  moto is imported (unset means infinity: never enforced) and compared with a request counter on
  every request, so it can be changed while the server runs: `POST /moto-api/reset-auth` with body
  `N` zeroes the counter and lets N more requests through unauthenticated. The body must not be
  sent as a form (Flask then consumes it and moto answers 500 on an empty float); this module sends
  `text/plain`. The stack starts the server with the count at `inf`, bootstraps, then sends `0`.
- Once on: SigV4 is verified (a wrong secret gives SignatureDoesNotMatch, an unknown key
  InvalidClientTokenId, a wrong session token InvalidClientTokenId); identity policies are
  enforced for IAM users and assumed roles; `sts:GetCallerIdentity` is always allowed.
- What the guard closes (`guard`'s docstring says where in moto each is): a request whose
  X-Amz-Target names one of moto's "public" operations (e.g. `AWSCognitoIdentityService.GetId`) is
  answered for any service with any key and signature, unauthorized; `/moto-api/...` takes no
  credentials and can switch authentication off; DynamoDB's 2011-12-05 API, the instance metadata
  paths, SNS's certificate and services never audited (some answer unchecked) skip the IAM check;
  a request without an Authorization header is routed by moto's unsigned rules and never checked
  (the guard hands a presigned call on header-signed by the same key, so moto checks it too); a
  parameter in both the URL's query and a form body is checked from the form and run from the
  query; S3 checks an action from a table of subresources, not the one it runs (not served).
- Resources: only STS (the role ARN), IAM, SQS and S3 requests are matched against a policy's
  Resource. Every other service, DynamoDB included, is checked against resource `*`, so a statement
  naming a table ARN never matches there (see `bootstrap.service_policy`). A DynamoDB denial
  comes back as HTTP 403 with an XML body, which botocore reports as error code `403`.
- Trust policies: checked only when the role is in the caller's own account; principals are matched
  by exact ARN (an assumed-role session never matches a role ARN, hence a service *user*). Of the
  conditions only `StringEquals` is evaluated, and only against `sts:ExternalId` when the request
  carries one: a wrong external id is refused, a missing one is not. AssumeRole into another
  account is allowed on the caller's identity policy alone; its trust policy is not evaluated.
- Accounts: a request's account is the `x-moto-account-id` header if present, else the account of
  the access key. Keys created with the header set act in that account afterwards. With auth on,
  the header must match the key's account (the key is looked up in the header's account).
- Not kept or not enforced: session policies, permission boundaries, session Tags,
  TransitiveTagKeys, SourceIdentity, PolicyArns.
- Recording: with `MOTO_ENABLE_RECORDING` set, every request (headers and body) is appended as a
  JSON line to `MOTO_RECORDER_FILEPATH`; `GET /moto-api/recorder/download-recording` returns them.
  That is the wire record of what the service sent to STS.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from stsvend.local.guard import BOOTSTRAP_KEY_ID, CONTROL_HEADER, SECRET_VARIABLE
from stsvend.local.process import LOOPBACK, ManagedProcess, ensure_port_free, wait_until

DEFAULT_PORT = 5000
PORT_VARIABLE = "STSVEND_EMULATOR_PORT"
READY_TIMEOUT_SECONDS = 60.0
# Settings of the user's environment that would change what the emulator does.
_MOTO_SETTINGS = (
    "MOTO_ACCOUNT_ID",
    "INITIAL_NO_AUTH_ACTION_COUNT",
    "MOTO_ENABLE_RECORDING",
    "MOTO_RECORDER_FILEPATH",
    "MOTO_PORT",
    "TEST_SERVER_MODE",
    SECRET_VARIABLE,
)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: str

    def form(self) -> dict[str, str]:
        """The body as a query-protocol form (first value of each field)."""
        return {k: v[0] for k, v in urllib.parse.parse_qs(self.body, keep_blank_values=True).items()}


class Emulator:
    def __init__(
        self,
        port: int,
        log_path: Path,
        recording_path: Path | None = None,
        host: str = LOOPBACK,
        guarded: bool = True,
    ) -> None:
        """`guarded=False` runs plain moto with no authentication at all: only for benchmarks that
        measure stsvend, never for the local stack."""
        self.host = host
        self.port = port
        self.recording_path = recording_path
        env = {k: v for k, v in os.environ.items() if k not in _MOTO_SETTINGS}
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "inf"
        env["PYTHONUNBUFFERED"] = "1"
        if recording_path is not None:
            env["MOTO_ENABLE_RECORDING"] = "true"
            env["MOTO_RECORDER_FILEPATH"] = str(recording_path)
        self._secret = secrets.token_urlsafe(32) if guarded else None
        if self._secret is not None:
            env[SECRET_VARIABLE] = self._secret
        server = "stsvend.local.guard" if guarded else "moto.server"
        self.process = ManagedProcess(
            "AWS emulator (moto)",
            [sys.executable, "-m", server, "-H", host, "-p", str(port)],
            log_path,
            env,
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def bootstrap_key(self) -> tuple[str, str]:
        """The key id and secret the emulator accepts before IAM enforcement, and only then."""
        if self._secret is None:
            raise RuntimeError("an unguarded emulator has no bootstrap key: any key will do")
        return BOOTSTRAP_KEY_ID, self._secret

    def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        ensure_port_free(self.host, self.port, "AWS emulator", PORT_VARIABLE)
        self.process.start()
        wait_until(self._answers, self.process, timeout)

    def stop(self) -> None:
        self.process.stop()

    def _answers(self) -> bool:
        try:
            self._call("GET", "/moto-api/config")
        except (urllib.error.URLError, OSError):
            return False
        return True

    def _call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        headers = {"Content-Type": "text/plain"}
        if self._secret is not None:
            headers[CONTROL_HEADER] = self._secret
        request = urllib.request.Request(  # noqa: S310 - our own emulator on loopback
            self.url + path, data=body, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return bytes(response.read())

    def enforce_iam(self) -> None:
        """IAM authentication from now on: no more requests let through without it."""
        self._call("POST", "/moto-api/reset-auth", b"0")

    def recorded_requests(self) -> list[RecordedRequest]:
        if self.recording_path is None:
            raise RuntimeError("the emulator was started without request recording")
        text = self._call("GET", "/moto-api/recorder/download-recording").decode("utf-8")
        requests = []
        for line in text.splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode("utf-8", errors="replace")
            requests.append(RecordedRequest(entry["method"], entry["url"], dict(entry["headers"]), body))
        return requests

    def recorded_calls(self, action: str) -> list[dict[str, str]]:
        """The form fields of every recorded query-protocol call of `action` (e.g. AssumeRole)."""
        return [form for form in (r.form() for r in self.recorded_requests()) if form.get("Action") == action]
