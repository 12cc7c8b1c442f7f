"""The one rule for printing text stsvend did not write: a grants item, an audit line, a log file, a
message from AWS or from the service. Such text can hold terminal escape sequences, carriage returns
or bidi overrides that would hide or rewrite what an operator reads; it is printed through here.

Only the standard library, and nothing imported: the client's cache hit loads it (via stsvend.errors).
"""

from __future__ import annotations


def _escaped(char: str) -> str:
    """Python's own escape for one character: `\\t`, `\\x1b`, `\\u202e`, `\\U000e0041`."""
    return ascii(char)[1:-1]


# Printable by Python's rule, yet shown as nothing (or nothing distinct): Hangul fillers, the braille
# blank, the combining grapheme joiner, Khmer and Mongolian invisibles, variation selectors.
_INVISIBLE = frozenset(
    "\u115f\u1160\u3164\uffa0\u2800\u034f\u17b4\u17b5\u180e"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def _shown(char: str) -> bool:
    return char.isprintable() and char not in _INVISIBLE


def printable(value: object, *, limit: int | None = None) -> str:
    """`value` as text a terminal shows as it is: every character that is not printable (controls,
    format characters such as bidi overrides, line and paragraph separators, and the few printable
    ones that show as nothing) shown as its escape
    (`\\x1b`, `\\u202e`). Escaping twice changes nothing, so a layer may escape what it prints
    without knowing whether another did. With `limit`, at most that many characters of `value`."""
    text = str(value)
    if limit is not None:
        text = text[:limit]
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if _shown(c) else _escaped(c) for c in text)


def one_line(value: object, *, limit: int | None = None) -> str:
    """`printable`, with runs of whitespace (newlines included) first folded to one space."""
    return printable(" ".join(str(value).split()), limit=limit)


def identifier(value: object) -> str:
    """For text that is ASCII when valid (an ARN, a principal, a grant's field), as a plan shows it:
    anything outside printable ASCII is escaped too, so a look-alike letter shows, and `\\` is
    doubled, so an escape in a plan always stands for an escaped character."""
    return "".join(
        "\\\\" if c == "\\" else c if " " <= c <= "~" else _escaped(c) for c in str(value)
    )


# Where AWS quotes the request it received: API Gateway's, Lambda's and other front ends' answers to a
# bad signature append the canonical request, whose headers hold the caller's session token.
_QUOTED_REQUEST = ("The Canonical String", "The String-to-Sign", "Canonical String", "String-to-Sign")
_SECRET_FIELDS = (
    "x-amz-security-token", "SessionToken", "aws_session_token", "SecretAccessKey", "aws_secret_access_key",
)


def _masked(text: str, field: str) -> str:
    """`text` with the value of each `field` (`field:v`, `field=v`, `"field": "v"`) replaced; the
    name alone (an operation such as GetSessionToken, a sentence) is left as it is."""
    out, start, lowered, name = [], 0, text.lower(), field.lower()
    while (at := lowered.find(name, start)) >= 0:
        end = at + len(name)
        if at > 0 and (text[at - 1].isalnum() or text[at - 1] == "_"):
            out.append(text[start:end])
            start = end
            continue
        value = end
        while value < len(text) and text[value] in "\"' ":
            value += 1
        if value >= len(text) or text[value] not in ":=":
            out.append(text[start:end])
            start = end
            continue
        while value < len(text) and text[value] in "\"' :=":
            value += 1
        stop = value
        while stop < len(text) and text[stop] not in "\"' ,;&}\n\r\t":
            stop += 1
        out.append(text[start:value] + ("<redacted>" if stop > value else ""))
        start = stop
    return "".join(out) + text[start:]


def aws_message(text: str) -> str:
    """A message from AWS or the service, without what it may quote of the caller's request: cut
    where it starts quoting the canonical request or string to sign, and any session token or
    secret key value masked. Never holds a secret, whatever AWS put in it."""
    for marker in _QUOTED_REQUEST:
        at = text.find(marker)
        if at >= 0:
            text = text[:at].rstrip() + " (the request AWS quoted is left out)"
            break
    for field in _SECRET_FIELDS:
        text = _masked(text, field)
    return text
