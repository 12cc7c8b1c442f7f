"""The local stack (docs/design.md section 7): the emulator, bootstrapped, with IAM authentication on;
the grants table filled; the API (`chalice local --stage local`) pointed at the emulator.

    with LocalStack.on_free_ports(root, state_dir) as stack:
        stack.state.api_url, stack.state.identities["sample-app"], ...

`stack.state` is also written to `<state_dir>/local.json` (mode 0600), with one shell file per
identity under `<state_dir>/env/`. Both are removed when the stack stops: the keys die with it.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stsvend.checkout.checkout import Checkout
from stsvend.checkout.local_state import STATE_DIR_VARIABLE, STATE_FILE
from stsvend.local.emulator import DEFAULT_PORT as DEFAULT_EMULATOR_PORT
from stsvend.local.emulator import PORT_VARIABLE as EMULATOR_PORT_VARIABLE
from stsvend.local.emulator import Emulator
from stsvend.local.gateway import KEYS_VARIABLE as GATEWAY_KEYS_VARIABLE
from stsvend.local.oidc_issuer import AUDIENCE as OIDC_AUDIENCE
from stsvend.local.oidc_issuer import DEFAULT_PORT as DEFAULT_OIDC_PORT
from stsvend.local.oidc_issuer import LOCAL_ISSUERS, IssuerServer
from stsvend.local.oidc_issuer import PORT_VARIABLE as OIDC_PORT_VARIABLE
from stsvend.local.process import (
    LOOPBACK,
    ManagedProcess,
    StackError,
    ensure_port_free,
    free_port,
    make_private,
    wait_until,
)
from stsvend.local.seed import REGION, STAGE, Identity, caller_user_id, fill_grants, seed_emulator

DEFAULT_API_PORT = 8000
API_PORT_VARIABLE = "STSVEND_API_PORT"
# `make run` also serves the API behind a local API Gateway (stsvend/local/gateway.py).
DEFAULT_GATEWAY_PORT = 8001
GATEWAY_PORT_VARIABLE = "STSVEND_GATEWAY_PORT"
READY_TIMEOUT_SECONDS = 60.0
# `chalice local` without its reloader: one process, and no restart when someone edits the tree.
# socketserver's listen backlog is 5: with more concurrent clients (a build's parallel SDK
# processes), connections are dropped and retried after a second, or reset. API Gateway has no such
# limit, so the local server gets a backlog fit for concurrent callers.
_CHALICE = (
    "import sys; from chalice import local; local.ThreadedHTTPServer.request_queue_size = 128; "
    "from chalice.cli import main; sys.exit(main())"
)


def port_from_environment(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise StackError(f"{variable}={raw!r} is not a port number (1-65535)")
    return int(raw)


@dataclass(frozen=True)
class LocalState:
    """What `.stsvend/local.json` holds: where the stack is and who can call it."""

    api_url: str
    emulator_url: str
    region: str
    # The base URLs the API answers as (its STSVEND_SERVER_ID); clients derive theirs from the URL.
    server_ids: list[str]
    grants_table: str
    identities: dict[str, Identity]
    roles: dict[str, str]
    instances: dict[str, list[str]]
    logs: dict[str, str]
    # The API in `apigateway` mode behind the local front door, when the stack runs one.
    gateway_url: str | None = None
    # The identity-provider mode: the API's issuer URL and its KMS key ARNs (the signing key first).
    issuer_url: str | None = None
    issuer_keys: list[str] = field(default_factory=list)
    # The local OIDC issuers the stage trusts: name -> issuer (URL), kind, audience, key_file.
    oidc_issuers: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "api_url": self.api_url,
            "emulator_url": self.emulator_url,
            "region": self.region,
            "server_ids": self.server_ids,
            "grants_table": self.grants_table,
            "identities": {name: i.as_dict() for name, i in self.identities.items()},
            "roles": self.roles,
            "instances": self.instances,
            "logs": self.logs,
            "gateway_url": self.gateway_url,
            "issuer": {"url": self.issuer_url, "keys": self.issuer_keys},
            "oidc_issuers": self.oidc_issuers,
        }

    @classmethod
    def load(cls, path: Path) -> LocalState:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            api_url=data["api_url"],
            emulator_url=data["emulator_url"],
            region=data["region"],
            server_ids=list(data["server_ids"]),
            grants_table=data["grants_table"],
            identities={name: Identity(**i) for name, i in data["identities"].items()},
            roles=dict(data["roles"]),
            instances={k: list(v) for k, v in data["instances"].items()},
            logs=dict(data["logs"]),
            gateway_url=data.get("gateway_url"),
            issuer_url=(data.get("issuer") or {}).get("url"),
            issuer_keys=list((data.get("issuer") or {}).get("keys") or []),
            oidc_issuers={k: dict(v) for k, v in data.get("oidc_issuers", {}).items()},
        )

    def environment(self, identity: str) -> dict[str, str]:
        """The variables that make `identity` the caller of the stack's API (`stsvend ...`): its
        keys and the emulator as every AWS endpoint; the server id comes from the API URL."""
        me = self.identities[identity]
        env = {
            "AWS_ACCESS_KEY_ID": me.access_key_id,
            "AWS_SECRET_ACCESS_KEY": me.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.emulator_url,
            "STSVEND_API_URL": self.api_url,
            # `stsvend console`: the emulator's stand-in for the AWS federation endpoint.
            "STSVEND_FEDERATION_URL": f"{self.emulator_url}/federation",
        }
        if self.gateway_url is not None:
            env["STSVEND_GATEWAY_URL"] = self.gateway_url
        return env


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (never briefly readable by others)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(partial, 0o600)
    os.replace(partial, path)


def _env_script(state: LocalState, name: str) -> str:
    identity = state.identities[name]
    lines = [
        f"# stsvend local stack: act as {name} ({identity.arn}).",
        "# Emulator-only keys, valid while the local stack runs. Use: . <this file>",
        "unset AWS_SESSION_TOKEN AWS_PROFILE",
    ]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in state.environment(name).items()]
    return "\n".join(lines) + "\n"


def _answers(url: object) -> bool:
    """Whether a server of a stack's `local.json` still listens: only a loopback http URL of our
    own making is tried, anything else in the file counts as gone."""
    if not isinstance(url, str):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme != "http" or parts.hostname not in (LOOPBACK, "localhost") or port is None:
        return False
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return False


def _serves(url: str) -> bool:
    """Whether a server of the stack answers HTTP at `url` (any answer: 401 or 403 without a
    signature or proof means it serves)."""
    request = urllib.request.Request(url + "/whoami")  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def refuse_if_running(state_dir: Path) -> None:
    """A second stack on other ports in the same state directory would overwrite the running one's
    keys and logs, and delete them when it stops: refuse while the stack `local.json` names answers.
    A file left by a stack that died without cleaning up is simply replaced."""
    try:
        data = json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if not isinstance(data, dict):
        return
    running = [str(url) for url in (data.get("api_url"), data.get("emulator_url")) if _answers(url)]
    if running:
        raise StackError(
            f"another local stack is running with its state in {state_dir} ({', '.join(running)}):"
            " a second one there would overwrite its keys and logs and remove them when it stops;"
            f" stop that one (Ctrl-C where it runs) or give this one its own directory with"
            f" {STATE_DIR_VARIABLE}=DIR"
        )


def hermetic_environment() -> dict[str, str]:
    """This process's environment without anything that would point AWS clients elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STSVEND_"))}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONUNBUFFERED="1",
    )
    return env


