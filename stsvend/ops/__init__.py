"""Operating a deployed stsvend: `monitor` (alarms, dashboard, saved queries), `audit` (ask the
audit log and CloudTrail), `revoke` (cut off live sessions). Each command's module is imported only
when it runs."""

from __future__ import annotations

from typing import Any

# subcommand -> (module, function), merged into the command table of stsvend.cli
HANDLERS = {
    "monitor": ("stsvend.ops.monitor", "cmd_monitor"),
    "audit": ("stsvend.ops.audit", "cmd_audit"),
    "revoke": ("stsvend.ops.revoke", "cmd_revoke"),
    "deploy-info": ("stsvend.ops.deployment", "cmd_deploy_info"),
    "deploy": ("stsvend.ops.deployment", "cmd_deploy"),
    "rollback": ("stsvend.ops.deployment", "cmd_rollback"),
}


def register(subparsers: Any) -> None:
    from stsvend.ops import audit, deployment, monitor, revoke

    for module in (monitor, audit, revoke, deployment):
        module.register(subparsers)
