"""What dlws/facts/pyinfra_patch.py relies on in pyinfra, pinned: an upgrade of pyinfra that
changes any of it fails here first, before a deploy serves stale facts or skips its check."""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
from pathlib import Path

import pyinfra_cli.cli
import pytest
from pyinfra.api import command, facts, state
from pyinfra.api.host import Host

from dlws.facts import pyinfra_patch

ROOT = Path(__file__).resolve().parents[2]


def test_pyinfra_is_the_version_the_patch_was_written_for():
    """The lock's pyinfra; a new one is read against this file's checks before it is allowed."""
    assert importlib.metadata.version("pyinfra") == "3.10.0"


def test_the_replaced_methods_keep_their_signatures():
    assert list(inspect.signature(pyinfra_patch.ORIGINAL["get_fact"]).parameters) == [
        "self", "name_or_cls", "args", "kwargs"]
    for name in ("run_shell_command", "put_file"):
        assert list(inspect.signature(pyinfra_patch.ORIGINAL[name]).parameters) == [
            "self", "args", "kwargs"], name
    assert list(inspect.signature(pyinfra_patch.ORIGINAL["function_execute"]).parameters) == [
        "self", "state", "host", "connector_arguments"]
    assert list(inspect.signature(pyinfra_patch.ORIGINAL["set_stage"]).parameters) == [
        "self", "stage"]
    assert list(inspect.signature(state.State.init).parameters) == [
        "self", "inventory", "config", "initial_limit"]


def test_the_cli_enters_the_execute_stage_once_it_runs_operations():
    """Why the stamp tier restamps in set_stage: pyinfra's CLI sets StateStage.Execute after
    --dry has returned and the user confirmed, before the first operation runs."""
    source = inspect.getsource(pyinfra_cli.cli)
    assert "state.set_stage(StateStage.Execute)" in source
    assert source.index("state.set_stage(StateStage.Execute)") > source.index("if dry:")


def test_a_fact_read_runs_through_run_shell_command():
    """Why the wrapper skips hosts that are reading a fact: pyinfra reads facts with the same
    run_shell_command that operations change hosts with."""
    assert "run_shell_command" in inspect.getsource(facts._get_fact)


def test_operations_change_hosts_through_run_shell_command_put_file_and_callbacks():
    assert "host.run_shell_command" in inspect.getsource(command.StringCommand.execute)
    assert "host.put_file" in inspect.getsource(command.FileUploadCommand.execute)
    assert "self.function(" in inspect.getsource(pyinfra_patch.ORIGINAL["function_execute"])


def test_host_calls_back_on_change_but_not_while_reading(monkeypatch):
    calls, changed = [], []
    monkeypatch.setitem(pyinfra_patch.ORIGINAL, "run_shell_command",
                        lambda self, *a, **k: calls.append(a) or (True, None))
    wrapper = pyinfra_patch._changes_host(
        "run_shell_command", lambda host, name, args, kwargs: changed.append((host, name, args)))

    class FakeHost:
        pass

    host = FakeHost()
    wrapper(host, "apt-get install x")
    with pyinfra_patch.reading(host):
        wrapper(host, "cat /etc/os-release")
    assert calls == [("apt-get install x",), ("cat /etc/os-release",)]
    assert changed == [(host, "run_shell_command", ("apt-get install x",))], (
        "only the command that is no fact's read marks the host changed")
    assert host._dlws_reading == 0


def test_before_init_checks_the_selected_hosts_then_runs_pyinfras_init():
    order = []

    class FakeState:
        def init(self, inventory, config, initial_limit=None):
            order.append(("init", inventory))

    real = FakeState()
    pyinfra_patch.before_init(real, lambda hosts: order.append(("check", hosts)))
    real.init(["a", "b"], None, initial_limit=["b"])
    assert order == [("check", ["b"]), ("init", ["a", "b"])]


def test_route_host_replaces_once(monkeypatch):
    for name in ("get_fact", "run_shell_command", "put_file"):
        monkeypatch.setattr(Host, name, getattr(Host, name))
    monkeypatch.setattr(command.FunctionCommand, "execute", command.FunctionCommand.execute)

    def get_fact(self, fact_cls, *args, **kwargs):
        return None

    pyinfra_patch.route_host(get_fact, lambda *a: None)
    replaced = Host.run_shell_command
    pyinfra_patch.route_host(get_fact, lambda *a: None)
    assert Host.get_fact is get_fact and Host.run_shell_command is replaced


def test_the_patch_is_the_only_place_pyinfra_is_assigned_to():
    """No other module of dlws, roles, deploy or verify assigns to an attribute of pyinfra's
    Host, State or FactBase, or to a State object's init."""
    offenders = []
    for package in ("dlws", "roles", "deploy", "verify"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "pyinfra_patch.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                targets = node.targets if isinstance(node, ast.Assign) else []
                for target in targets:
                    if (isinstance(target, ast.Attribute) and (
                            target.attr == "init" or (isinstance(target.value, ast.Name)
                            and target.value.id in {"Host", "State", "FactBase",
                                                    "FunctionCommand", "StringCommand"}))):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_the_global_arguments_are_kept_as_pyinfra_evaluates_them(monkeypatch):
    """pop_global_arguments looks all_global_arguments up in its module at each call, so the
    kept copy serves it; the copy equals pyinfra's own evaluation, and a caller's changes to
    the list it got do not reach the next caller."""
    from pyinfra.api import arguments

    assert "all_global_arguments()" in inspect.getsource(arguments.pop_global_arguments)
    monkeypatch.setattr(arguments, "all_global_arguments",
                        pyinfra_patch.ORIGINAL["all_global_arguments"])
    pyinfra_patch.keep_global_arguments()
    assert arguments.all_global_arguments is not pyinfra_patch.ORIGINAL["all_global_arguments"]
    assert arguments.all_global_arguments() == pyinfra_patch.ORIGINAL["all_global_arguments"]()
    arguments.all_global_arguments().clear()
    assert arguments.all_global_arguments() == pyinfra_patch.ORIGINAL["all_global_arguments"]()


def test_use_connector_gives_only_that_class_a_subclass_of_it():
    from pyinfra.connectors.docker import DockerConnector, PodmanConnector
    from pyinfra.connectors.local import LocalConnector

    class Host_:  # (only the attribute pyinfra's Host.init reads)
        def __init__(self, connector_cls):
            self.connector_cls = connector_cls

    class Sub(DockerConnector):
        pass

    hosts = [Host_(DockerConnector), Host_(PodmanConnector), Host_(LocalConnector)]
    pyinfra_patch.use_connector(hosts, DockerConnector, Sub)
    assert [h.connector_cls for h in hosts] == [Sub, PodmanConnector, LocalConnector]
    with pytest.raises(TypeError, match="is not a"):
        pyinfra_patch.use_connector(hosts, DockerConnector, LocalConnector)
