"""The one STS call that vends: AssumeRole, with botocore's failures translated into the service's
errors (the cause kept). The AWS edge of vending; what is asked is decided in `chalicelib.vending`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.errors import AssumeRoleDenied, PolicyTooLarge, ServiceUnavailable, StsvendError
from chalicelib.grants import RoleGrant
from chalicelib.timestamps import format_timestamp
from chalicelib.vending import TAG_CALLER, Plan

_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
}


def _denied_message(role: RoleGrant, params: dict[str, Any]) -> str:
    needs = "sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity"
    external = " with the grant's external id (sts:ExternalId)" if role.external_id else ""
    caller = next((t["Value"] for t in params.get("Tags", []) if t["Key"] == TAG_CALLER), "")
    # An OIDC caller's tag is oidc:<issuer>:<grant>, which the trust template's default `arn:*`
    # does not match: the role's owner admits it explicitly (`--allowed-caller`).
    patterns = (
        " and an oidc: pattern of the stsvend:caller session tag (stsvend trust-policy --allowed-caller)"
        if caller.startswith("oidc:")
        else ""
    )
    return (
        f"STS refused to assume {role.role_arn}: check that its trust policy allows the stsvend"
        f" service role {needs}{external}{patterns}, and that the service role may call them"
    )


def assume_role(sts: Any, plan: Plan) -> dict[str, Any]:
    """Call STS; translate its failures into the service's errors (the cause is kept)."""
    try:
        answer = sts.assume_role(**plan.params)
    except Exception as exc:
        error = _translated(exc, plan.role, plan.params)
        if error is None:
            raise
        raise error from exc
    creds = answer["Credentials"]
    expiration = creds["Expiration"]
    if isinstance(expiration, datetime):
        expiration = format_timestamp(expiration)
    return {
        "Version": 1,
        "AccessKeyId": creds["AccessKeyId"],
        "SecretAccessKey": creds["SecretAccessKey"],
        "SessionToken": creds["SessionToken"],
        "Expiration": expiration,
        "AssumedRoleArn": answer["AssumedRoleUser"]["Arn"],
        "RoleSessionName": plan.params["RoleSessionName"],
        "SourceIdentity": plan.params["SourceIdentity"],
    }


def _translated(exc: Exception, role: RoleGrant, params: dict[str, Any]) -> StsvendError | None:
    """The service's error for a failed AssumeRole, or None for a failure not botocore's."""
    # Imported where needed: botocore is loaded by then (chalicelib.aws created the client).
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, BotoCoreError):
        return ServiceUnavailable("STS could not be reached; try again")
    if not isinstance(exc, ClientError):
        return None
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code == "PackedPolicyTooLarge":
        return PolicyTooLarge(
            "STS says the session policy and tags are too large once packed; shorten the"
            " request's tags or the grant's session policy"
        )
    if code in _THROTTLED or status >= 500:
        return ServiceUnavailable("STS is throttling or unavailable; try again")
    if code == "AccessDenied":
        return AssumeRoleDenied(_denied_message(role, params))
    if code == "RegionDisabledException":
        return AssumeRoleDenied("STS is not activated in the service's region for the target role's account")
    return AssumeRoleDenied(f"STS rejected the AssumeRole request ({code or status})")
