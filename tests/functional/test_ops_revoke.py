"""`stsvend revoke` against the emulator's IAM (a moto server on loopback): without --apply nothing
is written; with it the policy is on the role, merged idempotently; a policy that would not fit, or
one stsvend did not write, is refused with nothing written; an access key is traced to its request
through the audit log; runs at once lose no revocation and report none that is not in force. moto
does not evaluate aws:PrincipalTag or aws:TokenIssueTime conditions, so what the policy denies is
checked in tests/unit/test_ops_revoke.py, not here."""

from __future__ import annotations

import io
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from stsvend.cli import main
from stsvend.ops.revoke import POLICY_NAME, TAG_CALLER, TAG_REQUEST_ID, is_ours

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
KEYS = {"aws_access_key_id": "AKIDREVOKETEST", "aws_secret_access_key": "not-a-secret"}
REQUEST_ID = "c0ffee00-1234-4bcd-9876-0123456789ab"
ROOT = Path(__file__).resolve().parents[2]
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}
    ],
}


@pytest.fixture
def iam(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "STSVEND_LOCAL_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEYS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    return boto3.client("iam", region_name=REGION, endpoint_url=moto_url, **KEYS)


@pytest.fixture
def role(iam: Any) -> str:
    name = f"deployer-{uuid.uuid4().hex[:8]}"
    arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    return arn


def policy_on(iam: Any, role: str) -> dict[str, Any] | None:
    """The role's revocation policies as one document: their statements in the order of their names
    (each revocation is a policy of its own; one named POLICY_NAME alone is read as it is)."""
    name = role.rsplit("/", 1)[1]
    names = sorted(n for n in iam.list_role_policies(RoleName=name)["PolicyNames"] if is_ours(n))
    if not names:
        return None
    documents = [iam.get_role_policy(RoleName=name, PolicyName=n)["PolicyDocument"] for n in names]
    if names == [POLICY_NAME]:
        only: dict[str, Any] = documents[0]
        return only
    return {"Version": "2012-10-17", "Statement": [s for d in documents for s in d["Statement"]]}


def test_without_apply_nothing_is_written(iam: Any, role: str, capsys: Any) -> None:
    assert main(["revoke", "--role", role, "--request-id", REQUEST_ID]) == 0
    out = capsys.readouterr().out
    assert f"+ deny request {REQUEST_ID}, issued before " in out
    assert "Dry run: nothing written; add --apply to write it." in out
    assert policy_on(iam, role) is None


def test_apply_puts_the_policy_on_the_role_and_a_second_run_changes_nothing(
    iam: Any, role: str, capsys: Any
) -> None:
    assert main(["revoke", "--role", role, "--request-id", REQUEST_ID, "--apply"]) == 0
    assert f"Written: {POLICY_NAME} on {role.rsplit('/', 1)[1]}." in capsys.readouterr().out
    first = policy_on(iam, role)
    assert first is not None
    [statement] = first["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"]["StringEquals"] == {
        TAG_REQUEST_ID: [REQUEST_ID]
    }

    assert main(["revoke", "--role", role, "--request-id", REQUEST_ID, "--apply"]) == 0
    assert "No change." in capsys.readouterr().out
    assert policy_on(iam, role) == first

    caller = f"arn:aws:sts::{ACCOUNT}:assumed-role/jenkins-agent/i-0abc"
    assert main(["revoke", "--role", role, "--caller", caller, "--apply", "--root", str(ROOT)]) == 0
    out = capsys.readouterr().out
    both = policy_on(iam, role)
    assert both is not None
    by_kind = {s["Sid"].removeprefix("StsvendRevoke")[:-16]: s for s in both["Statement"]}
    assert sorted(by_kind) == ["Caller", "Request"] and by_kind["Request"] == statement
    assert by_kind["Caller"]["Condition"]["StringEqualsIgnoreCase"] == {
        TAG_CALLER: [f"arn:aws:iam::{ACCOUNT}:role/jenkins-agent"]
    }
    # A revoked caller: what stops new vends (no grant in this repository admits it).
    assert f"To stop new vends for arn:aws:iam::{ACCOUNT}:role/jenkins-agent" in out
    assert "no grant in policies/grants/ admits" in out


def test_a_policy_that_would_not_fit_is_refused_and_nothing_is_written(
    iam: Any, role: str, capsys: Any
) -> None:
    name = role.rsplit("/", 1)[1]
    big = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": f"S{i}",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::bucket-with-a-long-name-{i:04d}/*",
            }
            for i in range(140)
        ],
    }
    iam.put_role_policy(RoleName=name, PolicyName="existing", PolicyDocument=json.dumps(big))
    assert main(["revoke", "--role", role, "--request-id", REQUEST_ID, "--apply"]) == 1
    err = capsys.readouterr().err
    assert "the policy would not fit" in err and "IAM allows 10,240; nothing was written" in err
    assert policy_on(iam, role) is None


