"""The client's credential cache (stsvend.client.cache): keys, freshness, file modes, atomic writes."""

from __future__ import annotations

import fcntl
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from stsvend.client.cache import CredentialCache, cache_key, caller_identity, default_directory
from tests.unit.answers import NOW, answer

KEY = "0" * 64


@pytest.fixture
def cache(tmp_path: Path) -> CredentialCache:
    return CredentialCache(tmp_path / "stsvend", clock=NOW.timestamp, lock_wait_seconds=0.2)


class Fetch:
    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return self.result


def test_miss_fetches_and_writes_then_hit_reads_without_fetching(cache: CredentialCache) -> None:
    fetch = Fetch(answer())
    assert cache.get_or_fetch(KEY, 300, fetch) == answer()
    assert cache.get_or_fetch(KEY, 300, fetch) == answer()
    assert fetch.calls == 1


def test_expired_entry_is_a_miss(cache: CredentialCache) -> None:
    cache.ensure_directory()
    cache.write(KEY, answer(expires_in=-1))
    assert cache.read(KEY, 0) is None
    fetch = Fetch(answer())
    assert cache.get_or_fetch(KEY, 300, fetch)["Expiration"] == answer()["Expiration"]
    assert fetch.calls == 1


def test_entry_inside_refresh_window_is_a_miss(cache: CredentialCache) -> None:
    cache.ensure_directory()
    cache.write(KEY, answer(expires_in=200))
    assert cache.read(KEY, 300) is None
    assert cache.read(KEY, 100) == answer(expires_in=200)


def test_entry_written_while_waiting_is_used_even_inside_the_window(cache: CredentialCache) -> None:
    # A concurrent process vended it for us: asking again would not give anything fresher.
    cache.ensure_directory()
    cache.write(KEY, answer(expires_in=200))
    mtime = os.stat(cache.path(KEY)).st_mtime
    assert cache.read(KEY, 300, written_since=mtime - 1) == answer(expires_in=200)
    assert cache.read(KEY, 300, written_since=mtime + 1) is None


def test_a_cache_path_through_a_symlink_and_dotdot_is_made_where_the_system_resolves_it(
    tmp_path: Path,
) -> None:
    # XDG_CACHE_HOME=home/link/../cache with link -> real/sub names real/cache to the system: the
    # missing directories are made there (as mkdir -p would), not beside the link.
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "link").symlink_to(tmp_path / "real" / "sub")
    directory = os.path.join(tmp_path, "home", "link", "..", "cache", "stsvend")
    cache = CredentialCache(directory, clock=NOW.timestamp)
    assert cache.get_or_fetch(KEY, 300, Fetch(answer())) == answer()
    made = tmp_path / "real" / "cache" / "stsvend"
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o700 and (made / f"{KEY}.json").is_file()
    assert stat.S_IMODE(os.stat(made.parent).st_mode) == 0o700
    assert not (tmp_path / "home" / "cache").exists()
    assert cache.read(KEY, 300) == answer()


def test_files_are_0600_and_directory_0700(tmp_path: Path) -> None:
    directory = tmp_path / "stsvend"
    directory.mkdir(mode=0o755)
    os.chmod(directory, 0o755)
    old_umask = os.umask(0o022)
    try:
        CredentialCache(directory, clock=NOW.timestamp).get_or_fetch(KEY, 300, Fetch(answer()))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    entries = list(directory.iterdir())
    assert {p.suffix for p in entries} == {".json", ".lock"}
    assert all(stat.S_IMODE(os.stat(p).st_mode) == 0o600 for p in entries)


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"[]", b'{"answer": {"AccessKeyId": "A"}}',
     json.dumps({"answer": answer(Expiration="tomorrow")}).encode(), b"\xff\xfe"],
    ids=["empty", "truncated", "not-an-object", "missing-fields", "bad-expiration", "not-utf8"],
)
def test_corrupt_entry_is_a_miss_and_is_replaced(cache: CredentialCache, content: bytes) -> None:
    cache.ensure_directory()
    Path(cache.path(KEY)).write_bytes(content)
    os.chmod(cache.path(KEY), 0o600)
    fetch = Fetch(answer())
    assert cache.get_or_fetch(KEY, 300, fetch) == answer()
    assert fetch.calls == 1
    assert json.loads(Path(cache.path(KEY)).read_text())["answer"] == answer()


