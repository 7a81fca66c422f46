"""A role reads only its own host-data keys: what it needs from another role is a function of
that role (its defaults.py) or a part of the stack, never the other role's keys read directly."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from dlws.roles import KEY_OWNERS

ROLES = Path(__file__).resolve().parents[2] / "roles"
# Who owns each key: dlws.declare (what a host is: gpu_*, hardware_*, verify_*) or a role.
OWNER = {key.name: owner.__name__ for owner in KEY_OWNERS for key in owner.KEYS}
# What a host is declared to have describes the host, not a role's work: every stage reads it.
SHARED = "dlws.declare"


def key_reads(source: str) -> list[tuple[int, str]]:
    """(line, key) of every host-data key a module reads: `host.data.KEY`, `X.get("KEY")`,
    `X["KEY"]` and `getattr(X, "KEY")`, for the keys some owner declares."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "data" and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "host"):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Call):
            call = node.func
            if (isinstance(call, ast.Attribute) and call.attr == "get" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                found.append((node.lineno, node.args[0].value))
            elif (isinstance(call, ast.Name) and call.id == "getattr" and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant)):
                found.append((node.lineno, node.args[1].value))
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            found.append((node.lineno, node.slice.value))
    return [(line, key) for line, key in found if key in OWNER]


def role_modules() -> list[Path]:
    return sorted(path for path in ROLES.rglob("*.py")
                  if "files" not in path.relative_to(ROLES).parts
                  and path.parent != ROLES)


def role_of(path: Path) -> str:
    return "dlws.roles." + path.relative_to(ROLES).parts[0]


def test_every_role_module_is_scanned():
    roles = {role_of(path) for path in role_modules()}
    assert {owner for owner in OWNER.values() if owner.startswith("dlws.roles.")} <= roles, roles


@pytest.mark.parametrize("path", role_modules(), ids=lambda p: str(p.relative_to(ROLES)))
def test_role_reads_only_its_own_keys(path):
    role = role_of(path)
    foreign = [f"line {line}: {key} (owned by {OWNER.get(key, 'no one')})"
               for line, key in key_reads(path.read_text())
               if OWNER.get(key) not in (role, SHARED)]
    assert not foreign, (
        f"{path.relative_to(ROLES.parent)} ({role}) reads other owners' keys: "
        + "; ".join(foreign) + ". Ask the owner: a function in its roles/<role>/defaults.py "
        "(or a part of the stack), not its key.")


@pytest.mark.parametrize("source", [
    "host.data.cache_pip_dir",
    "host.data.get('base_lab_group') or 'lab'",
    "data['python_env_prefix']",
    "getattr(host.data, 'python_env_installer')",
])
def test_the_scan_sees_each_way_of_reading_a_key(source):
    assert [key for _, key in key_reads(source)], source
