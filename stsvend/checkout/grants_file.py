"""The grants file (docs/design.md section 3): a JSON list of grants, validated with the server's grant
model, session policies resolved from the checkout's `policies/session/`.

The checkout adds what only a whole file can show, and what must hold whatever the model accepts:
no repeated JSON key (the last one would silently win), no two grants for one principal in any
letter case, and AWS identifiers in ASCII (IAM and STS accept nothing else).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stsvend.checkout.model import (
    Entry,
    Grant,
    GrantError,
    JsonTextError,
    case_collisions,
    loads_strict,
    parse_file_entries,
    parse_grant,
)

# Far above any real allow-list (DynamoDB items are at most 400 KB each), far below trouble.
MAX_GRANTS_FILE_BYTES = 8 * 1024 * 1024
# STS takes at most 2,048 characters of session policy; room for indentation and comments' absence.
MAX_SESSION_POLICY_FILE_BYTES = 64 * 1024

# The grant fields that hold AWS identifiers (the description is free text).
_IDENTIFIER_FIELDS = ("principal", "principal_id", "not_after", "source_cidrs", "request_tags")
_ROLE_IDENTIFIER_FIELDS = ("role_arn", "session_policy", "policy_arns", "external_id")


def read_json_file(path: Path, limit: int) -> Any:
    """The JSON value in `path`; GrantError naming the file if it is too big, not UTF-8, not JSON,
    repeats a key or nests too deeply."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise GrantError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise GrantError(f"{path}: is larger than {limit} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GrantError(
            f"{path}: is not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        return loads_strict(text)
    except JsonTextError as exc:
        raise GrantError(f"{path}: {exc}") from None


def _non_ascii(value: Any) -> str | None:
    """The first non-ASCII character in a string or a list of strings, escaped; None if none."""
    strings = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    for text in strings:
        if isinstance(text, str) and not text.isascii():
            return f"{next(c for c in text if not c.isascii())!a}"
    return None


def _check_ascii(raw: Any) -> None:
    """Refuse a non-ASCII AWS identifier before the model sees it, whatever its patterns accept:
    a `\\d` or `\\w` also matches full-width digits and letters of any script; IAM and STS do not."""
    if not isinstance(raw, Mapping):
        return
    principal = raw.get("principal")
    fields = [(name, raw.get(name)) for name in _IDENTIFIER_FIELDS]
    roles = raw.get("roles")
    for index, role in enumerate(roles if isinstance(roles, list) else []):
        if isinstance(role, Mapping):
            fields += [(f"roles[{index}].{name}", role.get(name)) for name in _ROLE_IDENTIFIER_FIELDS]
    for name, value in fields:
        found = _non_ascii(value)
        if found:
            shown = principal if isinstance(principal, str) else None
            raise GrantError(
                f"grant {shown!a}: {name} must be ASCII (IAM and STS accept nothing else);"
                f" it has {found}"
            )


def load_grants_file(path: Path, session_dir: Path) -> list[Entry]:
    """The grants in `path` (a JSON list), session policies resolved from `session_dir/<name>.json`;
    then its OIDC issuers and OIDC grants (entries with `oidc_issuer` or `oidc_grant`).

    Raises GrantError naming the file, and the grant and field at fault.
    """
    entries = read_json_file(path, MAX_GRANTS_FILE_BYTES)
    if not isinstance(entries, list):
        raise GrantError(f"{path}: must be a JSON list of grants")

    policies = session_dir.resolve()

    def resolve_policy(name: str) -> Any:
        candidate = (policies / f"{name}.json").resolve()
        if candidate.parent != policies or not candidate.is_file():
            return None
        # Parsed here, strictly: a repeated "Effect" must not turn a Deny into an Allow.
        try:
            return read_json_file(candidate, MAX_SESSION_POLICY_FILE_BYTES)
        except GrantError as exc:
            raise GrantError(f"session policy {name!r}: {exc}") from None

    grants: list[Grant] = []
    index_of: dict[str, int] = {}
    oidc = [(i, raw) for i, raw in enumerate(entries) if isinstance(raw, Mapping) and _is_oidc(raw)]
    for index, raw in enumerate(entries):
        if isinstance(raw, Mapping) and _is_oidc(raw):
            continue
        try:
            _check_ascii(raw)
            grant = parse_grant(raw, resolve_policy=resolve_policy)
        except GrantError as exc:
            raise GrantError(f"{path}: grants[{index}]: {exc}") from None
        if grant.principal in index_of:
            raise GrantError(
                f"{path}: grants[{index}]: grant {grant.principal!r}: principal is already granted"
                f" by grants[{index_of[grant.principal]}]; one grant per principal"
            )
        index_of[grant.principal] = index
        grants.append(grant)
    # IAM names are unique whatever their case, and grants match ignoring case: two grants whose
    # principals differ only in case name the same callers, and neither would decide.
    for first, second, *_ in case_collisions(g.principal for g in grants):
        raise GrantError(
            f"{path}: grants[{index_of[second]}]: grant {second!r}: principal differs only in case"
            f" from {first!r}, granted by grants[{index_of[first]}] (the same principal to IAM);"
            " one grant per principal"
        )
    try:
        oidc_entries = parse_file_entries(oidc, resolve_policy)
    except GrantError as exc:
        raise GrantError(f"{path}: {exc}") from None
    return [*grants, *oidc_entries]


def _is_oidc(raw: Mapping[str, Any]) -> bool:
    return "oidc_issuer" in raw or "oidc_grant" in raw
