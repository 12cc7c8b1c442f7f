"""The one rule for printing text stsvend did not write: a grants item, an audit line, a log file, a
message from AWS or from the service. Such text can hold terminal escape sequences, carriage returns
or bidi overrides that would hide or rewrite what an operator reads; it is printed through here.

Only the standard library, and nothing imported: the client's cache hit loads it (via stsvend.errors).
"""

from __future__ import annotations


def _escaped(char: str) -> str:
    """Python's own escape for one character: `\\t`, `\\x1b`, `\\u202e`, `\\U000e0041`."""
    return ascii(char)[1:-1]


def printable(value: object, *, limit: int | None = None) -> str:
    """`value` as text a terminal shows as it is: every character that is not printable (controls,
    format characters such as bidi overrides, line and paragraph separators) shown as its escape
    (`\\x1b`, `\\u202e`). Escaping twice changes nothing, so a layer may escape what it prints
    without knowing whether another did. With `limit`, at most that many characters of `value`."""
    text = str(value)
    if limit is not None:
        text = text[:limit]
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


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
