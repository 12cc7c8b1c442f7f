"""What `stsvend configure` writes (issue 18 sections 3, 4 and 8; issue 20 sections 2 and 3): names
that never collide and never change which role a profile vends, files others cannot read or
rewrite, no update lost to a concurrent run, the command of the stsvend that ran (not a bare name
from PATH) and the source of its own identity."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from stsvend.client.configure import MARKER, profile_names, profiles_for, updated_config
from stsvend.client.configure import written_roles as written
from stsvend.errors import CommandError
from tests.functional.fake_api import (
    ROLE,
    ROOT,
    FakeApi,
    Received,
    base_env,
    run_cli,
)

X_111 = "arn:aws:iam::111111111111:role/x"
X_333 = "arn:aws:iam::333333333333:role/x"
NAMED_LIKE_AN_ACCOUNT = "arn:aws:iam::333333333333:role/111111111111-x"
URL = "http://127.0.0.1:8000"
CONFIG_SECRET = "config-file-secret-must-never-be-printed"


def written_roles(text: str) -> dict[str, str]:
    return {name: arn for name, (_, arn) in written(text).items()}


def _names(*arns: str, existing: dict[str, str] | None = None) -> dict[str, str]:
    held = {name: (URL, arn) for name, arn in (existing or {}).items()}
    profiles = profiles_for({"Roles": [{"RoleArn": arn} for arn in arns]}, URL, "eu-west-1",
                            "p-", ["stsvend"], existing=held)
    return written_roles(updated_config("", profiles))


@pytest.mark.parametrize("order", [0, 1, 2])
def test_an_account_prefixed_name_never_takes_a_roles_own_name(order: int) -> None:
    arns = [X_111, X_333, NAMED_LIKE_AN_ACCOUNT]
    arns = arns[order:] + arns[:order]
    names = _names(*arns)
    assert len(names) == 3 and set(names.values()) == set(arns)
    assert names["p-111111111111-x"] == NAMED_LIKE_AN_ACCOUNT
    assert names["p-333333333333-x"] == X_333
    [other] = [name for name, arn in names.items() if arn == X_111]
    assert other.startswith("p-x-")


def test_a_profile_keeps_its_name_and_no_profile_changes_role() -> None:
    """`p-x` vended x of 111111111111; x of 333333333333 is granted too: `p-x` stays x of
    111111111111. Then x of 111111111111 is no longer granted: `p-x` is not given to another."""
    first = _names(X_111)
    assert first == {"p-x": X_111}
    second = _names(X_111, X_333, existing=first)
    assert second == {"p-x": X_111, "p-333333333333-x": X_333}
    third = _names(X_333, NAMED_LIKE_AN_ACCOUNT, existing=second)
    assert third["p-333333333333-x"] == X_333 and "p-x" not in third
    names = profile_names({"arn:aws:iam::444444444444:role/x": "x"}, "p-", {"p-x": (URL, X_111)}, URL)
    assert names != {"arn:aws:iam::444444444444:role/x": "p-x"}
    # The same role through another API is another profile.
    assert profile_names({X_111: "x"}, "p-", {"p-x": ("https://other", X_111)}, URL) != {X_111: "p-x"}


def test_the_whole_file_never_holds_one_name_twice(tmp_path: Path, api: FakeApi) -> None:
    config = tmp_path / "config"
    api.reply("GET", "/roles", (200, {}, {"Roles": [{"RoleArn": X_111}]}))
    assert run_cli("configure", "--api", api.url, "--config-file", str(config),
                   env=base_env(tmp_path)).returncode == 0
    api.reply("GET", "/roles", (200, {}, {"Roles": [
        {"RoleArn": arn} for arn in (NAMED_LIKE_AN_ACCOUNT, X_333, X_111)]}))
    done = run_cli("configure", "--api", api.url, "--config-file", str(config), env=base_env(tmp_path))
    assert done.returncode == 0, done.stderr
    text = config.read_text()
    headers = [line for line in text.splitlines() if line.startswith("[")]
    assert len(headers) == len(set(headers)) == 3
    assert written_roles(text)["stsvend-x"] == X_111
    # From an empty file: each of the three roles has a profile of its own.
    fresh = tmp_path / "fresh"
    done = run_cli("configure", "--api", api.url, "--config-file", str(fresh), env=base_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert sorted(written_roles(fresh.read_text()).values()) == sorted([X_111, X_333, NAMED_LIKE_AN_ACCOUNT])


def test_a_collision_with_no_free_name_is_refused() -> None:
    arn = "arn:aws:iam::444444444444:role/x"
    digest = hashlib.sha256(arn.encode()).hexdigest()[:8]
    taken = {name: (URL, X_333) for name in ("p-x", "p-444444444444-x", f"p-x-{digest}")}
    with pytest.raises(CommandError, match="no profile name is free for role"):
        profile_names({arn: "x"}, "p-", taken, URL)


def test_new_files_are_private_and_an_existing_one_loses_write_access_for_others(
    tmp_path: Path, api: FakeApi
) -> None:
    api.reply("GET", "/roles", (200, {}, {"Roles": [{"RoleArn": ROLE}]}))
    environment = base_env(tmp_path)
    config = tmp_path / "home" / ".aws" / "config"
    done = subprocess.run(
        ["sh", "-c", 'umask 000 && exec "$@"', "sh", sys.executable, "-m", "stsvend.cli",
         "configure", "--api", api.url, "--config-file", str(config)],
        env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert oct(config.stat().st_mode & 0o777) == oct(0o600)
    assert oct(config.parent.stat().st_mode & 0o777) == oct(0o700)
    assert not [p for p in config.parent.iterdir() if p.name != "config"]

    config.write_text("[default]\nregion = eu-west-1\n")
    config.chmod(0o666)
    api.reply("GET", "/roles", (200, {}, {"Roles": [{"RoleArn": X_111}]}))
    done = run_cli("configure", "--api", api.url, "--config-file", str(config), env=environment)
    assert done.returncode == 0, done.stderr
    assert oct(config.stat().st_mode & 0o777) == oct(0o644)


def test_concurrent_runs_lose_no_profile(tmp_path: Path, api: FakeApi) -> None:
    """Six runs with six prefixes get their answers at the same moment (the fake API holds each
    until all have asked), then all read, change and write the one file."""
    runs = 6
    arrived = threading.Barrier(runs, timeout=60)

    def together(request: Received) -> tuple[int, dict[str, str], Any]:
        arrived.wait()
        return 200, {}, {"Roles": [{"RoleArn": ROLE}, {"RoleArn": X_111}]}

    api.reply("GET", "/roles", together)
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\n")
    processes = [
        subprocess.Popen([sys.executable, "-m", "stsvend.cli", "configure", "--api", api.url,
                          "--config-file", str(config), "--prefix", f"run{n}-"],
                         env=base_env(tmp_path), cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for n in range(runs)
    ]
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    names = written_roles(config.read_text())
    assert sorted(names) == sorted(f"run{n}-{role}" for n in range(runs) for role in ("deployer", "x"))
    assert config.read_text().startswith("[default]\nregion = eu-west-1\n")


def test_profiles_run_the_stsvend_that_wrote_them_and_name_its_source(
    tmp_path: Path, api: FakeApi
) -> None:
    """Run as `.venv/bin/stsvend` (not on PATH), as `python -m stsvend.cli` or as the one-file
    client: the line runs that Python by its absolute path, isolated (a `stsvend` directory where
    the SDK runs is not imported), with the one-file client on its path if that wrote it. Signed
    with `[default]`'s keys: the lines say `--source-profile default`."""
    from tools.client_zipapp import build

    api.reply("GET", "/roles", (200, {}, {"Roles": [{"RoleArn": ROLE}]}))
    environment = base_env(tmp_path)
    del environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"]
    Path(environment["AWS_SHARED_CREDENTIALS_FILE"]).write_text(
        "[default]\naws_access_key_id = AKIADEFAULTPROFILE01\naws_secret_access_key = s\n")
    environment["PATH"] = "/usr/bin:/bin"
    script = Path(sys.executable).parent / "stsvend"
    zipapp = build(tmp_path / "one file" / "stsvend-client.pyz")
    decoy = tmp_path / "job" / "stsvend"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise SystemExit('the job directory was imported')\n")
    config = tmp_path / "config"
    for argv in ([str(script)], [sys.executable, "-m", "stsvend.cli"], [sys.executable, str(zipapp)]):
        config.unlink(missing_ok=True)
        done = subprocess.run([*argv, "configure", "--api", api.url, "--config-file", str(config)],
                              env=environment, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        [line] = [line for line in config.read_text().splitlines() if line.startswith("credential_")]
        words = shlex.split(line.partition("=")[2])
        assert Path(words[0]).is_absolute() and words[1:3] == ["-I", "-c"]
        assert (str(zipapp) in words[3]) is (argv[-1] == str(zipapp))
        assert words[-2:] == ["--source-profile", "default"]
        assert "AWS_SDK_LOAD_CONFIG=1" in done.stdout
        # The written line runs as an SDK runs it: from another directory, whose PATH lacks stsvend.
        run = subprocess.run(words, env={**environment, "AWS_PROFILE": "stsvend-deployer"},
                             cwd=decoy.parent, capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 0, run.stderr
        assert '"AccessKeyId": "ASIAVENDEDBYFAKEAPI1"' in run.stdout
    assert MARKER in config.read_text()


def test_a_command_that_cannot_be_found_is_refused(tmp_path: Path, api: FakeApi) -> None:
    api.reply("GET", "/roles", (200, {}, {"Roles": [{"RoleArn": ROLE}]}))
    config = tmp_path / "config"
    environment = {**base_env(tmp_path), "PATH": "/usr/bin:/bin"}
    done = run_cli("configure", "--api", api.url, "--config-file", str(config), "--command",
                   "stsvend", env=environment)
    assert done.returncode == 2
    assert "stsvend: CommandNotFound: --command 'stsvend' is not an executable file" in done.stderr
    assert not config.exists()
    assert os.environ.get("PATH")  # the test's own PATH is untouched


def test_configure_writes_through_a_symlinked_config_file(api: FakeApi, tmp_path: Path) -> None:
    """~/.aws/config kept in a dotfiles repository is a symlink: it stays one, and the file it
    points at gets the profiles (with its mode), instead of being silently cut loose."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "aws-config"
    target.write_text("[default]\nregion = eu-west-1\n")
    target.chmod(0o640)
    link = tmp_path / "config"
    link.symlink_to(target)
    api.reply("GET", "/roles", (200, {}, {"Roles": [{"RoleArn": ROLE}]}))

    done = run_cli("configure", "--api", api.url, "--config-file", str(link),
                   env=base_env(tmp_path))

    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and link.resolve() == target
    text = target.read_text()
    assert text.startswith("[default]\nregion = eu-west-1\n\n[profile stsvend-deployer]\n")
    assert f"--role {ROLE}" in text
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in dotfiles.iterdir()] == ["aws-config"]


def test_configure_refuses_a_role_that_would_become_the_default_profile(
    api: FakeApi, tmp_path: Path
) -> None:
    """`[profile default]` is the default profile to botocore and the CLI: with `--prefix ''`, a
    role named `default` would make every tool on the machine run as the vended role."""
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\n")
    api.reply("GET", "/roles", (200, {}, {"Roles": [
        {"RoleArn": "arn:aws:iam::222222222222:role/default"}]}))

    done = run_cli("configure", "--api", api.url, "--config-file", str(config), "--prefix", "",
                   env=base_env(tmp_path))

    assert done.returncode == 2
    assert "as the default profile" in done.stderr and "nothing was written" in done.stderr
    assert config.read_text() == "[default]\nregion = eu-west-1\n"


def test_configure_dry_run_never_prints_a_secret_of_the_config_file(api: FakeApi, tmp_path: Path) -> None:
    """Keys may live in ~/.aws/config; the diff's context lines around an appended profile are the
    file's last lines, and a dry run in a CI job goes to its log."""
    config = tmp_path / "config"
    config.write_text("[default]\nregion = eu-west-1\naws_access_key_id = AKIAUSERCONFIG000001\n"
                      f"aws_secret_access_key = {CONFIG_SECRET}\naws_session_token = {CONFIG_SECRET}\n")
    done = _dry_run(api, config, tmp_path)
    assert "+[profile stsvend-deployer]\n" in done.stdout
    assert CONFIG_SECRET not in done.stdout + done.stderr


def test_configure_dry_run_redacts_a_secret_in_a_profile_it_rewrites(api: FakeApi, tmp_path: Path) -> None:
    """A line someone added to a profile `configure` wrote is among the removed lines of the diff."""
    from stsvend.client.configure import MARKER

    config = tmp_path / "config"
    config.write_text(f"[profile stsvend-deployer]\n{MARKER}\nAWS_Session_Token={CONFIG_SECRET}\n")
    done = _dry_run(api, config, tmp_path)
    assert "-AWS_Session_Token= <redacted>\n" in done.stdout
    assert CONFIG_SECRET not in done.stdout + done.stderr


def test_configure_sees_a_section_header_with_a_trailing_comment_as_botocore_does() -> None:
    """botocore's configparser reads `[profile NAME] ; note` as section NAME: appending another
    `[profile NAME]` made the file a duplicate-section error for every AWS tool."""
    from stsvend.client.configure import MARKER, profiles_for, updated_config

    profiles = profiles_for({"Roles": [{"RoleArn": ROLE}]}, "http://127.0.0.1:8000", "eu-west-1",
                            "stsvend-", ["stsvend"])
    with pytest.raises(CommandError, match="was not written by stsvend configure"):
        updated_config("[profile stsvend-deployer] ; my own\naws_access_key_id = AKIAMINE\n", profiles)
    ours = f"[profile stsvend-deployer]  # note\n{MARKER}\nold = 1\n[default]\nregion = x\n"
    assert updated_config(ours, profiles).count("[profile stsvend-deployer]") == 1


def _dry_run(api: FakeApi, config: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`configure --dry-run` on `config` for the one role the API lists; it succeeded."""
    api.reply("GET", "/roles", (200, {}, {"Roles": [{"RoleArn": ROLE}]}))
    done = run_cli("configure", "--api", api.url, "--config-file", str(config), "--dry-run",
                   env=base_env(tmp_path))
    assert done.returncode == 0, done.stderr
    return done
