"""The argparse-free reading of `stsvend credentials` (the credential_process hot path) gives exactly
what argparse gives, for every argument list it takes; everything else is left to argparse."""

from __future__ import annotations

import contextlib
import io
import re

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
    "--server-id",
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


def test_version_comes_from_the_one_source(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    import stsvend
    from stsvend.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"stsvend {stsvend.__version__}\n"
    assert version("stsvend") == stsvend.__version__


def test_help_opens_with_a_whole_sentence_and_names_the_checkout_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from stsvend.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    description = out.split("\n\n")[1].replace("\n", " ")
    assert description.startswith("`stsvend`: credentials for AWS roles") and description.endswith(".")
    listed = dict(re.findall(r"^    (\S+)\s+(.*?)(?=^    \S|\Z)", out.split("options:")[0], re.M | re.S))
    marked = {name for name, text in listed.items() if "[checkout]" in text}
    assert set(listed) == {
        "credentials", "exec", "serve", "console", "roles", "whoami", "cache", "configure", "doctor", "audit",
        "revoke",
        *marked,
    }
    assert marked == {
        "grants", "bootstrap", "trust-policy", "local", "monitor", "deploy", "deploy-info", "rollback"
    }
    checkout_commands = "grants, bootstrap, trust-policy, local, monitor, deploy, deploy-info and rollback"
    # argparse wraps at hyphens too ("deploy-" / "info").
    assert f"[checkout]: {checkout_commands} need" in " ".join(out.split()).replace("- ", "-")


def test_exec_options_all_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["exec", "--help"])
    out = capsys.readouterr().out
    for option in ("--role ARN", "--duration SECONDS", "--tag K=V", "--session-name NAME",
                   "--refresh-window SECONDS", "--no-cache"):
        entry = out.split(f"  {option}", 1)[1].split("\n  -", 1)[0]
        assert len(entry.split()) >= 3, (option, entry)


def test_local_without_the_dev_extras_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    from stsvend.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "moto" else real(name, *a)
    )

    assert main(["local", "up"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "stsvend: MissingDevExtras: stsvend local needs the dev extras (moto not installed)"
    )
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_checkout_command_outside_a_checkout_is_one_line(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from stsvend.cli import main

    monkeypatch.chdir(str(tmp_path))
    assert main(["grants", "plan", "--stage", "dev"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("stsvend: NotACheckout: not in an stsvend checkout")
    assert err.count("\n") == 1
