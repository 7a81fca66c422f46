"""README's layout and tests tables against the tree: every path they name exists, and every
package, module, role, folder and test module of the tree is named by one of their rows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TOP_FOLDERS = ("bench", "bin", "deploy", "docs", "inventory", "locks", "molecule", "roles",
               "tests", "tools", "verify")


def table(heading: str) -> list[str]:
    """The first cell of each row of the first table under `## heading`."""
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [row.split(" | ")[0].lstrip("| ") for row in rows[2:]]  # less header and rule


def named(cells: list[str]) -> set[str]:
    """Every `path` in the cells, without a trailing slash."""
    return {token.rstrip("/") for cell in cells for token in re.findall(r"`([^`]+)`", cell)}


LAYOUT = named(table("Layout"))
TESTS = {name if name.startswith("tests/") else f"tests/{name}" for name in named(table("Tests"))}


def covered(path: str, names: set[str]) -> bool:
    """Named itself (with or without .py), or inside a named folder."""
    parts = Path(path).with_suffix("").parts
    return any("/".join(parts[:n]) in names or "/".join(Path(path).parts[:n]) in names
               for n in range(1, len(parts) + 1))


def test_the_tables_are_found():
    assert len(LAYOUT) > 20 and len(TESTS) > 10, (LAYOUT, TESTS)


@pytest.mark.parametrize("name", sorted(LAYOUT | TESTS))
def test_every_path_named_exists(name):
    assert (ROOT / name).exists() or (ROOT / f"{name}.py").exists(), (
        f"README names `{name}`, which is not in the tree")


def tree_parts() -> list[str]:
    """What the layout table must name: top folders, dlws's modules and packages, each role."""
    parts = [name for name in TOP_FOLDERS if (ROOT / name).is_dir()]
    parts += [str(p.relative_to(ROOT)) for p in sorted((ROOT / "dlws").iterdir())
              if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").exists()]
    parts += [str(p.relative_to(ROOT)) for p in sorted((ROOT / "roles").iterdir())
              if (p / "__init__.py").exists()]
    return parts


@pytest.mark.parametrize("part", tree_parts())
def test_layout_names_every_part_of_the_tree(part):
    """A top folder by itself or a path inside it; each dlws module and package and each role
    by its own path."""
    if "/" in part:
        assert part in LAYOUT, f"README's layout table does not name `{part}`"
    else:
        assert part in LAYOUT or any(name.startswith(f"{part}/") for name in LAYOUT), (
            f"README's layout table names nothing in `{part}/`")


@pytest.mark.parametrize("module", sorted(str(p.relative_to(ROOT))
                                          for p in (ROOT / "tests").rglob("test_*.py")))
def test_tests_table_names_every_test_module(module):
    assert covered(module, TESTS), f"README's tests table names neither `{module}` nor its folder"
