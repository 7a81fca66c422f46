"""Proof over time and across machines, on Molecule's converged `default` container: drift between
two verify runs, a 2-minute CPU burn-in and its planted fault, and the multi-node training check
on two containers of a Docker network (gloo), then with the second one stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlws import report
from dlws.sandbox.data import controller_data
from dlws.sandbox.docker_env import remove_container
from dlws.sandbox.images import ensure_debian_image
from tests.helpers import ROOT, run_verify

pytestmark = pytest.mark.integration
NODE_B, NETWORK = "dlws-i15-node-b", "dlws-i15-net"
VENV = "/opt/dlws/venv"


@pytest.fixture(scope="module")
def converged(request):
    """The converged container: Molecule's default; DLWS_PROOF_CONTAINER names one already
    deployed with the same data (a developer's shortcut past the 3-minute converge)."""
    name = os.environ.get("DLWS_PROOF_CONTAINER")
    if name:
        return name
    out = request.getfixturevalue("default_scenario")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    return "dlws-molecule-default"


def inventory(tmp_path: Path, name: str, hosts: dict[str, dict]) -> str:
    """An inventory file NAME.py of docker hosts with this controller's data."""
    path = tmp_path / f"{name}.py"
    rows = [(f"@docker/{host}", {**controller_data(), "gpu_count": 0, "verify_offline": True,
                                 **data}) for host, data in hosts.items()]
    path.write_text(f"{name} = {rows!r}\n")
    return str(path)


def dlws_verify(inventory_path: str, run_dir: Path, *pytest_args: str,
                ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlws.cli", "verify", "--inventory",
                           inventory_path, "--run-dir", str(run_dir), *pytest_args],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)


def in_container(name: str, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", name, *command], capture_output=True, text=True,
                          timeout=600)


def test_drift_names_exactly_the_changed_package(converged, tmp_path):
    # Two verify runs of the same inventory (the checks that record the package inventory),
    # mlxtend moved from 0.25.0 to 0.24.0 between them; then the host is put back.
    hosts = inventory(tmp_path, "drift", {converged: {}})
    folder = tmp_path / "reports" / "drift"
    first, second = folder / "20261129-100000", folder / "20261129-110000"
    only = ["-k", "inventory_recorded"]
    out = dlws_verify(hosts, first, *only)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    pip = [f"{VENV}/bin/uv", "pip", "install", "--python", f"{VENV}/bin/python", "--no-deps"]
    changed = in_container(converged, *pip, "mlxtend==0.24.0")
    assert changed.returncode == 0, changed.stderr
    try:
        out = dlws_verify(hosts, second, *only)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
        # The terminal: the run's own report compares with the last passing run.
        assert "venv package changed: mlxtend 0.25.0 -> 0.24.0" in out.stdout, out.stdout[-3000:]
        diff = subprocess.run([sys.executable, "-m", "dlws.cli", "report", "--diff", str(first),
                               str(second)], cwd=ROOT, capture_output=True, text=True)
        assert diff.returncode == 0, diff.stderr
    finally:
        in_container(converged, *pip, "mlxtend==0.25.0")
    document = json.loads((second / "drift.json").read_text())
    host = document["hosts"][f"@docker/{converged}"]
    assert host["changes"] == {"packages.venv": {"added": {}, "removed": {}, "changed": {
        "mlxtend": ["0.25.0", "0.24.0"]}}}, host
    assert host["lines"] == ["venv package changed: mlxtend 0.25.0 -> 0.24.0"]
    assert "mlxtend 0.25.0 -&gt; 0.24.0" in (second / report.HTML_OUT).read_text()
    facts = json.loads((first / report.FACTS).read_text())["hosts"][f"@docker/{converged}"]
    assert len(facts["facts"]["packages.dpkg"]) > 100 and "mlxtend" in facts["facts"][
        "packages.venv"]


def test_cpu_burn_in_of_two_minutes_passes(converged, tmp_path):
    hosts = inventory(tmp_path, "burn", {converged: {"verify_burn_in_memory_fraction": 0.05,
                                                     "verify_burn_in_disk_mib": 256}})
    run = tmp_path / "reports" / "burn" / "run"
    started = time.monotonic()
    out = dlws_verify(hosts, run, "--burn-in-minutes", "2", "-k", "burn_in")
    seconds = time.monotonic() - started
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert seconds >= 120, f"the burn-in took {seconds:.0f} s, under its 2 minutes"
    burn = json.loads((run / report.FACTS).read_text())["hosts"][f"@docker/{converged}"][
        "facts"]["burn_in"]
    assert burn["status"] == "passed" and len(burn["cpu"]["t"]) >= 100
    assert {s["name"] for s in burn["stressors"]} == {"cpu", "memory", "disk"}
    page = (run / report.HTML_OUT).read_text()
    assert 'data-chart="cpu_busy_percent"' in page


def test_burn_in_with_a_failing_stressor_fails_naming_the_bar(converged, tmp_path):
    # The disk soak pointed at a "folder" that is a file (a system folder such as /sys is refused
    # by the inventory's check): stress-ng's hdd stressor fails for real.
    planted = "/dlws-not-a-folder"
    assert in_container(converged, "touch", planted).returncode == 0
    hosts = inventory(tmp_path, "fault", {converged: {"hardware_data_dir": planted,
                                                      "verify_burn_in_memory_fraction": 0.02}})
    try:
        out = run_verify(hosts, "--burn-in-minutes", "0.1", "-k", "burn_in")
    finally:
        in_container(converged, "rm", "-f", planted)
    assert out.returncode == 1, out.stdout[-3000:]
    assert "FAILED verify/test_burn_in.py::test_burn_in_holds_the_bars" in out.stdout
    failed = [line for line in out.stdout.splitlines()
              if line.startswith("E ") and "failed its bars: " in line]
    assert failed and "no stressor errors: disk:" in failed[0] and planted in failed[0], (
        out.stdout[-3000:])
    # Only the disk soak: CPU and memory ran clean beside it.
    assert "no stressor errors: cpu" not in failed[0], failed[0]


