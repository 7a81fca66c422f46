"""An Ansible hosts.yml, unchanged, drives deploy (inventory/ansible.py) and verify alike."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlws.inventory.ansible import AnsibleInventoryError, pyinfra_groups
from dlws.inventory.targets import load_targets
from roles import all_keys

HOSTS_YML = Path(__file__).parent / "fixtures" / "ansible" / "hosts.yml"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def lab_key(tmp_path, monkeypatch):
    # The fixture names ~/.ssh/lab_ed25519; validation insists the key exists on the controller.
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    key = tmp_path / ".ssh" / "lab_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n"
                   "-----END OPENSSH PRIVATE KEY-----\n")
    return key


def _hosts(groups):
    return {name: data for members in groups.values() for name, data in members}


def test_groups_and_ungrouped_hosts():
    groups = pyinfra_groups(HOSTS_YML)
    assert set(groups) == {"gpu_workstations", "big_gpu", "containers", "ungrouped"}
    # A child group's hosts are its parents' hosts too, as in Ansible.
    assert [n for n, _ in groups["gpu_workstations"]] == ["ws-01", "ws-02", "dgx-01"]
    assert [n for n, _ in groups["ungrouped"]] == ["jump.lab.example"]


def test_connection_variables_become_pyinfra_data():
    hosts = _hosts(pyinfra_groups(HOSTS_YML))
    assert hosts["ws-02"] == {
        "ssh_hostname": "10.0.0.12", "ssh_user": "admin", "ssh_port": 2222,
        "ssh_key": "~/.ssh/lab_ed25519", "_sudo": True,
        "gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 4090", "verify_epochs": 2,
    }
    assert "@docker/dlws-ci" in hosts and "@local" in hosts


def test_variable_precedence_all_then_groups_by_depth_then_host():
    hosts = _hosts(pyinfra_groups(HOSTS_YML))
    assert hosts["jump.lab.example"]["verify_epochs"] == 3  # all
    assert hosts["ws-01"]["verify_epochs"] == 4  # gpu_workstations over all
    assert hosts["ws-02"]["verify_epochs"] == 2  # host over group
    assert hosts["dgx-01"]["gpu_count"] == 4  # big_gpu (child) over gpu_workstations
    assert hosts["dgx-01"]["gpu_model"] == "NVIDIA H100 80GB HBM3"


def test_the_labs_own_variables_are_left_out():
    assert all("ntp_server" not in data for data in _hosts(pyinfra_groups(HOSTS_YML)).values())


def test_misspelt_dlws_key_still_refused(tmp_path):
    hosts = tmp_path / "hosts.yml"
    hosts.write_text("all:\n  hosts:\n    ws-9:\n      gpu_count: 1\n      gpu_modell: x\n")
    with pytest.raises(ValueError, match=r"host ws-9: gpu_modell: unknown key"):
        load_targets(str(hosts), all_keys())


@pytest.mark.parametrize(("text", "message"), [
    ("all:\n  hosts:\n    w:\n      ansible_connection: winrm\n", "winrm' is not supported"),
    ("all:\n  hostz:\n    w: {}\n", "a group holds only hosts, vars and children"),
    ("- not a mapping\n", "starts with a group mapping"),
    ("all: {}\n", "no hosts"),
    ("all:\n  hosts:\n    w:\n      ansible_become: maybe\n",
     "host w: ansible_become: got 'maybe'; expected true or false"),
], ids=["connection", "group-key", "list", "empty", "become-maybe"])
def test_bad_hosts_yml_refused_with_reason(tmp_path, text, message):
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(text)
    with pytest.raises(AnsibleInventoryError, match=message):
        pyinfra_groups(hosts)


def test_verify_targets_from_hosts_yml(lab_key):
    targets = {t.name: t for t in load_targets(str(HOSTS_YML), all_keys())}
    ws2 = targets["ws-02"]
    assert ws2.spec == ("ssh://admin@10.0.0.12:2222?"
                        f"ssh_identity_file={str(lab_key).replace('/', '%2F')}&sudo=true")
    assert "gpu_workstations" in ws2.groups and ws2["gpu_count"] == 1
    assert targets["@docker/dlws-ci"].spec == "docker://dlws-ci"
    assert targets["@local"].spec == "local://"
    # inventory/group_data/all.py fills the rest, as for a pyinfra inventory.
    assert targets["dgx-01"]["hardware_data_dir"] == "/data"
    assert targets["dgx-01"]["python_env_prefix"] == "/opt/dlws/venv"
    assert "DLWS_ANSIBLE_INVENTORY" not in os.environ


def test_pyinfra_reads_the_same_hosts(lab_key):
    # The deploy's view: pyinfra's debug-inventory (it logs to stderr) for inventory/ansible.py.
    env = {**os.environ, "DLWS_ANSIBLE_INVENTORY": str(HOSTS_YML)}
    out = subprocess.run([str(Path(sys.executable).parent / "pyinfra"), "inventory/ansible.py",
                          "debug-inventory"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("ws-01", "ws-02", "dgx-01", "jump.lab.example", "@docker/dlws-ci"):
        assert name in out.stderr, f"{name} missing from pyinfra's inventory:\n{out.stderr}"


def test_pyinfra_inventory_without_the_variable_says_what_to_set():
    env = {k: v for k, v in os.environ.items() if k != "DLWS_ANSIBLE_INVENTORY"}
    out = subprocess.run([str(Path(sys.executable).parent / "pyinfra"), "inventory/ansible.py",
                          "debug-inventory"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert "set DLWS_ANSIBLE_INVENTORY" in out.stdout + out.stderr


@pytest.mark.parametrize(("text", "message"), [
    ("all:\n  hosts:\n    w:\n      python_env_prefix: /usr\n",
     r"host w: python_env_prefix: '/usr' is a system folder"),
    ("all:\n  hosts:\n    w:\n      python_env_index_url: 'https://x/simple;touch /tmp/x'\n",
     r"host w: python_env_index_url: .* holds ' '"),
    ("all:\n  hosts:\n    w:\n      base_lab_users: [nobody]\n",
     r"host w: base_lab_users: 'nobody' is root or a system account"),
], ids=["prefix-usr", "index-inject", "user-nobody"])
def test_hostile_hosts_yml_values_refused(tmp_path, text, message):
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_targets(str(hosts), all_keys())
