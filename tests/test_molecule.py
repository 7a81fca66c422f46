"""Molecule scenarios run for real: converge, idempotence, verify; then planted faults on `default`.

`default` converges once (the session fixture `default_scenario`, tests/conftest.py); the fault
tests here and tests/test_proof.py reuse its container (kept with --destroy never) so the same
bare-image converge is not paid twice.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dlws.sandbox.images import ensure_debian_image
from tests.helpers import ROOT, changed_operations, pyinfra_json, run_verify

pytestmark = pytest.mark.integration
VENV_BIN = str(Path(sys.executable).parent)
DEFAULT_CONTAINER = "dlws-molecule-default"
DEFAULT_INVENTORY = "molecule/default/inventory.py"


def molecule(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run molecule from the project root with the venv's ansible on PATH; output combined."""
    return subprocess.run(
        [f"{VENV_BIN}/molecule", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
             "ANSIBLE_NOCOLOR": "1", "PY_COLORS": "0", **(env or {})},
    )


def tail(out: subprocess.CompletedProcess, n: int = 6000) -> str:
    return (out.stdout + out.stderr)[-n:]


def test_default_scenario_converges_idempotent_and_verified(default_scenario):
    out = default_scenario
    assert out.returncode == 0, tail(out)
    text = out.stdout + out.stderr
    # Molecule's recap says "Executed: Successful" even for a failed idempotence: read the error.
    assert "Idempotence test failed" not in text, tail(out)
    assert "default > verify: Executed: Successful" in text, tail(out)


def test_second_pyinfra_run_reports_no_change(default_scenario):
    rc, document, log = pyinfra_json(DEFAULT_INVENTORY)
    assert rc == 0, log[-3000:]
    assert document["results"]["totals"]["success"] == 0, changed_operations(document)


def test_idempotence_step_fails_when_an_operation_always_changes(default_scenario):
    env = {"DLWS_DEPLOY": "tests/fixtures/always_changes.py"}
    converge = molecule("converge", "-s", "default", env=env)
    assert converge.returncode == 0, tail(converge)
    out = molecule("idempotence", "-s", "default", env=env)
    assert out.returncode != 0, tail(out)
    assert "Idempotence test failed" in out.stdout + out.stderr, tail(out)


def test_verify_fails_on_an_accuracy_bar_of_0_999(default_scenario, tmp_path):
    inventory = tmp_path / "strict.py"
    inventory.write_text(
        f'strict = [("@docker/{DEFAULT_CONTAINER}", {{"gpu_count": 0, "verify_offline": True, '
        '"verify_min_accuracy": 0.999, "verify_sample_min_accuracy": 0.999, '
        '"verify_frameworks": ["torch"]})]\n'
    )
    out = run_verify(str(inventory), "-k", "test_mnist_trains")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "FAILED verify/test_training.py::test_mnist_trains" in out.stdout
    assert "under the bar 0.999" in out.stdout, out.stdout[-3000:]


def test_verify_fails_without_tensorflow_then_deploy_repairs(default_scenario):
    uninstall = subprocess.run(
        ["docker", "exec", DEFAULT_CONTAINER, "/opt/dlws/venv/bin/uv", "pip", "uninstall",
         "--python", "/opt/dlws/venv/bin/python", "tensorflow-cpu"],
        capture_output=True, text=True)
    assert uninstall.returncode == 0, uninstall.stderr
    out = run_verify(DEFAULT_INVENTORY, "-k", "tensorflow")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "test_tensorflow_is_the_planned_build" in out.stdout
    assert "tensorflow-cpu is not installed" in out.stdout, out.stdout[-3000:]
    rc, document, log = pyinfra_json(DEFAULT_INVENTORY)
    assert rc == 0, log[-3000:]
    assert changed_operations(document) == [
        "Deep learning frameworks | Install the frameworks, numpy and the lab's packages from the "
        "hash lock"], log[-3000:]
    assert run_verify(DEFAULT_INVENTORY, "-k", "tensorflow").returncode == 0


