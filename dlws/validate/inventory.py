"""The inventory check: every host's data, before pyinfra connects to any host."""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from pyinfra.api import DeployError
from pyinfra.context import ctx_state

from dlws.facts.pyinfra_patch import before_init
from dlws.stack import StackError, find_gpu
from dlws.validate.conflicts import cli_inventory_path, group_conflicts, listing_conflicts
from dlws.validate.domains import is_within, managed_paths
from dlws.validate.schema import Key, Problem, shown, validate

# An SSH host's name is its address (or an ssh_config alias); a container's name follows Docker's
# rule ([a-zA-Z0-9][a-zA-Z0-9_.-]+). Neither may hold anything a shell or ssh would misread.
_HOST_NAME = re.compile(r"@local|@(docker|podman|fake|chroot)/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}|"
                        r"@[a-z]{1,16}(/[A-Za-z0-9_.:@/-]{1,253})?|[A-Za-z0-9][A-Za-z0-9._:\[\]-]"
                        r"{0,252}", re.ASCII)


def _name_problems(name: str) -> list[Problem]:
    if isinstance(name, str) and _HOST_NAME.fullmatch(name):
        return []
    return [Problem(name, "host name", "not a host name, address or @connector/NAME (letters, "
                    "digits, . _ : -); rename the host, and put an address in ssh_hostname")]


def _folder_problems(name: str, data: Mapping[str, Any], merged: Mapping[str, Any],
                     keys: list[Key], bad: set) -> list[Problem]:
    """Folders the deploy makes its own (every key whose domain is a managed HostPath, a data
    disk's mount point included): never the same folder, never one inside another. The key the
    host's data sets is the one named (a default is not what the user got wrong)."""
    seen: list[tuple[str, str]] = []
    problems = []
    for key in sorted(keys, key=lambda k: k.name in data):
        if key.name in bad or key.check is None or merged.get(key.name) is None:
            continue
        for label, path in managed_paths(key.check, merged[key.name], key.name):
            for other_label, other in seen:
                if path == other:
                    problems.append(Problem(name, key.name, f"{label} {path!r} is also "
                                            f"{other_label}; give each its own folder"))
                elif is_within(path, other) or is_within(other, path):
                    inner, outer = (label, other_label) if is_within(path, other) else (
                        other_label, label)
                    problems.append(Problem(name, key.name, f"{label} {path!r} and "
                                            f"{other_label} {other!r} are one inside the other "
                                            f"({inner} inside {outer}): each would change or "
                                            "hide what the other holds; give each its own "
                                            "folder, side by side"))
            seen.append((label, path))
    return problems


def host_problems(name: str, data: Mapping[str, Any], keys: Iterable[Key]) -> list[Problem]:
    """Everything wrong with one host's data that the inventory alone shows.

    + keys: every key a host may carry (``roles.all_keys()``: the declaration and each role's)
    """
    keys = list(keys)
    problems = validate(name, data, keys)
    merged = {**{key.name: key.default for key in keys}, **data}
    # Checks across keys (a role's Key.check_data) see values that passed their own checks.
    for key in keys if not problems else ():
        if key.check_data and (message := key.check_data(merged)):
            problems.append(Problem(name, key.name, message))
    count = merged.get("gpu_count")
    bad = {problem.key for problem in problems}
    problems += _name_problems(name) + _folder_problems(name, data, merged, keys, bad)
    if "gpu_count" not in bad and isinstance(count, int) and count > 0 and not merged.get(
            "gpu_model"):
        problems.append(Problem(name, "gpu_model", f"gpu_count is {count} but no gpu_model is "
                                "declared; set it to the name nvidia-smi prints, e.g. 'NVIDIA "
                                "H100 80GB HBM3', or a PCI ID"))
    if merged.get("gpu_model") and count == 0:
        problems.append(Problem(name, "gpu_count", f"gpu_model is {shown(merged['gpu_model'])} but "
                                "gpu_count is 0, so the deploy and verify would disagree on "
                                "whether this host has a GPU; set gpu_count to the number of "
                                "GPUs, or remove gpu_model for a CPU host"))
    if merged.get("_sudo_password") and merged.get("_get_pty") and "_get_pty" not in bad:
        # (dlws.sudo_stdin: sudo reads the password on the command's stdin)
        problems.append(Problem(name, "_get_pty", "a terminal would echo _sudo_password, which "
                                "sudo reads on its stdin; remove _get_pty"))
    if merged.get("gpu_model") and isinstance(merged["gpu_model"], str) and not problems:
        try:
            find_gpu(merged["gpu_model"])
        except StackError as error:
            problems.append(Problem(name, "gpu_model", error.message))
    return problems


# pyinfra runs a deploy file once per host: the whole inventory's verdict, once per run (state).
_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_inventory(hosts: Iterable, keys: Iterable[Key]) -> None:
    """Raise one DeployError listing every selected host's problems; nothing has run on any
    host yet.

    A deploy file calls this for each host in turn; the fleet is validated once per pyinfra
    state (one run) and the same verdict is given to every host. With ``--limit``, only the
    hosts it selects are checked (pyinfra's State.limit_hosts): a broken host outside the limit
    is neither read nor connected to, and does not block the run.
    """
    state = getattr(hosts, "state", None)
    if state is None:  # a plain list of hosts: no run to cache the verdict on
        message = _inventory_problems(hosts, keys)
    elif state in _CHECKED:
        message = _CHECKED[state]
    else:
        selected = [h for h in hosts if state.is_host_in_limit(h)]
        message = _CHECKED[state] = _inventory_problems(selected, keys)
    if message:
        raise DeployError(message)


def _inventory_problems(hosts: Iterable, keys: Iterable[Key]) -> str | None:
    keys = list(keys)
    hosts = list(hosts)
    problems = []
    for host in hosts:
        # Every key, pyinfra's own (_sudo, ssh_key) too: they are checked against pyinfra.
        problems.extend(host_problems(host.name, host.data.dict(), keys))
        if getattr(host, "inventory", None) is not None:
            problems.extend(group_conflicts(host))
    try:
        problems.extend(listing_conflicts(cli_inventory_path() or _INVENTORY_PATH[0],
                                          names={host.name for host in hosts}))
    except Exception as error:  # the inventory file itself failed: pyinfra already said why
        problems.append(Problem("(inventory)", "-", f"cannot be read again: {error}"))
    if not problems:
        return None
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return (f"the inventory has {len(problems)} problem(s); nothing was changed on any host:\n"
            f"{lines}")


def check_before_connect(state, keys: Iterable[Key]) -> None:
    """Check the inventory as soon as pyinfra has read it, before it connects to any host.

    pyinfra connects to every host before it runs a deploy file, and a bad ssh_key or _sudo
    fails there with its own traceback: this hook (called by the repository's config.py, which
    pyinfra loads before the inventory exists) gives the deploy file's message, first. Only the
    hosts ``--limit`` selects are checked, as pyinfra connects to those only.

    + state: pyinfra's State, not yet initialised (its init() runs the check first)
    """
    keys = list(keys)
    real = ctx_state.get() if ctx_state.isset() else state
    # Read now: the click context of the `pyinfra` command is not seen from its greenlets.
    _INVENTORY_PATH[0] = cli_inventory_path()
    if getattr(real, "initialised", False):
        check_inventory(real.inventory, keys)
        return
    # Before init: it builds each host's connector, which type-checks pyinfra's own keys with a
    # message naming neither the host nor the fix.
    before_init(real, lambda selected: check_inventory(selected, keys))


# The inventory file of the running `pyinfra` command, read where its CLI context is visible.
_INVENTORY_PATH: list = [None]
