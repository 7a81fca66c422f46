"""The machine in the stack: Arm64 superchips (GH200, GB200, GB10) planned from the sbsa tree and
PyPI's aarch64 wheels, refused on x86_64; open modules of R535 refused on GeForce/Workstation."""

from __future__ import annotations

import json
from typing import NamedTuple

import pytest

from dlws.stack import StackError, StackRequest, derive, find_gpu, resolve
from dlws.stack.table import TORCH_PYPI_AARCH64
from tests.stack.cases import facts
from tests.stack.test_calculator import calculator


class ArmCase(NamedTuple):
    os: str
    gpu: str
    branch: str
    source: str
    repo_path: str
    cuda: str
    torch: str  # version+variant; index None: PyPI's own aarch64 wheel


# Every Arm GPU host gets R580 open (GH200 requires the open modules; Blackwell by architecture),
# NVIDIA's toolkit 13.0 from the path's sbsa folder, torch 2.14.1's PyPI aarch64 wheel (a cu130
# build, native to R580) and TensorFlow's aarch64 wheel on the CPU. Ubuntu's archive carries
# R580 (its -server open builds for these datacentre names); Debian 12's R535 has no open
# modules and Debian 13's R550 is too old for torch's CUDA 13 wheels: NVIDIA's repository.
ARM_CASES = [
    ArmCase(os, gpu, "580", source, f"{path}/sbsa", "13.0", "2.14.1+cu130")
    for gpu in ("NVIDIA GH200 480GB", "NVIDIA GB200", "NVIDIA GB10")
    for os, source, path in (("ubuntu-24.04", "distro", "ubuntu2404"),
                             ("debian-12", "cuda_repo", "debian12"),
                             ("debian-13", "cuda_repo", "debian13"))
]


@pytest.mark.parametrize("case", ARM_CASES, ids=lambda c: f"{c.os}_{find_gpu(c.gpu).slug}")
def test_arm_superchips_on_arm64(case):
    stack = resolve(facts(case.os, case.gpu, machine="aarch64", dpkg_arch="arm64"),
                    StackRequest())
    got = (stack.driver.branch, stack.driver.flavour, stack.driver.source, stack.repo_path,
           stack.cuda.version, stack.cuda.target, stack.os.dpkg_arch,
           f"{stack.torch.version}+{stack.torch.variant}", stack.torch.index_url,
           stack.tensorflow.package, stack.python.cuda_major)
    assert got == (case.branch, "open", case.source, case.repo_path, case.cuda, "sbsa-linux",
                   "arm64", case.torch, None, "tensorflow==2.21.0", 13), stack.as_dict()
    # torch's wheel is PyPI's: pip reports it without a local version.
    assert stack.torch.installed_version == "2.14.1"
    assert any("TensorFlow on the CPU" in n and "'ngc'" in n for n in stack.notes), stack.notes
    if case.os == "ubuntu-24.04":
        assert stack.driver.packages[0] == "linux-modules-nvidia-580-server-open-generic"
    else:
        assert stack.driver.packages == ("nvidia-driver-pinning-580", "nvidia-open")


@pytest.mark.parametrize("gpu", ["NVIDIA GH200 480GB", "10de:2342", "NVIDIA GB200",
                                 "NVIDIA GB10", "10de:2e12", "NVIDIA GH200 144G HBM3e",
                                 "NVIDIA GB300"])
@pytest.mark.parametrize("os_name", ["ubuntu-24.04", "debian-12", "debian-13"])
def test_arm_only_gpu_is_refused_on_x86_64(gpu, os_name):
    with pytest.raises(StackError) as refused:
        resolve(facts(os_name, gpu), StackRequest())
    assert refused.value.constraint == "gpu_not_on_this_machine"
    assert refused.value.key == "gpu_model"
    assert "exists only in aarch64 (Arm) systems" in str(refused.value)
    assert "this host is x86_64" in str(refused.value)


def test_cpu_workstation_on_arm64_takes_pypi_aarch64_cpu_wheels():
    stack = resolve(facts("debian-12", machine="aarch64"), StackRequest())
    assert (stack.tensorflow.package, stack.torch.version, stack.torch.variant,
            stack.torch.index_url, stack.python.cuda_major) == (
        "tensorflow==2.21.0", "2.10.0", "cpu", None, None)
    # PyPI's last aarch64 CPU build (2.11 on are CUDA 13 builds there).
    assert TORCH_PYPI_AARCH64["2.10"] == "cpu" and TORCH_PYPI_AARCH64["2.11"] == "cu130"


def test_machine_changes_the_plan_in_the_calculator():
    x86 = calculator("--os", "ubuntu-24.04", "--json")
    arm = calculator("--os", "ubuntu-24.04", "--machine", "aarch64", "--json")
    assert x86.returncode == arm.returncode == 0, x86.stderr + arm.stderr
    x86, arm = json.loads(x86.stdout), json.loads(arm.stdout)
    assert (x86["os"]["machine"], x86["tensorflow"]["package"], x86["torch"]["index_url"]) == (
        "x86_64", "tensorflow-cpu==2.21.0", "https://download.pytorch.org/whl/cpu")
    assert (arm["os"]["machine"], arm["os"]["dpkg_arch"], arm["tensorflow"]["package"],
            arm["torch"]["version"], arm["torch"]["index_url"]) == (
        "aarch64", "arm64", "tensorflow==2.21.0", "2.10.0", None)
    refused = calculator("--os", "ubuntu-24.04", "--gpu", "NVIDIA GB10")
    assert refused.returncode == 2
    assert "gpu_not_on_this_machine" in refused.stderr and "NVIDIA GB10" in refused.stderr


