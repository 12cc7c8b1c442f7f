"""The one error tree of the service.

Each error carries its stable `Code` (docs/design.md section 4) and the HTTP status the contract gives
that code (chalicelib/contract.py, ERRORS): a class whose code is not there fails the import. Messages
are shown to callers, so they never hold a secret, a stack trace or anything the caller did not already
know.
"""

from __future__ import annotations

from chalicelib.contract import ERRORS


class StsvendError(Exception):
    status = ERRORS["InternalError"]
    code = "InternalError"
    headers: dict[str, str] = {}

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if cls.code not in ERRORS:
            raise TypeError(f"{cls.__name__}: error code {cls.code!r} is not in chalicelib/contract.py")
        cls.status = ERRORS[cls.code]

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # For the audit line only, never the caller: what the operator needs to fix (which stored
        # grant, which field), where telling the caller would reveal the allow-list.
        self.detail = detail


class InvalidRequest(StsvendError):
    code = "InvalidRequest"


class DurationNotAllowed(StsvendError):
    code = "DurationNotAllowed"


class PolicyTooLarge(StsvendError):
    code = "PolicyTooLarge"


class NotAuthenticated(StsvendError):
    code = "NotAuthenticated"


class TokenRejected(NotAuthenticated):
    """401 on the OIDC route: the token is not one stsvend accepts (RFC 6750's invalid_token)."""

    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class CallerNotAllowed(StsvendError):
    code = "CallerNotAllowed"


class SourceNotAllowed(StsvendError):
    code = "SourceNotAllowed"


class RoleNotGranted(StsvendError):
    code = "RoleNotGranted"


class TagNotAllowed(StsvendError):
    code = "TagNotAllowed"


class PayloadTooLarge(StsvendError):
    code = "PayloadTooLarge"


class AssumeRoleDenied(StsvendError):
    code = "AssumeRoleDenied"


class ServiceUnavailable(StsvendError):
    code = "ServiceUnavailable"
    headers = {"Retry-After": "2"}


class InternalError(StsvendError):
    """Anything unexpected. The caller learns only that it failed (closed); the log has the cause."""


class ConfigError(Exception):
    """A setting is missing or malformed: raised when the service starts, never shown to callers."""
