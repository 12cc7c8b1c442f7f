"""Where the local stack keeps its state, and reading its `local.json`: the one definition that
stsvend/local writes (`make run`, `stsvend local up`) and the operator commands' `--stage local`
and `stsvend local token` read. It lives in checkout because the state belongs to a checkout
(default `.stsvend` in it) and both stsvend/local and stsvend/ops may import checkout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stsvend.errors import CommandError

# The state directory: this variable, else `.stsvend` in the checkout.
STATE_DIR_VARIABLE = "STSVEND_LOCAL_DIR"
STATE_DIR = ".stsvend"
STATE_FILE = "local.json"


def state_dir(root: Path) -> Path:
    return Path(os.environ.get(STATE_DIR_VARIABLE) or root / STATE_DIR).absolute()


def state_file(root: Path) -> Path:
    return state_dir(root) / STATE_FILE


def read_state(root: Path) -> dict[str, Any]:
    """The running local stack's `local.json`, as a JSON object."""
    path = state_file(root)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CommandError(
            "LocalStackNotRunning", f"no {path}; start the local stack with: make run"
        ) from None
    except (OSError, ValueError) as exc:
        raise CommandError("CannotRead", f"{path} cannot be read: {exc}") from None
    if not isinstance(state, dict):
        raise CommandError("CannotRead", f"{path} is not a JSON object")
    return state
