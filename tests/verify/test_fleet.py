"""verify over a fleet with pytest-xdist: each host's checks run, an unreachable one fails alone."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dlws import report
from dlws.sandbox.docker_env import ensure_container, remove_container
from dlws.sandbox.images import ensure_debian_image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def bare_host(docker_engine):
    """A bare Debian 12 container: the hardware checks below need nothing the deploy installs."""
    name = "dlws-fleet-bare"
    remove_container(name)
    ensure_container(name, ensure_debian_image("bookworm"))
    yield name
    remove_container(name)


@pytest.mark.integration
def test_parallel_fleet_with_an_unreachable_host(bare_host, tmp_path):
    # The same container twice under two names; dlws-no-such-host never exists; the SSH host
    # is 127.0.0.1 on a port nothing listens on (its session cannot start, nor can ssh).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    inventory = tmp_path / "fleet.py"
    inventory.write_text(f'hosts = [("@docker/{bare_host}", {{}}), ("@docker/dlws-no-such-host", '
                         f'{{}}), ("@docker/{bare_host}-again", {{"docker_identifier": '
                         f'"{bare_host}"}}), ("ws-ssh", {{"ssh_hostname": "127.0.0.1", '
                         f'"ssh_port": {closed}, "ssh_user": "root"}})]\n')
    out = subprocess.run([sys.executable, "-m", "pytest", "verify", "-q", "-p", "no:cacheprovider",
                          "--inventory", str(inventory), "-n", "3", "-k", "cpu_cores or memory "
                          "or read_throughput", f"--junitxml={tmp_path / 'junit.xml'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "INTERNALERROR" not in out.stdout + out.stderr, out.stdout[-3000:]
    built = report.build(tmp_path / "junit.xml", tmp_path / "hosts.json")
    status = {h.name: h.status for h in built.hosts}
    assert status == {f"@docker/{bare_host}": report.PASS,
                      "@docker/dlws-no-such-host": report.UNREACHABLE,
                      f"@docker/{bare_host}-again": report.PASS,
                      "ws-ssh": report.UNREACHABLE}, out.stdout[-3000:]
    facts = next(h for h in built.hosts if h.name == f"@docker/{bare_host}").facts
    assert facts["data_disk.read_mib_s"] > 0
