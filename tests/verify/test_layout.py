"""verify/'s own shape: shared helpers in verify/helpers.py, no check module importing another,
no conftest choosing by module name, every check saying the outcome it requires, and the checks
that wait for the trainings collected last."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

VERIFY = Path(__file__).resolve().parents[2] / "verify"
CHECK_MODULES = sorted(VERIFY.glob("test_*.py"))


def imported_modules(tree: ast.AST) -> set[str]:
    """Every module an AST imports, by its dotted name (`from a import b` gives a and a.b)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # `from .x import y` inside verify/ is verify.x (and verify.x.y); `from . import x`
            # is verify.x.
            base = ".".join(filter(None, ["verify" if node.level else "", node.module or ""]))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def checks(tree: ast.Module) -> list[ast.FunctionDef]:
    return [node for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")]


def test_verify_has_checks():
    assert len(CHECK_MODULES) >= 10, CHECK_MODULES


@pytest.mark.parametrize("path", [VERIFY / "conftest.py", VERIFY / "helpers.py", *CHECK_MODULES],
                         ids=lambda p: p.name)
def test_no_module_of_verify_imports_a_check_module_or_the_conftest(path):
    """Shared code lives in verify/helpers.py; a check module is imported by pytest alone."""
    imported = imported_modules(ast.parse(path.read_text()))
    wrong = sorted(name for name in imported
                   if name.startswith(("verify.test_", "verify.conftest", "dlws.verify.test_",
                                       "dlws.verify.conftest")))
    assert not wrong, f"{path.name} imports {wrong}: move what it needs to verify/helpers.py"


def test_conftest_chooses_no_check_by_its_module_name():
    """Which checks read the training runs is said by their `trained` fixture, not by their
    module's name."""
    tree = ast.parse((VERIFY / "conftest.py").read_text())
    by_name = [node.lineno for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and node.attr in ("module", "__name__")]
    names = [node.lineno for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and node.value.startswith("test_") and node.value.isidentifier()]
    assert not by_name and not names, (
        f"verify/conftest.py picks checks by module name at lines {by_name + names}")


@pytest.mark.parametrize("path", CHECK_MODULES, ids=lambda p: p.name)
def test_every_check_says_the_outcome_it_requires(path):
    """Each check carries a docstring: one sentence naming the outcome that passes."""
    tree = ast.parse(path.read_text())
    assert checks(tree), f"{path.name} holds no check"
    silent = [node.name for node in checks(tree) if not (ast.get_docstring(node) or "").strip()]
    assert not silent, f"{path.name}: checks without a docstring saying what they require: {silent}"


def test_checks_that_wait_for_the_trainings_run_last(tmp_path):
    """A CPU host's trainings run in the background from its first check: every check that
    reads them (takes the `trained` fixture) is collected after every check that does not, so
    the others run while the trainings do instead of after them."""
    waiting = set()
    for path in sorted(VERIFY.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and "trained" in [a.arg for a in node.args.args]:
                waiting.add(f"{path.name}::{node.name}")
    assert waiting, "no check takes the trained fixture"
    inventory = tmp_path / "hosts.py"
    inventory.write_text('hosts = [("@docker/dlws-no-such-host", {"gpu_count": 0})]\n')
    out = subprocess.run([sys.executable, "-m", "pytest", "verify", "--collect-only", "-q",
                          "-p", "no:cacheprovider", "--inventory", str(inventory)],
                         cwd=VERIFY.parent, capture_output=True, text=True, timeout=300)
    ids = [line for line in out.stdout.splitlines() if line.startswith("verify/")]
    assert ids, out.stdout[-2000:] + out.stderr[-2000:]
    checks = [line.split("/", 1)[1].split("[")[0] for line in ids]
    reads = [check in waiting for check in checks]
    first = reads.index(True)
    assert all(reads[first:]), [i for i, r in list(zip(ids, reads, strict=True))[first:] if not r]
    assert {check for check in checks if check in waiting} == waiting
