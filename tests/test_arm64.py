"""An arm64 workstation for real, under emulation: Debian 12 aarch64 converged, rerun, verified.

Molecule's `arm64` scenario converges the CPU workstation on a bare arm64 Debian 12 image (built
with `debootstrap --arch=arm64`, run through qemu-user-static's binfmt handler) from PyPI's
aarch64 wheels (tensorflow, torch 2.10.0: CPU builds there), hash-locked for aarch64 in locks/,
and reruns it expecting no change. verify then runs once, training check included, and its
report records the machine the host runs (uname -m: aarch64).
"""

from __future__ import annotations

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

from dlws.sandbox.images import ensure_debian_image
from tests.helpers import run_verify
from tests.test_molecule import molecule, tail

# Under emulation everything runs far slower than native. Measured here (2026-12-03, one run, a
# machine shared with other work): 2,730 s in all; converge and rerun about 25 min, verify
# 1,127 s (each training about 400 s against 1.7 s native). With the suite's ~20 min and a 2-3x
# spread between days that does not fit CI's 90 min: opt in with DLWS_ARM64_TEST=1.
pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.skipif(not os.environ.get("DLWS_ARM64_TEST"),
                                 reason="the arm64 converge under emulation takes too long for "
                                        "CI; run with DLWS_ARM64_TEST=1")]
CONTAINER = "dlws-molecule-arm64"
INVENTORY = "molecule/arm64/inventory.py"


@pytest.fixture(scope="module")
def arm64_scenario():
    """Converged and rerun once (Molecule: create, converge, idempotence); destroyed after."""
    ensure_debian_image("bookworm", arch="arm64")  # registers the binfmt handler it needs
    out = molecule("test", "-s", "arm64", "--destroy", "never")
    yield out
    molecule("destroy", "-s", "arm64")


def test_arm64_host_converges_and_reruns_without_change(arm64_scenario):
    out = arm64_scenario
    text = out.stdout + out.stderr
    assert out.returncode == 0, tail(out)
    assert "Idempotence test failed" not in text, tail(out)
    assert "idempotence: Executed: Successful" in text, tail(out)


def test_arm64_host_is_aarch64(arm64_scenario):
    found = subprocess.run(["docker", "exec", CONTAINER, "sh", "-c",
                            "uname -m; dpkg --print-architecture"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert found == ["aarch64", "arm64"], found


def test_arm64_host_passes_verify_with_training_recorded_as_aarch64(arm64_scenario, tmp_path):
    junit = tmp_path / "verify.xml"
    out = run_verify(INVENTORY, f"--junitxml={junit}")
    assert out.returncode == 0, out.stdout[-6000:]
    facts, passed = junit_facts(junit)
    # The recorded stack names the machine the deploy read (uname -m, dpkg's architecture).
    assert facts.get("dlws.fact.machine") == "aarch64 (arm64)", facts
    for check in ("test_mnist_trains[{host}-tensorflow]", "test_mnist_trains[{host}-torch]",
                  "test_torch_is_the_planned_build[{host}]",
                  "test_tensorflow_is_the_planned_build[{host}]"):
        assert check.format(host=f"@docker/{CONTAINER}") in passed, sorted(passed)
    for framework in ("tensorflow", "torch"):
        accuracy = float(facts[f"dlws.fact.{framework}.training.test_accuracy"])
        assert accuracy >= 0.85, (framework, accuracy)  # the sample's bar, not lowered


def junit_facts(path) -> tuple[dict[str, str], set[str]]:
    """The facts verify recorded (junit properties) and the checks that passed (no failure,
    error or skip)."""
    root = ET.parse(path).getroot()
    facts = {p.get("name"): p.get("value") for p in root.iter("property")}
    passed = {case.get("name") for case in root.iter("testcase")
              if not any(child.tag in ("failure", "error", "skipped") for child in case)}
    return facts, passed
