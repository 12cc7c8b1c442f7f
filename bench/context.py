"""What benchmarks share within one run: the local stack, started on first use, stopped at the end."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.common import ROOT


class Context:
    def __init__(self) -> None:
        self._stack: Any = None
        self._state_dir: Path | None = None

    def local_stack(self) -> Any:
        """The local stack (emulator with IAM auth on + `chalice local`) on free loopback ports."""
        if self._stack is None:
            from stsvend.local.stack import LocalStack

            stack = LocalStack.on_free_ports(ROOT, self.scratch("stack"))
            stack.start()
            self._stack = stack
        return self._stack

    def scratch(self, name: str) -> Path:
        """A private directory for this run (removed at the end)."""
        if self._state_dir is None:
            self._state_dir = Path(tempfile.mkdtemp(prefix="stsvend-bench-"))
        path = self._state_dir / name
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    def __enter__(self) -> Context:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._stack is not None:
            self._stack.stop()
            self._stack = None
        if self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None
