"""The one place dlws replaces pyinfra's methods (pinned by tests/facts/test_pyinfra_patch.py).

pyinfra 3 reads every fact with its own remote command and caches none; dlws serves facts from
one batched read per host (dlws.facts.batch), so it must see each fact read and each command or
upload that may change a host. pyinfra has no hook for either: ``Host.get_fact``,
``Host.run_shell_command``, ``Host.put_file`` and ``FunctionCommand.execute`` are replaced here,
a State's ``init`` is wrapped so the inventory is checked before pyinfra builds connectors, and
a host's connector class may be given a subclass of it before then (``use_connector``).
The test pins pyinfra's version and every behaviour relied on, so an upgrade fails there first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from pyinfra.api import arguments
from pyinfra.api.command import FunctionCommand
from pyinfra.api.host import Host
from pyinfra.api.state import State

# pyinfra's own methods, kept before any replacement: dlws's replacements call them.
ORIGINAL: dict[str, Callable] = {
    "get_fact": Host.get_fact, "run_shell_command": Host.run_shell_command,
    "put_file": Host.put_file, "function_execute": FunctionCommand.execute,
    "set_stage": State.set_stage, "all_global_arguments": arguments.all_global_arguments}

# `on_change(host, function_name, args, kwargs)`: a command, an upload or an operation's Python
# callback ("python.call") is about to run on the host.
OnChange = Callable[[Any, str, Sequence, Mapping], None]


@contextlib.contextmanager
def reading(host) -> Iterator[None]:
    """Mark the host as reading a fact: pyinfra runs a fact's command through the same
    run_shell_command that operations change hosts with, and a read changes nothing."""
    host._dlws_reading = getattr(host, "_dlws_reading", 0) + 1
    try:
        yield
    finally:
        host._dlws_reading -= 1


def route_host(get_fact: Callable, on_change: OnChange) -> None:
    """Host.get_fact becomes `get_fact`; Host.run_shell_command, Host.put_file and
    FunctionCommand.execute call `on_change` first (except inside `reading`). Once per process."""
    if Host.get_fact is get_fact:
        return
    Host.get_fact = get_fact
    Host.run_shell_command = _changes_host("run_shell_command", on_change)
    Host.put_file = _changes_host("put_file", on_change)
    FunctionCommand.execute = _function_command(on_change)


def _changes_host(function_name: str, on_change: OnChange) -> Callable:
    original = ORIGINAL[function_name]

    def wrapper(self, *args, **kwargs):
        if not getattr(self, "_dlws_reading", 0):
            on_change(self, function_name, args, kwargs)
        return original(self, *args, **kwargs)

    wrapper.__name__ = function_name
    wrapper.__doc__ = original.__doc__
    return wrapper


def _function_command(on_change: OnChange) -> Callable:
    original = ORIGINAL["function_execute"]

    def execute(self, state, host, connector_arguments):
        # A Python callback of an operation (python.call) may do anything on the host.
        on_change(host, "python.call", (), {})
        return original(self, state, host, connector_arguments)

    execute.__doc__ = original.__doc__
    return execute


def wrap_set_stage(set_stage: Callable) -> None:
    """State.set_stage becomes `set_stage` (which calls ORIGINAL["set_stage"] first): the one
    moment pyinfra says a run starts executing, after --dry and the user's confirmation."""
    if State.set_stage is not set_stage:
        State.set_stage = set_stage


def before_init(state, check: Callable[[list], None]) -> None:
    """Run `check(hosts)` on the hosts this run selects before the State's init(), which builds
    each host's connector (and type-checks pyinfra's own keys with a message naming neither the
    host nor the fix)."""
    init = state.init

    def check_then_init(inventory, *args, initial_limit=None, **kwargs):
        selected = list(inventory) if initial_limit is None else [
            h for h in inventory if h in initial_limit]
        check(selected)
        return init(inventory, *args, initial_limit=initial_limit, **kwargs)

    state.init = check_then_init


def use_connector(hosts, replaced: type, replacement: type) -> None:
    """Give each host whose connector class is `replaced` itself (not a subclass of it) the
    subclass `replacement`: before the State's init() (`before_init`), which builds each host's
    connector from its class (dlws.docker_connector)."""
    if not issubclass(replacement, replaced):
        raise TypeError(f"{replacement.__name__} is not a {replaced.__name__}")
    for host in hosts:
        if host.connector_cls is replaced:
            host.connector_cls = replacement


def keep_global_arguments() -> None:
    """pyinfra's all_global_arguments() evaluates the type hints of its argument classes
    (typing.get_type_hints) at each call: for each operation, each fact read, and each of
    dlws's checks of the arguments a fact is read with. They cannot change while the process
    runs: evaluated once, then kept. Once per process."""
    if arguments.all_global_arguments is not ORIGINAL["all_global_arguments"]:
        return
    kept = tuple(ORIGINAL["all_global_arguments"]())

    def all_global_arguments() -> list[tuple[str, type]]:
        return list(kept)

    all_global_arguments.__doc__ = ORIGINAL["all_global_arguments"].__doc__
    arguments.all_global_arguments = all_global_arguments
