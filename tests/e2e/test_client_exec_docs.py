"""docs/client-exec.md as a user runs it: each `<!-- run: local -->` block, in order, in bash with
the local stack's environment for Jenkins (`. .stsvend/env/jenkins.sh`), the venv's `stsvend` and
`aws` on PATH. Each prints the deployer role's session, as the page says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stsvend.local.stack import LocalStack, hermetic_environment
from tests.conftest import record_output
from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e

PAGE = ROOT / "docs" / "client-exec.md"
BLOCK = re.compile(r"[ \t]*<!-- run: (\w+) -->\n[ \t]*```(\w*)\n(.*?)\n[ \t]*```", re.DOTALL)
SESSION = re.compile(r"^arn:aws:sts::222222222222:assumed-role/deployer/jenkins-[\w.@=,-]+$")


def blocks(kind: str) -> list[str]:
    return [body for run, _, body in BLOCK.findall(PAGE.read_text(encoding="utf-8")) if run == kind]


def test_every_fenced_block_says_how_it_runs() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert text.count("```") == 2 * len(BLOCK.findall(text))


def run_block(stack: LocalStack, tmp_path: Path, number: int) -> subprocess.CompletedProcess[str]:
    environment = {**hermetic_environment(), **stack.state.environment("jenkins"),
                   "XDG_CACHE_HOME": str(tmp_path / "cache"),
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-e", "-c", blocks("local")[number]], cwd=tmp_path,
                          env=environment, capture_output=True, text=True, timeout=120)
    record_output(done.stdout)
    record_output(done.stderr)
    return done


@pytest.mark.parametrize("number", range(len(blocks("local"))))
def test_the_pages_local_blocks_act_as_the_role(stack: LocalStack, tmp_path: Path, number: int) -> None:
    done = run_block(stack, tmp_path, number)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines and all(SESSION.match(line) for line in lines), done.stdout
    assert not (tmp_path / "stsvend.env").exists()  # serve removed its file when it stopped


def test_the_first_example_prints_what_the_page_shows(stack: LocalStack, tmp_path: Path) -> None:
    shown = [body for run, _, body in BLOCK.findall(PAGE.read_text(encoding="utf-8"))
             if run == "none"][0]
    done = run_block(stack, tmp_path, 0)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == shown.strip()
