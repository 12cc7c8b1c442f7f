"""The few library calls a credential_process cache hit makes, without the libraries' imports.

A cache hit runs on every AWS CLI call, and importing `json`, `urllib.parse`, `datetime`,
`pathlib` and `hashlib` (with the `re`, `enum`, `functools`, `collections`, `ipaddress` and OpenSSL
they pull in) cost it more than everything else it does (bench/README.md, 4). Each function here handles
one narrow, usual form with the interpreter's own C parts and hands anything else to the library
it stands in for (imported then), so every result is the library's:
`tests/unit/test_client_plain.py` holds each to its library on the narrow form and on inputs just
outside it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

try:  # CPython's JSON accelerator: what `json` itself runs, without json.decoder's `re`
    import _json
except ImportError:  # pragma: no cover - other interpreters take the library's way
    _json = None  # type: ignore[assignment]

# SHA-256 from CPython's own built-in module: `hashlib` first loads OpenSSL's, one of the heaviest imports.
# The same function, digest for digest; an interpreter without it takes hashlib's.
try:
    from _sha256 import sha256  # CPython 3.11
except ImportError:  # pragma: no cover - the module's name from 3.12 on, then anything else
    try:
        from _sha2 import sha256
    except ImportError:
        from hashlib import sha256


def sha256_hex(data: bytes) -> str:
    """`hashlib.sha256(data).hexdigest()`."""
    digest: str = sha256(data).hexdigest()
    return digest


# -- JSON ---------------------------------------------------------------------------------------


class _ScannerContext:
    """The settings `json.JSONDecoder()` hands its C scanner: json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


# (typeshed types the argument as a scanner; CPython reads these six attributes of any object.)
_SCAN = None if _json is None else _json.make_scanner(_ScannerContext())  # type: ignore[arg-type]
_JSON_SPACE = " \t\n\r"


def loads(data: bytes | str) -> Any:
    """`json.loads(data)`. ASCII text is scanned by the C scanner `json.loads` uses; anything else,
    and anything the scanner refuses, is decoded by `json.loads` (and so fails with its errors)."""
    if _SCAN is not None and isinstance(data, (str, bytes)) and data.isascii():
        text = data.decode("ascii") if isinstance(data, bytes) else data
        start, end = len(text) - len(text.lstrip(_JSON_SPACE)), len(text.rstrip(_JSON_SPACE))
        try:
            value, stop = _SCAN(text, start)
        except (StopIteration, ValueError, RecursionError):
            pass
        else:
            if stop == end and start < end:
                return value
    import json

    return json.loads(data)


def dumps(value: Any, *, canonical: bool = False) -> str:
    """`json.dumps(value)`, or with `canonical` `json.dumps(value, sort_keys=True,
    separators=(",", ":"))`, for dicts with text keys, lists, tuples, text, whole numbers, booleans
    and None; any other value (floats among them) is written by `json.dumps` itself."""
    try:
        return _dumps(value, canonical)
    except (_NotPlain, RecursionError):  # json's own limits and errors for deep or circular values
        import json

        if canonical:
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
        return json.dumps(value)


class _NotPlain(Exception):
    pass


def _dumps(value: Any, canonical: bool) -> str:
    if _json is None:
        raise _NotPlain
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return int.__repr__(value)
    item, pair = (",", ":") if canonical else (", ", ": ")
    if isinstance(value, (list, tuple)):
        return "[" + item.join(_dumps(v, canonical) for v in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise _NotPlain  # json.dumps' own rules for other keys (and its sort errors)
        pairs = sorted(value.items()) if canonical else value.items()
        return "{" + item.join(
            _json.encode_basestring_ascii(k) + pair + _dumps(v, canonical) for k, v in pairs
        ) + "}"
    raise _NotPlain


# -- time ---------------------------------------------------------------------------------------

_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DIGITS = frozenset("0123456789")
_DIGIT_PLACES = (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)


def utc_seconds(text: str) -> float | None:
    """Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ` (stsvend's one timestamp form, years
    1970-9999), or None for any other text, valid or not: the caller then asks `datetime`."""
    if len(text) != 20 or text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":":
        return None
    if text[16] != ":" or text[19] != "Z" or not all(text[i] in _DIGITS for i in _DIGIT_PLACES):
        return None
    year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    hour, minute, second = int(text[11:13]), int(text[14:16]), int(text[17:19])
    if year < 1970 or not 1 <= month <= 12 or hour > 23 or minute > 59 or second > 59:
        return None
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _DAYS_IN_MONTH[month - 1] + (leap and month == 2):
        return None
    # Days from 1970-01-01 to the date (the proleptic Gregorian count Python's datetime uses).
    y = year - (month <= 2)
    era, year_of_era = divmod(y, 400)
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    days = era * 146097 + day_of_era - 719468
    return float(days * 86400 + hour * 3600 + minute * 60 + second)


# -- URLs ---------------------------------------------------------------------------------------

_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
_PATH_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/")


class UrlParts:
    """What `urllib.parse.urlsplit` gives, as far as stsvend reads it. `port`, as there, is read
    when asked for: a bad one raises ValueError then, not before."""

    __slots__ = ("scheme", "netloc", "path", "query", "fragment", "username", "password",
                 "hostname", "_port", "_library")

    def __init__(self, scheme: str, netloc: str, path: str, query: str, fragment: str,
                 username: str | None, password: str | None, hostname: str | None,
                 port: int | None, library: Any = None) -> None:
        self.scheme, self.netloc, self.path = scheme, netloc, path
        self.query, self.fragment = query, fragment
        self.username, self.password = username, password
        self.hostname, self._port, self._library = hostname, port, library

    @property
    def port(self) -> int | None:
        if self._library is not None:
            port: int | None = self._library.port
            return port
        return self._port


def urlsplit(url: str) -> UrlParts:
    """`urllib.parse.urlsplit(url)`'s parts. `http(s)://host[:port][/path]` with a lower-case DNS
    name or IPv4 host, a decimal port and a path of unreserved characters is split here; any other
    URL by urllib."""
    parts = _split_plain(url)
    if parts is not None:
        return parts
    from urllib.parse import urlsplit as library_urlsplit

    split = library_urlsplit(url)
    return UrlParts(split.scheme, split.netloc, split.path, split.query, split.fragment,
                    split.username, split.password, split.hostname, None, split)


def _split_plain(url: str) -> UrlParts | None:
    scheme, separator, rest = url.partition("://")
    if scheme not in ("http", "https") or not separator:
        return None
    netloc, slash, path = rest.partition("/")
    path = slash + path
    host, colon, port_text = netloc.partition(":")
    if not host or not _HOST_CHARS.issuperset(host) or not _PATH_CHARS.issuperset(path):
        return None
    port = None
    if colon:
        if not 1 <= len(port_text) <= 5 or not _DIGITS.issuperset(port_text):
            return None
        port = int(port_text)
        if port > 65535:
            return None
    return UrlParts(scheme, netloc, path, "", "", None, None, host, port)
