"""dlws.stack.driver: branch, flavour and source, installed drivers, repository pins and EOL."""

from __future__ import annotations

import dataclasses

import pytest

from dlws.stack import (
    StackError,
    StackRequest,
    derive,
    resolve,
)
from tests.stack.cases import (
    facts,
)


@pytest.mark.parametrize(
    ("os_name", "gpu", "request_", "expected"),
    [
        pytest.param("debian-12", "NVIDIA GeForce RTX 4090", {"driver_flavour": "open"},
                     ("580", "open", "cuda_repo"), id="debian-12_rtx-4090_open-moves-to-repo"),
        pytest.param("debian-13", "NVIDIA GeForce RTX 4090", {"driver_flavour": "open"},
                     ("550", "open", "distro"), id="debian-13_rtx-4090_open-distro"),
        pytest.param("debian-12", "Tesla T4", {"cuda": "12.8"},
                     ("580", "open", "cuda_repo"), id="debian-12_t4_cuda-12.8-moves-to-repo"),
        # Ubuntu's nvidia-driver-570-server is a transitional package to 580 (facts sheet
        # section 0): a pinned 570 comes from NVIDIA's repository.
        pytest.param("ubuntu-24.04", "Tesla T4", {"driver_branch": "570"},
                     ("570", "open", "cuda_repo"), id="ubuntu-24.04_t4_driver-570"),
        pytest.param("ubuntu-24.04", "Tesla T4", {"driver_branch": "535"},
                     ("535", "proprietary", "distro"), id="ubuntu-24.04_t4_driver-535"),
    ],
)
def test_pins_steer_the_source(os_name, gpu, request_, expected):
    stack = resolve(facts(os_name, gpu), StackRequest(**request_))
    assert (stack.driver.branch, stack.driver.flavour, stack.driver.source) == expected


def test_driver_535_gets_cu126_and_cuda_12_2():
    stack = resolve(facts("ubuntu-22.04", "Tesla T4"), StackRequest(driver_branch="535"))
    assert (stack.cuda.version, stack.torch.variant) == ("12.2", "cu126")


def test_container_uses_host_driver():
    stack = resolve(facts("ubuntu-24.04", "NVIDIA L4", in_container=True,
                          installed_driver="580.95.05"), StackRequest())
    assert stack.driver.branch is None and stack.transition.keep_installed_driver
    # Beside TensorFlow's CUDA 12 wheels a CUDA 12 torch; alone, the build native to R580.
    assert stack.torch.variant == "cu126"
    alone = resolve(facts("ubuntu-24.04", "NVIDIA L4", in_container=True,
                          installed_driver="580.95.05"), StackRequest(tensorflow="none"))
    assert (alone.torch.version, alone.torch.variant) == ("2.15.0", "cu130")


@pytest.mark.parametrize(
    ("installed", "keep"),
    [pytest.param("580.95.05", True, id="same-branch-kept"),
     pytest.param("535.183.01", False, id="older-branch-replaced"),
     pytest.param(None, False, id="none-installed")],
)
def test_installed_driver_keep(installed, keep):
    host = dataclasses.replace(
        facts("ubuntu-24.04", "NVIDIA GeForce RTX 4090", installed_driver=installed),
        nvidia_packages=(("nvidia-utils-535", "535.183.01-0ubuntu1"),) if installed else ())
    stack = derive({"nvidia_driver_replace": True}, host)
    assert stack.transition.keep_installed_driver is keep
    assert (installed == "535.183.01") == any("replaced" in n for n in stack.notes)
    # The old branch's named packages go in the same apt transaction as the new branch.
    assert stack.transition.purge == (("nvidia-utils-535",) if installed == "535.183.01" else ())


def test_installed_driver_of_another_branch_is_replaced_only_when_allowed():
    host = dataclasses.replace(
        facts("ubuntu-24.04", "NVIDIA GeForce RTX 4090", installed_driver="535.183.01"),
        nvidia_packages=(("nvidia-utils-535", "535.183.01-0ubuntu1"),))
    with pytest.raises(StackError) as refused:
        derive({}, host)
    assert refused.value.key == "nvidia_driver_replace" and "535.183.01" in str(refused.value)
    # A loaded driver that no package provides (NVIDIA's .run installer) is never replaced.
    with pytest.raises(StackError, match="nvidia-uninstall"):
        derive({"nvidia_driver_replace": True}, dataclasses.replace(host, nvidia_packages=()))


@pytest.mark.parametrize(("branch", "flavour", "expected"), [
    # nvidia-driver-pinning-<branch> exists for 570, 580, 590, 610 and 615 only; other branches
    # are held by the branch-named metapackage.
    ("535", "proprietary", ["cuda-drivers-535"]),
    ("550", "open", ["nvidia-open-550"]),
    ("570", "open", ["nvidia-driver-pinning-570", "nvidia-open"]),
    ("575", "open", ["nvidia-open-575"]),
    ("580", "open", ["nvidia-driver-pinning-580", "nvidia-open"]),
    ("590", "open", ["nvidia-driver-pinning-590", "nvidia-open"]),
    ("595", "open", ["nvidia-open-595"]),
    ("610", "open", ["nvidia-driver-pinning-610", "nvidia-open"]),
    ("615", "open", ["nvidia-driver-pinning-615", "nvidia-open"]),
])
def test_repository_branch_pins(branch, flavour, expected):
    stack = resolve(facts("ubuntu-24.04", "NVIDIA GeForce RTX 4090"),
                    StackRequest(driver_branch=branch, driver_flavour=flavour,
                                 driver_source="cuda_repo"))
    assert list(stack.driver.packages) == expected


def test_r615_on_debian_13_is_open_only():
    with pytest.raises(StackError) as refused:
        resolve(facts("debian-13", "NVIDIA L4"),
                StackRequest(driver_branch="615", driver_flavour="proprietary",
                             driver_source="cuda_repo"))
    assert refused.value.constraint == "source_open_only"
    ok = resolve(facts("debian-13", "NVIDIA L4"), StackRequest(driver_branch="615"))
    assert (ok.driver.flavour, ok.driver.source, ok.cuda.version) == ("open", "cuda_repo", "13.3")
    assert any("R615 support for NVIDIA L4" in note and "unverified" in note
               for note in ok.notes), ok.notes


def test_ubuntu_595_from_the_archive():
    stack = resolve(facts("ubuntu-24.04", "NVIDIA H100 80GB HBM3"),
                    StackRequest(driver_branch="595", driver_source="distro"))
    assert list(stack.driver.packages) == [
        "linux-modules-nvidia-595-server-open-generic", "nvidia-headless-no-dkms-595-server-open",
        "nvidia-utils-595-server"]
    # CUDA 13.2 needs >= 595.45.04: R595's native CUDA.
    assert stack.cuda.version == "13.2"


def test_debian_12_r535_past_its_end_of_life_says_so():
    import datetime

    stack = resolve(facts("debian-12", "NVIDIA GeForce RTX 3090"), StackRequest())
    assert (stack.driver.branch, stack.driver.source) == ("535", "distro")
    past = datetime.date.today().strftime("%Y-%m") > "2026-06"
    notes = [n for n in stack.notes if "past NVIDIA's end of life (2026-06)" in n]
    assert bool(notes) == past, stack.notes
    if past:
        assert "Debian still patches it" in notes[0] and "cuda_repo" in notes[0]
