"""Text from the grants table (or anything else an operator did not write) made safe for a terminal.

An item written by hand can hold terminal escape sequences, carriage returns or bidi overrides that
would hide or rewrite lines of a plan; every such string is printed through `printable`.
"""

from __future__ import annotations


def _escaped(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` with everything but printable ASCII escaped (`\\x1b`, `\\r`, `\\u202e`, ...), and `\\`
    doubled so an escape in the output always means a character that was escaped. AWS identifiers
    are ASCII, so a valid grant prints unchanged."""
    return "".join(
        "\\\\" if char == "\\" else char if " " <= char <= "~" else _escaped(char) for char in text
    )
