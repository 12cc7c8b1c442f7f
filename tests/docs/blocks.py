"""The fenced code blocks of the README and the docs pages, each with the run marker on the line
before it: `<!-- run: local -->` (run against the local stack), `<!-- run: aws -->` (needs a real
AWS account) or `<!-- run: none -->` (not a command: output, a file's shape, a policy)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^\s*<!-- run: (?P<kind>[a-z]+) -->\s*$")
KINDS = ("local", "aws", "none")
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    kind: str | None  # None: no marker on the line before
    text: str
    section: str  # the nearest heading above it

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """Every page whose blocks a user is told to run: the README, docs/*.md (whatever pages exist
    there) and the benchmarks' README."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]


def _dedent(lines: list[str], indent: str) -> str:
    return "".join(line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines)


def blocks_of(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
    found: list[Block] = []
    section = ""
    index = 0
    while index < len(lines):
        line = lines[index].rstrip("\n")
        heading = _HEADING.match(line)
        if heading:
            section = heading["title"]
        opening = _FENCE.match(line)
        if not opening:
            index += 1
            continue
        fence, indent = opening["fence"], opening["indent"]
        end = index + 1
        while end < len(lines):
            closing = lines[end].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            end += 1
        previous = MARKER.match(lines[index - 1]) if index > 0 else None
        found.append(Block(
            page=page,
            line=index + 1,
            lang=opening["info"].strip().split(" ")[0] if opening["info"].strip() else "",
            kind=previous["kind"] if previous else None,
            text=_dedent(lines[index + 1:end], indent),
            section=section,
        ))
        index = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for page in pages() if page.is_file() for block in blocks_of(page)]
