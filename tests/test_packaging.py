"""The controller's dependencies: ranges that resolve on Python 3.10 to 3.13, and a current lock."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"
# ansible-core 2.17 is the last to run on Python 3.10 (Ubuntu 22.04's); 3.11+ get 2.19.
ANSIBLE_CORE = {"3.10": "2.17.", "3.11": "2.19.", "3.12": "2.19.", "3.13": "2.19."}
# A distribution name and the module it is imported as (or how it is used).
USED_AS = {"pyinfra": "pyinfra", "pytest": "pytest", "pytest-testinfra": "testinfra",
           "packaging": "packaging", "ansible-core": "ansible",
           "cryptography": "cryptography"}
# Used without an import: uv as a program (`uv pip compile`), pytest-xdist as pytest's plugin.
USED_OTHERWISE = {"uv": ("dlws/locks.py", '[_uv(), "pip", "compile"'),
                  "pytest-xdist": ("verify/conftest.py", "pytest.mark.xdist_group")}


@pytest.mark.parametrize("python", sorted(ANSIBLE_CORE))
def test_dependencies_resolve_for_each_supported_python(python, tmp_path):
    """`uv pip compile` against PyPI: every extra, for each controller's Python."""
    out = subprocess.run([str(UV), "pip", "compile", "-q", "--python-version", python,
                          "--extra", "molecule", "--extra", "dev", "--no-header",
                          str(ROOT / "pyproject.toml"), "-o", str(tmp_path / "req.txt")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    pins = dict(re.findall(r"^([a-z0-9._-]+)==(\S+)", (tmp_path / "req.txt").read_text(), re.M))
    assert pins["ansible-core"].startswith(ANSIBLE_CORE[python]), pins["ansible-core"]
    assert {"pyinfra", "pytest-testinfra", "molecule", "uv"} <= set(pins)


def test_lock_matches_pyproject():
    """uv.lock (what bin/dlws and CI install) was made from this pyproject.toml."""
    out = subprocess.run([str(UV), "lock", "--locked", "--offline"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]


def _imported_modules() -> set[str]:
    found = set()
    for folder in ("dlws", "roles", "verify", "deploy", "inventory", "tests", "bench", "tools"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.split(".")[0])
    return found


def test_every_runtime_dependency_is_used():
    """A dependency nothing imports is dropped (docker==7.2.0 was one)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9._-]+", spec).group(0).lower() for spec in declared}
    imported = _imported_modules()
    for name in sorted(names):
        if name in USED_OTHERWISE:
            where, text = USED_OTHERWISE[name]
            assert text in (ROOT / where).read_text(), f"{name}: {where} no longer uses it"
            continue
        assert name in USED_AS, f"{name}: say how dlws uses it (USED_AS)"
        assert USED_AS[name] in imported, f"{name} is declared but nothing imports {USED_AS[name]}"


def test_the_wheel_lists_every_package_of_the_tree():
    """pyproject's explicit package list (setuptools' package-dir mapping needs one) names every
    folder with an __init__.py under dlws/, roles/, verify/, deploy/ and inventory/: a new role
    or module folder missing there would be missing from the wheel."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = setuptools["package-dir"]
    found = set()
    for name, folder in roots.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            if "__pycache__" not in parts:
                found.add(".".join([name, *parts]))
    assert found == set(setuptools["packages"]), sorted(found ^ set(setuptools["packages"]))
    assert set(roots) == {"dlws", "dlws.roles", "dlws.verify", "dlws.deploy", "dlws.examples"}
