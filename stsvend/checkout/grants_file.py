"""The grants file (DESIGN.md section 3): a JSON list of grants, validated with the server's own
grant model, session policies resolved from the checkout's `policies/session/`."""

from __future__ import annotations

import json
from pathlib import Path

from stsvend.checkout.model import Grant, GrantError, parse_grant


def load_grants_file(path: Path, session_dir: Path) -> list[Grant]:
    """The grants in `path` (a JSON list), session policies resolved from `session_dir/<name>.json`.

    Raises GrantError naming the file, and the grant and field at fault.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GrantError(f"{path}: cannot be read ({exc})") from None
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GrantError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(entries, list):
        raise GrantError(f"{path}: must be a JSON list of grants")

    policies = session_dir.resolve()

    def resolve_policy(name: str) -> str | None:
        candidate = (policies / f"{name}.json").resolve()
        if candidate.parent != policies or not candidate.is_file():
            return None
        return candidate.read_text(encoding="utf-8")

    grants: list[Grant] = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(entries):
        try:
            grant = parse_grant(raw, resolve_policy=resolve_policy)
        except GrantError as exc:
            raise GrantError(f"{path}: grants[{index}]: {exc}") from None
        if grant.principal in first_index:
            raise GrantError(
                f"{path}: grants[{index}]: grant {grant.principal!r}: principal is already"
                f" granted by grants[{first_index[grant.principal]}]; one grant per principal"
            )
        first_index[grant.principal] = index
        grants.append(grant)
    return grants
