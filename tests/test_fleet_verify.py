"""verify over a fleet with pytest-xdist: each host's checks run, an unreachable one fails alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dlws import report

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.integration
def test_parallel_fleet_with_an_unreachable_host(docker_engine, tmp_path):
    # dlws-sandbox is the provisioned sandbox; dlws-no-such-host never exists.
    inventory = tmp_path / "fleet.py"
    inventory.write_text('hosts = [("@docker/dlws-sandbox", {}), ("@docker/dlws-no-such-host", '
                         '{}), ("@docker/dlws-sandbox-again", {"docker_identifier": '
                         '"dlws-sandbox"})]\n')
    out = subprocess.run([sys.executable, "-m", "pytest", "verify", "-q", "-p", "no:cacheprovider",
                          "--inventory", str(inventory), "-n", "3", "-k", "cpu_cores or memory "
                          "or read_throughput", f"--junitxml={tmp_path / 'junit.xml'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "INTERNALERROR" not in out.stdout + out.stderr, out.stdout[-3000:]
    built = report.build(tmp_path / "junit.xml", tmp_path / "hosts.json")
    status = {h.name: h.status for h in built.hosts}
    assert status == {"@docker/dlws-sandbox": report.PASS,
                      "@docker/dlws-no-such-host": report.UNREACHABLE,
                      "@docker/dlws-sandbox-again": report.PASS}, out.stdout[-3000:]
    facts = next(h for h in built.hosts if h.name == "@docker/dlws-sandbox").facts
    assert facts["data_disk.read_mib_s"] > 0
