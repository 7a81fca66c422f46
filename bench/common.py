"""Shared steps of the benchmarks: containers, inventories, timed deploys, network counters."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlws.sandbox.data import CONTROLLER_BUNDLE  # noqa: E402
from dlws.sandbox.docker_env import RUN_ARGS, remove_container  # noqa: E402
from dlws.sandbox.images import ensure_debian_image  # noqa: E402

BIN = Path(sys.executable).parent
WORK = Path("/var/tmp/dlws-bench")
# base + python_env with one wheel: the part of a workstation every host has.
MINIMAL = {
    "frameworks_tensorflow": "none",
    "frameworks_torch": "none",
    "verify_frameworks": [],
    "python_env_extra_packages": ["numpy==2.2.6"],
    "base_extra_ca_certs": [CONTROLLER_BUNDLE] if os.path.exists(CONTROLLER_BUNDLE) else [],
}


def start(names: list[str], volumes: dict[str, str] | None = None,
          image: str | None = None) -> None:
    """Fresh containers from `image`, by default the bare Debian 12 image."""
    image = image or ensure_debian_image("bookworm")
    for name in names:
        remove_container(name)
        mounts = [arg for src, dst in (volumes or {}).items() for arg in ("-v", f"{src}:{dst}")]
        subprocess.run(["docker", "run", "-d", "--name", name, "--hostname", name, *RUN_ARGS,
                        *mounts, image, "sleep", "infinity"], check=True, capture_output=True)


def container_ids(names: list[str]) -> dict[str, str]:
    """Each running container's full id (for cgroup_cpu), by name."""
    out = subprocess.run(["docker", "inspect", "-f", "{{.Name}} {{.Id}}", *names],
                         capture_output=True, text=True)
    return {name.lstrip("/"): ident for name, ident in
            (line.split() for line in out.stdout.splitlines() if line.strip())}


def cgroup_cpu(ident: str) -> float | None:
    """CPU seconds a container's processes used so far (its cgroup's count, read on this
    machine: cgroup v1 cpuacct or v2 cpu.stat), or None where neither is found."""
    for v2 in (Path("/sys/fs/cgroup/system.slice") / f"docker-{ident}.scope" / "cpu.stat",
               Path("/sys/fs/cgroup/docker") / ident / "cpu.stat"):
        if v2.exists():
            fields = dict(line.split() for line in v2.read_text().splitlines())
            return int(fields["usage_usec"]) / 1e6
    v1 = Path("/sys/fs/cgroup/cpuacct/docker") / ident / "cpuacct.usage"
    return int(v1.read_text()) / 1e9 if v1.exists() else None


def container_cpu(name: str) -> float | None:
    """CPU seconds the container `name` used so far (cgroup_cpu), None where unknown."""
    ident = container_ids([name]).get(name)
    return cgroup_cpu(ident) if ident else None


def controller_cpu() -> float:
    """CPU seconds used so far by this process's waited-for children (pyinfra, pytest, docker
    clients): resource.getrusage's count, user + system."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def remove(names: list[str]) -> None:
    for name in names:
        remove_container(name)


def inventory(path: Path, names: list[str], data: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    hosts = ",\n".join(f"    ('@docker/{name}', {data!r})" for name in names)
    path.write_text(f"hosts = [\n{hosts},\n]\n")
    return str(path)


def deploy(inventory_path: str, deploy_file: str = "deploy/workstation.py",
           parallel: int | None = None, env: dict | None = None,
           ) -> tuple[float, int, list[str], str]:
    """Seconds, exit code, names of changed operations, log tail."""
    command = [str(BIN / "pyinfra"), "-y", "--json", inventory_path, deploy_file]
    if parallel:
        command[2:2] = ["--parallel", str(parallel)]
    started = time.monotonic()
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    seconds = time.monotonic() - started
    try:
        ops = json.loads(out.stdout)["results"]["operations"]
        changed = [op["name"] for op in ops if op["success"]]
    except (json.JSONDecodeError, KeyError):
        changed = []
    return seconds, out.returncode, changed, (out.stderr + out.stdout)[-3000:]


def net_bytes(name: str) -> tuple[int, int]:
    """(received, sent) bytes on the container's eth0 since it started."""
    out = subprocess.run(["docker", "exec", name, "cat", "/sys/class/net/eth0/statistics/rx_bytes",
                          "/sys/class/net/eth0/statistics/tx_bytes"],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]), int(out[1])


def sh(name: str, script: str, check: bool = True, env: dict | None = None,
       ) -> subprocess.CompletedProcess:
    envs = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
    return subprocess.run(["docker", "exec", *envs, name, "sh", "-c", script],
                          capture_output=True, text=True, check=check)


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def fleet_args(doc: str) -> argparse.Namespace:
    """--hosts N and --keep, shared by the fleet-scaling benchmarks."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the containers")
    return parser.parse_args()


def fleet_runs(args: argparse.Namespace, names: list[str], one: str, fleet: str,
               how: str = "") -> None:
    """First deploy of the fleet, then no-change runs alternating 1 host and the fleet, twice
    each: their times and ratios; the containers removed unless --keep."""
    seconds, rc, _, log = deploy(fleet)
    if rc != 0:
        raise SystemExit(f"the first deploy failed:\n{log}")
    print(f"first deploy of {args.hosts} fresh containers{how}: {seconds:.0f} s", flush=True)
    times: dict[str, list[float]] = {one: [], fleet: []}
    for label, inv in (("1 host", one), (f"{args.hosts} hosts", fleet), ("1 host", one),
                       (f"{args.hosts} hosts", fleet)):
        seconds, rc, changed, log = deploy(inv)
        if rc != 0 or changed:
            raise SystemExit(f"the rerun failed or changed {changed}:\n{log}")
        times[inv].append(seconds)
        print(f"no-change run, {label}: {seconds:.1f} s", flush=True)
    ratios = [many / single for single, many in zip(times[one], times[fleet], strict=True)]
    print(f"ratio {args.hosts} hosts / 1 host: " + ", ".join(f"{r:.1f}x" for r in ratios))
    if not args.keep:
        remove(names)
