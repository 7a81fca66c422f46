"""A lab's Ansible INI inventory, unchanged, deploys and verifies two sandbox containers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlws import report
from dlws.sandbox.docker_env import ensure_container, remove_container
from dlws.sandbox.images import ensure_debian_image

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HOSTS = ("dlws-i18-ws01", "dlws-i18-ws02")
# A host range and the docker connection in Ansible's INI form; the `sandbox` group gets this
# controller's CA bundle, wheelhouse and offline MNIST from inventory/group_data/sandbox.py, as
# `bin/dlws sandbox` does, so the committed hash locks in locks/ serve it.
HOSTS_INI = """\
[sandbox]
dlws-i18-ws[01:02] ansible_connection=docker

[sandbox:vars]
gpu_count=0
hardware_min_memory_gib=1
base_lab_users=["researcher"]
ntp_server=ntp.lab.example
"""


@pytest.fixture()
def two_bare_hosts(docker_engine):
    image = ensure_debian_image("bookworm")
    for name in HOSTS:
        remove_container(name)
        ensure_container(name, image)
    yield HOSTS
    for name in HOSTS:
        remove_container(name)


def _run(command: list[str], env: dict, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.integration
def test_ini_inventory_deploys_and_verifies_two_containers(two_bare_hosts, tmp_path):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(HOSTS_INI)
    env = {**os.environ, "DLWS_ANSIBLE_INVENTORY": str(inventory)}
    env.pop("DLWS_ANSIBLE_LIMIT", None)
    # What a lab runs: make any hash lock this controller lacks, deploy, verify.
    lock = _run([str(BIN / "dlws"), "lock", "--inventory", str(inventory)], env, 600)
    assert lock.returncode == 0, lock.stdout[-3000:] + lock.stderr[-3000:]
    deploy = _run([str(BIN / "pyinfra"), "-y", "inventory/ansible.py", "deploy/workstation.py"],
                  env, 1500)
    text = deploy.stdout + deploy.stderr
    assert deploy.returncode == 0, text[-5000:]
    assert "ntp_server" in deploy.stderr  # named in the notice, not silently dropped
    verify = _run([sys.executable, "-m", "pytest", "verify", "-q", "-p", "no:cacheprovider",
                   "--inventory", str(inventory), "-n", "2",
                   f"--junitxml={tmp_path / 'junit.xml'}"], env, 1200)
    built = report.build(tmp_path / "junit.xml", tmp_path / "hosts.json")
    status = {h.name: h.status for h in built.hosts}
    assert status == {f"@docker/{name}": report.PASS for name in HOSTS}, verify.stdout[-5000:]
    assert verify.returncode == 0, verify.stdout[-5000:]
