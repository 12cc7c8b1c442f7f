"""CHANGELOG.md records each release of the contract (Keep a Changelog): the newest release it names is
the package's version, so a change to flags, exit codes, file shapes or API fields cannot ship under
an old number."""

from __future__ import annotations

import re
from pathlib import Path

from stsvend.constants import __version__

CHANGELOG = Path(__file__).resolve().parents[2] / "CHANGELOG.md"
RELEASE = re.compile(r"^## \[(\d+\.\d+\.\d+)\](?: - (\d{4}-\d{2}-\d{2}))?$", re.M)


def test_the_newest_release_is_the_package_version() -> None:
    text = CHANGELOG.read_text(encoding="utf-8")
    assert re.findall(r"^## \[([^\]]+)\]", text, re.M)[0] == "Unreleased"
    releases = [m.group(1) for m in RELEASE.finditer(text)]
    assert releases, "no release heading"
    assert releases[0] == __version__


def test_releases_are_listed_newest_first_and_once() -> None:
    versions = [tuple(map(int, m.group(1).split("."))) for m in RELEASE.finditer(CHANGELOG.read_text())]
    assert versions == sorted(set(versions), reverse=True)
