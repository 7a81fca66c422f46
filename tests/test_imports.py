"""The import graph of dlws/, roles/, deploy/ and verify/: no circle, no import hidden inside a
function (a circle's usual disguise), and the core imports no role."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dlws", "roles", "deploy", "verify")

# Imports placed inside a function on purpose, each with its reason: (file, module imported).
LAZY = {
    # ansible-core takes about a second to import; only an Ansible inventory needs it, and the
    # reader says which ansible-core to install when it is missing.
    **{("dlws/inventory/ansible.py", module): "heavy optional dependency" for module in (
        "ansible", "ansible.cli", "ansible.errors", "ansible.inventory.manager",
        "ansible.parsing.dataloader", "ansible.parsing.vault", "ansible.parsing.yaml.objects",
        "ansible.plugins.loader", "ansible.template", "ansible.utils.display",
        "ansible.vars.manager", "ansible._internal._datatag._tags", "ansible.release")},
    # pyinfra_cli's __init__ runs gevent's monkey.patch_all(): imported only where pyinfra's
    # own process or the inventory reader's child runs, never in verify (xdist stalls under it).
    **{(path, module): "patches the interpreter on import" for path, module in (
        ("dlws/inventory/targets.py", "pyinfra_cli.exceptions"),
        ("dlws/inventory/targets.py", "pyinfra_cli.inventory"),
        ("dlws/validate/conflicts.py", "pyinfra_cli.inventory"))},
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "files" in path.relative_to(ROOT).parts or "data" in path.relative_to(ROOT).parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = modules()


def _targets(node: ast.AST, module: str) -> list[str]:
    """The project modules an import statement loads (a `from package import module` too)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from . import x
            base = ".".join(module.split(".")[:-node.level] + ([base] if base else []))
        names = [base] + [f"{base}.{alias.name}" for alias in node.names]
    return [name for name in names if name in MODULES]


def imports(name: str, *, inside_functions: bool) -> list[tuple[int, str, str]]:
    """(line, statement's module, project module) of a module's imports, at its top level or
    inside its functions."""
    tree = ast.parse(MODULES[name].read_text())
    found = []
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    nested = {id(n) for f in functions for n in ast.walk(f) if n is not f}
    nested |= {id(f) for f in functions}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if (id(node) in nested) != inside_functions:
            continue
        statement = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
        found.append((node.lineno, statement or "", _targets(node, name)))
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name in MODULES:
        targets = {t for _, _, ts in imports(name, inside_functions=False) for t in ts}
        # Importing a.b.c runs a/__init__ and a/b/__init__ first, unless the importer is inside.
        for target in list(targets):
            parts = target.split(".")
            for n in range(1, len(parts)):
                parent = ".".join(parts[:n])
                if parent in MODULES and not name.startswith(parent + ".") and name != parent:
                    targets.add(parent)
        # The packages that contain the importer are being imported already (their __init__
        # runs first): `from dlws.stack import kernel` inside dlws.stack is no edge to it.
        inside = {".".join(name.split(".")[:n]) for n in range(1, name.count(".") + 1)}
        edges[name] = targets - {name} - inside
    return edges


def cycles(edges: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read():
    edges = graph()
    assert "dlws.facts.readers" in edges["dlws.plan"] or "dlws.facts" in edges["dlws.plan"]
    assert len(MODULES) > 60, sorted(MODULES)


def test_no_import_circle():
    found = cycles(graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


def test_the_core_imports_no_role():
    edges = graph()
    wrong = {name: sorted(t for t in targets if t.split(".")[0] == "roles")
             for name, targets in edges.items() if name.split(".")[0] == "dlws"}
    assert not {k: v for k, v in wrong.items() if v}, wrong


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_import_inside_a_function(name):
    path = str(MODULES[name].relative_to(ROOT))
    hidden = [f"line {line}: {statement}" for line, statement, _ in
              imports(name, inside_functions=True)
              if (path, statement) not in LAZY]
    assert not hidden, (f"{path} imports inside functions ({'; '.join(hidden)}): move them to the "
                        "top; a circle they hide is broken by moving code, not by hiding it")


@pytest.mark.parametrize(("source", "expected"), [
    ({"a": {"b"}, "b": {"a"}}, [{"a", "b"}]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_circle_finder_finds_circles(source, expected):
    assert cycles(source) == expected


def test_verify_and_the_cli_do_not_import_pyinfra_cli():
    """pyinfra_cli's import runs gevent's monkey.patch_all(), which stalls pytest-xdist's
    workers (`LoopExit: This operation would block forever`): what verify's conftest and the
    `dlws` command import must not pull it in."""
    import subprocess
    import sys

    code = ("import sys, dlws.cli, dlws.verify.conftest, dlws.verify.helpers; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyinfra_cli'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout
