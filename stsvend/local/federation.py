"""The local stack's stand-in for the AWS federation endpoint (`https://signin.aws.amazon.com/federation`),
served by the emulator's guard at `/federation`, so `stsvend console` is tested end to end.

- `Action=getSigninToken&Session={"sessionId","sessionKey","sessionToken"}[&SessionDuration=N]`:
  the session must be one the emulator holds (key, secret and token matching, unexpired; a long-term
  key is refused, as AWS refuses it), not revoked (below); SessionDuration, 900-43200, only for a
  session that is not role chaining (here: one made through AssumeRoleWithWebIdentity, which the
  guard answers), as the IAM documentation requires. Answers `{"SigninToken": ...}`, valid 15 minutes.
- `Action=login&Issuer=...&Destination=...&SigninToken=...`: the token must be one this endpoint
  issued and unexpired, the Destination a console URL, and the session still valid and not revoked.
  Answers 200 with a line naming the session (AWS redirects to the console).

Revoked: the role's `stsvend-revoked-sessions` policy (`stsvend revoke`) has a Deny statement whose
conditions hold for the session: its issue time against `aws:TokenIssueTime`, its tags against
`aws:PrincipalTag/...`. A session whose tags the emulator does not keep (moto drops AssumeRole's
Tags) is taken to carry any tag a condition names: the stand-in fails closed. AWS itself issues the
sign-in token and then denies every console action of such a session.
"""

from __future__ import annotations

import datetime
import hmac
import json
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PATH = "/federation"
SIGNIN_TOKEN_SECONDS = 900
CHAINED_CONSOLE_SECONDS = 3600
REVOCATION_POLICY = "stsvend-revoked-sessions"
CONSOLE_HOSTS = ("console.aws.amazon.com", "console.amazonaws-us-gov.com", "console.amazonaws.cn")


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Signin:
    access_key_id: str
    console_until: datetime.datetime
    token_until: datetime.datetime


@dataclass(frozen=True)
class Held:
    """A session as the emulator holds it."""

    role_arn: str
    secret_access_key: str
    session_token: str
    issued: datetime.datetime
    expires: datetime.datetime
    tags: Mapping[str, str] | None  # None: not kept
    chained: bool


