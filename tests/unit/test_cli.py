"""The argparse-free reading of `stsvend credentials` (the credential_process hot path) gives exactly
what argparse gives, for every argument list it takes; everything else is left to argparse."""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from stsvend.cli import build_parser, fast_credentials_args

ROLE = "arn:aws:iam::222222222222:role/deployer"
OPTIONS = [
    "--api",
    "--region",
    "--role",
    "--duration",
    "--tag",
    "--session-name",
    "--format",
    "--refresh-window",
]
VALUES = [
    "https://x.example/api",
    "eu-west-1",
    ROLE,
    "900",
    "0",
    "-5",
    "+5",
    "\u00b2",
    "build-id=1",
    "job=a b",
    "deploy-1",
    "env",
    "json",
    "process",
    "xml",
    "",
    "x",
    "-x",
    "--role",
]
ODD = ["--no-cache=1", "--rol", "--help", "-h", "--", "x", "--tag"]


@st.composite
def credentials_argv(draw: st.DrawFn) -> list[str]:
    argv = ["credentials"]
    if draw(st.booleans()) or draw(st.booleans()):
        argv += ["--role", ROLE]
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["pair", "pair", "pair", "flag", "odd"]))
        if kind == "flag":
            argv.append("--no-cache")
        elif kind == "odd":
            argv.append(draw(st.sampled_from(ODD)))
        else:
            option, value = draw(st.sampled_from(OPTIONS)), draw(st.sampled_from(VALUES))
            argv += [f"{option}={value}"] if draw(st.booleans()) else [option, value]
    return argv


def argparse_result(argv: list[str]) -> dict[str, object] | None:
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return vars(build_parser().parse_args(argv))
        except SystemExit:
            return None


@settings(max_examples=1500, deadline=None)
@given(credentials_argv())
def test_fast_path_agrees_with_argparse(argv: list[str]) -> None:
    fast = fast_credentials_args(argv)
    event("fast path" if fast is not None else "argparse")
    if fast is not None:
        assert vars(fast) == argparse_result(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["credentials", "--api", "https://x.example/api", "--role", ROLE],
        ["credentials", f"--role={ROLE}", "--format", "process", "--tag", "build-id=1", "--tag", "k=v"],
        ["credentials", "--role", ROLE, "--duration", "900", "--refresh-window=60", "--no-cache"],
    ],
)
def test_the_usual_credential_process_lines_take_the_fast_path(argv: list[str]) -> None:
    fast = fast_credentials_args(argv)
    assert fast is not None
    assert vars(fast) == argparse_result(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["credentials"],
        ["credentials", "--help"],
        ["credentials", "--rol", ROLE],
        ["credentials", "--role", ROLE, "--format", "xml"],
        ["credentials", "--role", ROLE, "--duration", "-5"],
        ["credentials", "--role", ROLE, "--duration", "²"],
        ["roles", "--api", "https://x.example/api"],
    ],
)
def test_anything_unusual_goes_to_argparse(argv: list[str]) -> None:
    assert fast_credentials_args(argv) is None
