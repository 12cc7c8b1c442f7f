"""The demo's flows, as a user runs them: the two examples against the running stack, the denied
request through the `stsvend` command, and `stsvend local demo` itself on a stack of its own."""

from __future__ import annotations

import pytest

from stsvend.local.stack import LocalStack
from tests.e2e.conftest import ROOT, run_checkout_command

pytestmark = pytest.mark.e2e


def test_sample_app_is_denied_alone_and_allowed_through_stsvend(stack: LocalStack) -> None:
    result = run_checkout_command(
        str(ROOT / "examples" / "sample_app.py"), "--config", str(stack.state_path)
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "denied (AccessDenied)" in result.stdout
    assert "vended arn:aws:sts::111111111111:assumed-role/read-only/sample-app-" in result.stdout
    assert "source identity sample-app" in result.stdout
    for instance in stack.state.instances["111111111111"]:
        assert instance in result.stdout


def test_jenkins_deploys_to_the_development_account(stack: LocalStack) -> None:
    result = run_checkout_command(
        str(ROOT / "examples" / "jenkins_cross_account.py"), "--config", str(stack.state_path),
        "--build-id", "e2e-7", "--job-name", "e2e-deploy",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "acting as arn:aws:sts::222222222222:assumed-role/deployer/jenkins-build-e2e-7" in (
        result.stdout
    )
    assert "tagged build-id=e2e-7" in result.stdout


def test_stsvend_command_reports_a_role_not_granted(stack: LocalStack) -> None:
    state = stack.state
    result = run_checkout_command(
        "-m", "stsvend.cli", "credentials", "--role", state.roles["deployer"], "--no-cache",
        env=state.environment("sample-app"),
    )

    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr.startswith("stsvend: RoleNotGranted: ")


def test_example_fails_when_the_stack_is_not_there(tmp_path) -> None:
    result = run_checkout_command(
        str(ROOT / "examples" / "sample_app.py"), "--config", str(tmp_path / "local.json")
    )

    assert result.returncode == 1
    assert "start the local stack first" in result.stdout


def test_demo_command_runs_every_step_on_its_own_stack(tmp_path) -> None:
    result = run_checkout_command(
        "-m", "stsvend.cli", "local", "demo", env={"STSVEND_LOCAL_DIR": str(tmp_path)}
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("-> ok") == 4
    assert "FAILED" not in result.stdout
    assert "Demo passed: all 4 steps behaved as described." in result.stdout
    # The CI step: a GitHub-shaped job got read-only and described instances; its pull request not.
    assert "source identity gh-400000001-7000000001-1" in result.stdout
    assert "describe-instances with them: 2 instances" in result.stdout
    assert "refused, as expected" in result.stdout
    assert list(tmp_path.iterdir()) == [], "the demo removes its stack's state on success"