def test_entry_readable_by_others_is_a_miss(cache: CredentialCache) -> None:
    cache.ensure_directory()
    cache.write(KEY, answer())
    os.chmod(cache.path(KEY), 0o644)
    assert cache.read(KEY, 300) is None


def test_symlinked_entry_is_a_miss(cache: CredentialCache, tmp_path: Path) -> None:
    cache.ensure_directory()
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"answer": answer()}))
    os.chmod(elsewhere, 0o600)
    Path(cache.path(KEY)).symlink_to(elsewhere)
    assert cache.read(KEY, 300) is None


def test_failed_write_keeps_the_old_entry_and_leaves_no_temporary_file(
    cache: CredentialCache,
) -> None:
    cache.ensure_directory()
    cache.write(KEY, answer())
    with pytest.raises(TypeError):
        cache.write(KEY, answer(Unserializable=object()))
    assert cache.read(KEY, 300) == answer()
    assert [p.name for p in Path(cache.directory).iterdir()] == [f"{KEY}.json"]


def test_write_renames_a_temporary_file_from_the_same_directory(
    cache: CredentialCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.ensure_directory()
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src: str, dst: str) -> None:
        renames.append((str(src), str(dst)))
        assert json.loads(Path(src).read_text())["answer"] == answer()  # complete before rename
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    cache.write(KEY, answer())
    [(src, dst)] = renames
    assert Path(src).parent == Path(cache.directory) and dst == cache.path(KEY)


