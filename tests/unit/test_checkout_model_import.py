"""How the command reaches the server's code (stsvend/checkout/model.py, Checkout.open): loaded from
the checkout's own files by location, with sys.path left as it was, and refused when the modules
already loaded come from elsewhere."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, cwd: Path) -> dict[str, object]:
    """`code` in a fresh, isolated interpreter (-I: no current directory, no PYTHONPATH on sys.path,
    so chalicelib is importable only as stsvend loads it); its last line of output as JSON."""
    done = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


PROBE = (
    "import json, sys; before = list(sys.path); import stsvend.checkout.model as model;"
    " print(json.dumps({'unchanged': sys.path == before, 'grants': sys.modules['chalicelib.grants'].__file__,"
    " 'parse': model.parse_grant.__module__}))"
)


def test_importing_the_model_leaves_sys_path_unchanged() -> None:
    result = _run(PROBE, ROOT / "policies")  # found from a directory inside the checkout
    assert result["unchanged"] is True
    assert Path(str(result["grants"])) == ROOT / "chalicelib" / "grants.py"
    assert result["parse"] == "chalicelib.grants"


def test_the_model_comes_from_the_checkout_it_is_opened_in(tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(ROOT / "chalicelib", other / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / ".chalice", other / ".chalice", ignore=shutil.ignore_patterns("deployed"))
    result = _run(PROBE, other)
    assert result["unchanged"] is True
    assert Path(str(result["grants"])) == other / "chalicelib" / "grants.py"


def test_a_model_loaded_from_elsewhere_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(ROOT / "chalicelib", other / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / ".chalice", other / ".chalice", ignore=shutil.ignore_patterns("deployed"))
    code = (
        "import json, sys; from stsvend.checkout.checkout import Checkout;"
        " from stsvend.errors import CommandError;"
        f" Checkout.open({str(ROOT)!r});\n"
        f"try:\n    Checkout.open({str(other)!r}); print(json.dumps({{'code': None}}))\n"
        "except CommandError as exc:\n    print(json.dumps({'code': exc.code, 'message': exc.message}))"
    )
    result = _run(code, tmp_path)
    assert result["code"] == "InvalidCheckout"
    assert "already loaded from" in str(result["message"])


def test_the_app_is_imported_from_the_checkout_without_sys_path() -> None:
    code = (
        "import json, sys; before = list(sys.path); from stsvend.checkout.checkout import Checkout;"
        f" app = Checkout.open({str(ROOT)!r}).import_app();"
        " print(json.dumps({'unchanged': sys.path == before, 'file': app.__file__,"
        " 'chalice': isinstance(app.app, __import__('chalice').Chalice)}))"
    )
    result = _run(code, ROOT.parent)
    assert result == {"unchanged": True, "file": str(ROOT / "app.py"), "chalice": True}


def planted_checkout(tmp_path: Path) -> Path:
    """A directory shaped like a checkout whose `chalicelib` announces itself when it is imported."""
    planted = tmp_path / "planted"
    (planted / ".chalice").mkdir(parents=True)
    (planted / ".chalice" / "config.json").write_text("{}")
    (planted / "chalicelib").mkdir()
    (planted / "chalicelib" / "__init__.py").write_text("print('PLANTED CODE RAN')\n")
    (planted / "chalicelib" / "grants.py").write_text("")
    return planted


def test_root_names_the_checkout_whose_code_runs_not_the_current_directorys(tmp_path: Path) -> None:
    """`--root` opens that checkout before the command's modules import the model: a `chalicelib`
    planted in the current directory (another checkout, or a directory made to look like one) never
    runs, and a command run from outside any checkout works with --root."""
    planted = planted_checkout(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    command = [sys.executable, "-I", "-m", "stsvend.cli", "trust-policy", "--root", str(ROOT),
               "--service-role", "arn:aws:iam::111111111111:role/stsvend-dev-api_handler"]
    for cwd in (planted, outside):
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False,
                              env={"PATH": "/usr/bin:/bin"})
        assert "PLANTED" not in done.stdout + done.stderr
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["Statement"][0]["Principal"] == {
            "AWS": "arn:aws:iam::111111111111:role/stsvend-dev-api_handler"
        }


def test_revoke_reads_the_grant_model_of_the_checkout_it_names(tmp_path: Path) -> None:
    """`stsvend revoke --root`: the grants change is found with that checkout's model, not with a
    `chalicelib` planted in the current directory."""
    planted = planted_checkout(tmp_path)
    code = (
        "import json, sys; from pathlib import Path; from stsvend.ops.revoke import grants_change;"
        f" lines = grants_change(Path({str(ROOT)!r}), 'arn:aws:iam::111111111111:user/sample-app');"
        " print(json.dumps({'lines': lines, 'model': sys.modules['chalicelib.grants'].__file__}))"
    )
    result = _run(code, planted)
    assert Path(str(result["model"])) == ROOT / "chalicelib" / "grants.py"
    assert any("policies/grants/" in line for line in result["lines"])  # type: ignore[union-attr]
