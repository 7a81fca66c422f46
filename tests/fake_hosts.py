"""Run a real deploy file against pyinfra @fake hosts that answer with recorded facts, offline."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

from pyinfra.api import Config, Inventory, State
from pyinfra.api.command import FileUploadCommand, FunctionCommand, StringCommand
from pyinfra.api.connect import connect_all
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.state import StateStage
from pyinfra.connectors.fake import FakeConnector
from pyinfra.context import ctx_host, ctx_inventory, ctx_state
from pyinfra_cli.util import load_deploy_file

from dlws import plan as roles_plan

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "plan"
WORKSTATION = str(ROOT / "deploy" / "workstation.py")


def fixture_lines(*parts: str) -> list[str]:
    """A recorded command output under tests/fixtures/plan/, one item per line."""
    return FIXTURES.joinpath(*parts).read_text().splitlines()


def facts(os: str, lspci: str | None = None, kernel: str | None = None,
          container: str = "", driver: str | None = None,
          nvidia_packages: str | None = None, display: str | None = None,
          cdi_spec: str | None = None, daemon_json: str | None = None,
          machine: str = "x86_64") -> dict[str, Any]:
    """fake_responses for a host: each key a fragment of the command that the fact runs.

    + os: a file under fixtures/plan/os-release/ ("ubuntu-24.04")
    + lspci: a file under fixtures/plan/lspci/ (`lspci -nn -d 10de:` output), None = no GPU
    + kernel: `uname -r`; container: what dlws.facts.Container prints ("docker")
    + driver: dlws.facts.gpu.NvidiaModuleVersion's answer ("535.183.01"; /sys/module's form)
    + nvidia_packages: a file under fixtures/plan/dpkg/ (dlws.facts.NvidiaPackages' answer)
    + display: a file under fixtures/plan/display/ (dlws.facts.Display's output on a desktop),
      None = a server (no display manager, no graphical session)
    + cdi_spec: a file under fixtures/readings/cdi/ (/etc/cdi/nvidia.yaml), None = no spec
    + daemon_json: /etc/docker/daemon.json's text, None = no file
    """
    responses: dict[str, Any] = {
        # dlws.facts.NvidiaCdiSpec (before the driver version: its command reads that file too)
        "/etc/cdi/nvidia.yaml": (
            ([f"module {driver}"] if driver else [])
            + (["present", *(ROOT / "tests" / "fixtures" / "readings" / "cdi" / cdi_spec)
                .read_text().splitlines()] if cdi_spec else [])),
        # dlws.facts.DockerDaemonJson
        "/etc/docker/daemon.json": ["present", *daemon_json.splitlines()] if daemon_json else [],
        # dlws.facts.system.OsRelease
        "cat /etc/os-release": fixture_lines("os-release", os),
        # dlws.facts.gpu.NvidiaPciDevices (pciutils present: base installs it)
        "lspci -nn -d 10de:": fixture_lines("lspci", f"{lspci}.txt") if lspci else [],
        # dlws.facts.Container
        "/.dockerenv": container,
        # dlws.facts.gpu.NvidiaModuleVersion
        "/proc/driver/nvidia/version": driver or "",
        # dlws.facts.NvidiaPackages
        "db:Status-Abbrev": (fixture_lines("dpkg", f"{nvidia_packages}.txt")
                             if nvidia_packages else []),
        # dlws.facts.Display
        "default-display-manager": (fixture_lines("display", f"{display}.txt") if display
                                    else []),
        # pyinfra.facts.server.KernelVersion / Arch
        "uname -r": kernel or _DEFAULT_KERNELS[os],
        "uname -m": machine,
        # dlws.facts.DpkgArchitecture
        "dpkg --print-architecture": {"x86_64": "amd64", "aarch64": "arm64"}[machine],
        # pyinfra.facts.server.Which, read by server.service to find the init system
        "command -v systemctl": "/usr/bin/systemctl",
        # dlws.facts.SystemdRunning: a machine boots systemd, a container here has none
        "/run/systemd/system": "no" if container else "yes",
    }
    return responses


# What each release's cloud image boots (GA kernels).
_DEFAULT_KERNELS = {
    "ubuntu-22.04": "5.15.0-125-generic",
    "ubuntu-24.04": "6.8.0-51-generic",
    "debian-12": "6.1.0-28-amd64",
    "debian-13": "6.12.48+deb13-amd64",
}


@dataclass
class Op:
    """One planned operation on the host: its name, the commands it would run, files it puts."""

    name: str
    commands: list[str]
    uploads: dict[str, str]  # destination path -> content
    conditional: bool  # has an `_if`, decided at run time from an earlier operation


@dataclass
class Run:
    """What a deploy planned for one host, or the error that stopped it before any operation."""

    ops: list[Op] = field(default_factory=list)
    error: str | None = None
    stack: Any = None

    def named(self, fragment: str) -> list[Op]:
        return [op for op in self.ops if fragment in op.name]

    def commands(self) -> list[str]:
        return [command for op in self.ops for command in op.commands]

    def apt_installs(self) -> list[list[str]]:
        """The package arguments of every `apt-get install` (options dropped, `pkg-` kept)."""
        installs = []
        for command in self.commands():
            match = APT_INSTALL.search(command)
            if match:
                installs.append([word for word in match["args"].split()
                                 if not word.startswith("-")])
        return installs

    def uploads(self) -> dict[str, str]:
        return {dest: content for op in self.ops for dest, content in op.uploads.items()}

    def describe(self) -> str:
        """The plan as text, for assertion messages."""
        if self.error:
            return f"refused: {self.error}"
        return "\n".join(f"- {op.name}{' (if)' if op.conditional else ''}\n"
                         + "".join(f"    $ {c}\n" for c in op.commands) for op in self.ops)


# `apt-get ... install --no-install-recommends a b c-`: apt's options begin with "-" or are
# the values of -o; the package list follows the install verb.
APT_INSTALL = re.compile(r"apt-get -y (?:-o \S+ )*install (?P<args>.*)$")


def plan(hosts: dict[str, dict[str, Any]], deploy: str = WORKSTATION,
         local_name: str | None = None) -> dict[str, Run]:
    """Load a deploy file for fake hosts (pyinfra's prepare stage: facts, no execution).

    + hosts: host name ("@fake/<case>") -> host data, with `fake_responses`
    + local_name: give the one host this name instead (e.g. "@local"), still served by the fake
      connector, to test the rules that apply to the controller itself

    Every operation's command generator runs in the host's context, exactly as pyinfra's
    execute stage would call it, so each run returns the commands it would send.
    """
    roles_plan._PLANS.clear()  # dlws/plan.py caches per host name for one process = one run
    names = list(hosts)
    if local_name:
        assert len(hosts) == 1
        names = [local_name]
    inventory = Inventory(
        ([(name, {"fake_delay": 0, "fake_delay_jitter": 0, **data})
          for name, data in zip(names, hosts.values(), strict=True)], {}),
    )
    state = State(check_for_changes=False)
    ctx_state.set(state)
    ctx_inventory.set(inventory)
    state.init(inventory, Config())
    if local_name:
        local = inventory.get_host(local_name)
        local.connector_cls = FakeConnector
        local.connector = FakeConnector(state, local)
    state.set_stage(StateStage.Connect)
    connect_all(state)
    state.set_stage(StateStage.Prepare)
    try:
        load_deploy_file(state, deploy)
    except PyinfraError as error:
        # The deploy stopped while planning: nothing ran (pyinfra executes only after every host
        # is planned); report which operations had been planned anyway.
        runs = {name: Run(error=str(error)) for name in names}
        for name in names:
            runs[name].ops = _ops(state, inventory.get_host(name))
        return runs
    return {name: Run(ops=_ops(state, inventory.get_host(name)),
                      stack=roles_plan._PLANS.get(name)) for name in names}


def _ops(state: State, host) -> list[Op]:
    ops = []
    for op_hash in state.get_op_order():
        if op_hash not in state.ops[host]:
            continue
        data = state.get_op_data_for_host(host, op_hash)
        commands: list[str] = []
        uploads: dict[str, str] = {}
        with ctx_host.use(host):
            for command in data.command_generator():
                if isinstance(command, FileUploadCommand):
                    src = command.src
                    uploads[command.dest] = (src.getvalue() if isinstance(src, StringIO)
                                             else Path(src).read_text())
                elif isinstance(command, StringCommand):
                    commands.append(command.get_raw_value())
                elif isinstance(command, FunctionCommand):
                    commands.append(f"<python: {command.function.__name__}>")
        ops.append(Op(
            name=" | ".join(sorted(state.op_meta[op_hash].names)),
            commands=commands,
            uploads=uploads,
            conditional=bool(data.global_arguments.get("_if")),
        ))
    return ops


def transcript_reader(responses: dict[str, Any]):
    """`read(fact_cls, *args)` over recorded responses, matched as pyinfra's @fake connector
    matches them (first substring in insertion order; no match: success, no output): verify's
    side of a plan case, through dlws.facts.run_fact."""
    from dlws.facts.batch import run_fact

    def run(command: str) -> tuple[int, str]:
        for fragment, answer in responses.items():
            if fragment in command:
                if isinstance(answer, dict):
                    lines = answer.get("stdout", [])
                    status = 0 if answer.get("success", True) else 1
                else:
                    lines, status = answer, 0
                return status, "\n".join(lines) if isinstance(lines, list) else lines
        return 0, ""

    return lambda fact_cls, *args: run_fact(run, fact_cls, *args)
