"""`python -m stsvend.ops.template`: write the monitoring resources of stsvend.ops.definitions into
`.chalice/package-overrides.json`, the template `chalice package --merge-template` merges, leaving
everything else in that file as it is. tests/functional/test_packaging.py fails while the file and
the definitions disagree."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from stsvend.checkout.checkout import Checkout
from stsvend.ops import deployment
from stsvend.ops.common import stage_names
from stsvend.ops.definitions import template_sections

OVERRIDES = Path(".chalice") / "package-overrides.json"
DEPLOYED_STAGES = ("dev", "prod")
# logical ids this module writes
_OURS = ("StsvendAlarm", "StsvendDashboard", "StsvendQuery", *deployment.TEMPLATE_IDS)


def sections(root: Path) -> dict[str, Any]:
    """The sections for the deployed stages, which share the one merge template: their timeouts and
    API names must agree."""
    checkout = Checkout.open(root)
    names = {stage_names(checkout, stage) for stage in DEPLOYED_STAGES}
    shared = {(n.timeout_seconds, n.api_name, n.api_stage) for n in names}
    if len(shared) != 1:
        raise SystemExit(f"dev and prod differ in lambda_timeout or API name/stage: {sorted(shared)}")
    timeout, api_name, api_stage = shared.pop()
    monitoring = template_sections(timeout, api_name, api_stage)
    # The parameters' defaults are prod's settings; dev passes its own (deploy-info --format parameters).
    prod = deployment.deployment(checkout, "prod")
    defaults = deployment.template_parameters(prod, deployment.stage_settings(root, "prod"))
    stage = deployment.template_sections(api_stage, defaults, app_routes(root))
    return {
        section: {**monitoring.get(section, {}), **stage.get(section, {})}
        for section in ("Parameters", "Conditions", "Resources")
    }


def app_routes(root: Path) -> dict[str, list[str]]:
    """The paths of the checkout's Chalice app and their methods, as `chalice package` writes them."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    app = importlib.import_module("app").app
    return {path: sorted(methods) for path, methods in app.routes.items()}


def merged(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """`current` with the wanted entries; monitoring resources no longer defined are dropped."""
    out = dict(current)
    for section, entries in wanted.items():
        kept = {
            k: v
            for k, v in current.get(section, {}).items()
            if not (section == "Resources" and k.startswith(_OURS) and k not in entries)
        }
        out[section] = {**kept, **entries}
    return out


def dumps(value: Any, indent: str = "") -> str:
    """JSON with two-space indentation and short objects and lists on one line, as the file is
    written by hand."""
    compact = json.dumps(value)
    if not isinstance(value, (dict, list)) or _objects_deep(value) <= 1 and len(indent) + len(compact) <= 80:
        return compact
    inner = indent + "  "
    if isinstance(value, list):
        items = [inner + dumps(v, inner) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    fields = [f"{inner}{json.dumps(k)}: {dumps(v, inner)}" for k, v in value.items()]
    return "{\n" + ",\n".join(fields) + "\n" + indent + "}"


def _objects_deep(value: Any) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return (1 if isinstance(value, dict) else 0) + max((_objects_deep(c) for c in children), default=0)


def main() -> int:
    root = Checkout.find(Path.cwd())
    path = root / OVERRIDES
    current = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(dumps(merged(current, sections(root))) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
