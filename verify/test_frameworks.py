"""Checks of roles/frameworks: the planned TensorFlow and PyTorch builds are the ones installed."""

from __future__ import annotations

import hashlib
import json
import re
from importlib.resources import files as package_files

import pytest

from dlws.command import cmd
from dlws.facts.python import canonical

from .helpers import integrity_refusal, trains_side_by_side


def test_tensorflow_is_the_planned_build(plan, venv_packages):
    """The environment holds the planned TensorFlow distribution and version."""
    if not plan.tensorflow.package:
        pytest.skip(f"the plan installs no TensorFlow: {'; '.join(plan.notes) or 'none asked'}")
    name = canonical(plan.tensorflow.package.split("[")[0].split("==")[0])
    assert name in venv_packages, f"{name} is not installed (plan: {plan.tensorflow.package})"
    assert venv_packages[name] == plan.tensorflow.version, (
        f"{name} {venv_packages[name]} installed, plan says {plan.tensorflow.version}")


def test_torch_is_the_planned_build(plan, venv_packages):
    """The environment holds the planned torch version and build (+cpu, +cu128, ...)."""
    if not plan.torch.version:
        pytest.skip("the plan installs no PyTorch")
    found = venv_packages.get("torch")
    assert found, "torch is not installed"
    # PyTorch's index versions its builds "2.14.1+cu126"; PyPI's own aarch64 wheel is "2.10.0".
    expected = plan.torch.installed_version
    assert found == expected, (
        f"torch {found} installed, plan says {expected} ({plan.torch.variant} build"
        + (f" from {plan.torch.index_url})" if plan.torch.index_url else " from PyPI)"))


@pytest.mark.parametrize("module", ["tensorflow", "torch"])
def test_framework_imports(host, target, plan, venv_python, module, record_fact, trained):
    """Each planned framework imports in the shared environment; its version is recorded."""
    if not getattr(plan, module).version:
        pytest.skip(f"the plan installs no {module}")
    if module in target["verify_frameworks"]:
        # The training check imports it anyway: its report carries the version it imported
        # (one import of each framework per verify, not two).
        rc, result, stderr = trained(module)
        version = result.get("framework_version")
        assert version, f"import {module} failed (training check exit {rc}):\n{stderr[-2000:]}"
        record_fact(f"{module}.version", version)
        return
    refused = integrity_refusal(host, target)  # (the environment's code runs as root here)
    assert not refused, refused
    out = host.run(cmd(venv_python, "-c", f"import {module}; print({module}.__version__)"))
    assert out.rc == 0, f"import {module} failed:\n{out.stderr[-2000:]}"
    record_fact(f"{module}.version", out.stdout.strip())


# The CUDA wheels of NVIDIA's runtime libraries carry their CUDA major in their names
# (nvidia-cublas-cu12, nvidia-nccl-cu13) or, for torch's cu13x builds, in their versions
# (nvidia-cuda-runtime 13.x). Two majors in one environment load two NCCL and cuBLAS builds
# into one process (issue 12: "NCCL symbol clashes").
_CUDA_WHEEL = re.compile(r"^nvidia-[a-z0-9-]+-cu(?P<major>\d+)$")


def cuda_wheel_majors(packages: dict[str, str]) -> dict[int, list[str]]:
    """{12: ["nvidia-cublas-cu12", ...], 13: [...]} of an environment's packages."""
    majors: dict[int, list[str]] = {}
    for name, version in sorted(packages.items()):
        match = _CUDA_WHEEL.match(name)
        if match:
            majors.setdefault(int(match["major"]), []).append(name)
        elif name in ("nvidia-cuda-runtime", "cuda-toolkit") and version[:1].isdigit():
            majors.setdefault(int(version.split(".")[0]), []).append(f"{name} {version}")
    return majors


def test_one_cuda_major_in_the_environment(plan, venv_packages):
    """The environment's NVIDIA wheels are of one CUDA major, the planned one."""
    majors = cuda_wheel_majors(venv_packages)
    assert len(majors) <= 1, f"CUDA wheels of several majors in one environment: {majors}"
    if plan.python.cuda_major and majors:
        assert set(majors) == {plan.python.cuda_major}, (
            f"the plan's CUDA major is {plan.python.cuda_major}, installed: {majors}")


