"""Contradictions in an inventory: a host whose groups, or whose listings, give a key two values.

pyinfra merges a host's data silently (the last group or listing wins), so a host put in a GPU
group and a CPU group would get whichever came last. dlws refuses the inventory instead, naming
the host, the key and the groups, unless the host's own data settles the key.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import click

from dlws.validate.schema import KEY_PREFIXES, Problem


def _differing(sources: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """key -> {source: value} for every dlws key that two sources give different values."""
    seen: dict[str, dict[str, Any]] = {}
    for source, data in sources:
        for key, value in (data or {}).items():
            if isinstance(key, str) and key.startswith(KEY_PREFIXES):
                seen.setdefault(key, {})[source] = value
    return {key: values for key, values in seen.items()
            if len({repr(v) for v in values.values()}) > 1}


def _problem(host: str, key: str, values: dict[str, Any], what: str, fix: str) -> Problem:
    given = "; ".join(f"{source} says {value!r}" for source, value in values.items())
    return Problem(host, key, f"{what} give it different values ({given}); {fix}")


def group_conflicts(host, own_data: Mapping[str, Any] | None = None) -> list[Problem]:
    """A pyinfra host whose groups' data (group tuples, group_data/*.py) disagree on a key."""
    inventory = host.inventory
    own = inventory.get_host_data(host.name) if own_data is None else own_data
    groups = [g for g in dict.fromkeys(host.groups) if g != "all"]
    sources = [(f"group {g}", inventory.get_group_data(g)) for g in groups]
    return [_problem(host.name, key, values, "its groups",
                     f"set {key} in the host's own data, or make the groups agree")
            for key, values in _differing(sources).items() if key not in own]


def listing_conflicts(inventory_path: str | Path | None,
                      names: Collection[str] | None = None) -> list[Problem]:
    """Hosts listed in two groups of a pyinfra inventory file with different data for a key.

    + names: only these hosts (those a --limit selects); None = every host
    """
    if not inventory_path or Path(inventory_path).suffix != ".py" or not Path(
            inventory_path).is_file():
        return []
    listings: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    # Here, not at the top: pyinfra_cli patches the interpreter for gevent on import, and verify
    # imports this module (its xdist workers stall under the patch); pyinfra's own process and
    # the inventory reader's child have it imported already.
    from pyinfra_cli.inventory import _get_groups_from_filename

    for group, members in _get_groups_from_filename(str(inventory_path)).items():
        hosts = members[0] if isinstance(members, tuple) else members
        for entry in hosts:
            if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[1], dict):
                listings.setdefault(str(entry[0]), []).append((f"group {group}", entry[1]))
    return [_problem(host, key, values, "its listings in two groups",
                     "give the host's data in one listing only, or make them agree")
            for host, sources in listings.items()
            for key, values in _differing(sources).items()
            if names is None or host in names]


def cli_inventory_path() -> str | None:
    """The inventory file of the running `pyinfra` command (None outside of it)."""
    context = click.get_current_context(silent=True)
    while context is not None:
        value = context.params.get("inventory")
        if value:
            return str(value)
        context = context.parent
    return None
