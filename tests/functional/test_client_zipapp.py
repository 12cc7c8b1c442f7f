"""The client as one file (issue 20 section 7): `make client-zipapp` builds a zipapp holding the
client commands only, which answers a cache hit without botocore and says clearly when the Python
or the botocore it finds is too old."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from stsvend.constants import __version__
from tests.functional.fake_api import (
    ROLE,
    ROOT,
    FakeApi,
    base_env,
)
from tools.client_zipapp import build

# A Python without botocore or stsvend, on every machine: this one without its site-packages.
NO_SITE_PYTHON = [sys.executable, "-S"]


@pytest.fixture(scope="module")
def zipapp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("zipapp") / "stsvend-client.pyz")


def test_the_zipapp_holds_the_client_only(zipapp: Path) -> None:
    names = zipfile.ZipFile(zipapp).namelist()
    assert "__main__.py" in names and "stsvend/client/commands.py" in names
    assert "stsvend/client/commands.pyc" in names
    assert not [n for n in names if n.startswith(("stsvend/checkout", "stsvend/local", "stsvend/ops"))]
    assert not [n for n in names if not n.startswith("stsvend/") and not n.startswith("__main__")]
    # The same sources make the same file.
    again = build(zipapp.with_name("again.pyz"))
    assert again.read_bytes() == zipapp.read_bytes()

    done = subprocess.run([sys.executable, str(zipapp), "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0
    listed = re.findall(r"^    (\S+)", done.stdout.split("options:")[0], re.M)
    assert listed == [
        "credentials", "exec", "serve", "console", "roles", "whoami", "cache", "configure", "doctor"
    ]
    done = subprocess.run([sys.executable, str(zipapp), "grants", "plan", "--stage", "dev"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and "invalid choice: 'grants'" in done.stderr
    version = subprocess.run([str(zipapp), "--version"], capture_output=True, text=True, timeout=60,
                             check=False, cwd="/")
    assert version.stdout == f"stsvend {__version__}\n"


def test_a_cache_hit_needs_no_botocore_and_a_miss_says_what_is_missing(
    zipapp: Path, tmp_path: Path, api: FakeApi
) -> None:
    environment = base_env(tmp_path)
    argv = ["credentials", "--api", api.url, "--role", ROLE]
    miss = subprocess.run([*NO_SITE_PYTHON, str(zipapp), *argv], env=environment, capture_output=True,
                          text=True, timeout=60, check=False)
    assert miss.returncode == 1
    assert miss.stderr.startswith("stsvend: NoBotocore: a cache miss signs with botocore, which is "
                                  "not installed")
    # The installed stsvend fills the cache; the one file, with no botocore, answers from it.
    filled = subprocess.run([sys.executable, "-m", "stsvend.cli", *argv], env=environment, cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert filled.returncode == 0, filled.stderr
    hit = subprocess.run([*NO_SITE_PYTHON, str(zipapp), *argv], env=environment, capture_output=True,
                         text=True, timeout=60, check=False)
    assert hit.returncode == 0, hit.stderr
    assert hit.stdout == filled.stdout
    assert len(api.calls("POST", "/credentials")) == 1


def test_an_old_botocore_or_python_is_named(zipapp: Path, tmp_path: Path, api: FakeApi) -> None:
    old = tmp_path / "old" / "botocore"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text("__version__ = '1.29.165'\n")
    environment = {**base_env(tmp_path), "PYTHONPATH": str(old.parent)}
    done = subprocess.run([sys.executable, str(zipapp), "credentials", "--api", api.url, "--role",
                           ROLE], env=environment, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("stsvend: BotocoreTooOld: botocore '1.29.165' is older than 1.34")
    assert api.received == []

    main = zipfile.ZipFile(zipapp).read("__main__.py").decode()
    probe = f"import sys; sys.version_info = (3, 9, 18); exec({main!r})"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 1
    assert done.stderr == ("stsvend: UnsupportedPython: the stsvend client needs Python 3.10 or "
                           "later, not 3.9\n")


def test_make_client_zipapp_builds_it(tmp_path: Path) -> None:
    done = subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "-n", "client-zipapp"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0
    assert shlex.split(done.stdout.strip().splitlines()[-1])[1:] == ["tools/client_zipapp.py"]


def test_every_client_module_imports_from_the_zipapp_alone(zipapp: Path) -> None:
    """A module the client commands import (stsvend.arns for configure, say) must be in the file:
    inside the zipapp, `stsvend` is the zipapp's package, so nothing is found elsewhere."""
    modules = sorted(p.stem for p in (ROOT / "stsvend" / "client").glob("*.py"))
    import botocore

    # botocore's folder, without running site (where an editable install of stsvend hooks imports).
    site = str(Path(botocore.__file__).parents[1])
    code = (
        f"import sys; sys.path[:0] = [{str(zipapp)!r}, {site!r}]; import stsvend; "
        f"assert stsvend.__file__.startswith({str(zipapp)!r}), stsvend.__file__; "
        + "; ".join(f"import stsvend.client.{m}" for m in modules if m != "__init__")
    )
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