def test_frameworks_import_together_in_one_process(host, target, plan, venv_python, trained,
                                                   record_fact):
    """Both frameworks share one environment: import them in one process, as a notebook does,
    and touch the GPU from both where they run on it. A CPU host that trains both side by side
    imports torch into its TensorFlow training's process (--also-import), after it trained."""
    if not (plan.tensorflow.package and plan.torch.version):
        pytest.skip("the plan installs one framework only")
    if trains_side_by_side(target, plan):
        rc, report, stderr = trained("tensorflow")
        found = report.get("also_imported") or {}
        assert found.get("version"), (
            f"torch was not imported into TensorFlow's process (training exit {rc}): "
            f"{found.get('error') or stderr[-3000:]}")
        record_fact("frameworks.one_process", {
            "tensorflow": report.get("framework_version"), "torch": found["version"],
            "tf_gpus": report.get("gpus_visible", 0), "torch_cuda": False,
            "where": "the TensorFlow training's process"})
        return
    script = (
        "import json, tensorflow as tf, torch\n"
        "gpus = tf.config.list_physical_devices('GPU')\n"
        "cuda = torch.cuda.is_available()\n"
        "if cuda:\n"
        "    (torch.ones(2, device='cuda') * 2).sum().item()\n"
        "if gpus:\n"
        "    tf.reduce_sum(tf.ones([2]) * 2).numpy()\n"
        "print(json.dumps({'tensorflow': tf.__version__, 'torch': torch.__version__, "
        "'tf_gpus': len(gpus), 'torch_cuda': cuda}))\n"
    )
    refused = integrity_refusal(host, target)  # (the environment's code runs as root here)
    assert not refused, refused
    out = host.run(cmd(venv_python, "-c", script))
    assert out.rc == 0, f"importing both frameworks in one process failed:\n{out.stderr[-3000:]}"
    report = json.loads(out.stdout.strip().splitlines()[-1])
    record_fact("frameworks.one_process", report)


def test_burn_in_command_installed(host, target):
    """dlws-burn-in is installed and runs (--help)."""
    burn_in = host.file(target["frameworks_burn_in_path"])
    assert burn_in.exists, f"{burn_in.path} is missing (dlws-burn-in)"
    out = host.run(cmd(target["frameworks_burn_in_path"], "--help"))
    assert out.rc == 0 and "--minutes" in out.stdout, out.stderr[-500:]
    assert host.package("stress-ng").is_installed, "stress-ng (the burn-in's load) is missing"


# What the daily timer keeps on the host (roles/frameworks DAILY_DIR) and at most how old.
DAILY_DIR, DAILY_MAX_AGE_S = "/var/lib/dlws/daily", 2 * 86400


def test_daily_check_results_collected(host, target, record_fact):
    """The daily check's timer is enabled and its last run, within its period, passed."""
    if not target["frameworks_daily_check"]:
        pytest.skip("frameworks_daily_check is false: no daily timer")
    if host.file("/.dockerenv").exists:
        pytest.skip("a container: the deploy installs no timer without systemd")
    timer = host.service("dlws-daily-check.timer")
    assert timer.is_enabled, "dlws-daily-check.timer is not enabled"
    finished = host.file(f"{DAILY_DIR}/finished")
    assert finished.exists, (f"the daily check has not run yet ({finished.path} missing); "
                             "`systemctl start dlws-daily-check.service` runs it now")
    age = int(host.check_output("date +%s")) - finished.mtime.timestamp()
    record_fact("daily.finished", finished.content_string.strip())
    results = {}
    for part in ("train", "burn-in"):
        rc = host.file(f"{DAILY_DIR}/{part}.rc")
        results[part] = rc.content_string.strip() if rc.exists else "missing"
        document = host.file(f"{DAILY_DIR}/{part}.json")
        if document.exists and part == "train":
            train = (json.loads(document.content_string).get("results") or [{}])[0]
            if "samples_per_second" in train:
                record_fact("daily.torch.samples_per_second", train["samples_per_second"])
    record_fact("daily.exit_codes", results)
    assert age <= DAILY_MAX_AGE_S, f"the daily check last finished {age / 3600:.0f} h ago"
    assert results == {"train": "0", "burn-in": "0"}, (
        f"the last daily check failed (exit codes {results}); see {DAILY_DIR}")


@pytest.mark.parametrize(("command", "key", "source"), [
    ("dlws-train-check", "frameworks_train_check_path", "dlws_train_check.py"),
    ("dlws-burn-in", "frameworks_burn_in_path", "dlws_burn_in.py"),
])
def test_installed_commands_are_the_controllers(host, target, command, key, source):
    """The installed dlws-train-check and dlws-burn-in are the controller's files, byte for byte."""
    # What lab members and the daily check run is what the role installed: the controller's
    # file behind the environment's shebang, byte for byte, and the link points at it. (verify
    # itself runs the controller's copy, never this one.)
    prefix = target["python_env_prefix"]
    script = (package_files("dlws.roles.frameworks") / "files" / source).read_text()
    expected = hashlib.sha256(f"#!{prefix}/bin/python\n{script}".encode()).hexdigest()
    installed = f"{prefix}/bin/{command}"
    out = host.run(cmd("sha256sum", "--", installed))
    found = out.stdout.split()[0] if out.rc == 0 and out.stdout.strip() else None
    assert found == expected, (f"{installed} has sha256 {found or out.stderr.strip()}, the "
                               f"controller's roles/frameworks/files/{source} {expected}: "
                               "replaced or edited on the host (redeploy)")
    link = host.file(target[key])
    assert link.is_symlink and link.linked_to == installed, (
        f"{target[key]} does not link to {installed} (found "
        f"{link.linked_to if link.is_symlink else 'no link'})")
