"""Fleet scaling over SSH: the no-change rerun on 1, 8, 32 and 64 sshd containers, and the
controller's memory (target: 64 hosts <= 2x one host). Prints figures only.

One fresh container gets the first deploy (the workstation without frameworks, as
bench/fleet.py) over SSH; it is then committed, host keys removed, and the other hosts start from
that image, each with its own new host keys: every host is a deployed workstation without 64
first deploys on a 2-core machine. Then, for each fleet size, no-change runs alternate with the
one-host run. Each pyinfra run is timed and its peak memory (maximum resident set size of the
pyinfra process, `/usr/bin/time -f %M`) recorded. The whole benchmark is bounded (--timeout) and
removes its containers and image on the way out: success, failure, timeout, Ctrl-C or SIGTERM.

    .venv/bin/python bench/fleet_ssh.py [--sizes 1 8 32 64] [--rounds 2] [--timeout 1500]
                                        [--prefix dlws-bench] [--keep]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path

from common import (
    BIN,
    MINIMAL,
    ROOT,
    WORK,
    cgroup_cpu,
    container_ids,
    controller_cpu,
    remove,
    sh,
    start,
)

from dlws.sandbox import images
from dlws.sandbox.docker_env import container_ip

KEYS = WORK / "ssh"


class OutOfTime(Exception):
    pass


def ensure_sshd_image(prefix: str) -> str:
    """Debian 12 with openssh-server, committed once (dlws.sandbox.images)."""
    return images.ensure_sshd_image("bookworm", log=lambda line: print(line, flush=True))


def client_key() -> Path:
    """A throwaway ed25519 key of the controller, made once."""
    key = KEYS / "id_ed25519"
    if not key.exists():
        KEYS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dlws-bench",
                        "-f", str(key)], check=True)
    return key


def start_sshd(names: list[str], key: Path, new_keys: bool = False) -> list[tuple[str, str]]:
    """Authorize `key`, start sshd in each container (with host keys of its own where new_keys:
    a copy of another host's image); its (IP, known_hosts line), in order."""
    public = key.with_suffix(".pub").read_text().strip()
    found = []
    for name in names:
        fresh = "rm -f /etc/ssh/ssh_host_* && " if new_keys else ""
        sh(name, f"{fresh}mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh && ssh-keygen -A "
                 f"&& echo '{public}' > /root/.ssh/authorized_keys && /usr/sbin/sshd")
        ip = container_ip(name)
        host_key = sh(name, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
        found.append((ip, " ".join([ip, *host_key])))
    return found


def inventory(path: Path, ips: list[str], data: dict) -> str:
    hosts = ",\n".join(f"    ({ip!r}, {data!r})" for ip in ips)
    path.write_text(f"hosts = [\n{hosts},\n]\n")
    return str(path)


def run(inv: str, limit: float, floor: bool = False) -> tuple[float, int, int, str]:
    """(seconds, exit code, peak RSS of pyinfra in KiB, log tail) of one pyinfra run: the
    deploy, or with `floor` pyinfra's own no-op on the same hosts (`exec -- true`)."""
    rss_file = WORK / "fleet_ssh.rss"
    what = ["exec", "--", "true"] if floor else ["deploy/workstation.py"]
    command = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), str(BIN / "pyinfra"), "-y",
               inv, *what]
    started = time.monotonic()
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                         timeout=max(limit, 1))
    seconds = time.monotonic() - started
    try:
        rss = int(rss_file.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        rss = 0
    return seconds, out.returncode, rss, (out.stdout + out.stderr)[-3000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=1500, help="seconds for everything")
    parser.add_argument("--prefix", default="dlws-bench")
    parser.add_argument("--keep", action="store_true", help="keep the containers")
    args = parser.parse_args()
    measure(args.sizes, args.rounds, args.prefix, args.timeout, args.keep)


def measure(sizes: list[int], rounds: int, prefix: str, timeout: int,
            keep: bool = False) -> dict:
    """The runs of each fleet size, alternating with pyinfra's no-op on the same hosts; prints
    them and returns {"times", "floor", "rss", "floor_rss": {size: [...]}, "loads": [...],
    "memory": "..."} (what is measured before a timeout)."""
    deadline = time.monotonic() + timeout
    sizes = sorted(set(sizes) | {1})
    names = [f"{prefix}-s{i}" for i in range(max(sizes))]
    deployed_image = f"dlws/bench-sshd-deployed:{prefix}"

    def out_of_time(*_):
        raise OutOfTime(f"the benchmark ran past --timeout {timeout} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.alarm(timeout)
    key = client_key()
    data = {k: value for k, value in MINIMAL.items() if k != "python_env_extra_packages"}
    # Host keys come from the containers themselves: strict checking, no prompt, no write.
    data |= {"ssh_user": "root", "ssh_key": str(key), "ssh_allow_agent": False,
             "ssh_look_for_keys": False, "ssh_known_hosts_file": str(KEYS / "known_hosts"),
             "ssh_strict_host_key_checking": "yes"}
    started: list[str] = []
    found: dict = {"times": {}, "floor": {}, "rss": {}, "floor_rss": {}, "loads": [],
                   "memory": "not measured", "notes": []}
    try:
        started.append(names[0])
        start(names[:1], image=ensure_sshd_image(prefix))
        hosts = start_sshd(names[:1], key)
        (KEYS / "known_hosts").write_text(hosts[0][1] + "\n")
        one = inventory(WORK / "fleet_ssh1.py", [hosts[0][0]], data)
        seconds, rc, rss, log = run(one, deadline - time.monotonic())
        if rc:
            raise SystemExit(f"the first deploy failed:\n{log}")
        print(f"first deploy, 1 fresh container over SSH: {seconds:.0f} s", flush=True)
        # Every other host: a copy of the deployed one, with host keys of its own.
        subprocess.run(["docker", "commit", names[0], deployed_image], check=True,
                       capture_output=True)
        started.extend(names[1:])
        start(names[1:], image=deployed_image)
        hosts += start_sshd(names[1:], key, new_keys=True)
        (KEYS / "known_hosts").write_text("\n".join(line for _, line in hosts) + "\n")
        print(f"{len(names)} deployed hosts running", flush=True)
        inventories = {n: inventory(WORK / f"fleet_ssh{n}.py", [ip for ip, _ in hosts[:n]], data)
                       for n in sizes}
        # Each new host's first runs read its facts live (the controller has no list of the
        # reads this deploy makes on it yet), record its converged run, then its stamps
        # (dlws.facts.stamps): untimed.
        for _ in range(3):
            seconds, rc, rss, log = run(inventories[max(sizes)], deadline - time.monotonic())
            print(f"untimed no-change run of {max(sizes)} hosts (learning each host's reads, "
                  f"recording its converged run): {seconds:.1f} s, {rss / 1024:.0f} MiB, "
                  f"exit {rc}", flush=True)
        for key_ in ("times", "floor", "rss", "floor_rss", "cpu", "floor_cpu"):
            found[key_] = {n: [] for n in sizes}
        ids = container_ids(names)

        def cpu_now(size: int) -> tuple[float, float]:
            """CPU seconds so far: the first `size` hosts' cgroups, and pyinfra's here."""
            return (sum(cgroup_cpu(ids[name]) or 0.0 for name in names[:size]),
                    controller_cpu())

        for index in range(rounds):
            for n in sizes:
                plan = [(n, False), (n, True)]
                for size, floor in plan if index % 2 == 0 else plan[::-1]:
                    before = cpu_now(size)
                    seconds, rc, rss, log = run(inventories[size], deadline - time.monotonic(),
                                                floor)
                    after = cpu_now(size)
                    found["floor_cpu" if floor else "cpu"][size].append(
                        (after[0] - before[0], after[1] - before[1]))
                    if rc:
                        print(f"the run on {size} hosts failed (exit {rc}):\n{log}", flush=True)
                    found["floor" if floor else "times"][size].append(seconds)
                    found["floor_rss" if floor else "rss"][size].append(rss)
                    print(f"{'pyinfra exec -- true' if floor else 'no-change run'}, {size} "
                          f"hosts: {seconds:.1f} s, pyinfra peak RSS {rss / 1024:.0f} MiB",
                          flush=True)
            found["loads"].append(round(os.getloadavg()[0], 1))
        summarize(found, sizes)
    except (OutOfTime, KeyboardInterrupt, subprocess.TimeoutExpired) as error:
        print(f"stopped: {error!r}", flush=True)
        found["notes"].append(f"stopped early: {error!r}")
        found["times"] = {n: v for n, v in found["times"].items() if v and found["floor"][n]}
    finally:
        signal.alarm(0)
        if not keep:
            remove(started)
            subprocess.run(["docker", "image", "rm", "-f", deployed_image],
                           capture_output=True)
    return found


def summarize(found: dict, sizes: list[int]) -> None:
    """Both curves side by side (dlws and pyinfra's no-op), and memory per added host."""
    print(f"\nmachine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print("hosts | dlws no-change run (median, spread) | pyinfra exec -- true | ratio | "
          "dlws peak RSS | pyinfra no-op peak RSS")
    for n in sizes:
        ours, floor = found["times"][n], found["floor"][n]
        print(f"{n:>5} | {statistics.median(ours):.2f} s ({min(ours):.1f} to {max(ours):.1f}) | "
              f"{statistics.median(floor):.2f} s ({min(floor):.1f} to {max(floor):.1f}) | "
              f"{statistics.median(ours) / statistics.median(floor):.2f}x | "
              f"{max(found['rss'][n]) / 1024:.0f} MiB | "
              f"{max(found['floor_rss'][n]) / 1024:.0f} MiB")
    print("hosts | CPU seconds, median: dlws (the hosts' cgroups + pyinfra here) | "
          "pyinfra's no-op (the same)")
    found["cpu_lines"] = []
    for n in sizes:
        line = f"{n:>5} | " + " | ".join(
            f"{statistics.median(h for h, _ in found[key][n]):.1f} s + "
            f"{statistics.median(c for _, c in found[key][n]):.1f} s"
            for key in ("cpu", "floor_cpu"))
        found["cpu_lines"].append(line)
        print(line)
    top = max(sizes)
    if top > 1:
        growth = (max(found["rss"][top]) - max(found["rss"][1])) / (top - 1)
        floor_growth = (max(found["floor_rss"][top]) - max(found["floor_rss"][1])) / (top - 1)
        found["memory"] = (f"controller memory: {max(found['rss'][top]) / 1024:.0f} MiB for {top} "
                           f"hosts, {max(found['rss'][1]) / 1024:.0f} MiB for one: "
                           f"{growth / 1024:.2f} MiB per added host (pyinfra's no-op: "
                           f"{floor_growth / 1024:.2f} MiB per added host)")
        print(found["memory"])


if __name__ == "__main__":
    main()