class LocalStack:
    def __init__(
        self,
        root: Path,
        state_dir: Path,
        emulator_port: int = DEFAULT_EMULATOR_PORT,
        api_port: int = DEFAULT_API_PORT,
        record_requests: bool = False,
        host: str = LOOPBACK,
        gateway_port: int | None = None,
        oidc_port: int = DEFAULT_OIDC_PORT,
    ) -> None:
        self.root = root
        self.oidc_port = oidc_port
        self.issuers: IssuerServer | None = None
        self.state_dir = state_dir
        self.host = host
        self.api_port = api_port
        self.gateway_port = gateway_port
        logs = state_dir / "logs"
        self.emulator = Emulator(
            emulator_port,
            logs / "emulator.log",
            recording_path=(state_dir / "emulator-requests.jsonl") if record_requests else None,
            host=host,
        )
        self.api_log = logs / "api.log"  # stdout: the audit lines and metrics, one JSON object a line
        self.api_errors_log = logs / "api.err.log"
        self.gateway_log = logs / "gateway.log"  # the same, for the API behind the local front door
        self.gateway_errors_log = logs / "gateway.err.log"
        self.api: ManagedProcess | None = None
        self.gateway: ManagedProcess | None = None
        self._state: LocalState | None = None
        self._written: list[Path] = []

    @classmethod
    def from_environment(cls, root: Path, state_dir: Path) -> LocalStack:
        """Ports from STSVEND_EMULATOR_PORT / STSVEND_API_PORT / STSVEND_GATEWAY_PORT, else 5000,
        8000 and 8001."""
        return cls(
            root,
            state_dir,
            port_from_environment(EMULATOR_PORT_VARIABLE, DEFAULT_EMULATOR_PORT),
            port_from_environment(API_PORT_VARIABLE, DEFAULT_API_PORT),
            gateway_port=port_from_environment(GATEWAY_PORT_VARIABLE, DEFAULT_GATEWAY_PORT),
            oidc_port=port_from_environment(OIDC_PORT_VARIABLE, DEFAULT_OIDC_PORT),
        )

    @classmethod
    def on_free_ports(
        cls, root: Path, state_dir: Path, record_requests: bool = False, gateway: bool = False
    ) -> LocalStack:
        return cls(root, state_dir, free_port(), free_port(), record_requests,
                   gateway_port=free_port() if gateway else None, oidc_port=free_port())

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def gateway_url(self) -> str | None:
        return None if self.gateway_port is None else f"http://{self.host}:{self.gateway_port}"

    @property
    def server_ids(self) -> list[str]:
        """Every base URL a client on this machine may call the API by."""
        names = [self.host, "localhost"] if self.host == LOOPBACK else [self.host]
        return [f"http://{name}:{self.api_port}" for name in names]

    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def state(self) -> LocalState:
        if self._state is None:
            raise StackError("the local stack is not running")
        return self._state

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> LocalState:
        """Start everything, or nothing: a failure part-way stops what was started."""
        make_private(self.state_dir)
        refuse_if_running(self.state_dir)
        ensure_port_free(self.host, self.api_port, "stsvend API", API_PORT_VARIABLE)
        if self.gateway_port is not None:
            ensure_port_free(self.host, self.gateway_port, "stsvend local API Gateway", GATEWAY_PORT_VARIABLE)
        ensure_port_free(LOOPBACK, self.oidc_port, "local OIDC issuer", OIDC_PORT_VARIABLE)
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> LocalState:
        self.emulator.start()
        checkout = Checkout.open(self.root)
        try:
            made = seed_emulator(self.emulator.url, checkout, self.emulator.bootstrap_key, self.api_url)
        except Exception as exc:
            raise StackError(f"seeding the emulator failed: {exc}") from exc
        self.emulator.enforce_iam()
        oidc_issuers = self._start_issuers()
        try:
            table = fill_grants(
                self.emulator.url,
                checkout,
                made.identities["admin"],
                {name: entry["issuer"] for name, entry in oidc_issuers.items()},
            )
        except Exception as exc:
            raise StackError(f"filling the grants table failed: {exc}") from exc
        settings = checkout.stage_environment(STAGE)
        if settings.get("STSVEND_GRANTS_TABLE") != table:
            raise StackError(f"stage {STAGE} reads table {settings.get('STSVEND_GRANTS_TABLE')}")
        self._start_api(made.identities["service"], made.issuer_keys)
        if self.gateway_port is not None:
            self._start_gateway(made.identities, made.issuer_keys)
        state = LocalState(
            api_url=self.api_url,
            emulator_url=self.emulator.url,
            region=REGION,
            server_ids=self.server_ids,
            grants_table=table,
            identities=made.identities,
            roles=made.roles,
            instances=made.instances,
            logs={
                "api": str(self.api_log),
                "api_errors": str(self.api_errors_log),
                "emulator": str(self.emulator.process.log_path),
                **({"gateway": str(self.gateway_log)} if self.gateway_port is not None else {}),
            },
            gateway_url=self.gateway_url,
            issuer_url=self.api_url,
            issuer_keys=made.issuer_keys,
            oidc_issuers=oidc_issuers,
        )
        self._write(self.state_path, json.dumps(state.to_json(), indent=2) + "\n")
        for name in state.identities:
            self._write(self.state_dir / "env" / f"{name}.sh", _env_script(state, name))
        make_private(self.state_dir)
        self._state = state
        return state

    def _start_issuers(self) -> dict[str, dict[str, str]]:
        """The local OIDC issuers (discovery and JWKS on loopback), their keys in the state
        directory (0600, removed on stop) for `stsvend local token`."""
        self.issuers = IssuerServer(self.oidc_port, LOOPBACK).start()
        described: dict[str, dict[str, str]] = {}
        for name, kind in LOCAL_ISSUERS.items():
            signer = self.issuers.add(f"/{name}", kind)
            key_file = self.state_dir / "oidc" / f"{name}.pem"
            self._write(key_file, signer.private_pem().decode("ascii"))
            described[name] = {
                "issuer": signer.url, "kind": kind, "audience": OIDC_AUDIENCE, "key_file": str(key_file),
            }
        return described

    def _write(self, path: Path, text: str) -> None:
        self._written.append(path)
        _write_private(path, text)

    def _server_environment(self, service: Identity, issuer_keys: list[str]) -> dict[str, str]:
        """What the API's process runs with: the service's keys, the emulator as every endpoint."""
        env = hermetic_environment()
        env.update(
            AWS_ENDPOINT_URL=self.emulator.url,
            AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION,
            AWS_ACCESS_KEY_ID=service.access_key_id,
            AWS_SECRET_ACCESS_KEY=service.secret_access_key,
            # The stage leaves it unset: it depends on the port, and a proof must name this server.
            STSVEND_SERVER_ID=",".join(self.server_ids),
            # The identity-provider mode: the API is its own issuer, on its loopback URL.
            STSVEND_ISSUER_URL=self.api_url,
            STSVEND_ISSUER_KEYS=",".join(issuer_keys),
        )
        return env

    def _start_api(self, service: Identity, issuer_keys: list[str]) -> None:
        env = self._server_environment(service, issuer_keys)
        argv = [
            sys.executable,
            "-c",
            _CHALICE,
            "--project-dir",
            str(self.root),
            "local",
            "--stage",
            STAGE,
            "--host",
            self.host,
            "--port",
            str(self.api_port),
            "--no-autoreload",
        ]
        self.api = ManagedProcess(
            "stsvend API (chalice local)", argv, self.api_log, env, self.root, errors_path=self.api_errors_log
        )
        self.api.start()
        wait_until(self._api_answers, self.api, READY_TIMEOUT_SECONDS)

    def _start_gateway(self, identities: dict[str, Identity], issuer_keys: list[str]) -> None:
        """The API in `apigateway` mode behind the local front door, which knows the identities'
        keys (handed over in its environment) and who each is (as the emulator's STS says)."""
        env = self._server_environment(identities["service"], issuer_keys)
        env[GATEWAY_KEYS_VARIABLE] = json.dumps([
            {
                "access_key_id": identity.access_key_id,
                "secret_access_key": identity.secret_access_key,
                "arn": identity.arn,
                "account_id": identity.account_id,
                "user_id": caller_user_id(self.emulator.url, identity),
            }
            for identity in identities.values()
        ])
        argv = [sys.executable, "-m", "stsvend.local.gateway", "--host", self.host,
                "--port", str(self.gateway_port), "--project-dir", str(self.root)]
        self.gateway = ManagedProcess(
            "stsvend local API Gateway", argv, self.gateway_log, env, self.root,
            errors_path=self.gateway_errors_log,
        )
        self.gateway.start()
        gateway_url = self.gateway_url
        assert gateway_url is not None
        wait_until(lambda: _serves(gateway_url), self.gateway, READY_TIMEOUT_SECONDS)

    def _api_answers(self) -> bool:
        return _serves(self.api_url)

    def stopped_server(self) -> ManagedProcess | None:
        """A server of the stack that is no longer running, if any."""
        for process in (self.emulator.process, self.api, self.gateway):
            if process is not None and not process.running:
                return process
        return None

    def stop(self) -> None:
        """Stop both servers and remove the files this stack wrote (their keys die with the
        emulator). Safe to call twice."""
        self._state = None
        while self._written:
            self._written.pop().unlink(missing_ok=True)
        if self.gateway is not None:
            self.gateway.stop()
        if self.api is not None:
            self.api.stop()
        if self.issuers is not None:
            self.issuers.stop()
            self.issuers = None
        self.emulator.stop()
