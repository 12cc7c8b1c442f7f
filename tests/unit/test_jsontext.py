"""The one strict JSON parser (chalicelib/jsontext.py) that request bodies, grants files, session
policies (files and stored documents) and the trust template go through (issue 10.6)."""

from __future__ import annotations

import json

import pytest

from chalicelib.grant_store import grant_from_item, to_attribute
from chalicelib.grants import BrokenGrant
from chalicelib.jsontext import JsonTextError, loads_strict

JENKINS = "arn:aws:iam::111111111111:user/jenkins"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1, "a": 2}', "repeats the key 'a'"),
        ('[{"x": {"Effect": "Deny", "Effect": "Allow"}}]', "repeats the key 'Effect'"),
        ('{"\\u001b[2J": 1, "\\u001b[2J": 2}', "repeats the key '\\x1b[2J'"),
        ("[" * 10_000 + "]" * 10_000, "nests too deeply"),
        ('{"a":' * 10_000 + "1" + "}" * 10_000, "nests too deeply"),
        ('{"a": 1,}', "is not valid JSON: Expecting property name enclosed in double quotes"
                      " at line 1 column 9"),
        (b'{"a": "\xff"}', "is not valid JSON text (not UTF-8)"),
        ('{"a":1}x', "is not valid JSON: Extra data at line 1 column 8"),
        (' {"a":1} [', "is not valid JSON: Extra data at line 1 column 10"),
        ("", "is not valid JSON: Expecting value at line 1 column 1"),
        ('{"a":1,"a":1}', "repeats the key 'a'"),
    ],
    ids=["repeat", "nested-repeat", "escaped-key", "deep-arrays", "deep-objects", "syntax", "bytes",
         "trailing-data", "spaced-trailing-data", "empty", "compact-repeat"],
)
def test_what_strict_json_refuses(text: str | bytes, message: str) -> None:
    with pytest.raises(JsonTextError) as info:
        loads_strict(text)

    assert str(info.value) == message
    assert str(info.value).isascii()


def test_strict_json_reads_what_plain_json_reads() -> None:
    text = '{"a": [1, 2.5, null, true, {"b": "\\u00e9"}], "c": {}}'

    assert loads_strict(text) == json.loads(text)
    assert loads_strict(text.encode()) == json.loads(text)
    # With and without whitespace around the value, alike.
    compact = json.dumps(json.loads(text), separators=(",", ":"))
    assert loads_strict(compact) == loads_strict(f" \n{text}\t\r ") == json.loads(text)


def _stored(document: str) -> dict[str, object]:
    grant = {
        "account_id": "111111111111",
        "principal": JENKINS,
        "roles": [{
            "role_arn": "arn:aws:iam::222222222222:role/deployer",
            "session_policy": "hand-written",
            "session_policy_document": document,
        }],
    }
    return {k: to_attribute(v) for k, v in grant.items()}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ('{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Effect": "Allow",'
         ' "Action": "*", "Resource": "*"}]}', "repeats the key 'Effect'"),
        ("[" * 10_000 + "]" * 10_000, "nests too deeply"),
    ],
    ids=["deny-then-allow", "deep"],
)
def test_a_stored_session_policy_the_parser_refuses_makes_a_broken_grant(
    document: str, problem: str
) -> None:
    """A hand-written item: its grant denies (a broken grant decides nothing but a denial)."""
    grant = grant_from_item(_stored(document))

    assert isinstance(grant, BrokenGrant)
    assert problem in grant.problem and "session_policy" in grant.problem