def test_a_wheel_not_in_the_hash_lock_stops_the_install(default_scenario, tmp_path):
    """The real installer refuses a numpy wheel whose sha256 the (tampered) lock does not list;
    verify names the lock that differs; the committed locks then repair the host."""
    for lock in (ROOT / "locks").glob("*.txt"):
        text = lock.read_text()
        if lock.name.startswith("env-"):
            # every hash of numpy's files, changed: no file PyPI serves can match any more
            text = re.sub(r"(?m)^(numpy==\S+ \\\n(?:\s+--hash=sha256:\w+.*\n)+)",
                          lambda m: re.sub(r"sha256:\w{6}", "sha256:000000", m[1]), text)
        (tmp_path / lock.name).write_text(text)
    uninstall = subprocess.run(
        ["docker", "exec", DEFAULT_CONTAINER, "/opt/dlws/venv/bin/uv", "pip", "uninstall",
         "--python", "/opt/dlws/venv/bin/python", "numpy"], capture_output=True, text=True)
    assert uninstall.returncode == 0, uninstall.stderr
    rc, document, log = pyinfra_json(DEFAULT_INVENTORY, env={"DLWS_LOCK_DIR": str(tmp_path)})
    assert rc != 0, "the install went ahead with a lock that matches no numpy file"
    assert "hash mismatch for `numpy" in log.lower(), log[-3000:]
    out = run_verify(DEFAULT_INVENTORY, "-k", "hash_lock")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "differs from the controller's locks/env-" in out.stdout, out.stdout[-3000:]
    rc, document, log = pyinfra_json(DEFAULT_INVENTORY)
    assert rc == 0, log[-3000:]
    assert run_verify(DEFAULT_INVENTORY, "-k", "hash_lock or numpy").returncode == 0


def declare(tmp_path, name: str, **data) -> str:
    """An inventory declaring the default scenario's container with `data`: a planted fault."""
    inventory = tmp_path / f"{name}.py"
    fields = {"gpu_count": 0, "verify_offline": True, **data}
    inventory.write_text(f"{name} = [(\"@docker/{DEFAULT_CONTAINER}\", {fields!r})]\n")
    return str(inventory)


def test_verify_fails_on_a_wrong_version(default_scenario, tmp_path):
    out = run_verify(declare(tmp_path, "older", frameworks_torch="2.12.0"),
                     "-k", "test_torch_is_the_planned_build")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "torch 2.13.0+cpu installed, plan says 2.12.0+cpu" in out.stdout, out.stdout[-3000:]


def test_verify_fails_when_more_gpus_are_declared_than_present(default_scenario, tmp_path):
    out = run_verify(declare(tmp_path, "gpus", gpu_count=2, gpu_model="NVIDIA L4"),
                     "-k", "test_gpu_count")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "FAILED verify/test_hardware.py::test_gpu_count" in out.stdout, out.stdout[-3000:]
    assert "nvidia-smi" in out.stdout, out.stdout[-3000:]


def test_verify_fails_when_training_runs_on_the_cpu_where_a_gpu_is_declared(default_scenario,
                                                                           tmp_path):
    inventory = declare(tmp_path, "forced", gpu_count=1, gpu_model="NVIDIA L4",
                        verify_frameworks=["torch"], frameworks_torch="2.13.0")
    out = run_verify(inventory, "-k", "test_mnist_trains and torch")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "sees no GPU but --require-gpu" in out.stdout, out.stdout[-3000:]


def test_verify_fails_when_the_extra_ca_is_gone_then_deploy_repairs(default_scenario):
    removed = subprocess.run(
        ["docker", "exec", DEFAULT_CONTAINER, "sh", "-c",
         "rm /usr/local/share/ca-certificates/dlws/*.crt && update-ca-certificates --fresh"],
        capture_output=True, text=True)
    assert removed.returncode == 0, removed.stderr
    out = run_verify(DEFAULT_INVENTORY, "-k", "test_extra_ca_certificates_trusted")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "CA certificate" in out.stdout and "is missing" in out.stdout, out.stdout[-3000:]
    rc, _, log = pyinfra_json(DEFAULT_INVENTORY)
    assert rc == 0, log[-3000:]
    assert run_verify(DEFAULT_INVENTORY, "-k", "test_extra_ca_certificates_trusted"
                      ).returncode == 0


def test_verify_fails_when_a_lab_user_leaves_a_gpu_group_then_deploy_repairs(default_scenario):
    removed = subprocess.run(["docker", "exec", DEFAULT_CONTAINER, "gpasswd", "-d", "ada",
                              "render"], capture_output=True, text=True)
    assert removed.returncode == 0, removed.stderr
    # The check by its name: other checks mention lab users too (the notebook service's, which
    # skip on this host without the service).
    check = "test_lab_users_in_the_gpu_and_lab_groups"
    out = run_verify(DEFAULT_INVENTORY, "-k", check)
    assert out.returncode == 1, out.stdout[-3000:]
    assert "test_lab_users_in_the_gpu_and_lab_groups" in out.stdout, out.stdout[-3000:]
    assert "'ada': \"not in ['render']" in out.stdout, out.stdout[-3000:]
    rc, document, log = pyinfra_json(DEFAULT_INVENTORY)
    assert rc == 0, log[-3000:]
    assert changed_operations(document) == [
        "Base system | Lab users | Put ada in the GPU and lab groups (video, render, lab)"], \
        changed_operations(document)
    out = run_verify(DEFAULT_INVENTORY, "-k", check)
    assert out.returncode == 0 and "1 passed" in out.stdout and "skipped" not in out.stdout, (
        out.stdout[-3000:])


