"""What only the host can tell, checked while the fleet is planned: one disk under two names,
and a lab group the host's own sudoers makes root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dlws.facts.system import SudoersGroups
from dlws.roles import all_keys
from dlws.validate.host import same_disk_problems, sudoers_problems

ROOT = Path(__file__).resolve().parents[2]
BY_ID = "/dev/disk/by-id/nvme-LAB_DISK_1"
BY_PATH = "/dev/disk/by-path/pci-0000:01:00.0-nvme-1"


def test_one_disk_under_two_names_is_refused_naming_both():
    disks = [{"device": BY_ID, "mount": "/data"}, {"device": BY_PATH, "mount": "/scratch"}]
    found = {BY_ID: {"path": "/dev/nvme0n1"}, BY_PATH: {"path": "/dev/nvme0n1"}}
    [problem] = same_disk_problems("ws-01", "storage_disks", disks, found)
    assert problem.key == "storage_disks"
    assert BY_ID in problem.message and BY_PATH in problem.message
    assert "/dev/nvme0n1" in problem.message and "declare each disk once" in problem.message


def test_a_serial_and_a_path_of_one_disk_are_refused():
    disks = [{"serial": "S7KG1", "mount": "/data"}, {"device": BY_ID, "mount": "/scratch"}]
    found = {"serial:S7KG1": {"path": "/dev/sdb"}, BY_ID: {"path": "/dev/sdb"}}
    assert same_disk_problems("ws-01", "storage_disks", disks, found)


def test_two_disks_pass():
    disks = [{"device": BY_ID, "mount": "/data"}, {"device": BY_PATH, "mount": "/scratch"}]
    found = {BY_ID: {"path": "/dev/nvme0n1"}, BY_PATH: {"path": "/dev/nvme1n1"}}
    assert same_disk_problems("ws-01", "storage_disks", disks, found) == []
    # a disk that is not there yet is the storage role's to report, not a duplicate
    assert same_disk_problems("ws-01", "storage_disks", disks, {BY_ID: None}) == []


SUDOERS = """\
# User privilege specification
root    ALL=(ALL:ALL) ALL
# Members of the admin group may gain root privileges
%admin ALL=(ALL) ALL
%sudo   ALL=(ALL:ALL) ALL
%labops ALL = (root) NOPASSWD: /usr/bin/systemctl
# %commented ALL=(ALL) ALL
Defaults env_reset
""".splitlines()


def test_sudoers_groups_are_read_from_the_host_file():
    assert SudoersGroups().process(SUDOERS) == ["admin", "labops", "sudo"]


def test_a_lab_group_the_host_sudoers_names_is_refused():
    data = {"base_lab_group": "labops", "notebooks_group": "lab"}
    problems = sudoers_problems("ws-01", data, all_keys(), SudoersGroups().process(SUDOERS))
    assert [p.key for p in problems] == ["base_lab_group"]
    assert "granted root by this host's sudoers" in problems[0].message
    assert sudoers_problems("ws-01", {"base_lab_group": "lab"}, all_keys(), ["labops"]) == []


def test_plan_refuses_a_group_the_fake_host_sudoers_names(tmp_path):
    """Through the real CLI: the plan reads the fact and refuses before any operation."""
    inventory = tmp_path / "inventory.py"
    responses = {"cat /etc/os-release": ["ID=debian", 'VERSION_ID="12"',
                                         "VERSION_CODENAME=bookworm"],
                 "uname -m": "x86_64", SudoersGroups.command: SUDOERS}
    inventory.write_text(f"hosts = [('@fake/ws-01', {{'fake_responses': {responses!r}, "
                         "'python_env_require_hashes': False, 'base_lab_group': 'labops'})]\n")
    out = subprocess.run([str(Path(sys.executable).parent / "pyinfra"), "-y", str(inventory),
                          "deploy/workstation.py"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env={**os.environ})
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert "host @fake/ws-01: base_lab_group: 'labops' is granted root" in text, text[-3000:]
    assert "Starting operation" not in text, text[-3000:]