def _utc(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


def moto_session(access_key_id: str) -> Held | None:
    from moto.sts.models import sts_backends

    from stsvend.local.webidentity import SESSIONS

    for sessions in list(sts_backends.values()):
        for sts in list(sessions.values()):
            for role in list(sts.assumed_roles):
                if role.access_key_id != access_key_id:
                    continue
                made = SESSIONS.get(access_key_id)
                issued = made.issued if made else _utc(role.access_key.create_date)
                return Held(
                    role.role_arn,
                    role.secret_access_key,
                    role.session_token,
                    issued,
                    _utc(role.expiration),
                    dict(made.tags) if made else None,
                    made is None,
                )
    return None


def revocation_statements(role_arn: str) -> list[dict[str, Any]]:
    from moto.iam.models import iam_backends

    account = role_arn.split(":")[4]
    try:
        role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
    except Exception:  # noqa: BLE001 - moto's not-found types
        return []
    found: list[dict[str, Any]] = []
    # `stsvend revoke` writes one policy per revocation (`stsvend-revoked-sessions.<...>`); earlier
    # versions kept every entry in `stsvend-revoked-sessions` itself.
    for name, document in role.policies.items():
        if name != REVOCATION_POLICY and not name.startswith(REVOCATION_POLICY + "."):
            continue
        policy = json.loads(urllib.parse.unquote(document)) if isinstance(document, str) else document
        statements = policy.get("Statement", []) if isinstance(policy, dict) else []
        listed = statements if isinstance(statements, list) else [statements]
        found += [s for s in listed if isinstance(s, dict)]
    return found


def _strings(value: Any) -> list[str]:
    return (
        [value]
        if isinstance(value, str)
        else [v for v in value if isinstance(v, str)]
        if isinstance(value, list)
        else []
    )


def _holds(operator: str, key: str, wanted: list[str], session: Held) -> bool:
    """Whether one condition of a Deny holds for the session; an unknown one holds (fail closed)."""
    if key == "aws:TokenIssueTime" and operator == "DateLessThan":
        try:
            return any(
                session.issued < datetime.datetime.fromisoformat(w.replace("Z", "+00:00")) for w in wanted
            )
        except ValueError:
            return True
    if key.startswith("aws:PrincipalTag/") and session.tags is not None:
        tag = next((v for k, v in session.tags.items() if k.lower() == key[17:].lower()), None)
        if operator == "Null":
            return (tag is None) == (wanted == ["true"])
        if operator == "StringEquals":
            return tag is not None and tag in wanted
        if operator == "StringEqualsIgnoreCase":
            return tag is not None and tag.lower() in {w.lower() for w in wanted}
    return True


def revoked(session: Held, statements: Iterable[Mapping[str, Any]]) -> bool:
    for statement in statements:
        if statement.get("Effect") != "Deny":
            continue
        conditions = statement.get("Condition") or {}
        if all(
            _holds(operator, key, _strings(wanted), session)
            for operator, keys in conditions.items()
            if isinstance(keys, dict)
            for key, wanted in keys.items()
        ):
            return True
    return False


class Federation:
    """The two actions, with the sign-in tokens they share."""

    def __init__(
        self,
        lookup: Callable[[str], Held | None] = moto_session,
        statements: Callable[[str], list[dict[str, Any]]] = revocation_statements,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self._lookup = lookup
        self._statements = statements
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._tokens: dict[str, Signin] = {}
        self._lock = threading.Lock()

    def _valid(self, access_key_id: str) -> Held:
        session = self._lookup(access_key_id)
        if session is None:
            raise Refused(400, "the session is not one the emulator holds (temporary credentials only)")
        if session.expires <= self._clock():
            raise Refused(400, "the session has expired")
        if revoked(session, self._statements(session.role_arn)):
            raise Refused(403, "the session is revoked (stsvend-revoked-sessions)")
        return session

    def signin_token(self, query: Mapping[str, str]) -> dict[str, str]:
        try:
            given = json.loads(query.get("Session", ""))
        except ValueError:
            raise Refused(400, "Session is not JSON") from None
        if not isinstance(given, dict) or set(given) != {"sessionId", "sessionKey", "sessionToken"}:
            raise Refused(400, "Session must hold sessionId, sessionKey and sessionToken")
        if not all(isinstance(v, str) for v in given.values()):
            raise Refused(400, "Session's values must be strings")
        session = self._valid(given["sessionId"])
        if not (
            hmac.compare_digest(given["sessionKey"].encode(), session.secret_access_key.encode())
            and hmac.compare_digest(given["sessionToken"].encode(), session.session_token.encode())
        ):
            raise Refused(400, "the session's key or token is not the emulator's")
        now = self._clock()
        raw = query.get("SessionDuration")
        if raw is None:
            length = CHAINED_CONSOLE_SECONDS
        elif session.chained:
            raise Refused(400, "SessionDuration is not accepted for role-chained credentials")
        elif not raw.isdigit() or not 900 <= int(raw) <= 43200:
            raise Refused(400, "SessionDuration must be 900-43200 seconds")
        else:
            length = int(raw)
        until = min(now + datetime.timedelta(seconds=length), session.expires)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = Signin(
                given["sessionId"], until, now + datetime.timedelta(seconds=SIGNIN_TOKEN_SECONDS)
            )
        return {"SigninToken": token}

    def login(self, query: Mapping[str, str]) -> str:
        with self._lock:
            signin = self._tokens.get(query.get("SigninToken", ""))
        if signin is None or signin.token_until <= self._clock():
            raise Refused(400, "the sign-in token is unknown or expired")
        destination = urllib.parse.urlsplit(query.get("Destination", ""))
        host = destination.hostname or ""
        if destination.scheme != "https" or not any(
            host == h or host.endswith("." + h) for h in CONSOLE_HOSTS
        ):
            raise Refused(400, "Destination must be an AWS console URL")
        if not query.get("Issuer"):
            raise Refused(400, "Issuer is required")
        session = self._valid(signin.access_key_id)
        return (
            f"stsvend local console stand-in: signed in as {session.role_arn} until"
            f" {signin.console_until.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        )

    def serve(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        pairs = urllib.parse.parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
        query = dict(pairs)
        try:
            if environ.get("REQUEST_METHOD") != "GET" or len(query) != len(pairs):
                raise Refused(400, "one GET with each parameter once")
            action = query.get("Action")
            if action == "getSigninToken":
                body, kind = json.dumps(self.signin_token(query)), "application/json"
            elif action == "login":
                body, kind = self.login(query), "text/plain; charset=utf-8"
            else:
                raise Refused(400, "Action must be getSigninToken or login")
            status = "200 OK"
        except Refused as refused:
            status = f"{refused.status} {'Forbidden' if refused.status == 403 else 'Bad Request'}"
            body, kind = f"{refused}\n", "text/plain; charset=utf-8"
        data = body.encode()
        start_response(status, [("Content-Type", kind), ("Content-Length", str(len(data)))])
        return [data]
