"""An stsvend checkout: the one way the checkout commands find it, read its stage settings and load
the server's grant model from its `chalicelib` (by location: sys.path is never changed).

The wheel ships only `stsvend`; the grant model lives in a checkout, so `grants`, `bootstrap`,
`trust-policy` and `local` run from one: from any directory inside it, or with `--root`.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from stsvend.errors import CommandError

CONFIG = Path(".chalice") / "config.json"
MODEL = Path("chalicelib") / "grants.py"


def _not_a_checkout(message: str) -> CommandError:
    return CommandError("NotACheckout", message)


def _import_from(root: Path, name: str, location: Path, package: bool) -> ModuleType:
    """The server's top-level module or package `name`, loaded from its file in the checkout rather
    than found on sys.path, which is left as it is (a module already loaded is kept)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, location, submodule_search_locations=[str(location.parent)] if package else None
    )
    if spec is None or spec.loader is None:
        raise CommandError("InvalidCheckout", f"{location} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _same_checkout(module: ModuleType, root: Path, what: str, levels: int = 1) -> None:
    loaded_from = Path(str(module.__file__)).resolve().parents[levels]
    if loaded_from != root:
        raise CommandError(
            "InvalidCheckout", f"{what} is already loaded from {loaded_from}, not from the checkout {root}"
        )


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
        _import_from(path, "chalicelib", path / "chalicelib" / "__init__.py", package=True)
        model = importlib.import_module("chalicelib.grants")
        _same_checkout(model, path, "the grant model")
        return cls(path, config)

    def import_app(self) -> ModuleType:
        """The checkout's `app.py` (the Chalice app), imported from it as `app`."""
        app = _import_from(self.root, "app", self.root / "app.py", package=False)
        _same_checkout(app, self.root, "the app", levels=0)
        return app

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