@pytest.mark.parametrize(("machine", "dpkg_arch", "constraint"), [
    ("ppc64le", None, "unsupported_machine"),
    ("armv7l", None, "unsupported_machine"),
    ("aarch64", "armhf", "userland_not_machine"),
    ("x86_64", "i386", "userland_not_machine"),
])
def test_machines_dlws_does_not_plan_are_refused(machine, dpkg_arch, constraint):
    with pytest.raises(StackError) as refused:
        resolve(facts("debian-12", machine=machine, dpkg_arch=dpkg_arch), StackRequest())
    assert refused.value.constraint == constraint and refused.value.key == "machine"


def test_arm64_spellings_are_the_same_machine():
    for spelling in ("arm64", "aarch64"):
        stack = resolve(facts("debian-12", machine=spelling), StackRequest())
        assert (stack.os.machine, stack.os.dpkg_arch) == ("aarch64", "arm64")


def test_arm_gpu_host_with_a_branch_too_old_for_torch_is_refused_naming_why():
    with pytest.raises(StackError) as refused:
        resolve(facts("debian-13", "NVIDIA GH200 480GB", machine="aarch64"),
                StackRequest(driver_branch="550", driver_source="distro"))
    assert refused.value.constraint == "driver_too_old_for_torch_aarch64"
    assert "R580 or newer" in str(refused.value)
    # Without torch, Debian 13's own R550 (open) serves the GH200.
    stack = resolve(facts("debian-13", "NVIDIA GH200 480GB", machine="aarch64"),
                    StackRequest(torch="none"))
    assert (stack.driver.branch, stack.driver.source, stack.driver.flavour) == (
        "550", "distro", "open")


def test_gb10_ngc_tensorflow_needs_a_newer_release_than_the_table_has():
    """GB10 (sm_121) needs CUDA 12.9 or newer; the NGC releases in the table stop at 12.8."""
    with pytest.raises(StackError) as refused:
        resolve(facts("ubuntu-24.04", "NVIDIA GB10", machine="aarch64"),
                StackRequest(tensorflow="ngc"))
    assert refused.value.constraint == "ngc_gpu_unsupported"


def test_gh200_ngc_tensorflow_on_arm64():
    stack = derive({"frameworks_tensorflow": "ngc", "containers_engine": "docker"},
                   facts("ubuntu-24.04", "NVIDIA GH200 480GB", machine="aarch64"))
    assert stack.tensorflow.image == "nvcr.io/nvidia/tensorflow:25.02-tf2-py3"
    assert stack.tensorflow.package is None


# --- open kernel modules on branches whose README calls GeForce/Workstation support alpha ------


class OpenCase(NamedTuple):
    os: str
    gpu: str
    branch: str


@pytest.mark.parametrize("case", [
    OpenCase(os, gpu, "535")
    for gpu in ("NVIDIA GeForce RTX 3090", "NVIDIA RTX A6000", "NVIDIA GeForce RTX 4090",
                "NVIDIA RTX 6000 Ada Generation", "NVIDIA T1000")
    for os in ("ubuntu-22.04", "ubuntu-24.04")
], ids=lambda c: f"{c.os}_{c.gpu}")
def test_r535_open_modules_on_geforce_and_workstation_cards_are_refused(case):
    with pytest.raises(StackError) as refused:
        resolve(facts(case.os, case.gpu),
                StackRequest(driver_branch=case.branch, driver_flavour="open"))
    error = refused.value
    assert (error.key, error.constraint) == ("nvidia_driver_flavour", "open_modules_alpha")
    assert "alpha quality" in str(error) and "NVreg_OpenRmEnableUnsupportedGpus=1" in str(error)
    assert case.gpu in str(error)


def test_r535_open_modules_stay_planned_for_datacentre_cards():
    for gpu in ("NVIDIA A100-SXM4-40GB", "Tesla T4", "NVIDIA H100 80GB HBM3", "NVIDIA L40S"):
        stack = resolve(facts("ubuntu-22.04", gpu),
                        StackRequest(driver_branch="535", driver_flavour="open"))
        assert (stack.driver.branch, stack.driver.flavour) == ("535", "open"), gpu


def test_r535_auto_flavour_and_proprietary_on_geforce_are_planned():
    stack = resolve(facts("ubuntu-22.04", "NVIDIA GeForce RTX 3090"),
                    StackRequest(driver_branch="535"))
    assert (stack.driver.branch, stack.driver.flavour) == ("535", "proprietary")


def test_r550_open_modules_on_geforce_are_beta_and_noted():
    stack = resolve(facts("debian-13", "NVIDIA GeForce RTX 3090"),
                    StackRequest(driver_flavour="open"))
    assert (stack.driver.branch, stack.driver.flavour) == ("550", "open")
    assert any("beta quality" in n for n in stack.notes), stack.notes


def test_calculator_refuses_r535_open_on_rtx_3090():
    out = calculator("--os", "ubuntu-24.04", "--gpu", "NVIDIA GeForce RTX 3090",
                     "--set", "driver_branch=535", "--set", "driver_flavour=open")
    assert out.returncode == 2 and "open_modules_alpha" in out.stderr, out.stderr
