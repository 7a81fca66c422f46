"""Checks that need the host's own answer, made while the fleet is planned, before any host
changes: one disk declared under two names, and a lab group the host's sudoers makes root.

pyinfra runs the deploy file for every host before it executes any operation, so a refusal
here (raised while host B is planned) stops the run before anything is formatted on host A.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pyinfra.api import DeployError

from dlws.facts.storage import BlockDevice
from dlws.facts.system import SudoersGroups
from dlws.validate.domains import GroupName, ListOf, Record
from dlws.validate.schema import Key, Problem


def _disk_keys(keys: Iterable[Key]) -> list[Key]:
    """Keys that list disks (records with a 'device' or 'serial' field)."""
    return [key for key in keys if isinstance(key.check, ListOf)
            and isinstance(key.check.item, Record)
            and {"device", "serial"} <= set(key.check.item.fields)]


def _ref(disk: Mapping[str, Any]) -> str:
    return disk["device"] if disk.get("device") else f"serial:{disk.get('serial')}"


def same_disk_problems(name: str, key: str, disks: list, found: Mapping[str, Any]) -> list[Problem]:
    """Two entries of `disks` that the host resolves to one block device.

    + found: each entry's reference -> BlockDevice fact (its "path" is the device node)
    """
    seen: dict[str, int] = {}
    problems = []
    for index, disk in enumerate(disks):
        path = (found.get(_ref(disk)) or {}).get("path")
        if not path:
            continue
        if path in seen:
            first = seen[path]
            problems.append(Problem(name, key, (
                f"[{index}] {_ref(disk)!r} and [{first}] {_ref(disks[first])!r} are one disk on "
                f"the host ({path}); the first would be formatted and mounted, then the run "
                "would stop half-done: declare each disk once")))
        seen.setdefault(path, index)
    return problems


def sudoers_problems(name: str, data: Mapping[str, Any], keys: Iterable[Key],
                     root_groups: Iterable[str]) -> list[Problem]:
    """Group keys naming a group the host's sudoers grants root."""
    root_groups = set(root_groups)
    return [Problem(name, key.name, (
        f"{data[key.name]!r} is granted root by this host's sudoers (%{data[key.name]} in "
        "/etc/sudoers or /etc/sudoers.d): every lab user would get root; use a group of the "
        "lab's own that sudoers does not name"))
        for key in keys if isinstance(key.check, GroupName) and data.get(key.name) in root_groups]


def host_problems_from_facts(host, data: Mapping[str, Any], keys: Iterable[Key]) -> list[Problem]:
    """What the host itself shows wrong with its data (facts only: nothing changes)."""
    keys = list(keys)
    problems = []
    for key in _disk_keys(keys):
        disks = [disk for disk in data.get(key.name) or () if isinstance(disk, dict)]
        if len(disks) < 2:
            continue
        found = {_ref(disk): host.get_fact(BlockDevice, device=_ref(disk)) for disk in disks}
        problems += same_disk_problems(host.name, key.name, disks, found)
    if any(isinstance(key.check, GroupName) for key in keys):
        problems += sudoers_problems(host.name, data, keys, host.get_fact(SudoersGroups) or ())
    return problems


def check_host(host, data: Mapping[str, Any], keys: Iterable[Key]) -> None:
    """Raise one DeployError naming every problem the host's facts show; before any change."""
    problems = host_problems_from_facts(host, data, keys)
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise DeployError(f"the host's own facts refuse {len(problems)} value(s); nothing was "
                          f"changed on any host:\n{lines}")
