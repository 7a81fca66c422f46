"""Where a pyinfra run's time goes: docker CLI calls per host, facts per host, dlws's own checks.

Runs pyinfra in this process with counters patched in (nothing else changes), then prints per
host the `docker exec`/`docker cp` calls and their wall time, the uploads (through the session
or by `docker cp`), the facts read, the CPU time of
all child processes (the docker CLI), dockerd's CPU time and the machine's, and the time spent
in dlws's inventory and host checks and its plan. Prints figures only.

    .venv/bin/python bench/connector_calls.py INVENTORY [DEPLOY_FILE]
    .venv/bin/python bench/connector_calls.py --fresh NAME

`--fresh NAME`: the first deploy of bench/overhead.py's data (the whole workstation) on a fresh
container NAME of the bare Debian 12 image, removed at the end.
"""

from __future__ import annotations

import collections
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyinfra.api import host as host_module  # noqa: E402
from pyinfra.api import operations as operations_module  # noqa: E402
from pyinfra.connectors.docker import DockerConnector  # noqa: E402

import dlws.plan  # noqa: E402
import dlws.validate.host  # noqa: E402
import dlws.validate.inventory  # noqa: E402
from dlws.docker_connector import SessionDockerConnector  # noqa: E402

CALLS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
SECONDS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
OP_SECONDS: dict[str, float] = {}  # execute stage: seconds per operation, all hosts together


def _timed(kind: str, function):
    def wrapper(self, *args, **kwargs):
        started = time.monotonic()
        try:
            return function(self, *args, **kwargs)
        finally:
            name = getattr(getattr(self, "host", None), "name", "?")
            CALLS[name][kind] += 1
            SECONDS[name][kind] += time.monotonic() - started
    return wrapper


def _timed_plain(kind: str, function):
    def wrapper(*args, **kwargs):
        started = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            CALLS["(dlws)"][kind] += 1
            SECONDS["(dlws)"][kind] += time.monotonic() - started
    return wrapper


def _count_fact(function):
    def wrapper(self, cls, *args, **kwargs):
        CALLS[self.name]["get_fact " + cls.__name__] += 1
        return function(self, cls, *args, **kwargs)
    return wrapper


def _cpu_of(pattern: str) -> float:
    """utime + stime (s) of the processes whose command name is `pattern`."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.index("(") + 1:stat.rindex(")")] == pattern:
            fields = stat[stat.rindex(")") + 2:].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _machine_cpu() -> float:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(v) for i, v in enumerate(fields) if i not in (3, 4))  # less idle, iowait
    return busy / os.sysconf("SC_CLK_TCK")


def main() -> None:
    if sys.argv[1:2] == ["--fresh"] and len(sys.argv) == 3:
        sys.path.insert(0, str(ROOT / "bench"))
        from common import inventory, remove, start
        from overhead import DATA

        name = sys.argv[2]
        start([name])
        try:
            sys.argv[1:] = [inventory(Path(f"/var/tmp/dlws-bench/{name}/inventory.py"), [name],
                                      DATA)]
            measure()
        finally:
            remove([name])
    else:
        measure()


def measure() -> None:
    DockerConnector.run_shell_command = _timed("docker exec", DockerConnector.run_shell_command)
    DockerConnector.put_file = _timed("docker cp", DockerConnector.put_file)
    SessionDockerConnector.put_file = _timed("upload", SessionDockerConnector.put_file)
    host_module.Host.get_fact = _count_fact(host_module.Host.get_fact)
    original_run_host_op = operations_module.run_host_op

    def run_host_op(state, host, op_hash):
        started = time.monotonic()
        try:
            return original_run_host_op(state, host, op_hash)
        finally:
            name = ", ".join(state.get_op_meta(op_hash).names) or op_hash
            OP_SECONDS[name] = OP_SECONDS.get(name, 0) + time.monotonic() - started
    operations_module.run_host_op = run_host_op
    # (patched before pyinfra runs the deploy file, which imports them by name)
    dlws.validate.inventory.check_inventory = _timed_plain(
        "check_inventory", dlws.validate.inventory.check_inventory)
    dlws.validate.host.check_host = _timed_plain("check_host", dlws.validate.host.check_host)
    dlws.plan.host_plan = _timed_plain("host_plan", dlws.plan.host_plan)

    from pyinfra_cli.main import main as pyinfra_main

    sys.argv = ["pyinfra", "-y", *sys.argv[1:]]
    if len(sys.argv) == 3:
        sys.argv.append("deploy/workstation.py")
    os.chdir(ROOT)
    dockerd, machine = _cpu_of("dockerd"), _machine_cpu()
    started = time.monotonic()
    try:
        pyinfra_main()
    finally:
        wall = time.monotonic() - started
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        dockerd, machine = _cpu_of("dockerd") - dockerd, _machine_cpu() - machine
        print(f"\nwall {wall:.1f} s; CPU: pyinfra process {own.ru_utime + own.ru_stime:.1f} s, "
              f"its children (docker CLI) {children.ru_utime + children.ru_stime:.1f} s, "
              f"dockerd {dockerd:.1f} s, whole machine {machine:.1f} s "
              f"({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        for name in sorted(CALLS):
            counts, seconds = CALLS[name], SECONDS[name]
            facts = sum(v for k, v in counts.items() if k.startswith("get_fact"))
            timed = ", ".join(f"{k} {counts[k]} x = {seconds[k]:.2f} s"
                              for k in sorted(seconds))
            print(f"{name}: {timed}; get_fact calls {facts}" if facts else f"{name}: {timed}",
                  file=sys.stderr)
        slow = sorted(OP_SECONDS.items(), key=lambda item: -item[1])
        print(f"execute stage: {sum(OP_SECONDS.values()):.1f} s in {len(slow)} operations; "
              "the slowest:", file=sys.stderr)
        for name, seconds in slow[:12]:
            print(f"  {seconds:6.1f} s  {name}", file=sys.stderr)
        if os.environ.get("DLWS_FACTS"):
            for name in sorted(CALLS):
                print(name, sorted((k, v) for k, v in CALLS[name].items()
                                   if k.startswith("get_fact")), file=sys.stderr)
        subprocess.run(["true"])


if __name__ == "__main__":
    main()
