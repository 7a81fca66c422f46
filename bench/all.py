"""Every row of docs/benchmarks.md's table, each a ratio to its floor measured alternating in the
same run, and the table written back into docs/benchmarks.md. Prints figures only; asserts
nothing.

Rows (`--rows`, default all, in this order):

- rerun: the README sandbox's no-change rerun / `pyinfra inventory/sandbox.py exec -- true`
  (target <= 1.2x)
- verify: `pytest verify` of the sandbox / its two trainings run by hand side by side (<= 1.2x)
- first: the first deploy of a fresh container / the same packages by hand, before and after
  (bench/overhead.py's reference; <= 1.1x), with the live fact reads counted
- first-cached: the same, both sides behind the fleet cache (roles/cache) that one first
  deploy filled before: what the deploy adds without the upstream network's noise (<= 1.1x)
- fleet-cache: 8 fresh hosts behind the fleet cache / 1 host, first deploy with frameworks
  (<= 1.5x; upstream bytes <= 1.05x)
- fleet-ssh: the no-change rerun of 32 and 64 SSH hosts / pyinfra `exec -- true` on the same
  hosts (<= 1.3x), and the controller's memory per added host

Each row's figures go to --results (JSON, merged with earlier rows, so rows can be run one at a
time), and the table between the markers of docs/benchmarks.md is rewritten from all rows there.
Run it under the integration lock: `flock /work/int.lock .venv/bin/python bench/all.py`.

    .venv/bin/python bench/all.py [--rows rerun verify first first-cached fleet-cache fleet-ssh]
        [--rounds 5] [--verify-rounds 3] [--pairs 3] [--cache-hosts 8] [--sizes 1 32 64]
        [--prefix dlws-bench] [--results /var/tmp/dlws-bench/all.json] [--no-docs] [--keep]
        [--docs-only]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from common import BIN, ROOT, WORK, container_cpu, controller_cpu, remove, start

from dlws.roles import all_defaults
from dlws.sandbox.data import controller_data

DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench/all.py: table begin -->", "<!-- bench/all.py: table end -->"
SKIPPED = "converged: every reading matches"
STAMPED = "read from the stamps"
# The README's sandbox inventory's data (inventory/sandbox.py and its group's data).
SANDBOX_DATA = {**all_defaults(), **controller_data(), "gpu_count": 0,
                "base_lab_users": ["researcher"], "hardware_min_memory_gib": 1}


def load() -> float:
    return os.getloadavg()[0]


def timed(command: list[str], env: dict | None = None) -> tuple[float, int, str]:
    started = time.monotonic()
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    return time.monotonic() - started, out.returncode, out.stdout + out.stderr


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} to {max(values):.2f}" if values else "-"


def row(name: str, figure: str, command: str, floor: list[float], ours: list[float],
        target: float, loads: list[float], **extra) -> dict:
    """A row: each run's seconds, the ratio of each alternating pair and their median."""
    ratios = [o / f for f, o in zip(floor, ours, strict=False) if f]
    median = statistics.median(ratios) if ratios else None
    return {"row": name, "figure": figure, "command": command, "floor": floor, "ours": ours,
            "ratios": ratios, "median": median, "target": target,
            "met": median is not None and median <= target, "loads": loads,
            "when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            **extra}


def show(result: dict) -> None:
    print(f"\n== {result['figure']}: median ratio "
          f"{result['median'] if result['median'] is None else round(result['median'], 2)}x "
          f"(target <= {result['target']}x; {'met' if result['met'] else 'NOT met'})")
    print(f"   ours {[round(v, 2) for v in result['ours']]}, floor "
          f"{[round(v, 2) for v in result['floor']]}, load {result['loads']}")
    for line in result.get("profile", []):
        print(f"   profile: {line}")
    for line in result.get("notes", []):
        print(f"   note: {line}")


# --- the README sandbox: no-change rerun and verify -----------------------------------------------


def sandbox(prefix: str, keep: bool) -> tuple[str, dict]:
    """The README's sandbox, deployed and converged (a run that recorded it)."""
    name = f"{prefix}-sandbox"
    env = {"DLWS_SANDBOX": name}
    exists = subprocess.run(["docker", "container", "inspect", name],
                            capture_output=True).returncode == 0
    deploy = [str(BIN / "pyinfra"), "-y", "inventory/sandbox.py", "deploy/workstation.py"]
    if not (keep and exists):
        start([name])
        seconds, rc, log = timed(deploy, env)
        print(f"first deploy of the sandbox {name}: {seconds:.1f} s", flush=True)
        if rc:
            raise SystemExit(log[-3000:])
    for _ in range(4):  # until a run has skipped planning on the stamps alone (dlws.facts.stamps)
        seconds, rc, log = timed(deploy, env)
        if rc:
            raise SystemExit(log[-3000:])
        if SKIPPED in log and STAMPED in log:
            break
    return name, env


def rerun_row(name: str, env: dict, rounds: int) -> dict:
    floor_cmd = [str(BIN / "pyinfra"), "-y", "inventory/sandbox.py", "exec", "--", "true"]
    ours_cmd = [str(BIN / "pyinfra"), "-y", "inventory/sandbox.py", "deploy/workstation.py"]
    floor, ours, full, batch, loads, skipped, stamped = [], [], [], [], [], 0, 0
    for index in range(rounds):
        plan = [("floor", floor_cmd, env), ("ours", ours_cmd, env),
                ("full", ours_cmd, {**env, "DLWS_CONVERGED": "0"}),
                ("batch", ours_cmd, {**env, "DLWS_STAMPS": "0"})]
        if index % 2:
            plan[:2] = plan[1::-1]
        for label, command, extra in plan:
            seconds, rc, log = timed(command, extra)
            if rc:
                print(f"{label}: exit {rc}\n{log[-2000:]}", flush=True)
            if label == "ours":
                skipped += SKIPPED in log
                stamped += STAMPED in log
            {"floor": floor, "ours": ours, "full": full, "batch": batch}[label].append(seconds)
            print(f"rerun round {index + 1}, {label}: {seconds:.2f} s", flush=True)
        loads.append(round(load(), 1))
    result = row("rerun", "no-change rerun, README sandbox / pyinfra `exec -- true` on it",
                 "bench/all.py --rows rerun", floor, ours, 1.2, loads,
                 notes=[f"{skipped} of {rounds} reruns skipped planning (converged record), "
                        f"{stamped} of them on the stamps alone (no facts batch); "
                        f"the same rerun reading the whole batch (DLWS_STAMPS=0): median "
                        f"{statistics.median(batch):.2f} s ({spread(batch)}), "
                        f"{statistics.median(batch) / statistics.median(floor):.2f}x the floor",
                        f"the same rerun planning every operation (DLWS_CONVERGED=0): median "
                        f"{statistics.median(full):.2f} s ({spread(full)}), "
                        f"{statistics.median(full) / statistics.median(floor):.2f}x the floor"])
    if not result["met"]:
        result["profile"] = pyspy(ours_cmd, env)
    return result


def pyspy(command: list[str], env: dict) -> list[str]:
    """py-spy's view of one run: the functions holding the most samples (bench/pyspy_top.py)."""
    raw = Path(tempfile.mkstemp(suffix=".raw")[1])
    spy = BIN / "py-spy"
    if not spy.exists():
        return ["py-spy is not installed: no profile"]
    seconds, rc, log = timed([str(spy), "record", "--rate", "250", "--idle", "--format", "raw",
                              "-o", str(raw), "--", *command], env)
    _, _, top = timed([sys.executable, str(ROOT / "bench" / "pyspy_top.py"), str(raw),
                       "--top", "12"])
    raw.unlink(missing_ok=True)
    return [f"py-spy --idle over one run ({seconds:.1f} s, exit {rc}):",
            *[line for line in top.splitlines() if line.strip()][:16]]


def train_args(framework: str) -> list[str]:
    data = SANDBOX_DATA
    args = [data["frameworks_train_check_path"], "--framework", framework,
            "--epochs", str(data["verify_epochs"]),
            "--min-accuracy", str(data["verify_min_accuracy"]),
            "--sample-min-accuracy", str(data["verify_sample_min_accuracy"])]
    if data["verify_mnist_path"]:
        args += ["--mnist", data["verify_mnist_path"]]
    if data["verify_offline"]:
        args.append("--offline")
    return args


def trainings_by_hand(name: str) -> tuple[float, int, str]:
    """Both trainings started together in the container (one `docker exec` each), waited for."""
    started = time.monotonic()
    procs = [subprocess.Popen(["docker", "exec", name, *train_args(framework)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for framework in ("tensorflow", "torch")]
    errors = [proc.communicate()[1] for proc in procs]
    code = max(proc.returncode for proc in procs)
    return time.monotonic() - started, code, "".join(errors)[-2000:]


def cpu_used(name: str, run, *args, **kwargs) -> tuple[tuple, float, float]:
    """`run(*args, **kwargs)`'s result, and the CPU seconds it took in the container `name` and
    on this machine's side (the pytest or pyinfra process and the docker clients)."""
    host0, ctl0 = container_cpu(name), controller_cpu()
    result = run(*args, **kwargs)
    host1, ctl1 = container_cpu(name), controller_cpu()
    return result, (host1 - host0 if None not in (host0, host1) else float("nan")), ctl1 - ctl0


def cpu_profile(label: str, cpu: dict[str, list[tuple[float, float]]], floor: list[float],
                names: tuple[str, str], target: float) -> list[str]:
    """Where a run's CPU time goes against its floor's: the medians of each side's CPU seconds,
    and the least wall time this machine's cores allow for that work."""
    cores = os.cpu_count() or 1
    lines = [f"CPU seconds per run, median ({cores} cores here), {label}:"]
    totals = {}
    for key, title in zip(("ours", "floor"), names, strict=True):
        host = statistics.median(h for h, _ in cpu[key])
        ctl = statistics.median(c for _, c in cpu[key])
        totals[key] = host + ctl
        lines.append(f"{title}: {host:.1f} s in the container + {ctl:.1f} s on the controller "
                     f"= {host + ctl:.1f} s")
    wall = statistics.median(floor)
    budget = target * wall * cores
    lines.append(f"that work takes at least {totals['ours'] / cores:.1f} s on {cores} cores, "
                 f"{totals['ours'] / cores / wall:.2f}x the floor's median ({wall:.1f} s); "
                 f"<= {target}x allows at most {budget:.1f} CPU seconds in all"
                 + (f": {totals['ours'] - budget:.1f} s of work to cut, whatever the waits"
                    if totals["ours"] > budget else ": the rest is waiting"))
    return lines


def verify_row(name: str, env: dict, rounds: int) -> dict:
    verify_cmd = [str(BIN / "pytest"), "verify", "--inventory", "inventory/sandbox.py", "-q",
                  "-p", "no:cacheprovider", "--durations=10"]
    floor, ours, loads, last = [], [], [], ""
    cpu: dict[str, list[tuple[float, float]]] = {"ours": [], "floor": []}
    for index in range(rounds):
        plan = ["hand", "verify"]
        for label in plan if index % 2 == 0 else plan[::-1]:
            (seconds, rc, log), host_cpu, ctl_cpu = cpu_used(
                name, *((trainings_by_hand, name) if label == "hand"
                        else (timed, verify_cmd, env)))
            if rc:
                print(f"{label}: exit {rc}\n{log[-2500:]}", flush=True)
            (floor if label == "hand" else ours).append(seconds)
            cpu["floor" if label == "hand" else "ours"].append((host_cpu, ctl_cpu))
            last = log if label == "verify" else last
            print(f"verify round {index + 1}, {label}: {seconds:.1f} s (CPU {host_cpu:.1f} s "
                  f"in the container, {ctl_cpu:.1f} s here)", flush=True)
        loads.append(round(load(), 1))
    result = row("verify", "verify of one CPU host / its two trainings by hand, side by side",
                 "bench/all.py --rows verify", floor, ours, 1.2, loads,
                 notes=["by hand: `docker exec SANDBOX dlws-train-check --framework "
                        "tensorflow ...` and the same for torch, started together (the "
                        "sandbox's epochs, bars and data)"])
    if not result["met"]:
        lines = last.splitlines()
        begin = next((i for i, line in enumerate(lines) if "slowest" in line), None)
        result["profile"] = [*cpu_profile("verify / the trainings by hand", cpu, floor,
                                          ("verify", "the trainings by hand"), 1.2),
                             *(["pytest --durations (the last verify run):",
                                *lines[begin + 1:begin + 11]] if begin is not None else [])]
    return result


# --- first provisioning ---------------------------------------------------------------------------


def warm_cache(prefix: str) -> tuple[tuple[str, str], dict[str, str], dict]:
    """The fleet cache (roles/cache: apt-cacher-ng in a container, a shared download folder
    mounted in each host), filled by one first deploy of the row's data through it: the apt
    proxy URL and the folder on the hosts, the mounts, and the data that sends a deploy
    through it."""
    import cache_bytes
    import overhead

    cache_bytes.PREFIX[0] = prefix
    proxy = cache_bytes.start_cache()
    shared = WORK / "first-cache"
    subprocess.run(["rm", "-rf", "--", str(shared)], check=True)
    shared.mkdir(parents=True)
    volumes = {str(shared): cache_bytes.SHARED}
    data = {**overhead.DATA, "cache_apt_proxy": proxy, "cache_pip_dir": cache_bytes.SHARED}
    name = f"{prefix}-first-warm"
    try:
        start([name], volumes)
        seconds, rc, _, log = overhead.deploy(
            overhead.inventory(WORK / "first-warm.py", [name], data))
        if rc:
            raise SystemExit(f"the deploy that fills the cache failed:\n{log}")
        print(f"the cache filled by a first deploy through it: {seconds:.1f} s", flush=True)
    finally:
        remove([name])
    return (proxy, cache_bytes.SHARED), volumes, data


def first_row(prefix: str, pairs: int, cached: bool = False) -> dict:
    """First provisioning against the same packages by hand, alternating, by hand first and
    last. `cached`: both sides behind the fleet cache, filled before (the row first-cached):
    what the deploy adds to the same installs without the upstream network's noise."""
    import cache_bytes
    import overhead

    names = [f"{prefix}-first-{i}" for i in range(2 * pairs + 1)]
    hand, deploys, stats, loads = [], [], [], []
    cpu: dict[str, list[tuple[float, float]]] = {"ours": [], "floor": []}
    stats_file = WORK / "first-stats.jsonl"
    cache, volumes, data = None, {}, overhead.DATA
    try:
        if cached:
            cache, volumes, data = warm_cache(prefix)
        for index, name in enumerate(names):
            start([name], volumes)
            if index % 2 == 0:
                (seconds, steps), host_cpu, ctl_cpu = cpu_used(
                    name, overhead.by_hand, name, cache)
                hand.append(seconds)
                cpu["floor"].append((host_cpu, ctl_cpu))
                print(f"by hand ({name}): {seconds:.1f} s {steps} (CPU {host_cpu:.1f} s in "
                      f"the container, {ctl_cpu:.1f} s here)", flush=True)
            else:
                stats_file.unlink(missing_ok=True)
                inv = overhead.inventory(WORK / "first.py", [name], data)
                (seconds, rc, _, log), host_cpu, ctl_cpu = cpu_used(
                    name, overhead.deploy, inv, env={"DLWS_FACT_STATS": str(stats_file)})
                if rc:
                    raise SystemExit(f"the deploy failed:\n{log}")
                deploys.append(seconds)
                cpu["ours"].append((host_cpu, ctl_cpu))
                print(f"deploy CPU: {host_cpu:.1f} s in the container, {ctl_cpu:.1f} s here",
                      flush=True)
                stats.append(json.loads(stats_file.read_text().splitlines()[-1]))
                print(f"deploy ({name}): {seconds:.1f} s, live fact reads "
                      f"{stats[-1]['live_reads']} (dropping the whole batch at the first "
                      f"change: {stats[-1]['live_reads_if_dropped_whole']}), read again in "
                      f"{stats[-1].get('refills', 0)} batches after changes that dropped every "
                      f"reading: {stats[-1].get('refilled', 0)} facts", flush=True)
            loads.append(round(load(), 1))
            remove([name])
    finally:
        remove(names + ([cache_bytes.cache_name()] if cached else []))
    references = [(hand[i] + hand[i + 1]) / 2 for i in range(len(deploys))]
    name = "first-cached" if cached else "first"
    figure = ("first provisioning / the same packages by hand (mean of the runs before and "
              "after)")
    if cached:
        figure += (", both from the fleet cache filled before (apt-cacher-ng; pip's wheel "
                   "folder and uv's cache, `--offline`)")
    result = row(name, figure, f"bench/all.py --rows {name} --pairs {pairs}", references,
                 deploys, 1.1, loads, hand=hand,
                 notes=["live fact reads per first deploy (each fresh container read with the "
                        "request list of the controller's last deploy, dlws.facts.batch): "
                        + ", ".join(str(s["live_reads"]) for s in stats)
                        + "; had the first change dropped the whole batch: "
                        + ", ".join(str(s["live_reads_if_dropped_whole"]) for s in stats)
                        + "; facts read again together after a change that dropped every "
                        "reading (batches/facts): "
                        + ", ".join(f"{s.get('refills', 0)}/{s.get('refilled', 0)}"
                                    for s in stats)])
    if not result["met"] and stats:
        median_run = sorted(range(len(deploys)), key=lambda i: deploys[i])[len(deploys) // 2]
        result["profile"] = [*cpu_profile("first deploy / by hand", cpu,
                                          references, ("the deploy", "by hand"), 1.1),
                             f"slowest operations of the median deploy "
                             f"({deploys[median_run]:.1f} s):",
                             *[f"{sec:.1f} s {name}" for name, sec in
                               stats[median_run]["slowest_operations"]]]
    return result


# --- fleets ---------------------------------------------------------------------------------------


def fleet_cache_row(prefix: str, hosts: int) -> dict:
    import cache_bytes

    cache_bytes.PREFIX[0] = prefix
    try:
        proxy = cache_bytes.start_cache()
        one_s, one_b, one_cpu = cache_bytes.run(1, proxy, True)
        loads = [round(load(), 1)]
        many_s, many_b, many_cpu = cache_bytes.run(hosts, proxy, True)
        loads.append(round(load(), 1))
    finally:
        remove([f"{prefix}-c{i}" for i in range(hosts)] + [cache_bytes.cache_name()])
    cores = os.cpu_count() or 1
    result = row("fleet-cache", f"first deploy with frameworks, {hosts} fresh hosts behind the "
                 "fleet cache / 1 host", f"bench/all.py --rows fleet-cache --cache-hosts {hosts}",
                 [one_s], [many_s], 1.5, loads,
                 notes=[f"upstream bytes {hosts} hosts / 1 host: {many_b / one_b:.3f}x "
                        f"({many_b / 2**20:.1f} MiB against {one_b / 2**20:.1f} MiB; target "
                        "<= 1.05x)"])
    if not result["met"]:
        result["profile"] = [
            f"CPU seconds (the hosts' cgroups and the controller's pyinfra): one host "
            f"{one_cpu:.0f} s, {hosts} hosts {many_cpu:.0f} s ({many_cpu / hosts:.0f} s a host)",
            f"on {cores} cores the {hosts} hosts' work takes at least {many_cpu / cores:.0f} s, "
            f"{many_cpu / cores / one_s:.2f}x one host's {one_s:.0f} s: the 1.5x target needs "
            f"{math.ceil(many_cpu / (1.5 * one_s))} cores for this work, whatever the "
            "cache and the lock do"]
    return result


def fleet_ssh_rows(prefix: str, sizes: list[int], rounds: int) -> list[dict]:
    import fleet_ssh

    found = fleet_ssh.measure(sizes, rounds, prefix, timeout=3000)
    rows = []
    for size in sorted(found["times"]):
        if size == 1 and len(found["times"]) > 1:
            continue
        result = row(f"fleet-ssh-{size}", f"no-change rerun over SSH, {size} hosts / pyinfra "
                     "`exec -- true` on the same hosts", f"bench/all.py --rows fleet-ssh "
                     f"--sizes {' '.join(map(str, sizes))}", found["floor"][size],
                     found["times"][size], 1.3, found["loads"],
                     notes=[found["memory"], *found.get("notes", [])])
        if not result["met"] and found.get("cpu", {}).get(size):
            cpu = {"ours": found["cpu"][size], "floor": found["floor_cpu"][size]}
            result["profile"] = cpu_profile(f"{size} hosts' sshd containers share this "
                                            "machine's cores with the controller", cpu,
                                            found["floor"][size],
                                            ("the no-change run", "pyinfra's no-op"), 1.3)
        rows.append(result)
    return rows


# --- the table ------------------------------------------------------------------------------------


def table(results: dict) -> str:
    lines = [BEGIN, "", "| figure | command | runs | median (spread) | floor median (spread) "
             "| ratio: median (each pair) | target | met? | load |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    order = ["rerun", "verify", "first", "first-cached", "fleet-cache"]
    for name in sorted(results, key=lambda n: (order.index(n) if n in order else 9, n)):
        r = results[name]
        median = f"{r['median']:.2f}x" if r["median"] is not None else "-"
        pairs = ", ".join(f"{v:.2f}" for v in r["ratios"])
        lines.append(
            f"| {r['figure']} | `{r['command']}` | {len(r['ours'])} + {len(r['floor'])}, "
            f"alternating ({r['when']}) | {statistics.median(r['ours']):.2f} s "
            f"({spread(r['ours'])}) | {statistics.median(r['floor']):.2f} s "
            f"({spread(r['floor'])}) | **{median}** ({pairs}) | <= {r['target']}x | "
            f"{'yes' if r['met'] else '**no**'} | {', '.join(map(str, r['loads']))} |")
    lines.append("")
    for name in sorted(results):
        r = results[name]
        extra = [*r.get("notes", []), *r.get("profile", [])]
        if extra:
            lines.append(f"- **{name}**: " + "; ".join(r.get("notes", [])))
            if r.get("profile"):
                lines.append("  - where the time goes (target not met): "
                             + " / ".join(r["profile"]))
    lines += ["", END]
    return "\n".join(lines)


def write_docs(results: dict) -> None:
    text = DOCS.read_text()
    block = table(results)
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        heading = ("\n## The figures (bench/all.py)\n\nWritten by `bench/all.py` (see its "
                   "docstring).\n\n")
        marker = "\n## The figures (issue 16)"
        at = text.index(marker) if marker in text else len(text)
        text = text[:at] + heading + block + "\n" + text[at:]
    DOCS.write_text(text)


def bytecode() -> None:
    """Compile the controller's modules (its environment's and the project's), as pip compiles
    what it installs: Python then loads them instead of compiling some 600 modules at each
    start, where PYTHONDONTWRITEBYTECODE is set or the folders cannot be written (this
    machine sets it). Both sides of every row start the same Python: each pays that compile
    at each run otherwise, which is no part of either's work on a user's machine."""
    folders = [sysconfig.get_paths()["purelib"],
               *(str(ROOT / name) for name in ("dlws", "deploy", "roles", "verify"))]
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", *folders,
                    str(ROOT / "config.py")], check=False, capture_output=True)
    # And verify's modules as pytest rewrites their asserts (verify/__pycache__/*-pytest-*.pyc):
    # pytest writes them only where Python may write bytecode, and reads them either way; each
    # verify here rewrote some 40 modules otherwise (0.4 s of its start, measured with
    # cProfile), which a user's second verify does not.
    env = {name: value for name, value in os.environ.items()
           if name != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([str(BIN / "pytest"), "verify", "--inventory", "inventory/sandbox.py",
                    "--collect-only", "-q", "-p", "no:cacheprovider"], cwd=ROOT, env=env,
                   check=False, capture_output=True)
    print(f"bytecode of the controller's modules: {time.monotonic() - started:.0f} s",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=["rerun", "verify", "first",
                                                      "first-cached", "fleet-cache",
                                                      "fleet-ssh"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--verify-rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--cache-hosts", type=int, default=8)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 32, 64])
    parser.add_argument("--ssh-rounds", type=int, default=2)
    parser.add_argument("--prefix", default="dlws-bench")
    parser.add_argument("--results", default=str(WORK / "all.json"))
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--docs-only", action="store_true",
                        help="run nothing: write docs/benchmarks.md's table from --results")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the sandbox")
    args = parser.parse_args()
    path = Path(args.results)
    results = json.loads(path.read_text()) if path.exists() else {}
    if args.docs_only:
        write_docs(results)
        return
    print(f"machine: {os.cpu_count()} cores, load {load():.1f}", flush=True)
    bytecode()

    def keep(found: dict) -> None:
        show(found)
        results[found["row"]] = found
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
        if not args.no_docs:
            write_docs(results)

    name = None
    try:
        if {"rerun", "verify"} & set(args.rows):
            name, env = sandbox(args.prefix, args.keep)
            if "rerun" in args.rows:
                keep(rerun_row(name, env, args.rounds))
            if "verify" in args.rows:
                keep(verify_row(name, env, args.verify_rounds))
        if "first" in args.rows:
            keep(first_row(args.prefix, args.pairs))
        if "first-cached" in args.rows:
            keep(first_row(args.prefix, args.pairs, cached=True))
        if "fleet-cache" in args.rows:
            keep(fleet_cache_row(args.prefix, args.cache_hosts))
        if "fleet-ssh" in args.rows:
            for found in fleet_ssh_rows(args.prefix, args.sizes, args.ssh_rounds):
                keep(found)
    finally:
        if name and not args.keep:
            remove([name])


if __name__ == "__main__":
    main()
