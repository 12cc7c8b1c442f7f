"""What the local stack seeds the emulator with (docs/design.md section 7).

`seed_emulator` runs while IAM authentication is off: it creates the two accounts' identities, roles
and EC2 instances. `fill_grants` runs after authentication is on, as the `admin` identity, with the
same code as `stsvend bootstrap` and `stsvend grants apply`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stsvend import aws
from stsvend.checkout.checkout import Checkout

INFRA_ACCOUNT = "111111111111"
DEV_ACCOUNT = "222222222222"
REGION = "us-east-1"
STAGE = "local"

ADMIN = "admin"
SERVICE = "service"
SAMPLE_APP = "sample-app"
JENKINS = "jenkins"
# identity name in local.json -> IAM user name (all in the infrastructure account)
USER_NAMES = {ADMIN: "admin", SERVICE: "stsvend-service", SAMPLE_APP: "sample-app", JENKINS: "jenkins"}

READ_ONLY_ROLE = f"arn:aws:iam::{INFRA_ACCOUNT}:role/read-only"
DEPLOYER_ROLE = f"arn:aws:iam::{DEV_ACCOUNT}:role/deployer"
# Granted in web-identity mode (chalicelib.idp): sessions of up to 12 hours.
LONG_RUNNING_ROLE = f"arn:aws:iam::{INFRA_ACCOUNT}:role/long-running"
LONGEST_SESSION_SECONDS = 43200
TOKEN_AUDIENCE = "stsvend"
ISSUER_KEY_ALIAS = f"alias/stsvend-issuer-{STAGE}"
INSTANCES_PER_ACCOUNT = 2

ADMINISTRATOR_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Everything", "Effect": "Allow", "Action": "*", "Resource": "*"}],
}
DEPLOYER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Sid": "Describe", "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"},
        {"Sid": "Launch", "Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*"},
        {
            "Sid": "TagOnLaunch",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": "*",
            "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
        },
    ],
}


@dataclass(frozen=True)
class Identity:
    """An IAM user of the emulator and its access key (emulator-only, never a real AWS key)."""

    arn: str
    account_id: str
    access_key_id: str
    secret_access_key: str = field(repr=False)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Bootstrapped:
    identities: dict[str, Identity]
    roles: dict[str, str]
    instances: dict[str, list[str]]
    issuer_keys: list[str] = field(default_factory=list)


def aws_client(
    service: str,
    endpoint_url: str,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    account_id: str | None = None,
    region: str = REGION,
) -> Any:
    """A botocore client for the emulator (stsvend.aws). `account_id` (bootstrap only, while IAM
    authentication is off) sends the emulator's account header, so the call acts in that account."""
    client = aws.emulator_client(
        service, endpoint_url, access_key_id, secret_access_key, region=region, session_token=session_token
    )
    if account_id is not None:

        def in_account(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account_id

        client.meta.events.register("before-sign", in_account)
    return client


def caller_user_id(endpoint_url: str, identity: Identity) -> str:
    """The identity's unique id (`AIDA...` on AWS) as the emulator's STS answers it."""
    sts = aws_client("sts", endpoint_url, identity.access_key_id, identity.secret_access_key)
    return str(sts.get_caller_identity()["UserId"])


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _filled(path: Path, placeholders: dict[str, str]) -> str:
    """A policy template with its `${NAME}` placeholders filled (values are ARNs and ids, which
    need no JSON escaping); fails on a placeholder left over."""
    text = path.read_text(encoding="utf-8")
    for name, value in placeholders.items():
        text = text.replace("${" + name + "}", value)
    if "${" in text:
        raise ValueError(f"{path} has a placeholder the local stack does not fill")
    return json.dumps(json.loads(text))


def service_policy(root: Path) -> dict[str, Any]:
    """The vending service's permissions: exactly those of `.chalice/policy-dev.json`.

    The emulator checks DynamoDB calls against resource `*` only (see `emulator`): a statement
    naming the grants table's ARN would never match, so the dynamodb statement names `*` here. It
    still allows nothing but dynamodb:Query, the one call the service makes.

    The same holds for KMS, whose condition keys the emulator does not supply either: the kms
    statements name `*` without their alias condition here. The service can then sign with any of
    the emulator's keys, but only the issuer key's signatures verify against the published JWKS,
    which the guard checks (stsvend.local.webidentity).
    """
    policy: dict[str, Any] = _read_json(root / ".chalice" / "policy-dev.json")
    for statement in policy["Statement"]:
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        if any(a.startswith(("dynamodb:", "kms:")) for a in actions):
            statement["Resource"] = "*"
        if any(a.startswith("kms:") for a in actions):
            statement.pop("Condition", None)
    return policy


def deployer_external_id(root: Path) -> str | None:
    """The external id the local grants file gives the deployer role (its trust must require it)."""
    for grant in _read_json(root / "policies" / "grants" / f"{STAGE}.json"):
        for role in grant.get("roles", []):
            if role.get("role_arn") == DEPLOYER_ROLE:
                external_id = role.get("external_id")
                return str(external_id) if external_id is not None else None
    return None


def deployer_trust_policy(checkout: Checkout, service_arn: str, external_id: str) -> dict[str, Any]:
    """The same renderer as `stsvend trust-policy`; here the service is an IAM user, not a role."""
    # Imported once the checkout is open: the grant model they load must come from it.
    from stsvend.checkout.trust_policy import fill_trust_template, read_template

    return fill_trust_template(read_template(checkout), service_arn, external_id)


def seed_emulator(
    endpoint_url: str, checkout: Checkout, bootstrap_key: tuple[str, str], issuer: str | None = None
) -> Bootstrapped:
    """Fill a fresh emulator (IAM authentication off): identities, roles and instances, signed with
    `bootstrap_key`, the emulator's bootstrap key (the only key its guard accepts until enforcement).
    With `issuer` (the API's URL), also the identity-provider mode's parts: the issuer's KMS key,
    the IAM OIDC provider for it in both accounts and the role granted in web-identity mode."""
    root = checkout.root

    def client(service: str, account_id: str) -> Any:
        # The header picks the account.
        return aws_client(service, endpoint_url, *bootstrap_key, None, account_id)

    iam = client("iam", INFRA_ACCOUNT)
    sample = root / "policies" / "sample"
    ask_stsvend_only = _read_json(sample / "assumerole-policy.json")
    permissions = {
        ADMIN: ("AdministratorAccess", ADMINISTRATOR_ACCESS),
        SERVICE: ("stsvend-service", service_policy(root)),
        SAMPLE_APP: ("ask-stsvend-only", ask_stsvend_only),
        JENKINS: ("ask-stsvend-only", ask_stsvend_only),
    }
    identities: dict[str, Identity] = {}
    for name, (policy_name, document) in permissions.items():
        user_name = USER_NAMES[name]
        arn = iam.create_user(UserName=user_name)["User"]["Arn"]
        iam.put_user_policy(UserName=user_name, PolicyName=policy_name, PolicyDocument=json.dumps(document))
        key = iam.create_access_key(UserName=user_name)["AccessKey"]
        identities[name] = Identity(arn, INFRA_ACCOUNT, key["AccessKeyId"], key["SecretAccessKey"])
    service_arn = identities[SERVICE].arn

    read_only = iam.create_role(
        RoleName="read-only",
        Description="The STS sample application's read-only role, assumed through stsvend",
        AssumeRolePolicyDocument=_filled(
            sample / "read-only-trust-policy.json", {"STSVEND_SERVICE_ARN": service_arn}
        ),
    )["Role"]["Arn"]
    iam.put_role_policy(
        RoleName="read-only",
        PolicyName="read-only",
        PolicyDocument=json.dumps(_read_json(sample / "read-only-policy.json")),
    )

    external_id = deployer_external_id(root)
    if external_id is None:
        raise ValueError(f"policies/grants/{STAGE}.json gives {DEPLOYER_ROLE} no external_id")
    dev_iam = client("iam", DEV_ACCOUNT)
    deployer = dev_iam.create_role(
        RoleName="deployer",
        Description="Deploys to the development account; assumed through stsvend",
        AssumeRolePolicyDocument=json.dumps(deployer_trust_policy(checkout, service_arn, external_id)),
    )["Role"]["Arn"]
    dev_iam.put_role_policy(
        RoleName="deployer", PolicyName="deployer", PolicyDocument=json.dumps(DEPLOYER_POLICY)
    )
    if (read_only, deployer) != (READ_ONLY_ROLE, DEPLOYER_ROLE):
        raise ValueError(f"the emulator named the roles {read_only} and {deployer}")

    roles = {"read-only": READ_ONLY_ROLE, "deployer": DEPLOYER_ROLE}
    keys: list[str] = []
    if issuer is not None:
        keys = [create_issuer_key(client("kms", INFRA_ACCOUNT), ISSUER_KEY_ALIAS)]
        for account in (INFRA_ACCOUNT, DEV_ACCOUNT):
            client("iam", account).create_open_id_connect_provider(Url=issuer, ClientIDList=[TOKEN_AUDIENCE])
        trust = web_identity_trust_policy(
            LONG_RUNNING_ROLE, issuer, TOKEN_AUDIENCE, [identities[SAMPLE_APP].arn]
        )
        iam.create_role(
            RoleName="long-running",
            Description="The sample application's long jobs; vended by stsvend in web-identity mode",
            AssumeRolePolicyDocument=json.dumps(trust),
            MaxSessionDuration=LONGEST_SESSION_SECONDS,
        )
        iam.put_role_policy(
            RoleName="long-running",
            PolicyName="read-only",
            PolicyDocument=json.dumps(_read_json(sample / "read-only-policy.json")),
        )
        roles["long-running"] = LONG_RUNNING_ROLE

    instances = {
        INFRA_ACCOUNT: _launch(client("ec2", INFRA_ACCOUNT), "sample-app-web"),
        DEV_ACCOUNT: _launch(client("ec2", DEV_ACCOUNT), "dev-service"),
    }
    return Bootstrapped(identities, roles, instances, keys)


def create_issuer_key(kms: Any, alias: str | None = None, spec: str = "RSA_2048") -> str:
    """An asymmetric signing key for the issuer (private half never leaves KMS); its ARN."""
    arn = str(
        kms.create_key(
            KeySpec=spec, KeyUsage="SIGN_VERIFY", Description="stsvend issuer: signs web identity tokens"
        )["KeyMetadata"]["Arn"]
    )
    if alias is not None:
        kms.create_alias(AliasName=alias, TargetKeyId=arn)
    return arn


def web_identity_trust_policy(
    role_arn: str, issuer: str, audience: str, grants: list[str]
) -> dict[str, Any]:
    """The same renderer as `stsvend trust-policy --web-identity`."""
    from stsvend.checkout.trust_policy import web_identity_trust_policy as render

    return render(role_arn, issuer, audience, grants)


def _launch(ec2: Any, name: str) -> list[str]:
    # The emulator ships a set of public AMIs per region; any of them will do.
    image = min(image["ImageId"] for image in ec2.describe_images(Owners=["amazon"])["Images"])
    reservation = ec2.run_instances(
        ImageId=image,
        InstanceType="t3.micro",
        MinCount=INSTANCES_PER_ACCOUNT,
        MaxCount=INSTANCES_PER_ACCOUNT,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
    )
    return [instance["InstanceId"] for instance in reservation["Instances"]]


def fill_grants(
    endpoint_url: str, checkout: Checkout, admin: Identity, issuer_urls: Mapping[str, str] | None = None
) -> str:
    """Create the grants table and apply `policies/grants/local.json` to it, as `admin` with IAM
    authentication on, with the checkout commands' code (`stsvend bootstrap` + `stsvend grants apply`).
    `issuer_urls` are where the local OIDC issuers answer (the file names the default port).
    Returns the table's name."""
    # Imported once the checkout is open: the grant model they load must come from it.
    from stsvend.checkout.apply import apply_changes
    from stsvend.checkout.grants_file import load_grants_file
    from stsvend.checkout.plan import plan_changes
    from stsvend.checkout.table import create_table

    table = checkout.grants_table(STAGE)
    dynamodb = aws_client("dynamodb", endpoint_url, admin.access_key_id, admin.secret_access_key)
    create_table(dynamodb, table)
    grants = load_grants_file(checkout.grants_file(STAGE), checkout.session_dir)
    grants = [_at(entry, issuer_urls or {}) for entry in grants]
    result = apply_changes(dynamodb, table, plan_changes(dynamodb, table, grants), updated_by=admin.arn)
    if not result.ok:
        raise ValueError(f"applying the local grants failed: {result.error}")
    return table


def _at(entry: Any, issuer_urls: Mapping[str, str]) -> Any:
    """A local issuer's entry with the URL it answers at on this run."""
    from dataclasses import replace

    from stsvend.checkout.model import Issuer

    if isinstance(entry, Issuer) and entry.name in issuer_urls:
        return replace(entry, issuer=issuer_urls[entry.name])
    return entry
