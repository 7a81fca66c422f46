"""Checks of roles/nvidia_driver: the planned branch is installed and, with a GPU, loaded."""

from __future__ import annotations

import pytest

from dlws.gpu_readings import loaded_driver_version, loaded_modules, module_flavour
from verify.conftest import require_gpus


@pytest.fixture(scope="module")
def driver_plan(plan):
    if not plan.driver.branch:
        pytest.skip("the plan installs no NVIDIA driver (no GPU declared, or branch 'none')")
    return plan


def installed_user_space(host) -> str | None:
    """The NVIDIA user-space version dpkg knows (nvidia-smi / nvidia-utils-<branch>)."""
    out = host.run("dpkg-query -W -f='${Version}\\n' nvidia-smi 'nvidia-utils-*' 2>/dev/null")
    versions = [v for v in out.stdout.split() if v and v[0].isdigit()]
    return versions[0].split("-")[0] if versions else None


def test_driver_user_space_is_the_planned_branch(host, driver_plan):
    version = installed_user_space(host)
    assert version, "no NVIDIA user space (nvidia-smi / nvidia-utils) is installed"
    assert version.split(".")[0] == driver_plan.driver.branch, (
        f"NVIDIA user space {version} installed, plan says branch {driver_plan.driver.branch}")


def test_nvidia_smi_installed(host, driver_plan):
    assert host.run("command -v nvidia-smi").rc == 0, "nvidia-smi is not on PATH"


def test_kernel_module_matches_user_space(host, target, driver_plan):
    require_gpus(target)
    proc = host.file("/proc/driver/nvidia/version")
    assert proc.exists, "the nvidia kernel module is not loaded (/proc/driver/nvidia/version)"
    # Open modules say "Open Kernel Module for x86_64  580.95.05": the version is not the next word.
    module = loaded_driver_version(proc.content_string)
    assert module == installed_user_space(host), (
        f"kernel module {module} and user space {installed_user_space(host)} disagree "
        "(a reboot after the driver change is pending?)")


def test_nouveau_not_loaded(host, target, driver_plan):
    require_gpus(target)
    out = host.run("cat /proc/modules")
    assert out.rc == 0, f"cannot read the loaded kernel modules: {out.stderr.strip()}"
    modules = loaded_modules(out.stdout)
    assert "nouveau" not in modules, (
        "nouveau is loaded: the NVIDIA module cannot bind the GPU")


def test_kernel_module_flavour(host, target, driver_plan):
    require_gpus(target)
    out = host.run("modinfo -F license nvidia")
    assert out.rc == 0, f"modinfo nvidia failed: {out.stderr}"
    # Open modules are dual-licensed ("Dual MIT/GPL"); the proprietary module says "NVIDIA".
    flavour = module_flavour(out.stdout)
    assert flavour == driver_plan.driver.flavour, (
        f"{flavour} kernel modules loaded ({out.stdout.strip()}), plan says "
        f"{driver_plan.driver.flavour}")