def train_check(*args: str) -> tuple[int, dict]:
    out = subprocess.run(["docker", "exec", DEFAULT_CONTAINER, "dlws-train-check", *args,
                          "--json", "-"], capture_output=True, text=True)
    assert out.stdout.strip(), f"no JSON report (exit {out.returncode}):\n{out.stderr[-3000:]}"
    return out.returncode, json.loads(out.stdout)


def test_training_check_ddp_path_runs_over_gloo_on_the_cpu(default_scenario):
    # The multi-GPU code (one process per device, gradients all-reduced by DDP) without a GPU.
    rc, report = train_check("--framework", "torch", "--offline", "--ddp-cpu-workers", "2")
    assert report.get("results"), report
    result = report["results"][0]
    assert rc == 0 and result["status"] == "passed", report
    assert result["replicas"] == 2 and "gloo" in result["device_detail"], result


def test_matmul_probe_reports_tflops(default_scenario):
    rc, report = train_check("--matmul-probe", "cpu", "--matmul-size", "256",
                             "--matmul-iterations", "3")
    assert rc == 0 and report["matmul"][0]["tflops"] > 0, report


def test_verify_names_the_fields_of_a_stale_deploy_then_a_redeploy_passes(default_scenario,
                                                                            tmp_path):
    """The inventory changes after a deploy (TensorFlow pinned off): verify names each field
    of the recorded stack that differs from what the new data gives, and says to redeploy; a
    redeploy records the new stack and verify passes. The original data is then restored."""
    sys.path.insert(0, str(ROOT))
    from dlws.sandbox.data import controller_data

    data = {**controller_data(), "gpu_count": 0, "frameworks_tensorflow": "none",
            # No hash lock exists for this one-off environment; pins by version only.
            "python_env_require_hashes": False}
    inventory = tmp_path / "changed.py"
    inventory.write_text(f"changed = [(\"@docker/{DEFAULT_CONTAINER}\", {data!r})]\n")
    out = run_verify(str(inventory), "-k", "test_recorded_stack")
    assert out.returncode == 1, out.stdout[-3000:]
    text = out.stdout
    assert "deployed from other data or another dlws version; redeploy" in text, text[-3000:]
    assert "host data: the inventory's data for this host changed" in text, text[-3000:]
    assert "tensorflow.version: recorded '2.21.0', expected None" in text, text[-3000:]
    assert "tensorflow.package: recorded 'tensorflow-cpu==2.21.0', expected None" in text
    rc, _, log = pyinfra_json(str(inventory))
    assert rc == 0, log[-3000:]
    assert run_verify(str(inventory), "-k", "test_recorded_stack").returncode == 0
    rc, _, log = pyinfra_json(DEFAULT_INVENTORY)
    assert rc == 0, log[-3000:]
    out = run_verify(DEFAULT_INVENTORY, "-k", "test_recorded_stack")
    assert out.returncode == 0, out.stdout[-3000:]


@pytest.mark.slow
def test_cuda_scenario_converges_idempotent_and_verified(docker_engine):
    ensure_debian_image("trixie")
    out = molecule("test", "-s", "cuda")
    assert out.returncode == 0, tail(out)
    text = out.stdout + out.stderr
    assert "Idempotence test failed" not in text, tail(out)
    assert "cuda > verify: Executed: Successful" in text, tail(out)
    # The CUDA checks ran (pytest's -ra summary would list them as SKIPPED otherwise).
    assert "SKIPPED" in text and not re.search(r"SKIPPED .*test_cuda\.py", text), tail(out)


def test_ubuntu_scenario_without_its_image_ends_with_a_clear_message(docker_engine):
    """The Ubuntu family's one scenario (release 24.04 by default) either runs or says why not."""
    out = molecule("test", "-s", "ubuntu")
    text = " ".join((out.stdout + out.stderr).split())  # Ansible wraps long messages
    if "ubuntu:24.04 is available" in text:
        pytest.skip("this machine can pull ubuntu:24.04: the scenario ran for real")
    assert out.returncode != 0, tail(out)
    assert "cannot be had on this machine" in text, tail(out)