def test_a_lock_held_past_the_bound_does_not_block_forever(cache: CredentialCache) -> None:
    cache.ensure_directory()
    holder = os.open(Path(cache.directory) / f"{KEY}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        fetch = Fetch(answer())
        assert cache.get_or_fetch(KEY, 300, fetch) == answer()
        assert fetch.calls == 1
    finally:
        os.close(holder)


def test_unusable_cache_directory_warns_and_still_fetches(tmp_path: Path) -> None:
    blocker = tmp_path / "stsvend"
    blocker.write_text("a file where the directory should be")
    warnings: list[str] = []
    fetch = Fetch(answer())
    result = CredentialCache(blocker, clock=NOW.timestamp).get_or_fetch(
        KEY, 300, fetch, warn=warnings.append
    )
    assert result == answer() and fetch.calls == 1
    assert warnings and "cache" in warnings[0]


def test_cache_key_separates_every_input_and_ignores_tag_order() -> None:
    base = {"role_arn": "arn:aws:iam::222222222222:role/deployer", "tags": {"a": "1", "b": "2"}}
    key = cache_key("https://api", "key:AKIA1", base)
    assert key == cache_key("https://api", "key:AKIA1", {**base, "tags": {"b": "2", "a": "1"}})
    variants = [
        cache_key("https://other", "key:AKIA1", base),
        cache_key("https://api", "key:AKIA2", base),
        cache_key("https://api", "key:AKIA1", {**base, "role_arn": base["role_arn"] + "2"}),
        cache_key("https://api", "key:AKIA1", {**base, "duration_seconds": 900}),
        cache_key("https://api", "key:AKIA1", {**base, "tags": {"a": "1"}}),
        cache_key("https://api", "key:AKIA1", {**base, "session_name": "x"}),
    ]
    assert len({key, *variants}) == 1 + len(variants)


def test_caller_identity_is_the_access_key_else_the_profile() -> None:
    assert caller_identity({"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_PROFILE": "p"}) == "key:AKIA1"
    assert caller_identity({"AWS_PROFILE": "p"}) != caller_identity({"AWS_PROFILE": "q"})
    assert caller_identity({}) == caller_identity({"AWS_PROFILE": "default"})
    assert caller_identity({"AWS_CONFIG_FILE": "/a"}) != caller_identity({"AWS_CONFIG_FILE": "/b"})


def test_cache_directory_follows_xdg_cache_home(tmp_path: Path) -> None:
    assert default_directory({"XDG_CACHE_HOME": str(tmp_path)}) == str(tmp_path / "stsvend")
    assert default_directory({}) == str(Path.home() / ".cache" / "stsvend")


# -- issue 10 item 15, issue 12 section 4 ------------------------------------------------------


def written_at(directory: Path, elapsed: float, lifetime: float) -> CredentialCache:
    """An entry fetched `elapsed` seconds ago for credentials of `lifetime`; the cache reads at NOW."""
    earlier = CredentialCache(directory, clock=lambda: NOW.timestamp() - elapsed)
    earlier.ensure_directory()
    earlier.write(KEY, answer(expires_in=lifetime - elapsed))
    return CredentialCache(directory, clock=NOW.timestamp)


@pytest.mark.parametrize(
    ("lifetime", "elapsed", "hit"),
    [
        # 3600 s: served until 16 minutes are left (botocore asks again at 15, the JS SDK at 5).
        (3600, 0, True), (3600, 2639, True), (3600, 2641, False),
        # 900 s: botocore asks on every call from birth; served until a third of the life is left.
        (900, 0, True), (900, 599, True), (900, 601, False),
        (1800, 1199, True), (1800, 1201, False),
    ],
)
def test_default_window_follows_the_sdks_and_the_lifetime(
    tmp_path: Path, lifetime: float, elapsed: float, hit: bool
) -> None:
    cache = written_at(tmp_path / "stsvend", elapsed, lifetime)
    assert (cache.read(KEY, None) is not None) is hit


def test_an_explicit_window_is_used_as_given(tmp_path: Path) -> None:
    cache = written_at(tmp_path / "stsvend", 10, 900)
    assert cache.read(KEY, 889) is not None
    assert cache.read(KEY, 891) is None
    assert cache.read_unexpired(KEY) is not None


def test_an_entry_is_bound_to_its_key(cache: CredentialCache) -> None:
    cache.ensure_directory()
    other = "1" * 64
    cache.write(other, answer())
    os.replace(cache.path(other), cache.path(KEY))
    assert cache.read(KEY, 300) is None and cache.read_unexpired(KEY) is None
    assert json.loads(Path(cache.path(KEY)).read_text())["key"] == other


@pytest.mark.parametrize("mode", [0o720, 0o702, 0o777])
def test_hits_need_a_directory_only_its_owner_can_write(cache: CredentialCache, mode: int) -> None:
    cache.ensure_directory()
    cache.write(KEY, answer())
    os.chmod(cache.directory, mode)
    assert cache.read(KEY, 300) is None
    os.chmod(cache.directory, 0o755)  # readable by others is no threat to integrity
    assert cache.read(KEY, 300) == answer()


def test_hits_need_a_directory_of_this_user(
    cache: CredentialCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.ensure_directory()
    cache.write(KEY, answer())
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)
    assert cache.read(KEY, 300) is None


def test_a_symlinked_directory_is_not_read(cache: CredentialCache, tmp_path: Path) -> None:
    cache.ensure_directory()
    cache.write(KEY, answer())
    link = tmp_path / "link"
    link.symlink_to(cache.directory)
    assert CredentialCache(link, clock=NOW.timestamp).read(KEY, 300) is None


def test_tightening_a_directory_others_could_write_drops_its_entries(cache: CredentialCache) -> None:
    cache.ensure_directory()
    cache.write(KEY, answer())
    os.chmod(cache.directory, 0o777)
    fetch = Fetch(answer(expires_in=1800))
    assert cache.get_or_fetch(KEY, 300, fetch) == answer(expires_in=1800)
    assert fetch.calls == 1


def test_clear_removes_entries_and_keeps_locks(cache: CredentialCache) -> None:
    cache.get_or_fetch(KEY, 300, Fetch(answer()))
    assert cache.clear() == 1
    assert [p.suffix for p in Path(cache.directory).iterdir()] == [".lock"]
    assert CredentialCache(Path(cache.directory).parent / "absent").clear() == 0


def test_caller_identity_changes_with_the_aws_files(tmp_path: Path) -> None:
    files = {"AWS_CONFIG_FILE": str(tmp_path / "config"),
             "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials")}
    before = caller_identity(files)
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = AKIA2\n")
    after = caller_identity(files)
    assert before != after
    assert caller_identity(files, source_profile="base") != after
    assert caller_identity({**files, "AWS_ROLE_ARN": "arn:aws:iam::1:role/x"}) != after
    assert caller_identity({**files, "AWS_ACCESS_KEY_ID": "AKIA1"}, source_profile="base") != "key:AKIA1"