def test_a_policy_of_the_same_name_that_stsvend_did_not_write_is_left_alone(
    iam: Any, role: str, capsys: Any
) -> None:
    name = role.rsplit("/", 1)[1]
    theirs = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "Theirs", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(theirs))
    assert main(["revoke", "--role", role, "--all-before-now", "--apply"]) == 1
    assert "holds a statement stsvend did not write (Sid 'Theirs')" in capsys.readouterr().err
    assert policy_on(iam, role) == theirs


def test_an_access_key_is_revoked_through_its_request_in_the_audit_log(
    iam: Any, role: str, tmp_path: Path, capsys: Any
) -> None:
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S,000+0000")
    log = tmp_path / "api.log"
    log.write_text(
        json.dumps(
            {
                "timestamp": stamp,
                "event": "credentials.vended",
                "request_id": REQUEST_ID,
                "role_arn": role,
                "caller_principal": "arn:aws:iam::111111111111:user/jenkins",
                "access_key_id": "ASIAEXAMPLEKEY000001",
            }
        )
        + "\n"
    )
    argv = ["revoke", "--role", role, "--access-key-id", "ASIAEXAMPLEKEY000001"]
    assert main(argv) == 2
    assert "--access-key-id needs the audit log" in capsys.readouterr().err
    assert main([*argv, "--log", str(log), "--apply"]) == 0
    assert f"ASIAEXAMPLEKEY000001 was vended by request {REQUEST_ID}" in capsys.readouterr().out
    written = policy_on(iam, role)
    assert written is not None and written["Statement"][0]["Condition"]["StringEquals"] == {
        TAG_REQUEST_ID: [REQUEST_ID]
    }
    other = f"arn:aws:iam::{ACCOUNT}:role/someone-else"
    assert (
        main(["revoke", "--role", other, "--access-key-id", "ASIAEXAMPLEKEY000001", "--log", str(log)]) == 2
    )
    assert f"was vended for {role}, not {other}" in capsys.readouterr().err
    assert main([*argv[:-1], "ASIAEXAMPLEKEY000009", "--log", str(log)]) == 1
    assert "no vend of ASIAEXAMPLEKEY000009" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--role", "arn:aws:iam::123456789012:role/x", "--request-id", "x'"], "--request-id must be"),
        (
            ["--role", "arn:aws:iam::123456789012:role/*", "--all-before-now"],
            "--role must be an IAM role ARN",
        ),
        (["--role", "arn:aws:iam::123456789012:role/x"], "name one of"),
        (
            ["--role", "arn:aws:iam::123456789012:role/x", "--all-before-now", "--request-id", REQUEST_ID],
            "name one of",
        ),
    ],
)
def test_bad_arguments_exit_2_before_any_aws_call(
    iam: Any, argv: list[str], message: str, capsys: Any
) -> None:
    assert main(["revoke", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_role_of_another_account_says_which_credentials_to_use(iam: Any, capsys: Any) -> None:
    assert main(["revoke", "--role", "arn:aws:iam::222222222222:role/nope", "--all-before-now"]) == 1
    assert "run with credentials of the role's account (222222222222)" in capsys.readouterr().err


def test_a_role_with_a_path_must_be_named_with_it(iam: Any, capsys: Any) -> None:
    name = f"pathed-{uuid.uuid4().hex[:8]}"
    arn = iam.create_role(RoleName=name, Path="/ci/", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"][
        "Arn"
    ]
    assert main(["revoke", "--role", f"arn:aws:iam::{ACCOUNT}:role/{name}", "--all-before-now"]) == 1
    assert f"IAM has {arn}" in capsys.readouterr().err
    assert main(["revoke", "--role", arn, "--all-before-now", "--apply"]) == 0
    assert policy_on(iam, arn) is not None


# --- runs at once -----------------------------------------------------------------------------

RUNS = 8


class _PerThread(io.TextIOBase):
    """sys.stdout/stderr for threads: each thread's writes go to its own buffer."""

    def __init__(self) -> None:
        self.buffers: dict[int, io.StringIO] = {}
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            buffer = self.buffers.setdefault(threading.get_ident(), io.StringIO())
        return buffer.write(text)

    def text_of(self, ident: int) -> str:
        return self.buffers.get(ident, io.StringIO()).getvalue()


@contextmanager
def per_thread_output() -> Iterator[tuple[_PerThread, _PerThread]]:
    out, err = _PerThread(), _PerThread()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    try:
        yield out, err
    finally:
        sys.stdout, sys.stderr = saved


def run_at_once(argvs: list[list[str]]) -> list[tuple[int, str, str]]:
    """Each argv in its own thread, all released together: (exit code, stdout, stderr) each."""
    barrier = threading.Barrier(len(argvs))
    results: dict[int, tuple[int, int]] = {}

    def one(index: int, argv: list[str]) -> None:
        barrier.wait()
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
        results[index] = (code, threading.get_ident())

    with per_thread_output() as (out, err):
        threads = [threading.Thread(target=one, args=(i, a)) for i, a in enumerate(argvs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    return [
        (results[i][0], out.text_of(results[i][1]), err.text_of(results[i][1])) for i in range(len(argvs))
    ]


def in_force(iam: Any, role: str) -> dict[str, set[str]]:
    """What the role's revocation policies deny, read straight from IAM: request ids and callers
    (lower-cased), and whether every stsvend session is denied."""
    name = role.rsplit("/", 1)[1]
    found: dict[str, set[str]] = {"request": set(), "caller": set(), "all": set()}
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        if not policy.startswith(POLICY_NAME):
            continue
        document = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        if isinstance(document, str):
            document = json.loads(document)
        for statement in document["Statement"]:
            condition = statement["Condition"]
            found["request"] |= set(condition.get("StringEquals", {}).get(TAG_REQUEST_ID, []))
            callers = condition.get("StringEqualsIgnoreCase", {}).get(TAG_CALLER, [])
            found["caller"] |= {c.lower() for c in callers}
            if "Null" in condition:
                found["all"].add(statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"])
    return found


@pytest.mark.parametrize("round_", range(2))
def test_concurrent_revocations_of_one_role_are_all_in_force(iam: Any, role: str, round_: int) -> None:
    requests = [str(uuid.uuid4()) for _ in range(RUNS - 2)]
    callers = [f"arn:aws:iam::{ACCOUNT}:user/agent-{round_}-{i}" for i in range(2)]
    argvs = [["revoke", "--role", role, "--request-id", r, "--apply"] for r in requests]
    argvs += [["revoke", "--role", role, "--caller", c, "--apply", "--root", "/nonexistent"] for c in callers]
    results = run_at_once(argvs)
    force = in_force(iam, role)
    for (code, out, err), target in zip(results, requests + callers, strict=True):
        assert code == 0, err
        assert "Written: " in out and "denied every action" in out
        assert target in force["request"] or target.lower() in force["caller"], (target, out)


def test_a_run_that_cannot_confirm_its_revocation_does_not_report_it(
    iam: Any, role: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """Whatever happens to the write (here: IAM keeps answering with the role's policies as they were
    before it), the run fails instead of reporting a revocation it cannot read back."""
    from stsvend.ops import revoke

    real_read = revoke.read_role
    before = real_read(iam, role)
    monkeypatch.setattr(revoke, "read_role", lambda client, arn: before)
    monkeypatch.setattr(revoke, "CONFIRM_SECONDS", 1.0)
    code = main(["revoke", "--role", role, "--request-id", str(uuid.uuid4()), "--apply"])
    captured = capsys.readouterr()
    assert code == 1
    assert "denied every action" not in captured.out
    assert "NotInForce" in captured.err


def test_the_policy_every_entry_was_kept_in_before_is_read_never_rewritten(
    iam: Any, role: str, capsys: Any
) -> None:
    """A role revoked by an earlier stsvend holds one policy named POLICY_NAME: its entries count (a
    revocation it holds is already there), it is left as it is while any can deny something, and it is
    deleted once none can."""
    from datetime import datetime, timedelta, timezone

    from stsvend.ops.revoke import REQUEST, Entry, document

    name = role.rsplit("/", 1)[1]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    old = str(uuid.uuid4())
    legacy = document({Entry(REQUEST, old, now - timedelta(minutes=10))})
    iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(legacy))
    assert main(["revoke", "--role", role, "--request-id", old, "--apply"]) == 0
    assert "(already there)" in capsys.readouterr().out
    assert main(["revoke", "--role", role, "--request-id", REQUEST_ID, "--apply"]) == 0
    assert "Read back in force" in capsys.readouterr().out
    names = iam.list_role_policies(RoleName=name)["PolicyNames"]
    assert POLICY_NAME in names and len(names) == 2
    assert iam.get_role_policy(RoleName=name, PolicyName=POLICY_NAME)["PolicyDocument"] == legacy

    expired = document({Entry(REQUEST, old, now - timedelta(hours=2))})
    iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(expired))
    assert main(["revoke", "--role", role, "--request-id", str(uuid.uuid4()), "--apply"]) == 0
    assert f"nothing left for them to deny: {POLICY_NAME}." in capsys.readouterr().out
    assert POLICY_NAME not in iam.list_role_policies(RoleName=name)["PolicyNames"]


def test_a_policy_whose_name_is_not_the_revocation_it_holds_is_refused(
    iam: Any, role: str, capsys: Any
) -> None:
    from datetime import datetime, timezone

    from stsvend.ops.revoke import REQUEST, Entry, document, policy_name

    name = role.rsplit("/", 1)[1]
    when = datetime.now(timezone.utc).replace(microsecond=0)
    named = policy_name(Entry(REQUEST, str(uuid.uuid4()), when))
    held = document({Entry(REQUEST, REQUEST_ID, when)})
    iam.put_role_policy(RoleName=name, PolicyName=named, PolicyDocument=json.dumps(held))
    assert main(["revoke", "--role", role, "--all-before-now", "--apply"]) == 1
    assert (
        f"the inline policy {named} does not hold the one revocation its name says" in capsys.readouterr().err
    )
    assert iam.list_role_policies(RoleName=name)["PolicyNames"] == [named]


def test_a_full_role_keeps_room_for_revoking_every_session(iam: Any, role: str, capsys: Any) -> None:
    """Each revocation is a policy of its own, and IAM cannot replace two policies with one at once:
    a revocation of one request is refused when it would leave no room for --all-before-now, which
    then fits, and deletes the entries it covers once it is in force."""
    from stsvend.ops.revoke import MAX_INLINE_CHARS, packed_size

    name = role.rsplit("/", 1)[1]
    assert main(["revoke", "--role", role, "--request-id", REQUEST_ID, "--apply"]) == 0
    capsys.readouterr()
    statement = {
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": [f"arn:aws:s3:::b{i:03d}-{'x' * 80}/*" for i in range(80)],
    }
    filler = {"Version": "2012-10-17", "Statement": [statement]}
    statement["Resource"].append(
        "arn:aws:s3:::" + "y" * (9_500 - packed_size(filler) - len('"arn:aws:s3:::",'))
    )
    assert packed_size(filler) == 9_500
    iam.put_role_policy(RoleName=name, PolicyName="existing", PolicyDocument=json.dumps(filler))
    assert main(["revoke", "--role", role, "--request-id", str(uuid.uuid4()), "--apply"]) == 1
    assert (
        "kept free for --all-before-now), IAM allows 10,240; nothing was written" in capsys.readouterr().err
    )
    assert main(["revoke", "--role", role, "--all-before-now", "--apply"]) == 0
    out = capsys.readouterr().out
    assert "Read back in force" in out and "nothing left for them to deny" in out
    written = policy_on(iam, role)
    assert written is not None
    assert [s["Sid"].startswith("StsvendRevokeAllStsvendSessions") for s in written["Statement"]] == [True]
    sizes = [
        packed_size(iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"])
        for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
    ]
    assert sum(sizes) <= MAX_INLINE_CHARS
    # With no room even for that, it says what is left: the console's revocation, or less policy.
    more = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject"}]}
    more["Statement"][0]["Resource"] = "arn:aws:s3:::" + "z" * 400
    iam.put_role_policy(RoleName=name, PolicyName="more", PolicyDocument=json.dumps(more))
    import time

    time.sleep(1.1)  # a later second: the revocation of every session moves to it
    assert main(["revoke", "--role", role, "--all-before-now", "--apply"]) == 1
    assert 'nothing was written. Use the console\'s "Revoke active sessions"' in capsys.readouterr().err


def _clock_off_by(offset: Any) -> Any:
    """revoke's `datetime`, its clock `offset` away from the real one (a responder's machine whose
    clock is not IAM's)."""
    from datetime import datetime

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + offset

    return Skewed


def test_a_run_on_a_slow_clock_never_moves_a_revocation_earlier(
    iam: Any, role: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A colleague's run, on a clock ahead of this one, revoked a caller's sessions issued before its
    time T; this run, revoking the same caller at its own earlier time, must leave sessions issued
    before T denied (it reported T's revocation in force)."""
    from datetime import datetime, timedelta, timezone

    from stsvend.ops import revoke

    caller = f"arn:aws:iam::{ACCOUNT}:user/responder-{uuid.uuid4().hex[:6]}"
    monkeypatch.setattr(revoke, "datetime", _clock_off_by(timedelta(minutes=10)))
    assert main(["revoke", "--role", role, "--caller", caller, "--apply", "--root", "/nonexistent"]) == 0
    later = in_force(iam, role)
    monkeypatch.setattr(revoke, "datetime", datetime)
    assert main(["revoke", "--role", role, "--caller", caller, "--apply", "--root", "/nonexistent"]) == 0
    capsys.readouterr()
    name = role.rsplit("/", 1)[1]
    times = []
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        for statement in iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]["Statement"]:
            times.append(statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"])
    assert later["caller"] == {caller.lower()}
    ahead = datetime.now(timezone.utc) + timedelta(minutes=9)
    assert max(datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) for t in times) > ahead


def test_a_run_on_a_fast_clock_never_prunes_a_revocation_still_in_force(
    iam: Any, role: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """A revocation written a minute ago still denies sessions for the next hour; a run whose clock is
    two hours ahead (of IAM's, which it reads) must not delete it as expired."""
    from datetime import timedelta

    from stsvend.ops import revoke

    first = str(uuid.uuid4())
    assert main(["revoke", "--role", role, "--request-id", first, "--apply"]) == 0
    monkeypatch.setattr(revoke, "datetime", _clock_off_by(timedelta(hours=2)))
    assert main(["revoke", "--role", role, "--request-id", str(uuid.uuid4()), "--apply"]) == 0
    assert "nothing left for them to deny" not in capsys.readouterr().out
    assert first in in_force(iam, role)["request"]
