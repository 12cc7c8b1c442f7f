"""The one error tree of the service.

Each error carries its HTTP status and its stable `Code` (docs/design.md section 4). Messages are shown to
callers, so they never hold a secret, a stack trace or anything the caller did not already know.
"""

from __future__ import annotations


class StsvendError(Exception):
    status = 500
    code = "InternalError"
    headers: dict[str, str] = {}

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # For the audit line only, never the caller: what the operator needs to fix (which stored
        # grant, which field), where telling the caller would reveal the allow-list.
        self.detail = detail


class InvalidRequest(StsvendError):
    status = 400
    code = "InvalidRequest"


class DurationNotAllowed(StsvendError):
    status = 400
    code = "DurationNotAllowed"


class PolicyTooLarge(StsvendError):
    status = 400
    code = "PolicyTooLarge"


class NotAuthenticated(StsvendError):
    status = 401
    code = "NotAuthenticated"


class CallerNotAllowed(StsvendError):
    status = 403
    code = "CallerNotAllowed"


class SourceNotAllowed(StsvendError):
    status = 403
    code = "SourceNotAllowed"


class RoleNotGranted(StsvendError):
    status = 403
    code = "RoleNotGranted"


class TagNotAllowed(StsvendError):
    status = 403
    code = "TagNotAllowed"


class PayloadTooLarge(StsvendError):
    status = 413
    code = "PayloadTooLarge"


class AssumeRoleDenied(StsvendError):
    status = 502
    code = "AssumeRoleDenied"


class ServiceUnavailable(StsvendError):
    status = 503
    code = "ServiceUnavailable"
    headers = {"Retry-After": "2"}


class InternalError(StsvendError):
    """Anything unexpected. The caller learns only that it failed (closed); the log has the cause."""


class ConfigError(Exception):
    """A setting is missing or malformed: raised when the service starts, never shown to callers."""
