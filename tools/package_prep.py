"""`make package-prep`: fill Chalice's vendor/ so that the deployment package starts fast.

    python tools/package_prep.py [PROJECT_DIR]

Run before `chalice package`/`chalice deploy`; it writes only vendor/ (git-ignored) and the
bytecode in chalicelib/__pycache__. Chalice zips vendor/ into the package as it is, next to what
it installs from requirements.txt:

- the X-Ray SDK and wrapt (requirements-vendor.txt) without their dependencies: the SDK's one
  other dependency is botocore, which the Lambda Python runtime already has; installed from
  requirements.txt, Chalice would bundle botocore (21 MB) and the function would import that
  uncompiled copy on every cold start instead of the runtime's compiled one;
- bytecode, compiled by this interpreter for every module the package ships (requirements.txt's
  packages, Chalice's runtime, app.py, chalicelib/), hash-based so that it stays valid after the
  zip's timestamps: Lambda's task root is read-only and Python would otherwise compile every module
  on every cold start.

- botocore service models cut down to the operations the function's role may call
  (MODEL_OPERATIONS), without their documentation, in vendor/botocore_models: chalicelib.aws
  has botocore read them instead of the runtime's whole models (DynamoDB's is 94 KB gzipped,
  500 KB of JSON, for one operation of 57).

Lambda runs the Python version Chalice packages for, which is the version of the interpreter that
runs Chalice (`python3.11` here): run this with that same interpreter (the project's .venv), and the
bytecode matches the runtime. Without this step `chalice deploy` still builds a working function:
the same sources without bytecode and without the X-Ray SDK (app.py then says so at start).
"""

from __future__ import annotations

import compileall
import importlib.util
import json
import py_compile
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Checked, not unchecked: Python hashes each source (SipHash, cheap) and compares it with the one
# compiled in, so bytecode left from an older source is recompiled instead of run.
MODE = py_compile.PycInvalidationMode.CHECKED_HASH
VENDOR_REQUIREMENTS = "requirements-vendor.txt"
# The Lambda architecture Chalice deploys by default (the stages do not set another).
PLATFORM = "manylinux2014_x86_64"
# The AWS operations the function calls (its role allows these and no other, for these services):
# the grants Query and the vend's AssumeRole. A service not named here gets botocore's whole model.
# AssumeRoleWithWebIdentity is the identity-provider mode's (chalicelib.idp): STS takes no IAM
# permission for it (the token is the authentication), so it is in no role policy.
MODEL_OPERATIONS = {"dynamodb": ("Query",), "sts": ("AssumeRole", "AssumeRoleWithWebIdentity")}
MODELS = "botocore_models"
DOCUMENTATION = ("documentation", "documentationUrl")


def pip_install(requirements: Path, target: Path) -> None:
    """Install exactly the pinned distributions, as Lambda-compatible wheels, without dependencies."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-compile", "--only-binary=:all:", "--platform", PLATFORM, "--implementation", "cp",
         "--python-version", version, "--target", str(target), "-r", str(requirements)],
        check=True,
    )


def compile_tree(directory: Path) -> None:
    if not compileall.compile_dir(directory, quiet=1, force=True, invalidation_mode=MODE, workers=0):
        raise SystemExit(f"compiling {directory} failed")


def compile_importable(site: Path) -> None:
    """Compile what can be imported from `site`: its packages and modules, not the scripts and
    metadata a wheel also installs (bin/, *.data/, *.dist-info/)."""
    for entry in sorted(site.iterdir()):
        if entry.is_dir() and (entry / "__init__.py").exists():
            compile_tree(entry)
        elif entry.suffix == ".py":
            py_compile.compile(str(entry), doraise=True, invalidation_mode=MODE)


def overlay_bytecode(built: Path, vendor: Path) -> None:
    """Copy only the __pycache__ directories of `built` into vendor/: the sources come from
    requirements.txt through Chalice, and each .pyc names the hash of the source it was built from."""
    for cache in built.rglob("__pycache__"):
        shutil.copytree(cache, vendor / cache.relative_to(built), dirs_exist_ok=True)


def without_documentation(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_documentation(v) for k, v in value.items() if k not in DOCUMENTATION}
    if isinstance(value, list):
        return [without_documentation(v) for v in value]
    return value


def cut_model(model: dict[str, Any], operations: tuple[str, ...]) -> dict[str, Any]:
    """`model` with only `operations` and the shapes they reach, without documentation."""
    shapes = model["shapes"]
    wanted: set[str] = set()
    pending = [
        ref["shape"]
        for name in operations
        for ref in (model["operations"][name].get("input"), model["operations"][name].get("output"),
                    *model["operations"][name].get("errors", []))
        if ref
    ]
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        shape = shapes[name]
        refs = [*shape.get("members", {}).values(), shape.get("member"), shape.get("key"), shape.get("value")]
        pending.extend(ref["shape"] for ref in refs if ref)
    cut = {**model, "operations": {name: model["operations"][name] for name in operations},
           "shapes": {name: shapes[name] for name in sorted(wanted)}}
    return dict(without_documentation(cut))


def write_models(directory: Path) -> None:
    """The service models of MODEL_OPERATIONS, cut down, as botocore lays out its data directory."""
    from botocore.loaders import Loader

    loader = Loader()
    for service, operations in MODEL_OPERATIONS.items():
        version = loader.determine_latest_version(service, "service-2")
        model = loader.load_service_model(service, "service-2", version)
        target = directory / service / version / "service-2.json"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(cut_model(model, operations), separators=(",", ":")), encoding="utf-8")


def prepare(project: Path) -> None:
    vendor = project / "vendor"
    shutil.rmtree(vendor, ignore_errors=True)
    vendor.mkdir()
    pip_install(project / VENDOR_REQUIREMENTS, vendor)
    # Type stubs: nothing the function runs.
    for stubs in vendor.glob("*-stubs"):
        shutil.rmtree(stubs)
    compile_importable(vendor)
    write_models(vendor / MODELS)
    with tempfile.TemporaryDirectory(prefix="package-prep-") as scratch:
        built = Path(scratch)
        pip_install(project / "requirements.txt", built / "site")
        compile_importable(built / "site")
        overlay_bytecode(built / "site", vendor)
        # Chalice adds its own runtime (chalice/app.py, chalice/__init__.py) from this installation.
        chalice = Path(importlib.util.find_spec("chalice").origin).parent  # type: ignore[union-attr,arg-type]
        runtime = built / "runtime"
        (runtime / "chalice").mkdir(parents=True)
        for name in ("__init__.py", "app.py"):
            shutil.copy2(chalice / name, runtime / "chalice" / name)
        compile_importable(runtime)
        overlay_bytecode(runtime, vendor)
    py_compile.compile(
        str(project / "app.py"), cfile=importlib.util.cache_from_source(str(vendor / "app.py")),
        dfile="app.py", doraise=True, invalidation_mode=MODE,
    )
    # chalicelib/ is zipped by Chalice from the project, __pycache__ included: compile it in place
    # (replacing timestamp bytecode an earlier import wrote, which a zip's timestamps invalidate).
    compile_tree(project / "chalicelib")
    size = sum(p.stat().st_size for p in vendor.rglob("*") if p.is_file())
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    print(f"vendor/: {size / 1024 / 1024:.1f} MB, bytecode for Python {version}")


if __name__ == "__main__":
    prepare(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())
