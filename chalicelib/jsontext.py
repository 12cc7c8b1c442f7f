"""JSON from outside the code (request bodies, grants files, session policies), parsed so that nothing
is silently dropped: a repeated key is refused, not decided by whichever comes last, and nesting too
deep for the parser is an error, not a crash."""

from __future__ import annotations

import json
from typing import Any


class JsonTextError(ValueError):
    """JSON that stsvend refuses; the message says why and is safe to show (keys are escaped)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JsonTextError(f"repeats the key {key[:100]!a}")
            seen.add(key)
    return result


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


def loads_strict(text: str | bytes) -> Any:
    """`json.loads`, refusing repeated keys in any object and nesting the parser cannot follow."""
    try:
        if isinstance(text, bytes):
            # As json.loads reads bytes: UTF-8, -16 or -32, told apart by the first bytes.
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        return _DECODER.decode(text)
    except JsonTextError:
        raise
    except RecursionError:
        raise JsonTextError("nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise JsonTextError(
            f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError:  # bytes that are not UTF-8, -16 or -32
        raise JsonTextError("is not valid JSON text (not UTF-8)") from None
