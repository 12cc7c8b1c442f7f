"""Suite-wide guard: no vended SecretAccessKey or SessionToken may appear in any captured log line,
stderr output or error body, in any test. Tests register what they were vended with
`record_vended`, and text produced outside this process (servers' log files) with `record_output`;
the check runs once when the session ends."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

VENDED_SECRETS: set[str] = set()
CAPTURED: list[str] = []


def record_vended(answer: dict[str, Any]) -> None:
    for key in ("SecretAccessKey", "SessionToken"):
        if answer.get(key):
            VENDED_SECRETS.add(str(answer[key]))


def record_output(text: str) -> None:
    CAPTURED.append(text)


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            CAPTURED.append(self.format(record))
        except Exception:  # noqa: BLE001 - a formatting failure must not hide the record
            CAPTURED.append(repr(record.__dict__))


def _everything_formatter() -> logging.Formatter:
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    return LambdaPowertoolsFormatter()


def pytest_configure(config: pytest.Config) -> None:
    handler = _Capture(level=logging.DEBUG)
    handler.setFormatter(_everything_formatter())
    logging.getLogger().addHandler(handler)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # What each test printed (stdout, stderr, log records), as pytest captured it.
    CAPTURED.extend(content for _, content in report.sections)


def find_leaks() -> list[str]:
    return [line[:120] + "..." for line in CAPTURED for secret in VENDED_SECRETS if secret in line]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = find_leaks()
    if leaks:
        session.config.get_terminal_writer().line(
            f"SECRET LEAK: {len(leaks)} captured line(s) contain a vended secret", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif VENDED_SECRETS:
        session.config.get_terminal_writer().line(
            f"secret guard: {len(VENDED_SECRETS)} vended secrets checked against"
            f" {len(CAPTURED)} captured outputs: none found"
        )


JS_DIR = Path(__file__).resolve().parent / "js"


@pytest.fixture(scope="session")
def js_clients() -> Path:
    """tests/js with its node_modules installed by `npm ci` from the committed lock file; the
    install is reused while package.json and package-lock.json are unchanged."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.fail("the JavaScript SDK v3 tests need Node.js and npm on PATH (a real client of "
                    "stsvend, installed from tests/js/package-lock.json)")
    digest = hashlib.sha256(
        (JS_DIR / "package.json").read_bytes() + (JS_DIR / "package-lock.json").read_bytes()
    ).hexdigest()
    stamp = JS_DIR / "node_modules" / ".stsvend-installed"
    if not stamp.is_file() or stamp.read_text() != digest:
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                              cwd=JS_DIR, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            pytest.fail(f"npm ci in {JS_DIR} failed:\n{done.stdout}{done.stderr}")
        stamp.write_text(digest)
    return JS_DIR
