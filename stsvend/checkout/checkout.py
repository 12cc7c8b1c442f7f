"""An stsvend checkout: the one way the checkout commands find it, read its stage settings and load
the server's grant model from its `chalicelib`.

The wheel ships only `stsvend`; the grant model lives in a checkout, so `grants`, `bootstrap`,
`trust-policy` and `local` run from one: from any directory inside it, or with `--root`.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stsvend.errors import CommandError

CONFIG = Path(".chalice") / "config.json"
MODEL = Path("chalicelib") / "grants.py"


def _not_a_checkout(message: str) -> CommandError:
    return CommandError("NotACheckout", message)


@dataclass(frozen=True)
class Checkout:
    """Where the grants files, session policies and stage settings live; `open` is how to get one."""

    root: Path
    config: Mapping[str, Any]

    @classmethod
    def find(cls, start: Path) -> Path:
        """The nearest directory at or above `start` that holds `.chalice/config.json` and the
        grant model."""
        start = start.resolve()
        for directory in (start, *start.parents):
            if (directory / CONFIG).is_file() and (directory / MODEL).is_file():
                return directory
        raise _not_a_checkout(
            f"not in an stsvend checkout: no .chalice/config.json with chalicelib/ in {start} or any"
            " parent. This command runs from a checkout (it uses its chalicelib and policies);"
            " cd into one or pass --root"
        )

    @classmethod
    def open(cls, root: str | Path | None = None) -> Checkout:
        """The checkout at `root` (default: found from the cwd): its settings read, its grant model
        imported (from it, not from anywhere else)."""
        path = Path(root).resolve() if root is not None else cls.find(Path.cwd())
        for needed in (CONFIG, MODEL):
            if not (path / needed).is_file():
                raise _not_a_checkout(f"{path} is not an stsvend checkout (no {needed})")
        try:
            config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CommandError("InvalidCheckout", f"{path / CONFIG} cannot be read: {exc}") from None
        if not isinstance(config, dict):
            raise CommandError("InvalidCheckout", f"{path / CONFIG} is not a JSON object")
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
        model = importlib.import_module("chalicelib.grants")
        loaded_from = Path(str(model.__file__)).resolve().parents[1]
        if loaded_from != path:
            raise CommandError(
                "InvalidCheckout",
                f"the grant model is already loaded from {loaded_from}, not from the checkout {path}",
            )
        return cls(path, config)

    @property
    def session_dir(self) -> Path:
        return self.root / "policies" / "session"

    @property
    def trust_template(self) -> Path:
        return self.root / "policies" / "trust" / "stsvend-target-role.json"

    def grants_file(self, stage: str) -> Path:
        return self.root / "policies" / "grants" / f"{stage}.json"

    def stage_environment(self, stage: str) -> dict[str, str]:
        """The environment Chalice gives the app for `stage` (the stage's over the top level's)."""
        stages = self.config.get("stages", {})
        if stage not in stages:
            raise CommandError(
                "NoSuchStage",
                f"no stage {stage!r} in {self.root / CONFIG} (stages: {', '.join(sorted(stages)) or 'none'})",
            )
        return {
            **self.config.get("environment_variables", {}),
            **stages[stage].get("environment_variables", {}),
        }

    def grants_table(self, stage: str) -> str:
        """The stage's STSVEND_GRANTS_TABLE, as the deployed Lambda will see it."""
        table = self.stage_environment(stage).get("STSVEND_GRANTS_TABLE")
        if not isinstance(table, str) or not table:
            raise CommandError(
                "NoGrantsTable",
                f"stage {stage!r} in {self.root / CONFIG} sets no STSVEND_GRANTS_TABLE; pass --table",
            )
        return table
