"""stsvend.client.plain against the libraries it stands in for on a cache hit: on its narrow forms,
just outside them, and on seeded random text. Every result (or failure) must be the library's."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import random
import urllib.parse
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from stsvend.client import plain
from stsvend.client.cache import parse_expiration
from stsvend.client.location import is_loopback as _is_loopback

SEED = 20261201


def outcome(function: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return "ok", function(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the failure itself is what is compared
        return type(exc).__name__, str(exc)


def same_json(a: Any, b: Any) -> bool:
    """Equal, counting NaN equal to NaN, and ints and floats apart (json keeps them apart)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


JSON_TEXTS = [
    '{"key": "0" , "answer": {"AccessKeyId": "ASIA", "Expiration": "2027-01-01T00:00:00Z"}, "fetched": 1.5}',
    '{"a":1}', ' {"a":1} ', '\n\t{"a": [1, 2.5, -3e2, true, false, null]}\r\n', "[]", "{}", '""', "0", "-0",
    "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "[NaN]", '"\\u00e9\\ud83d\\ude00"', '"\\ud800"',
    '{"a": 1, "a": 2}', '{"a": {"b": {"c": [[[]]]}}}', "123456789012345678901234567890",
    "", " ", "\n", "{", "}", '{"a":1}x', '{"a":1} {"b":2}', "[1,]", '{"a":1,}', "'a'", '"a\tb"',
    '"a\\x"', "tru", "nul", "01", "1.", ".5", "+1", "[1 2]", '{"a" 1}', '{1: 2}', "[" * 5000 + "]" * 5000,
    '\u00e9', '"é"', '{"é": "ü"}', "\x00", '"\x00"', "\ufeff{}",
    # Not JSON's whitespace, though Python's: json refuses them around a value.
    "\x0c{}", "{}\x0b", "\x0b", "\x0c1", "\x1c[]", "[]\x85",
]


@pytest.mark.parametrize("text", JSON_TEXTS + [t.encode() for t in JSON_TEXTS if t.isascii()])
def test_loads_is_json_loads(text: str | bytes) -> None:
    mine, theirs = outcome(plain.loads, text), outcome(json.loads, text)
    assert mine[0] == theirs[0]
    assert same_json(mine[1], theirs[1]) if mine[0] == "ok" else mine == theirs


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_loads_reads_bytes_in_every_encoding_json_reads(encoding: str) -> None:
    for text in ('{"a": "é"}', '{"a": 1}', "1", "[]"):
        data = text.encode(encoding)
        assert outcome(plain.loads, data) == outcome(json.loads, data)


