"""`stsvend trust-policy`: the trust policy a target role needs, rendered from the checkout's
template. The local stack's deployer role gets its trust policy from the same renderer."""

from __future__ import annotations

import copy
import json
from typing import Any

from stsvend.checkout.checkout import Checkout
from stsvend.checkout.grants_file import MAX_SESSION_POLICY_FILE_BYTES, read_json_file
from stsvend.checkout.model import EXTERNAL_ID, EXTERNAL_ID_CHARS, ROLE_ARN, GrantError
from stsvend.errors import EXIT_USAGE, CommandError

SERVICE_ROLE_PLACEHOLDER = "${STSVEND_SERVICE_ROLE_ARN}"
EXTERNAL_ID_PLACEHOLDER = "${EXTERNAL_ID}"


def read_template(checkout: Checkout) -> dict[str, Any]:
    try:
        template = read_json_file(checkout.trust_template, MAX_SESSION_POLICY_FILE_BYTES)
    except GrantError as exc:
        raise CommandError("InvalidTemplate", f"the trust policy template cannot be read: {exc}") from None
    if not isinstance(template, dict):
        raise CommandError("InvalidTemplate", f"{checkout.trust_template} is not a JSON object")
    return template


def _substitute(value: Any, replacements: dict[str, str]) -> Any:
    if isinstance(value, str):
        for placeholder, text in replacements.items():
            value = value.replace(placeholder, text)
        return value
    if isinstance(value, list):
        return [_substitute(v, replacements) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, replacements) for k, v in value.items()}
    return value


def _drop_external_id(policy: dict[str, Any]) -> None:
    for statement in policy.get("Statement", []):
        conditions = statement.get("Condition", {})
        for operator in list(conditions):
            conditions[operator].pop("sts:ExternalId", None)
            if not conditions[operator]:
                del conditions[operator]
        if "Condition" in statement and not conditions:
            del statement["Condition"]


def fill_trust_template(
    template: dict[str, Any], service_arn: str, external_id: str | None
) -> dict[str, Any]:
    """The template with the service's principal filled in, and the external id condition filled in
    or, without one, removed."""
    policy = copy.deepcopy(template)
    if external_id is None:
        _drop_external_id(policy)
    replacements = {SERVICE_ROLE_PLACEHOLDER: service_arn}
    if external_id is not None:
        replacements[EXTERNAL_ID_PLACEHOLDER] = external_id
    rendered: dict[str, Any] = _substitute(policy, replacements)
    if "${" in json.dumps(rendered):
        raise CommandError(
            "InvalidTemplate", "the trust policy template has a placeholder stsvend does not fill"
        )
    return rendered


def render_trust_policy(
    template: dict[str, Any], service_role_arn: str, external_id: str | None
) -> dict[str, Any]:
    """The target role's trust policy for a deployed stsvend: its role, checked, filled in.

    Both must be ASCII, checked here whatever the model's patterns accept: IAM takes nothing else,
    and a pattern's `\\d` or `\\w` also matches full-width digits and letters of any script."""
    if not (service_role_arn.isascii() and ROLE_ARN.fullmatch(service_role_arn)):
        raise CommandError(
            "InvalidArgument",
            f"--service-role must be an IAM role ARN, not {service_role_arn!r}",
            EXIT_USAGE,
        )
    if external_id is not None and not (external_id.isascii() and EXTERNAL_ID.fullmatch(external_id)):
        raise CommandError(
            "InvalidArgument", f"--external-id must be 2-1224 characters of [{EXTERNAL_ID_CHARS}]", EXIT_USAGE
        )
    return fill_trust_template(template, service_role_arn, external_id)
