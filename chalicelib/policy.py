"""Session policies: checked for IAM grammar and STS's size limit before STS ever sees them."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.jsontext import JsonTextError, loads_strict

# STS: the plaintext of inline and managed session policies together may not exceed 2,048 characters.
MAX_SESSION_POLICY_CHARS = 2048
MAX_POLICY_ARNS = 10
_VERSIONS = ("2012-10-17", "2008-10-17")
_STATEMENT_KEYS = {
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
    "Principal",
    "NotPrincipal",
}


class PolicyError(ValueError):
    pass


def _string_or_strings(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


def minify_session_policy(document: Any) -> str:
    """Validate a session policy (a JSON string or an already-parsed object); return it minified."""
    if isinstance(document, str):
        try:
            document = loads_strict(document)
        except JsonTextError as exc:
            raise PolicyError(str(exc)) from None
    if not isinstance(document, dict):
        raise PolicyError("must be a JSON object")
    unknown = set(document) - {"Version", "Id", "Statement"}
    if unknown:
        raise PolicyError(f"has unknown top-level keys: {', '.join(sorted(unknown))}")
    if document.get("Version") not in _VERSIONS:
        raise PolicyError('must have "Version": "2012-10-17"')
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PolicyError("must have at least one Statement")
    for index, statement in enumerate(statements):
        where = f"Statement[{index}]"
        if not isinstance(statement, dict):
            raise PolicyError(f"{where} must be an object")
        unknown = set(statement) - _STATEMENT_KEYS
        if unknown:
            raise PolicyError(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        if "Principal" in statement or "NotPrincipal" in statement:
            raise PolicyError(f"{where}: a session policy cannot name a Principal")
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError(f'{where} must have "Effect": "Allow" or "Deny"')
        if ("Action" in statement) == ("NotAction" in statement):
            raise PolicyError(f"{where} needs exactly one of Action or NotAction")
        if ("Resource" in statement) == ("NotResource" in statement):
            raise PolicyError(f"{where} needs exactly one of Resource or NotResource")
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in statement and not _string_or_strings(statement[key]):
                raise PolicyError(f"{where}.{key} must be a string or a list of strings")
        if "Condition" in statement and not isinstance(statement["Condition"], dict):
            raise PolicyError(f"{where}.Condition must be an object")
    packed = json.dumps(document, separators=(",", ":"), sort_keys=False)
    if len(packed) > MAX_SESSION_POLICY_CHARS:
        raise PolicyError(f"is {len(packed)} characters minified; STS allows {MAX_SESSION_POLICY_CHARS}")
    return packed
