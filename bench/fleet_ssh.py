"""Fleet scaling over SSH: a no-change run on 1 vs 8 sshd containers (target: 8 <= 2x one).

Prints figures only.

    .venv/bin/python bench/fleet_ssh.py [--hosts 8] [--keep]
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from common import MINIMAL, WORK, fleet_args, fleet_runs, sh, start

from dlws.docker_env import RUN_ARGS, remove_container
from dlws.images import ensure_debian_image, image_exists

IMAGE = "dlws/bench-sshd:bookworm"
KEYS = WORK / "ssh"


def ensure_sshd_image() -> str:
    """Debian 12 with openssh-server, committed once (Debian's archive over plain http)."""
    if image_exists(IMAGE):
        return IMAGE
    name = "dlws-bench-s-build"
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


def start_sshd(names: list[str], key: Path) -> list[str]:
    """Authorize `key`, start sshd in each container; its IP and known_hosts line, in order."""
    public = key.with_suffix(".pub").read_text().strip()
    ips, known = [], []
    for name in names:
        sh(name, f"mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh && ssh-keygen -A "
                 f"&& echo '{public}' > /root/.ssh/authorized_keys && /usr/sbin/sshd")
        ip = subprocess.run(["docker", "inspect", "-f",
                             "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name],
                            check=True, capture_output=True, text=True).stdout.strip()
        host_key = sh(name, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()[:2]
        ips.append(ip)
        known.append(" ".join([ip, *host_key]))
    (KEYS / "known_hosts").write_text("\n".join(known) + "\n")
    return ips


def inventory(path: Path, ips: list[str], data: dict) -> str:
    hosts = ",\n".join(f"    ({ip!r}, {data!r})" for ip in ips)
    path.write_text(f"hosts = [\n{hosts},\n]\n")
    return str(path)


def main() -> None:
    args = fleet_args(__doc__)
    names = [f"dlws-bench-s{i}" for i in range(args.hosts)]
    key = client_key()
    data = {k: value for k, value in MINIMAL.items() if k != "python_env_extra_packages"}
    # Host keys come from the containers themselves: strict checking, no prompt, no write.
    data |= {"ssh_user": "root", "ssh_key": str(key), "ssh_allow_agent": False,
             "ssh_look_for_keys": False, "ssh_known_hosts_file": str(KEYS / "known_hosts"),
             "ssh_strict_host_key_checking": "yes"}
    start(names, image=ensure_sshd_image())
    ips = start_sshd(names, key)
    fleet = inventory(WORK / "fleet_ssh.py", ips, data)
    one = inventory(WORK / "fleet_ssh1.py", ips[:1], data)
    fleet_runs(args, names, one, fleet, " over SSH")


if __name__ == "__main__":
    main()
