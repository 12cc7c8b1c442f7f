"""The Terraform forms (deploy/terraform/): formatted as `terraform fmt` wants; the target role's
trust policy computed by Terraform itself equals what `stsvend trust-policy` renders, and its input
checks refuse what IAM would; with the AWS provider at hand, `terraform init` and `validate` pass.

Terraform is at /usr/local/bin/terraform on the project's machines (OpenTofu's `tofu` serves too),
but the AWS provider is fetched from a registry that may be unreachable: the provider's tests then
skip, saying what is missing. They use a provider from $STSVEND_TERRAFORM_PLUGIN_DIR (a `terraform
providers mirror` directory) if set, else the plugin directory Terraform searches itself
(~/.terraform.d/plugins)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stsvend.checkout.checkout import Checkout
from stsvend.checkout.trust_policy import read_template, render_trust_policy

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / "deploy" / "terraform"
SERVICE = "arn:aws:iam::999999999999:role/stsvend-prod-api_handler"
TERRAFORM = shutil.which("terraform") or shutil.which("tofu")
NO_TERRAFORM = "neither terraform (>= 1.5) nor OpenTofu's tofu is on PATH: install one to run these"
needs_terraform = pytest.mark.skipif(TERRAFORM is None, reason=NO_TERRAFORM)
# Where `hashicorp/aws` resolves: Terraform's registry, or OpenTofu's.
PROVIDER_PATHS = ("registry.terraform.io/hashicorp/aws", "registry.opentofu.org/hashicorp/aws")
NO_PROVIDER = (
    "no AWS provider (hashicorp/aws 5.x) in a local mirror, and the tests never download one: set"
    " STSVEND_TERRAFORM_PLUGIN_DIR to a directory made by `terraform providers mirror DIR` (run where the"
    " registry is reachable, in out/terraform-prod after `make terraform-package`), or unpack the provider"
    " under ~/.terraform.d/plugins/registry.terraform.io/hashicorp/aws/"
)


def provider_dir() -> Path | None:
    """A directory holding the AWS provider (a filesystem mirror's layout), if there is one."""
    candidates = [
        os.environ.get("STSVEND_TERRAFORM_PLUGIN_DIR"), str(Path.home() / ".terraform.d" / "plugins")
    ]
    for candidate in filter(None, candidates):
        if any((Path(candidate) / path).is_dir() for path in PROVIDER_PATHS):
            return Path(candidate)
    return None


def terraform(directory: Path, *args: str, plugins: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert TERRAFORM is not None
    rc = directory / ".terraformrc"
    mirror = (
        f'provider_installation {{\n  filesystem_mirror {{ path = "{plugins}" }}\n}}\n' if plugins else ""
    )
    rc.write_text(mirror)
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(rc), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    return subprocess.run([TERRAFORM, *args], cwd=directory, env=env, capture_output=True, text=True,
                          timeout=300)


@needs_terraform
def test_the_modules_are_formatted(tmp_path: Path) -> None:
    done = terraform(tmp_path, "fmt", "-check", "-recursive", "-diff", str(MODULES))
    assert done.returncode == 0, done.stdout + done.stderr


def computed_trust_policy(tmp_path: Path, **variables: Any) -> subprocess.CompletedProcess[str]:
    """The trust-policy module applied by Terraform in a root of its own (no provider, no resource)."""
    arguments = "\n".join(f"  {k} = {json.dumps(v)}" for k, v in variables.items())
    (tmp_path / "main.tf").write_text(
        f'module "trust" {{\n  source = "{MODULES / "stsvend-target-role" / "trust-policy"}"\n'
        f"{arguments}\n}}\n"
        'output "json" {\n  value = module.trust.json\n}\n'
    )
    init = terraform(tmp_path, "init", "-backend=false", "-input=false")
    assert init.returncode == 0, init.stdout + init.stderr
    return terraform(tmp_path, "apply", "-auto-approve", "-input=false")


def rendered(external_id: str | None) -> dict[str, Any]:
    return render_trust_policy(read_template(Checkout.open(ROOT)), SERVICE, external_id)


@needs_terraform
@pytest.mark.parametrize("external_id", ["stsvend-prod", None])
def test_terraform_computes_the_trust_policy_stsvend_renders(tmp_path: Path, external_id: str | None) -> None:
    variables: dict[str, Any] = {"service_role_arn": SERVICE}
    if external_id:
        variables["external_id"] = external_id
    applied = computed_trust_policy(tmp_path, **variables)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    output = terraform(tmp_path, "output", "-raw", "json")
    assert json.loads(output.stdout) == rendered(external_id)


@needs_terraform
def test_caller_patterns_reach_both_statements(tmp_path: Path) -> None:
    callers = ["arn:aws:iam::111111111111:role/ci-*", "arn:aws:iam::111111111111:user/jenkins"]
    applied = computed_trust_policy(tmp_path, service_role_arn=SERVICE, allowed_callers=callers)
    assert applied.returncode == 0, applied.stderr
    policy = json.loads(terraform(tmp_path, "output", "-raw", "json").stdout)
    assert [s["Condition"]["StringLike"]["aws:RequestTag/stsvend:caller"] for s in policy["Statement"]] == [
        callers, callers
    ]


@needs_terraform
@pytest.mark.parametrize(
    "callers", [["arn:*", "oidc:github:*"], ["oidc:gitlab-prod:deploy-*"]], ids=["with-iam", "oidc-only"]
)
def test_terraform_admits_oidc_callers_as_trust_policy_renders_them(
    tmp_path: Path, callers: list[str]
) -> None:
    applied = computed_trust_policy(
        tmp_path, service_role_arn=SERVICE, external_id="stsvend-prod", allowed_callers=callers
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    output = terraform(tmp_path, "output", "-raw", "json")
    template = read_template(Checkout.open(ROOT))
    assert json.loads(output.stdout) == render_trust_policy(template, SERVICE, "stsvend-prod", callers)


@needs_terraform
@pytest.mark.parametrize("variables", [
    {"service_role_arn": "arn:aws:iam::999999999999:user/someone"},
    {"service_role_arn": "*"},
    {"service_role_arn": SERVICE, "external_id": "a b"},
    {"service_role_arn": SERVICE, "external_id": "x"},
    {"service_role_arn": SERVICE, "allowed_callers": []},
    {"service_role_arn": SERVICE, "allowed_callers": ["*"]},
    {"service_role_arn": SERVICE, "allowed_callers": ["arn:*", "gh:*"]},
    {"service_role_arn": SERVICE, "allowed_callers": ["oidc:github *"]},
    {"service_role_arn": SERVICE, "allowed_callers": ["oidc:"]},
])
def test_terraform_refuses_what_iam_would(tmp_path: Path, variables: dict[str, Any]) -> None:
    applied = computed_trust_policy(tmp_path, **variables)
    assert applied.returncode != 0 and "Invalid value for variable" in applied.stderr, applied.stderr


@needs_terraform
@pytest.mark.parametrize("module", ["stsvend-target-role"])
def test_init_and_validate_with_the_aws_provider(tmp_path: Path, module: str) -> None:
    plugins = provider_dir()
    if plugins is None:
        pytest.skip(f"{NO_PROVIDER}: init/validate not run")
    work = tmp_path / module
    shutil.copytree(MODULES / module, work)
    init = terraform(work, "init", "-backend=false", "-input=false", plugins=plugins)
    assert init.returncode == 0, init.stdout + init.stderr
    validate = terraform(work, "validate", "-no-color", plugins=plugins)
    assert validate.returncode == 0, validate.stdout + validate.stderr
