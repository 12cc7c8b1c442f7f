"""stsvend.terminal: the one rule for printing text stsvend did not write."""

from __future__ import annotations

import pytest

from stsvend.terminal import aws_message, identifier, one_line, printable

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


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("x-amz-security-token:SECRET1 next", "x-amz-security-token:<redacted> next"),
        ('{"SessionToken": "SECRET2", "a": 1}', '{"SessionToken": "<redacted>", "a": 1}'),
        ("X-Amz-Security-Token=SECRET3&X-Amz-Date=1", "X-Amz-Security-Token=<redacted>&X-Amz-Date=1"),
        ("aws_secret_access_key = SECRET4", "aws_secret_access_key = <redacted>"),
        ("reason.\n\nThe String-to-Sign should have been 'SECRET5'",
         "reason. (the request AWS quoted is left out)"),
        # Names alone are not fields: an operation, a sentence.
        ("AWS refused GetSessionToken: AccessDenied", "AWS refused GetSessionToken: AccessDenied"),
        ("The security token included in the request is invalid.",
         "The security token included in the request is invalid."),
    ],
)
def test_aws_message_drops_quoted_requests_and_secret_values(text: str, shown: str) -> None:
    assert aws_message(text) == shown


@pytest.mark.parametrize("char", ["\u3164", "\u115f", "\u2800", "\u034f", "\ufe0f", "\U000e0100"])
def test_printable_escapes_what_shows_as_nothing(char: str) -> None:
    assert printable(f"role/a{char}b") == f"role/a{ascii(char)[1:-1]}b"
