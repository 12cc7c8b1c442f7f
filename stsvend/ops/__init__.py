"""Operating a deployed stsvend: `monitor` (alarms, dashboard, saved queries), `audit` (ask the
audit log and CloudTrail), `revoke` (cut off live sessions). Each command's module is imported only
when it runs.

stsvend/cli.py names each command's module and function; `register` adds their parsers."""

from __future__ import annotations

from typing import Any


def register(subparsers: Any) -> None:
    from stsvend.ops import audit, deployment, monitor, revoke

    for module in (monitor, audit, revoke, deployment):
        module.register(subparsers)
