"""A local stack of the docs' own (the blocks change it: alarms, profiles, audit history), and a
workspace to run the blocks in: a copy of the checkout whose `.stsvend` is that stack's state
directory, with the project's `.venv`, as a user's checkout is after `make run`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from stsvend.local.stack import LocalStack
from tests.conftest import record_output
from tests.docs.blocks import ROOT
from tests.e2e.conftest import stop_stack

# Not copied: what `make` and the tools create, and the state of a stack the user may be running.
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", ".stsvend", "node_modules", "__pycache__", ".pytest_cache", ".mypy_cache",
    ".ruff_cache", "vendor", "out", "*.pyc",
)


def make_workspace(target: Path, js_clients: Path) -> Path:
    """A copy of the checkout at `target` (modification times kept, so `make` finds `.venv`
    current), using this checkout's `.venv` and installed JavaScript clients."""
    shutil.copytree(ROOT, target, ignore=_NOT_COPIED, symlinks=True)
    (target / ".venv").symlink_to(ROOT / ".venv")
    installed = js_clients / "node_modules"
    if installed.is_dir():
        (target / "tests" / "js" / "node_modules").symlink_to(installed)
    return target


@pytest.fixture(scope="session")
def docs_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # With the local API Gateway, as `make run` starts it: the docs call it with plain SigV4.
    started = LocalStack.on_free_ports(ROOT, tmp_path_factory.mktemp("docs-stack"), gateway=True)
    started.start()
    try:
        yield started
    finally:
        stop_stack(started)
        for log in (started.gateway_log, started.gateway_errors_log):
            if log.exists():
                record_output(log.read_text(encoding="utf-8", errors="replace"))


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory, docs_stack: LocalStack, js_clients: Path) -> Path:
    """The checkout copy the `local` blocks run in; `.stsvend` is the docs stack's state."""
    target = make_workspace(tmp_path_factory.mktemp("docs") / "stsvend", js_clients)
    (target / ".stsvend").symlink_to(docs_stack.state_dir)
    return target


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The blocks' HOME: `~/.aws`, `~/.cache/stsvend` of the run, never the user's."""
    return tmp_path_factory.mktemp("home")
