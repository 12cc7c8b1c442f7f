"""`chalice package` for the deployed stages, checked offline: API Gateway authorizes every method
with SigV4, the template passes cfn-lint, the Lambda's role allows only the vend path's calls, the
function is set up for that path, and its zip holds what the Lambda reads and nothing else.

Each stage is packaged once per test session (chalice fetches requirements.txt's wheels from PyPI,
and reuses them from .chalice/deployments/ after the first run)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import app as app_module
from chalicelib.aws import _CONFIG_ARGS as BOTOCORE_CONFIG
from tests.functional.conftest import JENKINS, api_event, iam_identity
from tools.package_prep import MODELS, without_documentation

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OVERRIDES = ROOT / ".chalice" / "package-overrides.json"
DEPLOYED_STAGES = ("dev", "prod")
API_GATEWAY_TIMEOUT_SECONDS = 29
MB = 1024 * 1024
# Lambda's limits for a zip uploaded directly, and for the code unzipped.
MAX_ZIP_BYTES = 50 * MB
MAX_UNZIPPED_BYTES = 250 * MB
VEND_PATH_ACTIONS = {
    "dynamodb:Query",
    "sts:AssumeRole",
    "sts:TagSession",
    "sts:SetSourceIdentity",
    # The identity-provider mode (chalicelib.idp): sign with the issuer key, publish its public half.
    "kms:Sign",
    "kms:GetPublicKey",
    "logs:CreateLogGroup",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}
# Actions that support no resource-level permission; only these may have Resource "*".
PUBLIC_DOCUMENTS = {"/.well-known/openid-configuration", "/.well-known/jwks.json"}
RESOURCELESS_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# Never in the zip: the checkout's other parts; and what the Lambda runtime already provides.
NEVER = (
    "tests/", "stsvend/", "bench/", "policies/", "examples/", "tools/", ".stsvend/", ".chalice/", ".venv/",
)
RUNTIME_PROVIDED = ("botocore/", "boto3/", "s3transfer/", "urllib3/", "dateutil/")
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "x-amazon-apigateway-any-method"}


@dataclass(frozen=True)
class Package:
    stage: str
    directory: Path
    seconds: float

    @property
    def template(self) -> dict[str, Any]:
        template: dict[str, Any] = json.loads((self.directory / "sam.json").read_text(encoding="utf-8"))
        return template

    @property
    def zip_path(self) -> Path:
        return self.directory / "deployment.zip"

    def resource(self, name: str) -> dict[str, Any]:
        resource: dict[str, Any] = self.template["Resources"][name]
        return resource

    def swagger(self) -> dict[str, Any]:
        body: dict[str, Any] = self.resource("RestAPI")["Properties"]["DefinitionBody"]
        return body


class PackageReport:
    """Prints each package's zip size in pytest's terminal summary."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.lines:
            terminalreporter.write_sep("-", "chalice package")
            for line in self.lines:
                terminalreporter.write_line(line)


def _tool(name: str) -> str:
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed; run make test (it installs the dev extra)"
    return found


def _env() -> dict[str, str]:
    # Nothing of the test session's AWS set-up reaches chalice: it needs a region name only, since
    # the template names the region and account through CloudFormation's pseudo parameters.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STSVEND_"))}
    return {**env, "AWS_DEFAULT_REGION": "us-east-1"}


class Project:
    """A snapshot of what `chalice package` reads, as a clean checkout has it: app.py, the
    requirements files, chalicelib/, tools/ and .chalice/ (no vendor/, no bytecode). Packaging the
    snapshot keeps chalice's cache of built zips out of the working tree, and lets one session's
    packages share it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        for path in [ROOT / "app.py", *ROOT.glob("requirements*.txt")]:
            shutil.copy2(path, directory / path.name)
        for name in ("chalicelib", "tools"):
            shutil.copytree(ROOT / name, directory / name, ignore=shutil.ignore_patterns("__pycache__"))
        built = shutil.ignore_patterns("deployments", "deployed")
        shutil.copytree(ROOT / ".chalice", directory / ".chalice", ignore=built)

    def prepare(self) -> None:
        """`make package-prep`, the documented step before `chalice deploy` (docs/deploying.md)."""
        result = subprocess.run(
            [sys.executable, "tools/package_prep.py"], cwd=self.directory, env=_env(),
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"make package-prep failed:\n{result.stdout}{result.stderr}"

    def package(self, stage: str, out: Path, **stage_settings: str) -> Package:
        """`chalice package --stage STAGE`, with `stage_settings` added to the stage's config."""
        config_path = self.directory / ".chalice" / "config.json"
        original = config_path.read_text(encoding="utf-8")
        config = json.loads(original)
        config["stages"][stage].update(stage_settings)
        config_path.write_text(json.dumps(config), encoding="utf-8")
        started = time.monotonic()
        try:
            result = subprocess.run(
                [_tool("chalice"), "package", "--stage", stage, "--merge-template", str(OVERRIDES), str(out)],
                cwd=self.directory,
                env=_env(),
                capture_output=True,
                text=True,
                timeout=300,
            )
        finally:
            config_path.write_text(original, encoding="utf-8")
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"chalice package --stage {stage} failed:\n{output}"
        return Package(stage, out, time.monotonic() - started)


