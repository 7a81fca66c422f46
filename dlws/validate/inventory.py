"""The inventory check: every host's data, before pyinfra connects to any host."""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from pyinfra.api import DeployError
from pyinfra.context import ctx_state

from dlws.stack import StackError, find_gpu
from dlws.validate.conflicts import cli_inventory_path, group_conflicts, listing_conflicts
from dlws.validate.schema import Key, Problem, validate

# An SSH host's name is its address (or an ssh_config alias); a container's name follows Docker's
# rule ([a-zA-Z0-9][a-zA-Z0-9_.-]+). Neither may hold anything a shell or ssh would misread.
_HOST_NAME = re.compile(r"^(@local|@(docker|podman|fake|chroot)/[A-Za-z0-9][A-Za-z0-9_.-]*|"
                        r"@[a-z]+(/[A-Za-z0-9_.:@/-]+)?|[A-Za-z0-9._:\[\]-]+)$")
# Folders the deploy makes its own: two keys naming the same one would mix what each holds.
MANAGED_FOLDERS = ("python_env_prefix", "python_env_wheelhouse_dir", "python_env_lock_dir",
                   "cache_pip_dir", "base_ca_dir")


def _name_and_folder_problems(name: str, merged: Mapping[str, Any], bad: set) -> list[Problem]:
    problems = []
    if not _HOST_NAME.match(name):
        problems.append(Problem(name, "host name", "not a host name, address or @connector/NAME "
                                "(letters, digits, . _ : -); rename the host, and put an address "
                                "in ssh_hostname"))
    seen: dict[str, str] = {}
    for key in MANAGED_FOLDERS:
        value = merged.get(key)
        if key in bad or not isinstance(value, str):
            continue
        if value in seen:
            problems.append(Problem(name, key, f"{value!r} is also {seen[value]}; give each its "
                                    "own folder"))
        seen.setdefault(value, key)
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
    problems += _name_and_folder_problems(name, merged, bad)
    if "gpu_count" not in bad and isinstance(count, int) and count > 0 and not merged.get(
            "gpu_model"):
        problems.append(Problem(name, "gpu_model", f"gpu_count is {count} but no gpu_model is "
                                "declared; set it to the name nvidia-smi prints, e.g. 'NVIDIA "
                                "H100 80GB HBM3', or a PCI ID"))
    if merged.get("gpu_model") and count == 0:
        problems.append(Problem(name, "gpu_count", f"gpu_model is {merged['gpu_model']!r} but "
                                "gpu_count is 0, so the deploy and verify would disagree on "
                                "whether this host has a GPU; set gpu_count to the number of "
                                "GPUs, or remove gpu_model for a CPU host"))
    if merged.get("gpu_model") and isinstance(merged["gpu_model"], str) and not problems:
        try:
            find_gpu(merged["gpu_model"])
        except StackError as error:
            problems.append(Problem(name, "gpu_model", error.message))
    return problems


# pyinfra runs a deploy file once per host: the whole inventory's verdict, once per run (state).
_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_inventory(hosts: Iterable, keys: Iterable[Key]) -> None:
    """Raise one DeployError listing every host's problems; nothing has run on any host yet.

    A deploy file calls this for each host in turn; the fleet is validated once per pyinfra
    state (one run) and the same verdict is given to every host.
    """
    state = getattr(hosts, "state", None)
    if state is None:  # a plain list of hosts: no run to cache the verdict on
        message = _inventory_problems(hosts, keys)
    elif state in _CHECKED:
        message = _CHECKED[state]
    else:
        message = _CHECKED[state] = _inventory_problems(hosts, keys)
    if message:
        raise DeployError(message)


def _inventory_problems(hosts: Iterable, keys: Iterable[Key]) -> str | None:
    keys = list(keys)
    problems = []
    for host in hosts:
        # Every key, pyinfra's own (_sudo, ssh_key) too: they are checked against pyinfra.
        problems.extend(host_problems(host.name, host.data.dict(), keys))
        if getattr(host, "inventory", None) is not None:
            problems.extend(group_conflicts(host))
    try:
        problems.extend(listing_conflicts(cli_inventory_path() or _INVENTORY_PATH[0]))
    except Exception as error:  # the inventory file itself failed: pyinfra already said why
        problems.append(Problem("(inventory)", "-", f"cannot be read again: {error}"))
    if not problems:
        return None
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return (f"the inventory has {len(problems)} problem(s); nothing was changed on any host:\n"
            f"{lines}")


def check_before_connect(state, keys: Iterable[Key]) -> None:
    """Check the whole inventory as soon as pyinfra has read it, before it connects to any host.

    pyinfra connects to every host before it runs a deploy file, and a bad ssh_key or _sudo
    fails there with its own traceback: this hook (called by the repository's config.py, which
    pyinfra loads before the inventory exists) gives the deploy file's message, first.

    + state: pyinfra's State, not yet initialised (its init() runs the check first)
    """
    keys = list(keys)
    real = ctx_state.get() if ctx_state.isset() else state
    # Read now: the click context of the `pyinfra` command is not seen from its greenlets.
    _INVENTORY_PATH[0] = cli_inventory_path()
    if getattr(real, "initialised", False):
        check_inventory(real.inventory, keys)
        return
    init = real.init

    def check_then_init(inventory, *args, **kwargs):
        # Before init: it builds each host's connector, which type-checks pyinfra's own keys
        # with a message naming neither the host nor the fix.
        check_inventory(list(inventory), keys)
        return init(inventory, *args, **kwargs)

    real.init = check_then_init


# The inventory file of the running `pyinfra` command, read where its CLI context is visible.
_INVENTORY_PATH: list = [None]