def test_loads_agrees_with_json_on_random_text() -> None:
    rng = random.Random(SEED)
    alphabet = ' \t\n\r\x0b\x0c{}[]:,"\\0123456789.-+eEtrufalsnNIy\u00e9\x00a'
    for _ in range(4000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        for data in (text, text.encode("utf-8")):
            mine, theirs = outcome(plain.loads, data), outcome(json.loads, data)
            assert mine[0] == theirs[0], data
            assert same_json(mine[1], theirs[1]) if mine[0] == "ok" else mine == theirs, data


DUMPED: list[Any] = [
    None, True, False, 0, -1, 2**80, -(2**70), "", "plain", 'quote " back \\ slash', "\x00\x1f\x7f",
    "é ü 日本 😀", "\ud800", [], (), {}, [1, "a", None, [True, {"k": ()}]], (1, 2),
    {"b": 1, "a": [2, {"d": "x", "c": None}], "é": "ü"},
    ["stsvend-cache-2", "http://127.0.0.1:8000/api", "", "key:ASIA",
     {"role_arn": "arn", "tags": {"b": "2", "a": "1"}, "duration_seconds": 900}],
    {"Version": 1, "AccessKeyId": "ASIA", "SecretAccessKey": "s/+=", "SessionToken": "t",
     "Expiration": "2027-01-01T00:00:00Z"},
    # Outside the plain form: handed to json.dumps, with its results and errors.
    1.5, float("nan"), {"a": 1.0}, {1: "int key"}, {None: 1, "a": 2}, {(1, 2): 3}, {1: 1, "1": 2},
    object(), {"a": object()}, [b"bytes"], {"a", "set"},
]


class IntLike(int):
    def __repr__(self) -> str:
        return "IntLike!"  # json writes int.__repr__'s digits, never a subclass's own repr


@pytest.mark.parametrize("value", [*DUMPED, IntLike(7), {"a": IntLike(3)}], ids=repr)
def test_dumps_is_json_dumps(value: Any) -> None:
    assert outcome(plain.dumps, value) == outcome(json.dumps, value)
    assert outcome(plain.dumps, value, canonical=True) == outcome(
        json.dumps, value, sort_keys=True, separators=(",", ":")
    )


def test_dumps_agrees_with_json_on_random_values() -> None:
    rng = random.Random(SEED)

    def value(depth: int) -> Any:
        kind = rng.randrange(8 if depth < 3 else 5)
        if kind == 0:
            return rng.choice([None, True, False])
        if kind == 1:
            return rng.randint(-(2**40), 2**40)
        if kind in (2, 3, 4):
            return "".join(rng.choice('az"\\\n\x01é😀/ ') for _ in range(rng.randint(0, 6)))
        if kind == 5:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {"".join(rng.choice("abcAB é") for _ in range(rng.randint(0, 3))): value(depth + 1)
                for _ in range(rng.randint(0, 4))}

    for _ in range(2000):
        v = value(0)
        assert plain.dumps(v) == json.dumps(v)
        assert plain.dumps(v, canonical=True) == json.dumps(v, sort_keys=True, separators=(",", ":"))


def reference_seconds(text: str) -> float | None:
    parsed = parse_expiration(text)
    return None if parsed is None else parsed.timestamp()


def test_utc_seconds_is_datetime_on_every_kind_of_day() -> None:
    rng = random.Random(SEED)
    start = datetime(1970, 1, 1, tzinfo=timezone.utc)
    moments = [start, datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)]
    moments += [datetime(year, month, day, tzinfo=timezone.utc) - timedelta(seconds=1)
                for year in (1972, 2000, 2024, 2100, 2400) for month, day in ((3, 1), (1, 1), (2, 28))]
    moments += [start + timedelta(seconds=rng.randrange(253402300800)) for _ in range(3000)]
    for moment in moments:
        text = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert plain.utc_seconds(text) == reference_seconds(text) == moment.timestamp(), text


@pytest.mark.parametrize("text", [
    "2027-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2000-02-29T00:00:00Z",
    "2027-04-31T00:00:00Z", "2027-13-01T00:00:00Z", "2027-00-01T00:00:00Z", "2027-01-00T00:00:00Z",
    "2027-01-01T24:00:00Z", "2027-01-01T23:60:00Z", "2027-01-01T23:59:60Z", "1969-12-31T23:59:59Z",
    "0999-01-01T00:00:00Z", "2027-01-01T00:00:00z", "2027-01-01T00:00:00+00:00", "2027-01-01 00:00:00Z",
    " 2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z ", "2027-01-01T00:00:00.5Z", "2027-1-01T00:00:00Z",
    "２０２７-01-01T00:00:00Z", "2027-01-01T00:00:00", "2027-01-01", "", "Z" * 20, "+027-01-01T00:00:00Z",
    "2027-01-01T00:00:0-Z", "2027-01-01T-0:00:00Z",
])
def test_utc_seconds_reads_only_what_datetime_reads_alike(text: str) -> None:
    mine = plain.utc_seconds(text)
    # None means "ask datetime"; anything else must be datetime's own answer.
    assert mine is None or mine == reference_seconds(text)
    if reference_seconds(text) is None:
        assert mine is None


URLS = [
    "http://127.0.0.1:8000", "http://127.0.0.1:8000/", "http://127.0.0.1:8000/api", "https://a.b.c/prod/",
    "https://abc123.execute-api.us-east-1.amazonaws.com/api", "http://localhost", "https://x:443/p-._~/q",
    "https://x:0", "https://x:00080", "https://x:65535", "https://x:65536", "https://x:99999", "https://x:",
    "https://x:1a", "https://x:-1", "https://x: 80", "https://x:８０", "https://X.example", "HTTPS://x",
    "https://user@x", "https://user:pw@x:1/p", "https://x@y", "https://[::1]:8443/api", "https://[::1",
    "https://x/p?q=1", "https://x/p#f", "https://x/%2e%2e", "https://x/a b", "https://x/a\tb", " https://x",
    "https://x\n", "https://x\\y", "https://x;y", "https://é.example", "ftp://x", "http:/x", "http:///x",
    "http://", "https://:80", "https://x..y", "https://-", "//x/y", "x", "", "https://x/\x00",
    "https://x/日本", "https://x/p/../q", "https://x:8080:9090", "https://1.2.3.4.5", "http://0x7f.1",
    "https://[x", "https://a[b:80", "https://a]b", "https://x]:80", "https://x:99999/p", "https://x:80[",
]


