"""verify/'s own shape: shared helpers in verify/helpers.py, no check module importing another,
no conftest choosing by module name, and every check saying the outcome it requires."""

from __future__ import annotations

import ast
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
