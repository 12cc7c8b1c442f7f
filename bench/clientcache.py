"""Benchmark 4, client cache hit, whole-process wall time on the local stack:

- `stsvend credentials --format process` answered from a warm cache vs `python -c pass` (the same
  interpreter: the floor of any Python command);
- what an AWS CLI user feels: `aws sts get-caller-identity` (awscli v1) against the emulator with
  a profile whose `credential_process` is stsvend vs a native profile with `role_arn` +
  `source_profile` (the CLI's own assume-role cache in ~/.aws/cli/cache). Both caches are warmed
  first; both profiles hold credentials for the same role (Jenkins' cross-account deployer).

- the one-file client (`make client-zipapp`): its hit run as `python stsvend-client.pyz` and as
  the line `stsvend configure` writes when run from it (`python -I -c ...`, the zipapp on sys.path),
  vs the installed hit;
- the installed hit under the console script pip writes: pip 23.2.1's (the pip of a fresh venv
  on this machine's Python; it imports `re` first) vs a recent pip's, and the line `configure`
  writes (`python -I -c ...`, no console script) vs `python -c pass`;
- an outage: five runs whose cached credentials are due for refresh while the API hangs (it
  accepts the connection and never answers), timed together vs one read timeout of the client
  (set to OUTAGE_TIMEOUT for the bench): the runs after the first serve the cache at once.

Measured in a regular installation, the goal's setting: a scratch virtualenv holding a plain copy
of the stsvend package and a console script as pip writes it, its dependencies (botocore, awscli)
reached through a .pth file. The project's own .venv has stsvend installed editable, and the
import hook of an editable install costs every Python process in it time before `pass` runs, so
the same two comparisons in .venv are reported beside it. Every process runs with a private HOME,
cache and AWS config, and with Python's bytecode cache on (in a private directory).
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
import time
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT, comparison, interleaved, run_process
from bench.endtoend import client_environment
from bench.events import DEPLOYER

NAME = "client_cache"
TITLE = "Client cache hit (whole processes)"
HIT_ROUNDS = 40
CLI_ROUNDS = 30
HIT_GOAL = 3.0
CLI_GOAL = 1.1
DEV_BIN = Path(PYTHON).parent
CONSOLE_SCRIPT = "import sys\nfrom stsvend.cli import main\nsys.exit(main())\n"
# The console scripts pip writes (distlib's template): pip 23.2.1, and pip 25 and later.
PIP_23_SCRIPT = (
    "# -*- coding: utf-8 -*-\nimport re\nimport sys\nfrom stsvend.cli import main\n"
    "if __name__ == '__main__':\n"
    "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n    sys.exit(main())\n"
)
PIP_25_SCRIPT = (
    "import sys\nfrom stsvend.cli import main\nif __name__ == '__main__':\n"
    "    sys.argv[0] = sys.argv[0].removesuffix('.exe')\n    sys.exit(main())\n"
)
OUTAGE_RUNS = 5
OUTAGE_TIMEOUT = 5.0
OUTAGE_GOAL = 2.0


def regular_install(directory: Path) -> Path:
    """A virtualenv with stsvend installed as a plain package (not editable); returns its python."""
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(directory)], check=True, timeout=120)
    python = directory / "bin" / "python"
    purelib = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip())
    shutil.copytree(ROOT / "stsvend", purelib / "stsvend", ignore=shutil.ignore_patterns("__pycache__"))
    (purelib / "bench-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    for name, text in (("stsvend", CONSOLE_SCRIPT), ("stsvend-pip23", PIP_23_SCRIPT),
                       ("stsvend-pip25", PIP_25_SCRIPT)):
        script = directory / "bin" / name
        script.write_text(f"#!{python}\n{text}", encoding="utf-8")
        script.chmod(0o755)
    return python


def write_aws_files(directory: Path, state: Any, stsvend: list[str]) -> dict[str, str]:
    """~/.aws/config and credentials for the two profiles; returns the variables naming them."""
    admin = state.identities["admin"]
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config"
    config.write_text(
        "[profile stsvend]\n"
        f"region = {state.region}\n"
        f"credential_process = {' '.join(stsvend)}\n"
        "\n"
        "[profile native]\n"
        f"region = {state.region}\n"
        f"role_arn = {DEPLOYER}\n"
        "external_id = stsvend-local\n"
        "source_profile = base\n"
        "\n"
        "[profile base]\n"
        f"region = {state.region}\n",
        encoding="utf-8",
    )
    credentials = directory / "credentials"
    credentials.touch(mode=0o600)
    credentials.write_text(
        f"[base]\naws_access_key_id = {admin.access_key_id}\n"
        f"aws_secret_access_key = {admin.secret_access_key}\n",
        encoding="utf-8",
    )
    return {"AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(credentials)}


def measure(state: Any, scratch: Path, python: Path, where: str) -> list[dict[str, Any]]:
    """Both comparisons with `python` (and the stsvend script beside it)."""
    stsvend = [str(python.parent / "stsvend"), "credentials", "--role", DEPLOYER, "--format", "process"]
    home = scratch / "home"
    env = {**client_environment(state, "jenkins", scratch), "HOME": str(home)}
    env.update(write_aws_files(home / ".aws", state, stsvend))

    def process(argv: list[str]) -> Any:
        return lambda: run_process(argv, env)

    python_pass, stsvend_hit = process([str(python), "-c", "pass"]), process(stsvend)
    aws = [str(python), str(DEV_BIN / "aws"), "sts", "get-caller-identity", "--profile"]
    via_stsvend, native = process([*aws, "stsvend"]), process([*aws, "native"])
    for warm in (python_pass, stsvend_hit, via_stsvend, native):  # fills every cache once
        warm()
    hit, floor = interleaved(HIT_ROUNDS, stsvend_hit, python_pass)
    with_stsvend, with_native = interleaved(CLI_ROUNDS, via_stsvend, native)
    goals = (HIT_GOAL, CLI_GOAL) if where == "regular install" else (None, None)
    return [
        comparison(f"{where}: stsvend credentials, warm cache vs python -c pass", hit, floor, goals[0],
                   "stsvend credentials --format process", "python -c pass",
                   f"{HIT_ROUNDS} processes each, interleaved"),
        comparison(f"{where}: aws sts get-caller-identity, credential_process stsvend vs native",
                   with_stsvend, with_native, goals[1], "profile with credential_process = stsvend",
                   "profile with role_arn + source_profile", f"{CLI_ROUNDS} processes each, interleaved"),
    ]


def measure_one_file(state: Any, scratch: Path, python: Path) -> list[dict[str, Any]]:
    """The zipapp's hit and the console scripts' hits, beside the installed one."""
    from stsvend.client.configure import _ENTRY, _ZIPAPP_ENTRY
    from tools.client_zipapp import build

    zipapp = build(scratch / "stsvend-client.pyz")
    arguments = ["credentials", "--role", DEPLOYER, "--format", "process"]
    env = {**client_environment(state, "jenkins", scratch), "HOME": str(scratch / "home")}
    bin_dir = python.parent
    commands = {
        "installed": [str(bin_dir / "stsvend-pip25"), *arguments],
        "pip23": [str(bin_dir / "stsvend-pip23"), *arguments],
        "written": [str(python), "-I", "-c", _ENTRY, *arguments],
        "zipapp": [str(python), str(zipapp), *arguments],
        "zipapp-written": [str(python), "-I", "-c", _ZIPAPP_ENTRY.format(path=str(zipapp)), *arguments],
        "pass": [str(python), "-c", "pass"],
    }
    actions = {name: (lambda argv=argv: run_process(argv, env)) for name, argv in commands.items()}
    for action in actions.values():  # fills the cache and the bytecode cache once
        action()
    timings = dict(zip(actions, interleaved(HIT_ROUNDS, *actions.values()), strict=True))
    how = f"{HIT_ROUNDS} processes each, interleaved"
    return [
        comparison("regular install: one-file client hit as configure writes it vs installed hit",
                   timings["zipapp-written"], timings["installed"], None,
                   "python -I -c (zipapp on sys.path)", "console script (recent pip)", how),
        comparison("regular install: python stsvend-client.pyz hit vs installed hit",
                   timings["zipapp"], timings["installed"], None, "python stsvend-client.pyz",
                   "console script (recent pip)", how),
        comparison("regular install: hit via pip 23.2.1's console script vs a recent pip's",
                   timings["pip23"], timings["installed"], None, "console script (pip 23.2.1)",
                   "console script (recent pip)", how),
        comparison("regular install: hit as configure writes it vs python -c pass",
                   timings["written"], timings["pass"], HIT_GOAL, "python -I -c (entry point)",
                   "python -c pass", how),
    ]


def measure_outage(scratch: Path, python: Path) -> dict[str, Any]:
    """OUTAGE_RUNS runs, due for refresh, while the API hangs: timed together vs one timeout."""
    import json
    import socket
    import threading
    from datetime import datetime, timedelta, timezone
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from bench.common import base_environment

    hung, released = threading.Event(), threading.Event()
    expiration = datetime.now(timezone.utc) + timedelta(hours=1)
    answer = json.dumps({
        "AccessKeyId": "ASIABENCHOUTAGE00001", "SecretAccessKey": "bench-secret",
        "SessionToken": "bench-token", "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }).encode()
    held: list[socket.socket] = []

    class Api(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if hung.is_set():
                held.append(self.connection)  # accepted, never answered
                released.wait(3600)
                return
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {**base_environment(), "XDG_CACHE_HOME": str(scratch / "cache"), "HOME": str(scratch / "home")}
    entry = (f"import sys;import stsvend.client.transport as api;api.READ_TIMEOUT_SECONDS={OUTAGE_TIMEOUT!r};"
             "from stsvend.cli import main;sys.exit(main())")
    argv = [str(python), "-I", "-c", entry, "credentials", "--api", url, "--role", DEPLOYER]
    try:
        run_process(argv, env)  # fills the cache
        hung.set()
        started = time.perf_counter()
        for _ in range(OUTAGE_RUNS):
            run_process([*argv, "--refresh-window", "3600"], env)
        total = time.perf_counter() - started
    finally:
        released.set()
        server.shutdown()
        server.server_close()
    result = comparison(
        f"outage: {OUTAGE_RUNS} runs due for refresh while the API hangs vs one read timeout",
        [total], [OUTAGE_TIMEOUT], OUTAGE_GOAL, f"{OUTAGE_RUNS} runs of stsvend credentials",
        f"one read timeout ({OUTAGE_TIMEOUT:g} s)", "one series; ratio = timeouts paid",
    )
    result["runs_per_timeout"] = round(OUTAGE_RUNS * OUTAGE_TIMEOUT / total, 2)
    return result


def run(context: Any) -> dict[str, Any]:
    state = context.local_stack().state
    regular = regular_install(context.scratch(NAME) / "venv")
    comparisons = measure(state, context.scratch(f"{NAME}-regular"), regular, "regular install")
    comparisons += measure_one_file(state, context.scratch(f"{NAME}-one-file"), regular)
    comparisons.append(measure_outage(context.scratch(f"{NAME}-outage"), regular))
    comparisons += measure(state, context.scratch(f"{NAME}-dev"), Path(PYTHON), "project .venv (editable)")
    version = subprocess.run([str(DEV_BIN / "aws"), "--version"], capture_output=True, text=True,
                             check=False, timeout=60)
    return {"title": TITLE, "comparisons": comparisons, "awscli": (version.stdout or version.stderr).strip()}
