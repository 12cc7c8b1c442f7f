"""Chalice's names for a deployed stage, in one place (chalice 1.34, `chalice/deploy/appgraph.py`):
the function behind the REST API is `<app>-<stage>` (Chalice keeps the old deployer's name), and its
role, with `autogen_policy: false`, `<app>-<stage>-api_handler`: the service role every target role
trusts. tests/functional/test_deploy_rehearsal.py deploys with the real `chalice deploy` and finds
both."""

from __future__ import annotations

API_HANDLER = "api_handler"  # Chalice's resource name for the function behind the REST API


def chalice_names(app_name: str, stage: str) -> tuple[str, str]:
    """(function, service role) as `chalice deploy` names them with `autogen_policy: false`."""
    return f"{app_name}-{stage}", f"{app_name}-{stage}-{API_HANDLER}"
