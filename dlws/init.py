"""`dlws init DIR`: a commented starting inventory for a lab, in pyinfra's and Ansible's forms."""

from __future__ import annotations

from pathlib import Path

HOSTS_PY = '''\
"""This lab's hosts for dlws (a pyinfra inventory): `dlws plan {dir}/hosts.py`, then lock, deploy.

Each list is a group (rename them freely); a host is (NAME, {{data}}). NAME is an address or an
ssh_config alias, @local for this machine, or @docker/CONTAINER. Data keys: `dlws --help`, the
README's "Host data"; group-wide data goes in group_data/<group>.py beside this file.
"""

# How dlws reaches each host: an SSH key that logs in without a password (ssh-copy-id), and a
# user who may sudo without a password (or add "_sudo_password", or type it when dlws asks).
_ssh = {{"ssh_user": "admin", "ssh_key": "~/.ssh/id_ed25519", "_sudo": True}}

# Workstations with one consumer GPU each: declare what each host has; verify holds it to this
# (a declared GPU that is missing is a failure).
workstations = [
    ("ws-01.lab.example", {{**_ssh, "gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 4090"}}),
    # ("ws-02.lab.example", {{**_ssh, "gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 4090"}}),
    # A test container on this controller (after `dlws sandbox` or `docker run -d --name ws-test
    # debian:bookworm sleep infinity`):
    # ("@docker/ws-test", {{"gpu_count": 0}}),
]

# After the driver is installed a host must reboot before the GPU answers. dlws reboots only
# where you say so:
# nvidia_driver_reboot = True   (in group_data/workstations.py, or per host as above)
'''

HOSTS_YML = '''\
# This lab's hosts for dlws, as an Ansible inventory (the same lab as hosts.py; use either):
#   dlws plan {dir}/hosts.yml      dlws deploy {dir}/hosts.yml --limit 'workstations:!ws-02*'
# ansible-core reads it (group_vars/ and host_vars/ beside it, vault, plugins work too).
# ansible_host/_user/_port/_ssh_private_key_file and ansible_become become pyinfra's SSH and
# sudo data; every other dlws key (gpu_count, gpu_model, nvidia_driver_reboot...) is host data.
all:
  children:
    workstations:
      vars:
        ansible_user: admin
        ansible_ssh_private_key_file: ~/.ssh/id_ed25519
        ansible_become: true
      hosts:
        ws-01.lab.example:
          gpu_count: 1
          gpu_model: "NVIDIA GeForce RTX 4090"
        # ws-02.lab.example:
        #   ansible_host: 192.0.2.12
        #   gpu_count: 1
        #   gpu_model: "NVIDIA GeForce RTX 4090"
'''

README = '''\
# {dir}: this lab's dlws inventory

The order that works on new machines (README "A real lab"):

    dlws plan   {dir}/hosts.py          # what each host gets; connects, changes nothing
    dlws lock   {dir}/hosts.py          # hash locks for pip/uv (./locks/); review, commit
    dlws deploy {dir}/hosts.py          # asks before it changes anything (-y: do not ask)
    # reboot each host once after its first driver install (or nvidia_driver_reboot = True)
    dlws verify {dir}/hosts.py          # every check, MNIST trained per framework; reports/

hosts.py (pyinfra) and hosts.yml (Ansible) describe the same hosts: keep the one you like.
'''


def write_starting_inventory(folder: Path) -> list[Path]:
    """Write hosts.py, hosts.yml, group_data/ and README.md into `folder`; never overwrite."""
    folder = Path(folder)
    files = {folder / "hosts.py": HOSTS_PY, folder / "hosts.yml": HOSTS_YML,
             folder / "README.md": README}
    existing = [path for path in files if path.exists()]
    if existing:
        raise FileExistsError(f"{', '.join(map(str, existing))} already exist(s); dlws init "
                              "never overwrites a file: choose an empty folder")
    (folder / "group_data").mkdir(parents=True, exist_ok=True)
    written = []
    for path, template in files.items():
        path.write_text(template.format(dir=str(folder).rstrip("/") or "."))
        written.append(path)
    return written