@pytest.fixture()
def node_b(converged):
    """A second host on a Docker network with the first: a bare Debian 12 container with the
    system Python, sharing the first one's installed environment read-only (its overlay
    directory), so it needs no second deploy."""
    merged = subprocess.run(["docker", "inspect", "-f", "{{.GraphDriver.Data.MergedDir}}",
                             converged], capture_output=True, text=True).stdout.strip()
    if not merged or not Path(merged, "opt/dlws/venv").is_dir():
        pytest.fail(f"the Docker engine's storage driver shows no directory of {converged} "
                    f"(GraphDriver.Data.MergedDir = {merged!r}): overlay2 is needed here")
    remove_container(NODE_B)
    subprocess.run(["docker", "network", "rm", NETWORK], capture_output=True)
    subprocess.run(["docker", "network", "create", NETWORK], check=True, capture_output=True)
    subprocess.run(["docker", "network", "connect", NETWORK, converged], check=True,
                   capture_output=True)
    subprocess.run(["docker", "run", "-d", "--name", NODE_B, "--hostname", NODE_B,
                    "--network", NETWORK, "--init", "--tmpfs", "/tmp:exec",
                    "-v", f"{merged}/opt/dlws:/opt/dlws:ro", ensure_debian_image("bookworm"),
                    "sleep", "infinity"], check=True, capture_output=True)
    python = in_container(NODE_B, "sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND="
                          "noninteractive apt-get install -y -qq --no-install-recommends python3")
    assert python.returncode == 0, python.stderr[-2000:]
    yield NODE_B
    remove_container(NODE_B)
    subprocess.run(["docker", "network", "disconnect", NETWORK, converged], capture_output=True)
    subprocess.run(["docker", "network", "rm", NETWORK], capture_output=True)


def interface_on(container: str, network: str) -> str:
    """The container's interface on a Docker network, by its MAC address (Docker numbers a
    reconnected container's interfaces on: eth1, then eth2, ...)."""
    mac = subprocess.run(["docker", "inspect", "-f",
                          f'{{{{(index .NetworkSettings.Networks "{network}").MacAddress}}}}',
                          container], capture_output=True, text=True).stdout.strip()
    listing = in_container(container, "sh", "-c", 'for i in /sys/class/net/*; do echo '
                           '"$(basename "$i") $(cat "$i/address")"; done').stdout
    names = [line.split()[0] for line in listing.splitlines() if line.endswith(" " + mac)]
    assert mac and len(names) == 1, f"{container} on {network}: MAC {mac!r}, {listing!r}"
    return names[0]


TIMEOUT_S = 60


def test_multinode_training_over_gloo_then_a_stopped_host_fails_in_time(converged, node_b,
                                                                        tmp_path):
    data = {"network_multinode_group": "pair", "network_timeout_s": TIMEOUT_S,
            "verify_epochs": 2}
    # The first host's name resolves to its address on Docker's default bridge, which the
    # second cannot reach: the pair's traffic is put on the shared network by interface.
    hosts = inventory(tmp_path, "pair", {
        converged: {**data, "network_interface": interface_on(converged, NETWORK)},
        node_b: {**data, "network_interface": interface_on(node_b, NETWORK),
                 "frameworks_train_check_path": f"{VENV}/bin/dlws-train-check"}})
    run = tmp_path / "reports" / "pair" / "run"
    out = dlws_verify(hosts, run, "-k", "multinode")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    facts = json.loads((run / report.FACTS).read_text())["hosts"][f"@docker/{converged}"][
        "facts"]
    assert facts["network.multinode.world_size"] == 2
    assert facts["network.multinode.backend"] == "gloo"
    [pair] = facts["network.allreduce"]
    assert set(pair["pair"].split("<->")) == {converged, node_b} and pair["gbit"] > 0
    print(f"\nmulti-node: {pair['pair']} all-reduce {pair['gbit']} Gbit/s ({pair['backend']}), "
          f"{facts['network.multinode.samples_per_second']:,.0f} samples/s")
    assert 'data-chart="network"' in (run / report.HTML_OUT).read_text()

    subprocess.run(["docker", "stop", "-t", "1", node_b], check=True, capture_output=True)
    started = time.monotonic()
    out = run_verify(hosts, "-k", "multinode")
    seconds = time.monotonic() - started
    assert out.returncode == 1, out.stdout[-3000:]
    assert "the multi-node check of group 'pair' (2 hosts" in out.stdout, out.stdout[-3000:]
    assert f"@docker/{node_b}: exit 1" in out.stdout and "is not running" in out.stdout, (
        out.stdout[-3000:])
    # In time: the host that could not start stops the others' run at once (the rendezvous
    # timeout, network_timeout_s, bounds a host that starts but never joins).
    assert seconds < TIMEOUT_S, f"took {seconds:.0f} s with a {TIMEOUT_S} s limit"
    print(f"multi-node with {node_b} stopped: failed after {seconds:.1f} s")
