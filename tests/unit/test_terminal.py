"""stsvend.terminal: the one rule for printing text stsvend did not write."""

from __future__ import annotations

import pytest

from stsvend.terminal import identifier, one_line, printable

HOSTILE = [
    ("\x1b[2J", "\\x1b[2J"),  # clear screen
    ("a\rb", "a\\rb"),  # rewrite the line
    ("a\nb", "a\\nb"),  # a forged line
    ("\u202eevil", "\\u202eevil"),  # bidi override
    ("\u2028", "\\u2028"),  # line separator
    ("\x00\x7f\x9b", "\\x00\\x7f\\x9b"),  # NUL, DEL, the 8-bit CSI
    ("\U000e0041", "\\U000e0041"),  # a tag character (invisible)
    ("a\tb", "a\\tb"),
]


def test_printable_leaves_ordinary_text_alone() -> None:
    assert printable("arn:aws:iam::1:role/a b ü") == "arn:aws:iam::1:role/a b ü"
    assert printable(12) == "12"


@pytest.mark.parametrize(("text", "shown"), HOSTILE)
def test_printable_escapes_what_a_terminal_would_act_on(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(shown) == shown  # escaping twice changes nothing


def test_printable_bounds_before_it_escapes() -> None:
    assert printable("abcdef\x1b", limit=3) == "abc"
    assert printable("\x1bbcdef", limit=2) == "\\x1bb"


def test_one_line_folds_whitespace_then_escapes() -> None:
    assert one_line("a\n\n  b\r\nc\x07") == "a b c\\x07"
    assert one_line("x" * 10, limit=4) == "xxxx"


@pytest.mark.parametrize(("text", "shown"), HOSTILE)
def test_identifier_escapes_the_same(text: str, shown: str) -> None:
    assert identifier(text) == shown


def test_identifier_shows_look_alikes_and_doubles_backslashes() -> None:
    assert identifier("arn:aws:iam::1:role/deploy") == "arn:aws:iam::1:role/deploy"
    assert identifier("role/d\u0435ploy") == "role/d\\u0435ploy"  # Cyrillic e
    assert identifier("a\\x1b") == "a\\\\x1b"  # a literal backslash is not an escape
