"""The resolved stack of each host, and the inventory check that runs before any change."""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from pyinfra import host as current_host
from pyinfra.api import DeployError

from dlws.facts import Container, NvidiaPciDevices, NvSwitchCount, OsRelease, stable_fact
from dlws.schema import Key, Problem, validate
from dlws.stack import HostFacts, Stack, StackError, request_from_host_data, resolve


def host_problems(name: str, data: Mapping[str, Any], keys: Iterable[Key]) -> list[Problem]:
    """Everything wrong with one host's data that the inventory alone shows.

    + keys: every key a host may carry (``roles.all_keys()``: the declaration and each role's)
    """
    keys = list(keys)
    problems = validate(name, data, keys)
    merged = {**{key.name: key.default for key in keys}, **data}
    count = merged.get("gpu_count")
    if isinstance(count, int) and count > 0 and not merged.get("gpu_model"):
        problems.append(Problem(name, "gpu_model", f"gpu_count is {count} but no gpu_model is "
                                "declared; set it to the name nvidia-smi prints, e.g. 'NVIDIA "
                                "H100 80GB HBM3', or a PCI ID"))
    if merged.get("gpu_model") and not problems:
        try:
            resolve(HostFacts(os_id="debian", os_release="12", gpus=(merged["gpu_model"],)),
                    request_from_host_data({}))
        except StackError as error:
            if error.constraint in ("unknown_gpu", "unknown-gpu"):
                problems.append(Problem(name, "gpu_model", str(error)))
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
        problems.extend(host_problems(host.name, _own_data(host), keys))
    if not problems:
        return None
    lines = "\n".join(f"  - {problem}" for problem in problems)
    return (f"the inventory has {len(problems)} problem(s); nothing was changed on any host:\n"
            f"{lines}")


def _own_data(host) -> dict[str, Any]:
    """The inventory's data for a host (host, group and all), without pyinfra's own defaults."""
    return {k: v for k, v in host.data.dict().items() if not k.startswith("_")}


# The current run's plans by host name; they belong to one pyinfra state (one run) and are
# dropped when host_plan sees another, so two runs in one process never share a plan.
_PLANS: dict[str, Stack] = {}
_PLANS_STATE: list = [None]  # a weak reference to the state _PLANS belongs to


def _plans_of(host) -> dict[str, Stack]:
    state = getattr(host, "state", None)
    if state is not None:
        owner = _PLANS_STATE[0]() if _PLANS_STATE[0] is not None else None
        if owner is not state:
            _PLANS.clear()
            _PLANS_STATE[0] = weakref.ref(state)
    return _PLANS


def host_facts(host=None) -> HostFacts:
    """What the solver needs to know about a host, read from the host itself."""
    host = current_host if host is None else host
    os_release = stable_fact(OsRelease, host)
    gpus = tuple(device["device_id"] for device in host.get_fact(NvidiaPciDevices))
    if not gpus and host.data.get("gpu_model"):
        # No GPU visible (a container without device access, a fake host): plan for the
        # declared one; verify will fail the host if the GPU is really missing.
        gpus = (host.data.get("gpu_model"),) * max(1, host.data.get("gpu_count") or 1)
    return HostFacts(
        os_id=os_release["id"],
        os_release=os_release["version_id"],
        gpus=gpus,
        installed_driver=_installed_driver(host),
        in_container=bool(stable_fact(Container, host)),
    )


def _installed_driver(host) -> str | None:
    try:
        from dlws.facts import NvidiaDriverVersion
    except ImportError:
        return None
    return host.get_fact(NvidiaDriverVersion) or None


def _check_board(host, stack: Stack, in_container: bool | None = None) -> None:
    """Refuse a plan the board cannot run: NVSwitch (HGX) boards need NVIDIA's fabric manager."""
    if in_container is None:
        in_container = bool(stable_fact(Container, host))
    if stack.driver_source != "distro" or stack.os_id != "debian" or in_container:
        return
    switches = host.get_fact(NvSwitchCount)
    if switches:
        # Debian's archive packages no nvidia-fabricmanager (verify); without it CUDA does not
        # initialise on an HGX board.
        raise StackError(
            "nvidia_driver_source", "source_lacks_fabric_manager",
            f"{switches} NVSwitch chips found and Debian's archive has no NVIDIA fabric "
            "manager, without which CUDA does not start on this board; set "
            "nvidia_driver_source = 'cuda_repo'")


def host_plan(host=None, defaults: Mapping[str, Any] | None = None) -> Stack:
    """The resolved stack of a host (cached per run); a refusal names the host and the key.

    The deploy plans each host first, with every key's default (``roles.all_defaults()``);
    roles then call ``host_plan()`` for the stack they carry out.
    """
    host = current_host if host is None else host
    plans = _plans_of(host)
    if host.name not in plans:
        if defaults is None:
            raise DeployError(f"host {host.name}: no stack was planned; the deploy file plans "
                              "each host (host_plan(host, all_defaults())) before any role runs")
        data = {**defaults, **_own_data(host)}
        try:
            facts = host_facts(host)
            stack = resolve(facts, request_from_host_data(data))
            _check_board(host, stack, facts.in_container)
            plans[host.name] = stack
        except StackError as error:
            raise DeployError(
                f"host {host.name}: {error}; nothing was changed on any host") from None
    return plans[host.name]
