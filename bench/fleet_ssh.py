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

from common import BIN, MINIMAL, ROOT, WORK, remove, sh, start

from dlws.docker_env import RUN_ARGS, remove_container
from dlws.images import ensure_debian_image, image_exists

IMAGE = "dlws/bench-sshd:bookworm"
KEYS = WORK / "ssh"


class OutOfTime(Exception):
    pass


def ensure_sshd_image(prefix: str) -> str:
    """Debian 12 with openssh-server, committed once (Debian's archive over plain http)."""
    if image_exists(IMAGE):
        return IMAGE
    name = f"{prefix}-s-build"
    remove_container(name)
    subprocess.run(["docker", "run", "-d", "--name", name, *RUN_ARGS,
                    ensure_debian_image("bookworm"), "sleep", "infinity"],
                   check=True, capture_output=True)
    try:
        sh(name, "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                 "--no-install-recommends openssh-server && rm -rf /var/lib/apt/lists/*")
        subprocess.run(["docker", "commit", name, IMAGE], check=True, capture_output=True)
    finally:
        remove_container(name)
    print(f"built {IMAGE}", flush=True)
    return IMAGE


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
        ip = subprocess.run(["docker", "inspect", "-f",
                             "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name],
                            check=True, capture_output=True, text=True).stdout.strip()
        host_key = sh(name, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
        found.append((ip, " ".join([ip, *host_key])))
    return found


def inventory(path: Path, ips: list[str], data: dict) -> str:
    hosts = ",\n".join(f"    ({ip!r}, {data!r})" for ip in ips)
    path.write_text(f"hosts = [\n{hosts},\n]\n")
    return str(path)


def run(inv: str, limit: float) -> tuple[float, int, int, str]:
    """(seconds, exit code, peak RSS of pyinfra in KiB, log tail) of one pyinfra run."""
    rss_file = WORK / "fleet_ssh.rss"
    command = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), str(BIN / "pyinfra"), "-y",
               inv, "deploy/workstation.py"]
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
    deadline = time.monotonic() + args.timeout
    sizes = sorted(set(args.sizes) | {1})
    names = [f"{args.prefix}-s{i}" for i in range(max(sizes))]
    deployed_image = f"dlws/bench-sshd-deployed:{args.prefix}"

    def out_of_time(*_):
        raise OutOfTime(f"the benchmark ran past --timeout {args.timeout} s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.alarm(args.timeout)
    key = client_key()
    data = {k: value for k, value in MINIMAL.items() if k != "python_env_extra_packages"}
    # Host keys come from the containers themselves: strict checking, no prompt, no write.
    data |= {"ssh_user": "root", "ssh_key": str(key), "ssh_allow_agent": False,
             "ssh_look_for_keys": False, "ssh_known_hosts_file": str(KEYS / "known_hosts"),
             "ssh_strict_host_key_checking": "yes"}
    started: list[str] = []
    try:
        started.append(names[0])
        start(names[:1], image=ensure_sshd_image(args.prefix))
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
        # Each new host's first run reads its facts live (the controller has no list of the
        # reads this deploy makes on it yet): one untimed run of the whole fleet first.
        seconds, rc, rss, log = run(inventories[max(sizes)], deadline - time.monotonic())
        print(f"first no-change run of {max(sizes)} hosts (no saved fact list yet): "
              f"{seconds:.1f} s, {rss / 1024:.0f} MiB, exit {rc}", flush=True)
        times: dict[int, list[float]] = {n: [] for n in sizes}
        memory: dict[int, list[int]] = {n: [] for n in sizes}
        for _ in range(args.rounds):
            for n in sizes:
                for size in ([1, n] if n != 1 else [1]):
                    seconds, rc, rss, log = run(inventories[size], deadline - time.monotonic())
                    if rc:
                        print(f"the run on {size} hosts failed (exit {rc}):\n{log}", flush=True)
                    times[size].append(seconds)
                    memory[size].append(rss)
                    print(f"no-change run, {size} hosts: {seconds:.1f} s, pyinfra peak RSS "
                          f"{rss / 1024:.0f} MiB", flush=True)
        print(f"\nmachine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        single = statistics.median(times[1])
        for n in sizes:
            print(f"{n:>3} hosts: median {statistics.median(times[n]):.2f} s "
                  f"({min(times[n]):.1f} to {max(times[n]):.1f}, {len(times[n])} runs), "
                  f"{statistics.median(times[n]) / single:.2f}x one host; peak RSS "
                  f"{max(memory[n]) / 1024:.0f} MiB")
        top = max(sizes)
        if top > 1:
            growth = (max(memory[top]) - max(memory[1])) / (top - 1)
            print(f"controller memory: {max(memory[top]) / 1024:.0f} MiB for {top} hosts, "
                  f"{max(memory[1]) / 1024:.0f} MiB for one: {growth / 1024:.2f} MiB per "
                  "added host")
    except (OutOfTime, KeyboardInterrupt, subprocess.TimeoutExpired) as error:
        print(f"stopped: {error!r}", flush=True)
    finally:
        signal.alarm(0)
        if not args.keep:
            remove(started)
            subprocess.run(["docker", "image", "rm", "-f", deployed_image],
                           capture_output=True)


if __name__ == "__main__":
    main()
