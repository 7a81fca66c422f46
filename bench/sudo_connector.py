"""What dlws's SSH connector costs against pyinfra's own: uploads as root, and commands
through a sudo that asks for its password. Prints figures only.

One sshd container (Debian 12, dlws.sandbox.images) with two users: `free`, whose sudo asks no
password (NOPASSWD, so both sides run the same sudo), and `lab`, whose sudo asks for it. Each
round, through each connector, the two sides alternating which goes first:

- uploads: --files small files to /root as `free` with `_sudo` (pyinfra's: SFTP to
  /tmp/pyinfra-HASH, `sudo cp`, `rm`; dlws's: SFTP into the login user's folder, made once per
  connection by `mktemp -d`, SFTP's chmod 600, `sudo cp`, `rm`);
- commands: --files `true` as `lab` with `_sudo` and `_sudo_password` (pyinfra's: `env
  SUDO_ASKPASS=... PYINFRA_SUDO_PASSWORD=... sudo -A`; dlws's: `sudo -S` fed on stdin).

The ratio is dlws's time over pyinfra's, per round; the container goes on the way out.

    .venv/bin/python bench/sudo_upload.py [--rounds 5] [--files 20]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import time
import uuid

from common import remove, sh
from pyinfra.api import Config, Inventory, State, StringCommand
from pyinfra.api.connect import connect_all

from dlws.docker_connector import use_sessions
from dlws.sandbox import images
from dlws.sandbox.docker_env import container_ip

PASSWORD = "bench-only-password"


def connected(ip: str, known_hosts: str, ours: bool, user: str):
    """A host of a new State, connected: with dlws's connectors (`ours`) or pyinfra's own."""
    data = {"ssh_hostname": ip, "ssh_user": user, "ssh_password": PASSWORD,
            "ssh_known_hosts_file": known_hosts, "ssh_strict_host_key_checking": "yes"}
    state = State()
    if ours:
        use_sessions(state)
    state.init(Inventory(([("ws", data)], {})), Config())
    connect_all(state)
    return state.inventory.get_host("ws")


def commands(host, count: int) -> float:
    started = time.monotonic()
    for index in range(count):
        ok, output = host.connector.run_shell_command(StringCommand("true"), _sudo=True,
                                                      _sudo_password=PASSWORD)
        if not ok:
            raise SystemExit(f"command {index} failed on {type(host.connector).__name__}: "
                             f"{output.stderr}")
    return time.monotonic() - started


def uploads(host, count: int) -> float:
    started = time.monotonic()
    for index in range(count):
        if not host.connector.put_file(io.StringIO(f"{index}\n"), f"/root/bench-{index}",
                                       _sudo=True):
            raise SystemExit(f"upload {index} failed on {type(host.connector).__name__}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=20)
    args = parser.parse_args()
    name = f"dlws-bench-sudo-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "run", "-d", "--rm", "--name", name,
                    images.ensure_sshd_image("bookworm"), "sleep", "infinity"],
                   check=True, capture_output=True)
    try:
        subprocess.run(["docker", "exec", "-i", name, "sh", "-c",
                        "mkdir -p /run/sshd && ssh-keygen -A && useradd -m free && useradd -m "
                        "lab && chpasswd && echo 'free ALL=(ALL:ALL) NOPASSWD: ALL' "
                        ">/etc/sudoers.d/free && echo 'lab ALL=(ALL:ALL) ALL' "
                        ">/etc/sudoers.d/lab && /usr/sbin/sshd"],
                       input=f"free:{PASSWORD}\nlab:{PASSWORD}\n", text=True, check=True,
                       capture_output=True)
        ip = container_ip(name)
        key = sh(name, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
        known = f"/tmp/{name}.known_hosts"
        with open(known, "w") as handle:
            handle.write(" ".join([ip, *key]) + "\n")
        for what, user, work in (("uploads", "free", uploads), ("commands", "lab", commands)):
            hosts = {"dlws": connected(ip, known, True, user),
                     "pyinfra": connected(ip, known, False, user)}
            kinds = ", ".join(f"{side} {type(host.connector).__name__}"
                              for side, host in hosts.items())
            print(f"{what} as {user}: {kinds}")
            times: dict[str, list[float]] = {"dlws": [], "pyinfra": []}
            for index in range(args.rounds):
                order = ["pyinfra", "dlws"] if index % 2 else ["dlws", "pyinfra"]
                for side in order:
                    times[side].append(work(hosts[side], args.files))
                print(f"round {index + 1}: " + ", ".join(
                    f"{side} {times[side][-1]:.3f} s" for side in ("pyinfra", "dlws")),
                      flush=True)
            ratios = [ours / floor for ours, floor in zip(times["dlws"], times["pyinfra"],
                                                          strict=True)]
            for side in ("pyinfra", "dlws"):
                per = [seconds / args.files * 1000 for seconds in times[side]]
                print(f"{what}, {side}: {statistics.median(per):.1f} ms each (median; "
                      f"{min(per):.1f} to {max(per):.1f})")
            print(f"{what}, dlws / pyinfra: {statistics.median(ratios):.2f}x (median of "
                  f"{args.rounds} rounds; {min(ratios):.2f}x to {max(ratios):.2f}x)")
    finally:
        remove([name])


if __name__ == "__main__":
    main()
