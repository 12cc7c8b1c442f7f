"""No import cycle among stsvend's and the server's modules, and no module of the package imports
its root. Every import statement counts, at module level or in a function body (a lazy import is
still an edge: the cycle is there the first time it runs), and so does the root's `__getattr__`,
which imports the library (`stsvend.session`, ...) on first use; imports under `if TYPE_CHECKING:`
never run and do not count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def module_names() -> dict[str, Path]:
    """Each module of stsvend/, chalicelib/ and app.py by its dotted name (a package by its own)."""
    names = {"app": ROOT / "app.py"}
    for top in ("stsvend", "chalicelib"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


MODULES = module_names()


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        if isinstance(node, ast.If) and _type_checking_only(node):
            stack.extend(node.orelse)  # the body never runs
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def edges(name: str, source: str, modules: set[str], package: bool = False) -> set[str]:
    """The modules of `modules` that the module `name` (with `source`) imports. `from P import X`
    is an edge to P.X when that is a module, else to P."""
    here = name if package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _imports(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
            continue
        if node.level:
            base = here.split(".")[: len(here.split(".")) - node.level + 1]
            origin = ".".join([*base, *([node.module] if node.module else [])])
        else:
            origin = node.module or ""
        for alias in node.names:
            submodule = f"{origin}.{alias.name}"
            if submodule in modules:
                found.add(submodule)
            elif origin in modules:
                found.add(origin)
    found.discard(name)
    return found


def graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    names = set(modules)
    return {
        name: edges(name, path.read_text(encoding="utf-8"), names, path.name == "__init__.py")
        for name, path in modules.items()
    }


def cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(imports.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(imports):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    assert cycles(graph(MODULES)) == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("stsvend.")))
def test_no_module_imports_the_package_root(name: str) -> None:
    """The root loads the library on first use: a module taking a constant from it would make a
    cycle through it. Constants live in stsvend.constants."""
    assert "stsvend" not in edges(name, MODULES[name].read_text(encoding="utf-8"), set(MODULES),
                                  MODULES[name].name == "__init__.py")


def test_the_roots_lazy_library_import_is_an_edge() -> None:
    assert "stsvend.client.library" in graph(MODULES)["stsvend"]


def test_a_cycle_through_a_lazy_import_in_a_function_is_found() -> None:
    modules = {"p", "p.a", "p.b", "p.c"}
    imports = {
        "p": edges("p", "def __getattr__(name):\n    from p import a\n", modules, package=True),
        "p.a": edges("p.a", "from . import b\n", modules),
        "p.b": edges("p.b", "def f():\n    import p.c\n", modules),
        "p.c": edges("p.c", "from p import CONSTANT\nif TYPE_CHECKING:\n    import p.a\n", modules),
    }
    assert imports == {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p"}}
    assert cycles(imports) == [["p", "p.a", "p.b", "p.c"]]
    assert cycles({**imports, "p.c": set()}) == []
