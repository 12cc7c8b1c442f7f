"""`make client-zipapp`: the client as one file, dist/stsvend-client.pyz.

It holds stsvend's client commands only (stsvend/__init__.py, cli.py, constants.py, errors.py,
terminal.py, arns.py and stsvend/client/: not the checkout, local stack or ops code) and runs with
any Python 3.10 or later that has botocore (>= stsvend.client.calls.MIN_BOTOCORE, checked on the
first cache miss): copy it to an agent and run `python3 stsvend-client.pyz configure ...` or make it
executable.

Each module is stored twice: its source, and its bytecode compiled by the Python that builds it
(unchecked-hash .pyc beside the .py, which zipimport reads first). Another Python version finds
the bytecode's magic number wrong and compiles the source instead: it works, at the cost of
compiling on every run (build the file with the agents' Python to avoid that; bench/clientcache.py
measures both).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import marshal
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "stsvend"
CLIENT_FILES = (
    "__init__.py", "arns.py", "cli.py", "constants.py", "contract.py", "errors.py", "terminal.py",
    "client/*.py",
)
# A fixed time for every member: the same sources make the same file.
STAMP = (2020, 1, 1, 0, 0, 0)
MAIN = '''\
"""stsvend's one-file client: the client commands only."""
import sys

if sys.version_info < (3, 10):
    sys.stderr.write("stsvend: UnsupportedPython: the stsvend client needs Python 3.10 or later, "
                     "not %d.%d\\n" % sys.version_info[:2])
    sys.exit(1)

from stsvend.cli import main

sys.exit(main(client_only=True))
'''


def members() -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for pattern in CLIENT_FILES:
        for path in sorted(PACKAGE.glob(pattern)):
            found.append((f"stsvend/{path.relative_to(PACKAGE).as_posix()}", path.read_bytes()))
    found.append(("__main__.py", MAIN.encode()))
    return found


def bytecode(name: str, source: bytes) -> bytes:
    """An unchecked-hash .pyc (PEP 552) of `source`, as py_compile writes one."""
    code = compile(source, name, "exec", dont_inherit=True, optimize=0)
    flags = 0b01  # hash-based, not checked against the source
    header = importlib.util.MAGIC_NUMBER + flags.to_bytes(4, "little")
    header += importlib.util.source_hash(source)
    return header + marshal.dumps(code)


def build(target: Path, python: str = "/usr/bin/env python3") -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, source in members():
            for member, data in ((name, source), (name[:-3] + ".pyc", bytecode(name, source))):
                info = zipfile.ZipInfo(member, STAMP)
                info.external_attr = 0o644 << 16
                archive.writestr(info, data)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".tmp")
    partial.write_bytes(f"#!{python}\n".encode() + buffer.getvalue())
    partial.chmod(0o755)
    partial.replace(target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(ROOT / "dist" / "stsvend-client.pyz"))
    parser.add_argument("--python", default="/usr/bin/env python3", help="the #! line's interpreter")
    args = parser.parse_args()
    target = build(Path(args.output), args.python)
    print(f"wrote {target} ({target.stat().st_size} bytes, Python {sys.version_info[0]}."
          f"{sys.version_info[1]} bytecode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
