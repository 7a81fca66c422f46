"""deploy/plan.py through the real CLI: a table and JSON of each host's stack, no operation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYINFRA = str(Path(sys.executable).parent / "pyinfra")

# (host, os-release fixture, lspci fixture, host data)
FLEET = [
    ("@fake/ws-4090", "ubuntu-24.04", "rtx-4090",
     {"gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 4090"}),
    ("@fake/cpu-01", "debian-12", None, {}),
    ("@fake/hgx-h100", "debian-13", "h100x8",
     {"gpu_count": 8, "gpu_model": "NVIDIA H100 80GB HBM3", "nvidia_driver_source": "cuda_repo"}),
    # TensorFlow's pip build cannot run sm_120: NGC's container, with Docker and the toolkit.
    ("@fake/ws-5090", "ubuntu-24.04", "rtx-5090",
     {"gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 5090", "frameworks_tensorflow": "ngc",
      "containers_engine": "docker"}),
]
# Each host's row: the cells the table must show, in column order. The driver cell shows the
# display build; torch beside TensorFlow's CUDA 12 wheels is a CUDA 12 build (2.14.1+cu126).
ROWS = {
    "@fake/ws-4090": ["ubuntu 24.04", "1x NVIDIA GeForce RTX 4090", "580 open / distro / headless",
                      "13.0 / cuda_repo", "wheels", "-", "3.12",
                      "tensorflow[and-cuda]==2.21.0", "2.14.1+cu126"],
    "@fake/cpu-01": ["debian 12", "-", "-", "-", "-", "-", "3.11", "tensorflow-cpu==2.21.0",
                     "2.15.0+cpu"],
    "@fake/hgx-h100": ["debian 13", "8x NVIDIA H100 80GB HBM3",
                       "580 open / cuda_repo / headless", "13.0 / cuda_repo", "wheels", "2",
                       "3.13", "tensorflow[and-cuda]==2.21.0", "2.14.1+cu126"],
    "@fake/ws-5090": ["ubuntu 24.04", "1x NVIDIA GeForce RTX 5090",
                      "580 open / distro / headless", "13.0 / cuda_repo", "wheels", "-", "3.12",
                      "NGC nvcr.io/nvidia/tensorflow:25.02-tf2-py3", "2.15.0+cu130"],
}


def write_inventory(tmp_path: Path, fleet: list[tuple]) -> Path:
    entries = "".join(
        f"    ({name!r}, {{'fake_delay': 0, 'fake_delay_jitter': 0, **{data!r}, "
        f"'fake_responses': facts({os_name!r}, {lspci!r})}}),\n"
        for name, os_name, lspci, data in fleet
    )
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from tests.fake_hosts import facts\n"
        f"hosts = [\n{entries}]\n"
    )
    return inventory


def run_plan(tmp_path: Path, fleet: list[tuple]) -> tuple[subprocess.CompletedProcess, Path]:
    out_json = tmp_path / "plan.json"
    result = subprocess.run(
        [PYINFRA, "-y", str(write_inventory(tmp_path, fleet)), "deploy/plan.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DLWS_PLAN_JSON": str(out_json)},
    )
    return result, out_json


@pytest.fixture(scope="module")
def fleet_plan(tmp_path_factory):
    return run_plan(tmp_path_factory.mktemp("plan"), FLEET)


def test_plan_prints_one_row_per_host_in_inventory_order(fleet_plan):
    result, _ = fleet_plan
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["HOST", "OS", "GPUS", "DRIVER", "CUDA", "CUDNN", "NCCL",
                                "PYTHON", "TENSORFLOW", "TORCH"], result.stdout
    assert [line.split()[0] for line in lines[1:5]] == [name for name, *_ in FLEET]
    for line in lines[1:5]:
        host = line.split()[0]
        cells = [cell.strip() for cell in line[len(host):].split("  ") if cell.strip()]
        assert cells == ROWS[host], f"{host}: {line}"
    # The containers role's line: engine, the pinned toolkit, the CDI spec.
    # Ubuntu 24.04's docker.io is taken as without CDI (unverified): Docker keeps the nvidia
    # runtime, with /dev/char links.
    assert ("containers @fake/ws-5090: docker (distro, 24.0.7 (unverified)): docker.io; "
            "toolkit: nvidia-container-toolkit=1.18.0-1 nvidia-container-toolkit-base=1.18.0-1 "
            "libnvidia-container-tools=1.18.0-1 libnvidia-container1=1.18.0-1; GPUs through cdi "
            "(docker: legacy, /dev/char links); CDI: /etc/cdi/nvidia.yaml, refreshed by toolkit "
            "units") in lines, result.stdout
    assert not [line for line in lines if line.startswith("containers @fake/ws-4090")]


def test_plan_changes_nothing(fleet_plan):
    result, _ = fleet_plan
    text = result.stdout + result.stderr
    assert "Starting operation" not in text, text[-3000:]
    assert "Grand total   -" in result.stderr, result.stderr[-2000:]


def test_plan_writes_json_for_machines(fleet_plan):
    result, out_json = fleet_plan
    rows = json.loads(out_json.read_text())
    assert [row["host"] for row in rows] == [name for name, *_ in FLEET]
    by_host = {row["host"]: row for row in rows}
    gpu = by_host["@fake/ws-4090"]
    driver = gpu["driver"]
    assert (driver["branch"], driver["flavour"], driver["source"]) == ("580", "open", "distro")
    assert gpu["gpu"]["models"] == ["NVIDIA GeForce RTX 4090"]
    assert gpu["cuda"]["version"] == "13.0"
    assert by_host["@fake/cpu-01"]["driver"]["branch"] is None
    hgx = by_host["@fake/hgx-h100"]
    assert len(hgx["gpu"]["models"]) == 8 and hgx["nccl"]["version"] == "2"
    # From R580 NVIDIA's repository names the fabric manager without a branch.
    assert hgx["repo_path"] == "debian13/x86_64" and "nvidia-fabricmanager" in hgx["driver"][
        "packages"]
    ngc = by_host["@fake/ws-5090"]
    assert ngc["tensorflow"]["image"] == "nvcr.io/nvidia/tensorflow:25.02-tf2-py3"
    assert ngc["tensorflow"]["package"] is None
    assert ngc["containers"]["toolkit_packages"] == [
        "nvidia-container-toolkit=1.18.0-1", "nvidia-container-toolkit-base=1.18.0-1",
        "libnvidia-container-tools=1.18.0-1", "libnvidia-container1=1.18.0-1"]
    assert gpu["containers"]["engine"] is None and gpu["notebooks"]["jupyterhub"] is None
    # Stack.as_dict() plus the host: every stage of the stack and how the host gets there.
    assert set(gpu) >= {"os", "gpu", "driver", "cuda", "cudnn", "nccl", "python", "tensorflow",
                        "torch", "transition", "notes", "locks"}


def test_plan_shows_the_containers_and_notebooks_parts(tmp_path):
    """A host with rootless Podman and the lab's JupyterHub: the plan's table carries a line for
    each part of the stack it has, its JSON the parts themselves; a host without shows none."""
    lab = {"base_lab_users": ["ada", "bob"], "containers_engine": "podman",
           "notebooks_enabled": True, "python_env_require_hashes": False}
    result, out_json = run_plan(tmp_path, [("@fake/lab-01", "debian-12", None, lab),
                                           FLEET[1]])
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert ("containers @fake/lab-01: rootless podman: podman crun uidmap slirp4netns "
            "fuse-overlayfs catatonit for ada, bob") in lines, result.stdout
    assert ("notebooks @fake/lab-01: JupyterHub 6.1.1, JupyterLab 4.6.6; ipykernel 7.4.0 in "
            "the managed environment") in lines, result.stdout
    assert not [line for line in lines if line.startswith(("containers @fake/cpu-01",
                                                           "notebooks @fake/cpu-01"))]
    row = json.loads(out_json.read_text())[0]
    assert row["containers"]["engine"] == "podman"
    assert row["containers"]["rootless_users"] == ["ada", "bob"]
    assert row["notebooks"] == {"jupyterhub": "6.1.1", "jupyterlab": "4.6.6",
                                "ipykernel": "7.4.0"}


def test_refused_host_is_listed_and_fails_the_command(tmp_path):
    fleet = [FLEET[0], ("@fake/ws-5090", "debian-12", "rtx-5090",
                        {"gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 5090",
                         "nvidia_driver_source": "distro"})]
    result, out_json = run_plan(tmp_path, fleet)
    assert result.returncode != 0
    assert "REFUSED @fake/ws-5090: host @fake/ws-5090: nvidia_driver_source:" in result.stdout
    assert result.stdout.splitlines()[1].startswith("@fake/ws-4090"), result.stdout
    rows = json.loads(out_json.read_text())
    assert "nvidia_driver_source" in rows[1]["error"] and rows[0]["driver"]["branch"] == "580"


def test_bad_inventory_is_refused_before_any_fact(tmp_path):
    result, out_json = run_plan(tmp_path, [("@fake/typo", "debian-12", None,
                                            {"cuda_verison": "12.4"})])
    assert result.returncode != 0
    assert "cuda_verison" in result.stdout + result.stderr
    assert "HOST" not in result.stdout and not out_json.exists()


def test_lock_command_writes_the_hosts_hash_locks(tmp_path):
    """`dlws lock` plans the hosts (facts only) and writes one lock per distinct profile with a
    sha256 per file (needs PyPI); a second run keeps them."""
    fleet = [(f"@fake/cpu-{i}", "debian-12", None,
              {"frameworks_tensorflow": "none", "frameworks_torch": "none"}) for i in (1, 2)]
    locks = tmp_path / "locks"
    command = [sys.executable, "-m", "dlws.cli", "lock", "--inventory",
               str(write_inventory(tmp_path, fleet))]
    env = {**os.environ, "DLWS_LOCK_DIR": str(locks)}
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                           timeout=300)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    written = sorted(path.name for path in locks.glob("*.txt"))
    assert [name.split("-")[0] for name in written] == ["env", "uv"], written
    env_lock = next(locks.glob("env-py3.11-x86_64-*.txt")).read_text()
    for pin in ("numpy==", "mlxtend==0.25.0"):
        lines = env_lock[env_lock.index(f"\n{pin}") + 1:].splitlines()
        assert lines[0].endswith(" \\") and "--hash=sha256:" in lines[1], lines[:2]
    assert "hosts: @fake/cpu-1, @fake/cpu-2" in first.stdout, first.stdout[-2000:]
    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                            timeout=300)
    assert second.returncode == 0 and second.stdout.count(": kept (") == 2, second.stdout[-2000:]


def test_plan_json_hides_mirror_passwords(tmp_path):
    """The lock specs in the JSON name each host's indexes: a mirror's password is masked."""
    mirror = "https://lab:s3cret@pypi.lab.example/simple"
    result, out_json = run_plan(tmp_path, [("@fake/cpu-02", "debian-12", None,
                                            {"python_env_index_url": mirror})])
    assert result.returncode == 0, result.stderr[-3000:]
    text = out_json.read_text()
    assert "s3cret" not in text and "https://***:***@pypi.lab.example/simple" in text, text


def test_calculator_plan_and_verify_give_the_same_stack(tmp_path):
    """For the same host the offline calculator, deploy/plan.py and verify's derivation (the
    host's facts through dlws.facts, as verify reads them) give one stack."""
    from dlws.facts.readers import host_facts
    from dlws.roles import all_defaults
    from dlws.stack import derive
    from tests.fake_hosts import _DEFAULT_KERNELS, facts, transcript_reader

    data = {"gpu_count": 8, "gpu_model": "NVIDIA H100 80GB HBM3",
            "nvidia_driver_source": "cuda_repo", "python_env_require_hashes": False}
    result, out_json = run_plan(tmp_path, [("@fake/hgx", "debian-13", "h100x8", data)])
    assert result.returncode == 0, result.stderr[-3000:]
    [row] = json.loads(out_json.read_text())
    planned = {k: v for k, v in row.items() if k not in ("host", "locks")}

    calculator = subprocess.run(
        [sys.executable, "-m", "dlws.stack", "--os", "debian-13", *["--gpu", "10de:2330"] * 8,
         "--nvswitches", "4", "--kernel", _DEFAULT_KERNELS["debian-13"],
         "--set", "nvidia_driver_source=cuda_repo", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert calculator.returncode == 0, calculator.stderr
    calculated = json.loads(calculator.stdout)

    merged = {**all_defaults(), **data}
    verified = derive(merged, host_facts(transcript_reader(facts("debian-13", "h100x8")),
                                         merged)).as_dict()
    # The transition differs only in the facts the calculator was not given (installed driver,
    # Secure Boot): the stack itself is one.
    for stack in (planned, calculated, verified):
        stack.pop("transition")
    assert planned == calculated == verified
    # From R580 NVIDIA's repository names the fabric manager and NSCQ without a branch.
    assert planned["driver"]["packages"] == ["nvidia-driver-pinning-580", "nvidia-open",
                                             "nvidia-fabricmanager", "libnvidia-nscq"]


def test_plan_shows_each_hosts_kernel_headers(fleet_plan):
    """The headers decision is in the plan: the metapackage only where DKMS builds the module."""
    result, out_json = fleet_plan
    by_host = {row["host"]: row for row in json.loads(out_json.read_text())}
    # NVIDIA's repository on Debian 13 builds with DKMS: the flavour's metapackage follows
    # each new kernel (derived from uname -r: the recorded host lists no linux-image package).
    hgx = by_host["@fake/hgx-h100"]
    assert hgx["os"]["kernel_headers"] == ["linux-headers-6.12.48+deb13-amd64",
                                           "linux-headers-amd64"]
    assert any("linux-headers-amd64" in note and "derived from uname -r" in note
               for note in hgx["notes"]), hgx["notes"]
    # Ubuntu's prebuilt modules follow the kernel through linux-modules-nvidia-*: no metapackage.
    assert by_host["@fake/ws-4090"]["os"]["kernel_headers"] == ["linux-headers-6.8.0-51-generic"]
    assert "linux-headers-amd64" in result.stdout, result.stdout