def cfn_lint(template: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("cfn-lint"), "--format", "parseable", str(template)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _report(config: pytest.Config) -> PackageReport:
    report = config.pluginmanager.get_plugin("stsvend-package-report")
    if report is None:
        report = PackageReport()
        config.pluginmanager.register(report, "stsvend-package-report")
    assert isinstance(report, PackageReport)
    return report


def zip_sizes(path: Path) -> tuple[int, int]:
    with zipfile.ZipFile(path) as archive:
        return path.stat().st_size, sum(info.file_size for info in archive.infolist())


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="session", params=DEPLOYED_STAGES)
def packaged(
    request: pytest.FixtureRequest, project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Package:
    stage: str = request.param
    package = project.package(stage, tmp_path_factory.mktemp(f"package-{stage}") / "out")
    zipped, unzipped = zip_sizes(package.zip_path)
    _report(request.config).lines.append(
        f"{stage}: deployment.zip {zipped / MB:.1f} MB ({unzipped / MB:.1f} MB unzipped),"
        f" packaged in {package.seconds:.1f} s"
    )
    return package


def _strings(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(package: Package) -> list[dict[str, Any]]:
    role_ref = package.resource("APIHandler")["Properties"]["Role"]
    role = package.resource(role_ref["Fn::GetAtt"][0])
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [(s["Effect"], s["Principal"], s["Action"]) for s in trust] == [
        ("Allow", {"Service": "lambda.amazonaws.com"}, "sts:AssumeRole")
    ]
    assert "ManagedPolicyArns" not in role["Properties"]
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


# --- API Gateway ---------------------------------------------------------------------------------


# The one route without IAM auth: a CI job's OIDC token, verified by the function itself
# (docs/threat-model.md §8); API Gateway throttles it on its own.
UNSIGNED_ROUTES = {("/oidc/credentials", "POST")}


def test_every_api_method_but_the_oidc_route_requires_sigv4(packaged: Package) -> None:
    swagger = packaged.swagger()
    sigv4 = {
        name
        for name, scheme in swagger.get("securityDefinitions", {}).items()
        if scheme.get("x-amazon-apigateway-authtype") == "awsSigv4"
        and (scheme.get("type"), scheme.get("in"), scheme.get("name"))
        == ("apiKey", "header", "Authorization")
    }
    assert sigv4, "the API defines no SigV4 (AWS_IAM) security scheme"
    methods = {
        (path, method.upper()): operation
        for path, operations in swagger["paths"].items()
        for method, operation in operations.items()
        if method in HTTP_METHODS
    }
    routes = {(path, method) for path, entries in app_module.app.routes.items() for method in entries}
    assert set(methods) == routes
    for (path, method), operation in methods.items():
        if (path in PUBLIC_DOCUMENTS and method == "GET") or (path, method) in UNSIGNED_ROUTES:
            # The issuer's public documents (public by nature) and the OIDC route (the function
            # verifies the token itself): unsigned by design; nothing else.
            assert not operation.get("security"), f"{method} {path} is unsigned by design"
            continue
        # `security` lists alternatives; an empty one ({}) would admit unsigned requests.
        alternatives = operation.get("security")
        assert alternatives, f"{method} {path} has no authorization"
        for alternative in alternatives:
            assert alternative and set(alternative) <= sigv4, f"{method} {path} admits {alternative}"
    assert "x-amazon-apigateway-policy" not in swagger, "a resource policy is on by default"


def test_the_unsigned_oidc_route_is_throttled_on_its_own(packaged: Package) -> None:
    settings = packaged.resource("RestAPI")["Properties"]["MethodSettings"]
    # MethodSettings' ResourcePath: each / of the path as ~1, after a leading /.
    encoded = {("/" + path.replace("/", "~1"), method) for path, method in UNSIGNED_ROUTES}
    throttled = {
        (s["ResourcePath"], s["HttpMethod"])
        for s in settings
        if isinstance(s["ThrottlingRateLimit"], int) and isinstance(s["ThrottlingBurstLimit"], int)
        and 0 < s["ThrottlingRateLimit"] <= 100 and 0 < s["ThrottlingBurstLimit"] <= 200
    }
    assert encoded <= throttled


def test_the_template_passes_cfn_lint(packaged: Package) -> None:
    result = cfn_lint(packaged.directory / "sam.json")
    assert result.returncode == 0, result.stdout + result.stderr


# --- the Lambda's role -----------------------------------------------------------------------------


def test_the_lambda_role_allows_only_the_vend_paths_calls(packaged: Package) -> None:
    statements = _role_statements(packaged)
    assert statements == json.loads(
        (ROOT / ".chalice" / f"policy-{packaged.stage}.json").read_text(encoding="utf-8")
    )["Statement"]
    assert all(s["Effect"] == "Allow" and "NotAction" not in s and "NotResource" not in s for s in statements)
    actions = {a for s in statements for a in _strings(s["Action"])}
    assert not [a for a in actions if "*" in a], "every action is named"
    assert actions == VEND_PATH_ACTIONS
    for statement in statements:
        if "*" in _strings(statement["Resource"]):
            assert set(_strings(statement["Action"])) <= RESOURCELESS_ACTIONS, statement["Sid"]


def test_the_lambda_role_reads_only_the_stages_grants_table(packaged: Package) -> None:
    table = packaged.resource("APIHandler")["Properties"]["Environment"]["Variables"]["STSVEND_GRANTS_TABLE"]
    assert table == f"stsvend-grants-{packaged.stage}"
    dynamodb = [
        s for s in _role_statements(packaged) if any(a.startswith("dynamodb:") for a in _strings(s["Action"]))
    ]
    assert [(s["Action"], s["Resource"]) for s in dynamodb] == [
        ("dynamodb:Query", f"arn:aws:dynamodb:*:*:table/{table}")
    ]


# --- the function --------------------------------------------------------------------------------


def test_the_function_is_set_up_for_the_vend_path(packaged: Package) -> None:
    properties = packaged.resource("APIHandler")["Properties"]
    env = properties["Environment"]["Variables"]
    assert env["STSVEND_IDENTITY_MODE"] == "apigateway"
    assert "STSVEND_SERVER_ID" not in env and "POWERTOOLS_TRACE_DISABLED" not in env
    assert properties["Tracing"] == "Active"
    # A revoked grant keeps working on a warm Lambda until its account's cache entry expires.
    assert 0 <= float(env["STSVEND_GRANT_CACHE_SECONDS"]) <= 60
    # Memory buys CPU, and a cold start (imports, botocore clients) is CPU-bound.
    assert properties["MemorySize"] >= 1024
    # One AWS call that exhausts its retries still gets its 503 out before the Lambda times out, and
    # the Lambda gives up before API Gateway's integration timeout does.
    retries = BOTOCORE_CONFIG["retries"]
    # botocore: total_max_attempts counts the first try, max_attempts only the retries.
    attempts = retries.get("total_max_attempts") or retries["max_attempts"] + 1
    retry_budget = attempts * (BOTOCORE_CONFIG["connect_timeout"] + BOTOCORE_CONFIG["read_timeout"])
    assert retry_budget < properties["Timeout"] < API_GATEWAY_TIMEOUT_SECONDS
    assert properties["Tags"]["stage"] == packaged.stage
    if packaged.stage == "prod":
        assert properties["ReservedConcurrentExecutions"] > 0


def test_the_functions_log_group_is_kept_for_a_set_time(packaged: Package) -> None:
    groups = [
        r for r in packaged.template["Resources"].values()
        if r["Type"] == "AWS::Logs::LogGroup" and "/aws/lambda/" in json.dumps(r)
    ]
    assert len(groups) == 1
    # The function's own name: chalice 1.34 alone would name a resource the template does not have
    # (aws/chalice#2079); .chalice/package-overrides.json corrects it.
    assert groups[0]["Properties"]["LogGroupName"] == {"Fn::Sub": "/aws/lambda/${APIHandler}"}
    assert groups[0]["Properties"]["RetentionInDays"] >= (365 if packaged.stage == "prod" else 7)
    outputs = packaged.template["Outputs"]
    assert outputs["ServiceRoleArn"]["Value"] == {"Fn::GetAtt": ["ApiHandlerRole", "Arn"]}


# --- the zip ---------------------------------------------------------------------------------------


def test_the_zip_holds_what_the_lambda_reads_and_nothing_else(packaged: Package) -> None:
    zipped, unzipped = zip_sizes(packaged.zip_path)
    with zipfile.ZipFile(packaged.zip_path) as archive:
        names = set(archive.namelist())
        assert archive.read("app.py") == (ROOT / "app.py").read_bytes()
    server = {f"chalicelib/{p.name}" for p in (ROOT / "chalicelib").glob("*.py")}
    assert server <= names, f"missing: {sorted(server - names)}"
    assert "aws_lambda_powertools/__init__.py" in names, "aws_lambda_powertools is not packaged"
    # Without `make package-prep` the X-Ray SDK is not packaged: as a requirement it would bring
    # botocore, which then shadows the runtime's compiled one (bench/README.md).
    brought = (*RUNTIME_PROVIDED, "aws_xray_sdk/")
    assert sorted({n.split("/")[0] for n in names if n.startswith(brought)}) == []
    assert sorted(n for n in names if n.startswith(NEVER)) == []
    size = f"deployment.zip is {zipped / MB:.1f} MB, {unzipped / MB:.1f} MB unzipped"
    assert zipped < MAX_ZIP_BYTES and unzipped < MAX_UNZIPPED_BYTES, size


# --- the package built the documented way (make package-prep, then chalice) ------------------------


@pytest.fixture(scope="session")
def documented(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Package:
    project = Project(tmp_path_factory.mktemp("documented"))
    project.prepare()
    package = project.package("prod", tmp_path_factory.mktemp("package-documented") / "out")
    zipped, unzipped = zip_sizes(package.zip_path)
    _report(request.config).lines.append(
        f"prod after make package-prep: deployment.zip {zipped / MB:.2f} MB ({unzipped / MB:.1f} MB unzipped)"
    )
    return package


# The cap on the documented package. 3 MB until the OIDC route: its JOSE library needs `cryptography`,
# whose Rust extension alone is ~4.9 MB zipped (every maintained JOSE library for RSA/EC signatures
# stands on it; the Lambda Python runtime does not provide it). The SigV4 routes never import it
# (test_the_documented_package_starts_on_its_own_bytecode_and_the_runtimes_botocore), and
# `make bench` shows their cold start unchanged; AWS's own limit for a zip upload is 50 MB.
MAX_DOCUMENTED_ZIP_BYTES = 9 * MB


def test_the_documented_package_has_the_x_ray_sdk_but_not_botocore_and_fits_its_cap(
    documented: Package,
) -> None:
    zipped, _ = zip_sizes(documented.zip_path)
    with zipfile.ZipFile(documented.zip_path) as archive:
        names = set(archive.namelist())
    for package in ("aws_lambda_powertools", "aws_xray_sdk", "wrapt", "chalicelib"):
        assert f"{package}/__init__.py" in names, f"{package} is not packaged"
    assert "app.py" in names
    # The runtime's boto3 and botocore (compiled) serve the SDK: the package must not shadow them.
    assert sorted({n.split("/")[0] for n in names if n.startswith(RUNTIME_PROVIDED)}) == []
    assert sorted(n for n in names if n.startswith(NEVER)) == []
    assert zipped <= MAX_DOCUMENTED_ZIP_BYTES, f"deployment.zip is {zipped / MB:.2f} MB"
    for package in ("jwt", "cryptography"):
        assert f"{package}/__init__.py" in names, f"{package} (the OIDC route's) is not packaged"


UNAUTHENTICATED_CALLS = {"sts": {"AssumeRoleWithWebIdentity"}}


def test_every_call_the_function_makes_is_in_the_cut_down_models() -> None:
    """Every DynamoDB and STS operation chalicelib calls has its model in the package: a call whose
    operation was cut from the models would fail only in Lambda."""
    import re

    from botocore import xform_name
    from botocore.loaders import Loader

    from tools.package_prep import MODEL_OPERATIONS

    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "chalicelib").rglob("*.py"))
    called = set(re.findall(r"\.([a-z_]+)\(", source))
    loader = Loader()
    for service, kept in MODEL_OPERATIONS.items():
        full = loader.load_service_model(service, "service-2")["operations"]
        used = {name for name in full if xform_name(name) in called}
        assert used <= set(kept), (service, used - set(kept))


def test_the_documented_package_has_models_of_exactly_the_operations_its_role_may_call(
    documented: Package,
) -> None:
    """Cut-down botocore models (tools/package_prep.py): for each service they cover, exactly the
    operations the function's role allows, every shape they reach, and no documentation."""
    from botocore.loaders import Loader
    from botocore.model import ServiceModel

    loader = Loader()
    allowed = {a for s in _role_statements(documented) for a in _strings(s["Action"])}
    with zipfile.ZipFile(documented.zip_path) as archive:
        models = {n: archive.read(n) for n in archive.namelist() if n.startswith(f"{MODELS}/")}
    assert {name.split("/")[1] for name in models} == {"dynamodb", "sts"}
    for service in ("dynamodb", "sts"):
        version = loader.determine_latest_version(service, "service-2")
        data = models[f"{MODELS}/{service}/{version}/service-2.json"]
        assert b"documentation" not in data
        model = json.loads(data)
        full = loader.load_service_model(service, "service-2")
        # sts:TagSession and sts:SetSourceIdentity are permissions of AssumeRole, not operations.
        may_call = {a.split(":")[1] for a in allowed if a.startswith(f"{service}:")} & set(full["operations"])
        # Calls that take no IAM permission: the web identity token is their authentication.
        may_call |= UNAUTHENTICATED_CALLS.get(service, set())
        assert set(model["operations"]) == may_call, service
        assert model["metadata"] == full["metadata"]
        for name in model["operations"]:
            operation = ServiceModel(model, service).operation_model(name)
            pending = [operation.input_shape, operation.output_shape, *operation.error_shapes]
            seen: set[str] = set()
            while pending:  # every shape the operation reaches resolves, as in botocore's model
                shape = pending.pop()
                if shape is None or shape.name in seen:
                    continue
                seen.add(shape.name)
                assert model["shapes"][shape.name] == without_documentation(full["shapes"][shape.name])
                pending.extend(getattr(shape, "members", {}).values())
                pending.extend(getattr(shape, a) for a in ("member", "key", "value") if hasattr(shape, a))
            assert len(seen) > 10, (service, name)


def _importable(name: str) -> bool:
    """A module Python can import from the task root: every directory on the way an identifier
    (not a wheel's *.data/ or *.dist-info/ files)."""
    parts = name.split("/")
    return name.endswith(".py") and all(part.isidentifier() for part in parts[:-1])


def test_every_module_of_the_documented_package_has_valid_bytecode_for_the_runtime(
    documented: Package,
) -> None:
    # Chalice deploys for the Python that runs it; this interpreter built the bytecode.
    runtime = documented.resource("APIHandler")["Properties"]["Runtime"]
    assert runtime == f"python{sys.version_info.major}.{sys.version_info.minor}"
    checked = 0
    with zipfile.ZipFile(documented.zip_path) as archive:
        names = set(archive.namelist())
        for name in sorted(n for n in names if _importable(n)):
            compiled = importlib.util.cache_from_source(name)
            assert compiled in names, f"no bytecode for {name}"
            data = archive.read(compiled)
            assert data[:4] == importlib.util.MAGIC_NUMBER, f"{compiled} is for another Python"
            # Hash-based and checked (PEP 552 flags 0b11): valid whatever the zip's timestamps.
            assert int.from_bytes(data[4:8], "little") == 0b11, f"{compiled} is not checked-hash"
            assert data[8:16] == importlib.util.source_hash(archive.read(name)), f"{compiled} is stale"
            checked += 1
        flags = {n: int.from_bytes(archive.read(n)[4:8], "little") for n in names if n.endswith(".pyc")}
    stray = [name for name, flag in flags.items() if flag != 0b11]
    assert stray == [], "timestamp bytecode in the package (invalid once unzipped)"
    assert checked > 300


class _LambdaLayout:
    """A package extracted read-only as Lambda's task root, with the runtime's boto3/botocore on a
    separate path after it, and nothing of this environment's site-packages (python -S)."""

    def __init__(self, package: Package, directory: Path) -> None:
        self.task = directory / "task"
        self.runtime = directory / "runtime"
        with zipfile.ZipFile(package.zip_path) as archive:
            archive.extractall(self.task)
        site = Path(sysconfig.get_path("purelib"))
        self.runtime.mkdir()
        for name in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six.py", "urllib3"):
            (self.runtime / name).symlink_to(site / name)
        function = package.resource("APIHandler")["Properties"]
        self.variables: dict[str, str] = function["Environment"]["Variables"]
        _writable(self.task, False)

    def start(self, event: dict[str, Any] | None = None) -> tuple[dict[str, Any], str, str]:
        """A cold start serving `event` (GET /whoami) with X-Ray on: (the child's report, stdout, stderr)."""
        env = {
            **_env(),
            **self.variables,
            "AWS_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": "stsvend-prod",
            "LAMBDA_TASK_ROOT": str(self.task),
            "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2",
            "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
            "PYTHONPATH": f"{self.task}{os.pathsep}{self.runtime}",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        env.pop("PYTHONPYCACHEPREFIX", None)
        event = event or api_event("GET", "/whoami", None, iam_identity())
        done = subprocess.run(
            [sys.executable, "-S", "-v", "-c", START], cwd=self.task, env=env, input=json.dumps(event),
            capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        return report, done.stdout, done.stderr

    def close(self) -> None:
        _writable(self.task, True)


START = r"""
import json, sys
import app
event = json.load(sys.stdin)

class Context:
    function_name = "stsvend-prod"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:999999999999:function:stsvend-prod"
    aws_request_id = "lambda-request"

answer = app.app(event, Context())
files = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())}
# The clients the init phase created, and the operations their models hold.
clients = app.service()._clients._clients
operations = {name: client.meta.service_model.operation_names for name, client in clients.items()}
print(json.dumps({"status": answer["statusCode"], "body": json.loads(answer["body"]), "files": files,
                  "operations": operations}))
"""


def _writable(directory: Path, writable: bool) -> None:
    for path in [directory, *directory.rglob("*")]:
        if not path.is_symlink():
            mode = path.stat().st_mode
            write = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
            path.chmod(mode | stat.S_IWUSR if writable else mode & ~write)


@pytest.fixture
def lambda_layout(tmp_path: Path) -> Any:
    layouts: list[_LambdaLayout] = []

    def make(package: Package) -> _LambdaLayout:
        layouts.append(_LambdaLayout(package, tmp_path))
        return layouts[-1]

    yield make
    for layout in layouts:
        layout.close()


def test_the_documented_package_starts_on_its_own_bytecode_and_the_runtimes_botocore(
    documented: Package, lambda_layout: Any
) -> None:
    layout = lambda_layout(documented)
    report, _, verbose = layout.start()
    assert report["status"] == 200 and report["body"]["Arn"] == JENKINS
    files = report["files"]
    assert files["aws_xray_sdk"].startswith(str(layout.task)), "the X-Ray SDK is not the package's"
    assert files["aws_xray_sdk.ext.botocore.patch"], "the SDK did not patch botocore"
    assert files["botocore"].startswith(str(layout.runtime)), "botocore is not the runtime's"
    # The vend path's clients were created at init, from the package's cut-down models.
    assert report["operations"] == {"dynamodb": ["Query"], "sts": ["AssumeRole", "AssumeRoleWithWebIdentity"]}
    # python -v names where each module's code came from: nothing of the task root was compiled.
    loaded = [line.split("code object from ", 1)[1].strip("'") for line in verbose.splitlines()
              if line.startswith("# code object from ")]
    from_task = [path for path in loaded if path.startswith(str(layout.task))]
    assert len(from_task) > 100
    assert [path for path in from_task if not path.endswith(".pyc")] == []
    # The SigV4 routes never load the OIDC route's JOSE library.
    assert [m for m in files if m.split(".")[0] in ("jwt", "cryptography", "cffi") or m.startswith(
        "chalicelib.oidc")] == []


def test_the_oidc_route_loads_its_jose_library_from_the_package(
    documented: Package, lambda_layout: Any
) -> None:
    layout = lambda_layout(documented)
    event = api_event("POST", "/oidc/credentials", '{"role_arn": "x"}', {}, {"Authorization": "Bearer a.b.c"})
    report, _, _ = layout.start(event)
    assert report["status"] == 401, report["body"]
    assert report["body"]["Code"] == "NotAuthenticated"
    files = report["files"]
    for module in ("jwt", "cryptography", "cryptography.hazmat.bindings._rust"):
        assert files[module].startswith(str(layout.task)), module


def test_a_plain_chalice_deploy_still_builds_a_working_function(
    packaged: Package, lambda_layout: Any
) -> None:
    """Without `make package-prep`: the same code, no X-Ray SDK (the function says so), and it serves."""
    layout = lambda_layout(packaged)
    report, logged, _ = layout.start()
    assert report["status"] == 200 and report["body"]["Arn"] == JENKINS
    assert "aws_xray_sdk" not in report["files"]
    # No cut-down models in a plain package: botocore's whole ones.
    whole = {name: len(operations) > 5 for name, operations in report["operations"].items()}
    assert whole == {"dynamodb": True, "sts": True}
    lines = [json.loads(line) for line in logged.splitlines()[:-1]]
    assert [line["message"] for line in lines if line["level"] == "WARNING"] == [
        "the X-Ray SDK is not in the package: run `make package-prep` before deploying"
    ]


# --- the organization-only API policy, switched on as docs/deploying.md says -------------------------

SAMPLE_ORGANIZATION = "o-a1b2c3d4e5"
SAMPLE_ENDPOINT = "vpce-0123456789abcdef0"
POSTURES = {
    "organization": {"api_gateway_policy_file": "api-policy-prod.json"},
    "private": {
        "api_gateway_endpoint_type": "PRIVATE",
        "api_gateway_policy_file": "api-policy-prod-private.json",
    },
}


@pytest.fixture(scope="session", params=sorted(POSTURES))
def restricted(
    request: pytest.FixtureRequest, project: Project, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Package]:
    """prod, packaged with an API policy switched on and its placeholders filled in."""
    posture: str = request.param
    settings = POSTURES[posture]
    policy_path = project.directory / ".chalice" / settings["api_gateway_policy_file"]
    policy_path.write_text(
        policy_path.read_text(encoding="utf-8")
        .replace("${ORGANIZATION_ID}", SAMPLE_ORGANIZATION)
        .replace("${VPC_ENDPOINT_ID}", SAMPLE_ENDPOINT),
        encoding="utf-8",
    )
    return posture, project.package("prod", tmp_path_factory.mktemp(f"package-{posture}") / "out", **settings)


def test_a_switched_on_api_policy_reaches_the_api_and_the_template_still_lints(
    restricted: tuple[str, Package],
) -> None:
    posture, package = restricted
    policy = package.swagger()["x-amazon-apigateway-policy"]
    conditions = [s.get("Condition", {}) for s in policy["Statement"]]
    org_ids = {v.get("aws:PrincipalOrgID") for c in conditions for v in c.values()} - {None}
    assert org_ids == {SAMPLE_ORGANIZATION}
    denies = {
        key
        for statement in policy["Statement"]
        if statement["Effect"] == "Deny"
        for key in statement["Condition"]["StringNotEquals"]
    }
    endpoint = package.resource("RestAPI")["Properties"]["EndpointConfiguration"]
    if posture == "private":
        assert endpoint == "PRIVATE"
        assert denies == {"aws:PrincipalOrgID", "aws:SourceVpce"}
    else:
        assert endpoint == "REGIONAL"
        assert denies == {"aws:PrincipalOrgID"}
    result = cfn_lint(package.directory / "sam.json")
    assert result.returncode == 0, result.stdout + result.stderr


# --- monitoring: the same alarms, dashboard and saved queries as `stsvend monitor` -----------------


def _merged_into(merged: Any, wanted: Any) -> bool:
    """`wanted` is in `merged` as `chalice package --merge-template` merges: objects key by key."""
    if isinstance(wanted, dict):
        return isinstance(merged, dict) and all(
            k in merged and _merged_into(merged[k], v) for k, v in wanted.items()
        )
    return bool(merged == wanted)


def test_the_template_holds_the_monitoring_of_stsvend_monitor(packaged: Package) -> None:
    from stsvend.ops.definitions import TIMEOUT_SHARE, TOPIC_PARAMETER, alarms, saved_queries
    from stsvend.ops.template import sections

    resources = packaged.template["Resources"]
    wanted = sections(ROOT)
    for name, resource in wanted["Resources"].items():
        if "Type" in resource:
            assert resources.get(name) == resource, name
        else:  # properties merged into a resource of Chalice's (the API's stage, the function)
            assert _merged_into(resources[name]["Properties"], resource["Properties"]), name
    assert packaged.template["Parameters"][TOPIC_PARAMETER]["Default"] == ""
    kinds = [r["Type"] for r in resources.values()]
    assert kinds.count("AWS::CloudWatch::Alarm") == len(alarms(25))
    assert kinds.count("AWS::CloudWatch::Dashboard") == 1
    assert kinds.count("AWS::Logs::QueryDefinition") == len(saved_queries())
    # The alarms watch what this template deploys: its function, its API and stage, its log group.
    function = packaged.resource("APIHandler")["Properties"]
    rest = packaged.resource("RestAPI")["Properties"]
    dimensions = {
        (d["Name"], json.dumps(d["Value"]))
        for r in resources.values() if r["Type"] == "AWS::CloudWatch::Alarm"
        for d in r["Properties"]["Dimensions"]
    }
    assert ("FunctionName", json.dumps({"Ref": "APIHandler"})) in dimensions
    assert ("ApiName", json.dumps(rest["DefinitionBody"]["info"]["title"])) in dimensions
    assert ("Stage", json.dumps(rest["StageName"])) in dimensions
    duration = resources["StsvendAlarmDurationNearTimeout"]["Properties"]
    assert duration["Threshold"] == round(TIMEOUT_SHARE * function["Timeout"] * 1000)
    for resource in resources.values():
        if resource["Type"] == "AWS::Logs::QueryDefinition":
            assert resource["Properties"]["LogGroupNames"] == [{"Fn::Sub": "/aws/lambda/${APIHandler}"}]


# --- the API stage ----------------------------------------------------------------------------------


def test_the_api_stage_traces_throttles_and_logs_access_as_stsvend_deploy_sets_it(packaged: Package) -> None:
    """What `stsvend deploy` sets after `chalice deploy` (tests/functional/test_deploy_rehearsal.py),
    the template sets on the stage: one definition, stsvend.ops.deployment."""
    from stsvend.checkout.checkout import Checkout
    from stsvend.ops import deployment

    resources = packaged.template["Resources"]
    stage = resources["RestAPI"]["Properties"]
    assert stage["TracingEnabled"] is True
    throttling, oidc = stage["MethodSettings"]
    assert throttling == {"ResourcePath": "/*", "HttpMethod": "*",
                          "ThrottlingRateLimit": {"Ref": "ThrottlingRateLimit"},
                          "ThrottlingBurstLimit": {"Ref": "ThrottlingBurstLimit"}}
    assert oidc == {"ResourcePath": deployment.OIDC_RESOURCE_PATH, "HttpMethod": "POST",
                    "ThrottlingRateLimit": deployment.OIDC_RATE_LIMIT,
                    "ThrottlingBurstLimit": deployment.OIDC_BURST_LIMIT}
    assert stage["AccessLogSetting"]["Format"] == deployment.ACCESS_LOG_FORMAT
    assert "${StsvendAccessLogGroup}" in stage["AccessLogSetting"]["DestinationArn"]["Fn::Sub"]
    access = resources["StsvendAccessLogGroup"]["Properties"]
    assert access["RetentionInDays"] == {"Ref": "AccessLogRetentionInDays"}
    refused = resources["StsvendAccessLogIamRefused"]["Properties"]
    assert refused["FilterPattern"] == deployment.IAM_REFUSED_PATTERN
    assert resources["StsvendWebAclAssociation"]["Condition"] == "HasWebAcl"
    alarm = resources["StsvendAlarmIamRefused"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("stsvend", deployment.IAM_REFUSED_METRIC)
    # The parameters' defaults are prod's settings; each stage's are what deploy-info prints.
    checkout = Checkout.open(ROOT)
    d = deployment.deployment(checkout, packaged.stage)
    wanted = deployment.template_parameters(d, deployment.stage_settings(ROOT, packaged.stage))
    parameters = packaged.template["Parameters"]
    if packaged.stage == "prod":
        assert {k: parameters[k]["Default"] for k in wanted} == wanted
    assert wanted["AccessLogRetentionInDays"] == str(d.log_retention_days)


def test_the_access_log_format_carries_no_secret(packaged: Package) -> None:
    fields = json.loads(packaged.template["Resources"]["RestAPI"]["Properties"]["AccessLogSetting"]["Format"])
    for wanted in ("requestId", "caller", "status", "responseLatency"):
        assert wanted in fields
    for value in fields.values():
        # $context variables only: no header ($context.requestOverride.header, $input.params()),
        # no body, no authorizer context.
        assert value.startswith("$context.") and not any(
            word in value.lower() for word in ("header", "authorizer", "$input", "accesskey", "token")
        ), value


def test_a_web_acl_reaches_the_stage_and_the_template_still_lints(project: Project, tmp_path: Path) -> None:
    packaged = project.package("prod", tmp_path / "out")
    acl = "arn:aws:wafv2:us-east-1:999999999999:regional/webacl/stsvend/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    template = json.loads((tmp_path / "out" / "sam.json").read_text())
    template["Parameters"]["WebAclArn"]["Default"] = acl
    path = tmp_path / "with-acl.json"
    path.write_text(json.dumps(template))
    result = cfn_lint(path)
    assert result.returncode == 0, result.stdout + result.stderr
    # SAM names the stage RestAPI + StageName + Stage; cfn-lint, which runs the transform, checks
    # that the association's DependsOn names a resource that exists.
    association = packaged.template["Resources"]["StsvendWebAclAssociation"]
    assert association["DependsOn"] == "RestAPIapiStage"


# --- releases: the alias `live` ---------------------------------------------------------------------

# Where `aws cloudformation package` puts the zip (the guide's artifact bucket; any valid name).
PACKAGED_CODE_URI = "s3://stsvend-artifacts-999999999999/stsvend/deployment.zip"


def expand_sam(template: dict[str, Any]) -> dict[str, Any]:
    """The packaged template as CloudFormation runs it: `aws cloudformation package` (the zip's S3
    URI), then SAM's own transform (aws-sam-translator, what CloudFormation's
    AWS::Serverless-2016-10-31 runs)."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    template = json.loads(json.dumps(template))
    template["Resources"]["APIHandler"]["Properties"]["CodeUri"] = PACKAGED_CODE_URI
    previous = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"  # the translator's pseudo parameters
    try:
        expanded: dict[str, Any] = transform(template, {}, NoManagedPolicies())
    finally:
        if previous is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = previous
    return expanded


def test_every_method_invokes_the_alias_live_which_alone_api_gateway_may_invoke(
    packaged: Package, tmp_path: Path
) -> None:
    """As `stsvend deploy` does on its path: each stack update that changes the function publishes a
    version (kept when the next one comes) and moves the alias `live` to it; the API calls only the
    alias, so that a rollback is one alias update (docs/deploying.md)."""
    from stsvend.ops import deployment

    expanded = expand_sam(packaged.template)
    resources = expanded["Resources"]
    alias_id = deployment.SAM_ALIAS_ID
    alias = resources[alias_id]
    assert alias["Type"] == "AWS::Lambda::Alias"
    assert alias["Properties"]["Name"] == deployment.ALIAS
    assert alias["Properties"]["FunctionName"] == {"Ref": "APIHandler"}
    version_id = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    assert resources[version_id]["Type"] == "AWS::Lambda::Version"
    assert resources[version_id]["DeletionPolicy"] == "Retain"  # earlier releases stay to roll back to

    # Every method of every route of the app, the unsigned ones included.
    paths = resources["RestAPI"]["Properties"]["Body"]["paths"]
    served = {(path, m.upper()) for path, spec in paths.items() for m in spec if m in HTTP_METHODS}
    routes = {(path, method) for path, entry in app_module.app.routes.items() for method in entry}
    assert served == routes
    for path, method in served:
        uri = paths[path][method.lower()]["x-amazon-apigateway-integration"]["uri"]
        assert uri == {
            "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
            "${" + alias_id + "}/invocations"
        }, (path, method)
    permissions = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert [p["FunctionName"] for p in permissions] == [{"Ref": alias_id}]
    assert permissions[0]["Principal"] == "apigateway.amazonaws.com"

    path = tmp_path / "expanded.json"
    path.write_text(json.dumps(expanded))
    result = cfn_lint(path)
    assert result.returncode == 0, result.stdout + result.stderr
