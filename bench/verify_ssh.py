"""verify of one host over SSH: its commands in long-lived `ssh HOST /bin/sh` sessions
(dlws.shell_session) against testinfra's own ssh, one login per command (DLWS_SESSIONS=0),
alternating on the same deployed host. Prints figures only.

One sshd container (dlws/sshd-sudo, Debian 12) gets the README sandbox's workstation over SSH,
with the `sandbox` group's data (the controller's wheelhouse, the offline MNIST sample: the
inventory is written beside a link to inventory/group_data). testinfra's ssh reads host keys from
root's ~/.ssh/known_hosts alone, so the container's key is added there for the run, and that
file and ssh's `.old` copy of it are put back as they were after it. Each verify is timed, with
the CPU of the controller's processes (pytest and its ssh clients) and of the container's
cgroup.

    .venv/bin/python bench/verify_ssh.py [--rounds 3] [--prefix dlws-bench] [--keep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

from all import cpu_used, timed
from common import BIN, ROOT, WORK, remove, start
from fleet_ssh import client_key, ensure_sshd_image, start_sshd

KNOWN_HOSTS = Path.home() / ".ssh" / "known_hosts"
# (ssh's UpdateHostKeys rewrites known_hosts and keeps the file it replaced as .old)
TOUCHED = (KNOWN_HOSTS, KNOWN_HOSTS.with_name("known_hosts.old"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prefix", default="dlws-bench")
    parser.add_argument("--keep", action="store_true", help="keep the container")
    args = parser.parse_args()
    name = f"{args.prefix}-vssh"
    folder = WORK / "verify_ssh"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "group_data"
    if not link.is_symlink():
        link.symlink_to(ROOT / "inventory" / "group_data")
    key = client_key()
    before = {path: (path.read_bytes(), path.stat().st_mode & 0o777) if path.exists() else None
              for path in TOUCHED}
    made_folder = not KNOWN_HOSTS.parent.exists()
    try:
        start([name], image=ensure_sshd_image(args.prefix))
        [(ip, known)] = start_sshd([name], key)
        (folder / "known_hosts").write_text(known + "\n")
        KNOWN_HOSTS.parent.mkdir(mode=0o700, exist_ok=True)
        with KNOWN_HOSTS.open("a") as handle:
            handle.write(known + "\n")
        data = {"gpu_count": 0, "base_lab_users": ["researcher"], "hardware_min_memory_gib": 1,
                "ssh_user": "root", "ssh_key": str(key), "ssh_allow_agent": False,
                "ssh_look_for_keys": False, "ssh_strict_host_key_checking": "yes",
                "ssh_known_hosts_file": str(folder / "known_hosts")}
        inventory = folder / "inventory.py"
        inventory.write_text(f"sandbox = [({ip!r}, {data!r})]\n")
        deploy = [str(BIN / "pyinfra"), "-y", str(inventory), "deploy/workstation.py"]
        for attempt in range(2):  # the first deploy, then a no-change run
            started = time.monotonic()
            out = subprocess.run(deploy, cwd=ROOT, capture_output=True, text=True)
            if out.returncode:
                raise SystemExit((out.stdout + out.stderr)[-3000:])
            print(f"deploy {attempt + 1} over SSH: {time.monotonic() - started:.0f} s",
                  flush=True)
        verify = [str(BIN / "pytest"), "verify", "--inventory", str(inventory), "-q",
                  "-p", "no:cacheprovider"]
        found: dict[str, list[tuple[float, float, float]]] = {"sessions": [], "plain": []}
        for index in range(args.rounds):
            order = ["sessions", "plain"] if index % 2 == 0 else ["plain", "sessions"]
            for label in order:
                env = {**os.environ, "DLWS_SESSIONS": "1" if label == "sessions" else "0"}
                (seconds, rc, log), host, ctl = cpu_used(name, timed, verify, env)
                lines = log.strip().splitlines() or [""]
                if rc:
                    raise SystemExit(f"exit {rc}:\n" + "\n".join(lines[-40:]))
                last = lines[-1]
                found[label].append((seconds, ctl, host))
                print(f"round {index + 1}, {label}: {seconds:.1f} s, controller CPU {ctl:.1f} s,"
                      f" container CPU {host:.1f} s ({last})", flush=True)
        for label, runs in found.items():
            walls = [r[0] for r in runs]
            print(f"{label}: median {statistics.median(walls):.1f} s "
                  f"({min(walls):.1f} to {max(walls):.1f}), controller CPU median "
                  f"{statistics.median(r[1] for r in runs):.1f} s, container CPU median "
                  f"{statistics.median(r[2] for r in runs):.1f} s", flush=True)
        ratios = [s[0] / p[0] for s, p in zip(found["sessions"], found["plain"], strict=True)]
        print(f"sessions / testinfra's ssh: median {statistics.median(ratios):.2f}x "
              f"({', '.join(f'{r:.2f}' for r in ratios)})", flush=True)
    finally:
        for path, kept in before.items():
            if kept is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(kept[0])
                path.chmod(kept[1])
        if made_folder and not any(KNOWN_HOSTS.parent.iterdir()):
            KNOWN_HOSTS.parent.rmdir()
        if not args.keep:
            remove([name])


if __name__ == "__main__":
    main()