def library_parts(url: str) -> tuple[Any, ...]:
    split = urllib.parse.urlsplit(url)
    return (split.scheme, split.netloc, split.path, split.query, split.fragment, split.username,
            split.password, split.hostname, split.port)


def plain_parts(url: str) -> tuple[Any, ...]:
    p = plain.urlsplit(url)
    return (p.scheme, p.netloc, p.path, p.query, p.fragment, p.username, p.password, p.hostname, p.port)


@pytest.mark.parametrize("url", URLS)
def test_urlsplit_is_urllibs(url: str) -> None:
    assert outcome(plain_parts, url) == outcome(library_parts, url)


def test_urlsplit_agrees_with_urllib_on_random_urls() -> None:
    rng = random.Random(SEED)
    pieces = ["http", "https", "://", ":", "/", "a", "Z", "0", "9", ".", "-", "@", "?", "#", "[", "]",
              "[::1]", "%", " ", "\t", "é", "_", "~", "8080", "65536", "127.0.0.1", "x.y"]
    for _ in range(5000):
        url = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        assert outcome(plain_parts, url) == outcome(library_parts, url), url


def test_sha256_hex_is_hashlibs() -> None:
    for data in (b"", b"abc", bytes(range(256)) * 40):
        assert plain.sha256_hex(data) == hashlib.sha256(data).hexdigest()


def reference_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.255.255.255", "127.0.0.01", "0127.0.0.1", "127.0.0.256", "127.0.0", "127.0.0.1.1",
    "128.0.0.1", "0.0.0.0", "10.0.0.1", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "localhost",
    "LOCALHOST", "localhost.", "127.0.0.1 ", "１２７.0.0.1", "127.0.0.-1", "127.0.0.+1", "", "example.com",
    "127.1", "2130706433",
])
def test_loopback_is_ipaddress_reading(host: str) -> None:
    assert _is_loopback(host) == reference_loopback(host)


def test_the_usual_forms_never_reach_the_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a cache hit reads and writes is all in the narrow forms: no library is asked."""

    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("the library was asked")

    monkeypatch.setattr(json, "loads", refuse)
    monkeypatch.setattr(json, "dumps", refuse)
    monkeypatch.setattr(urllib.parse, "urlsplit", refuse)
    entry = {"key": "k" * 64, "fetched": 1,
             "answer": {"AccessKeyId": "ASIA", "Expiration": "2027-06-30T00:00:00Z"}}
    assert plain.loads(plain.dumps(entry).encode()) == entry
    assert plain.dumps(["v", {"b": 1, "a": [True, None]}], canonical=True) == '["v",{"a":[true,null],"b":1}]'
    assert plain.utc_seconds("2027-06-30T00:00:00Z") == 1814313600.0
    for url in ("https://abc123.execute-api.eu-west-1.amazonaws.com/prod", "http://127.0.0.1:8000/api"):
        assert plain.urlsplit(url).hostname == url.split("/")[2].split(":")[0]


def test_a_bad_port_raises_only_when_the_port_is_read() -> None:
    for url in ("https://x:99999/p", "https://x:1a", "https://[::1]:70000"):
        library, mine = urllib.parse.urlsplit(url), plain.urlsplit(url)
        assert (mine.hostname, mine.path) == (library.hostname, library.path)
        with pytest.raises(ValueError):
            library.port  # noqa: B018 - reading it is the test
        with pytest.raises(ValueError):
            mine.port  # noqa: B018


@pytest.mark.parametrize("value", [bytearray(b'{"a": 1}'), memoryview(b"{}"), None, 7, ["{}"]], ids=repr)
def test_loads_takes_and_refuses_what_json_loads_does(value: Any) -> None:
    assert outcome(plain.loads, value) == outcome(json.loads, value)


def test_deep_and_circular_values_are_dumped_as_json_dumps_them() -> None:
    deep: Any = "leaf"
    for _ in range(900):
        deep = [deep]
    assert plain.dumps(deep) == json.dumps(deep)
    assert plain.dumps(deep, canonical=True) == json.dumps(deep, sort_keys=True, separators=(",", ":"))
    circular: list[Any] = []
    circular.append(circular)
    assert outcome(plain.dumps, circular) == outcome(json.dumps, circular)
