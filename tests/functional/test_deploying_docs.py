"""docs/deploying.md and docs/operating.md as code: every fenced block says how it runs (`<!-- run:
local|aws|none -->`), every JSON block parses, and the `local` blocks run from the checkout with the
project's stsvend (they need no AWS). `aws` blocks need a real account: they are not run here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "deploying.md", ROOT / "docs" / "operating.md"]
FENCE = "`" * 3
BLOCK = re.compile(
    r"^([ \t]*)<!-- run: (\w+) -->\n\1" + FENCE + r"(\w*)\n(.*?)^\1" + FENCE + r"$", re.M | re.S
)


def blocks(path: Path) -> list[tuple[str, str, str]]:
    text = path.read_text(encoding="utf-8")
    return [
        (kind, language, re.sub(r"(?m)^" + re.escape(indent), "", body))
        for indent, kind, language, body in BLOCK.findall(text)
    ]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_block_says_how_it_runs(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    fences = re.findall(r"(?m)^[ \t]*" + FENCE, text)
    assert len(fences) == 2 * len(blocks(path)), "a fenced block without a <!-- run: ... --> line before it"
    assert {kind for kind, _, _ in blocks(path)} <= {"local", "aws", "none"}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_json_block_parses(path: Path) -> None:
    for _, language, body in blocks(path):
        if language == "json":
            json.loads(body)


def test_the_local_blocks_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STSVEND_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    ran = 0
    for path in DOCS:
        for kind, _, body in blocks(path):
            if kind != "local":
                continue
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, f"{path.name}:\n{body}\n{done.stdout}{done.stderr}"
            ran += 1
    assert ran >= 2
