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


def aws_message(text: str) -> str:
    """A message from AWS or the service, without what it may quote of the caller's request: cut
    where it starts quoting the canonical request or string to sign (API Gateway's, Lambda's and
    other front ends' answer to a bad signature; its headers hold the caller's session token), and
    any session-token or secret-key value masked. Never holds a secret, whatever AWS put in it."""
    import re  # only when a message is shown: the cache hit imports nothing here

    quoted = re.search(r"(?:The )?(?:Canonical String|String-to-Sign)", text)
    if quoted:
        text = text[: quoted.start()].rstrip() + " (the request AWS quoted is left out)"
    # `name: value`, `name=value`, `"name": "value"`; a name alone (GetSessionToken, a sentence) stays.
    return re.sub(
        r"(?<![A-Za-z0-9_])"
        r"(x-amz-security-token|SessionToken|aws_session_token|SecretAccessKey|aws_secret_access_key)"
        r"([\"' ]*[:=][\"' :=]*)[^\"' ,;&}\s]+",
        r"\1\2<redacted>",
        text,
        flags=re.IGNORECASE,
    )
