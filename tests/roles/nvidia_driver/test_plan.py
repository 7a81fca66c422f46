"""roles/nvidia_driver at the plan level: installed drivers, kernels, reboots, branches, desktop."""

from __future__ import annotations

import pytest

from dlws.roles import nvidia_repo
from dlws.roles.nvidia_driver import NVIDIA_DRM_MODESET
from tests.plan.cases import (
    EXTRA,
    OLD_DRIVER,
    OLD_PACKAGES,
    R_OPEN,
    U_GEFORCE_OPEN,
    U_SERVER_OPEN,
    assert_kernel_side,
    assert_repository,
    host_data,
    packages,
    run_case,
)


def test_older_driver_stops_the_deploy_naming_the_key():
    case = "ubuntu-22.04_t4_driver-535-installed"
    run = run_case(case, host_data("ubuntu-22.04", "t4", "distro", **OLD_DRIVER))
    assert run.error and f"host @fake/{case}: nvidia_driver_replace:" in run.error, run.error
    assert "535.183.01" in run.error and "580" in run.error, run.error
    assert not run.named("NVIDIA driver"), "nothing of the driver role was planned"


def test_older_driver_is_purged_in_the_same_apt_command():
    case = "ubuntu-22.04_t4_driver-535-replaced"
    run = run_case(case, host_data("ubuntu-22.04", "t4", "distro", nvidia_driver_replace=True,
                                   **OLD_DRIVER))
    assert run.error is None, run.error
    [install] = run.named("Install the NVIDIA driver")
    [command] = install.commands
    assert " --purge " in command, command
    # pyinfra puts extra_install_args before the packages: removals first, then the new driver.
    assert packages(run, "Install the NVIDIA driver") == " ".join(
        [*(f"{name}-" for name in OLD_PACKAGES), U_SERVER_OPEN]), command
    # Not the driver: the container toolkit, Ubuntu's CUDA toolkit, the shared module signatures.
    for kept in ("nvidia-container-toolkit", "libnvidia-container1", "nvidia-cuda-toolkit",
                 "linux-signatures-nvidia"):
        assert f" {kept}-" not in command and f" {kept}:" not in command, command


def test_same_branch_installed_is_kept():
    run = run_case("ubuntu-22.04_t4_driver-580-installed",
                   host_data("ubuntu-22.04", "t4", "distro",
                             facts={"driver": "580.95.05"}))
    assert run.error is None, run.error
    assert not run.named("Install the NVIDIA driver") and not run.named("nouveau")


@pytest.mark.parametrize(("case_id", "os", "gpu", "data", "driver", "reboot"), EXTRA,
                         ids=[c[0] for c in EXTRA])
def test_plan_variant(case_id, os, gpu, data, driver, reboot):
    data = dict(data)
    source = data.pop("nvidia_driver_source", "auto")
    run = run_case(case_id, host_data(os, gpu, source, **data))
    assert run.error is None, run.error
    assert packages(run, "Install the NVIDIA driver") == driver, run.describe()
    in_container = "container" in case_id
    assert_kernel_side(run, driver=bool(driver) and not in_container, reboot=reboot)
    if in_container:
        assert not any("update-initramfs" in c or "modprobe" in c for c in run.commands())
        assert not run.named("nvidia-persistenced")


def test_refused_open_modules_on_debian_12():
    case = "debian-12_rtx-4090_distro_open"
    run = run_case(case, host_data("debian-12", "rtx-4090", "distro",
                                   nvidia_driver_flavour="open"))
    assert run.error and f"host @fake/{case}: nvidia_driver_flavour:" in run.error, run.error
    assert run.ops == []


@pytest.mark.parametrize("reboot", [False, True], ids=["reboot-off", "reboot-on"])
def test_controller_is_never_rebooted(reboot):
    """@local (the controller itself) gets the pending-reboot marker, never a reboot."""
    run = run_case("local", host_data("ubuntu-24.04", "rtx-4090", "auto",
                                      nvidia_driver_reboot=reboot), local_name="@local")
    assert run.error is None, run.error
    assert packages(run, "Install the NVIDIA driver") == U_GEFORCE_OPEN
    assert_kernel_side(run, driver=True, reboot="marker")


def test_h200_on_debian_12_gets_nvidias_r580_not_debians_r535():
    """Debian 12's archive has R535, whose lists lack the H200 (10de:2335): supported-gpus.json
    of nvidia-driver 535.261.03, nvidia-detect 535.261.03 and the 535.288.01 README; 550.40.65
    is the first release listing it. auto moves to NVIDIA's repository; a pinned 535 is
    refused before anything is planned, naming R550."""
    run = run_case("debian-12_h200_auto", host_data("debian-12", "h200", "auto"))
    assert run.error is None, run.error
    assert (run.stack.driver.branch, run.stack.driver.source) == ("580", "cuda_repo")
    assert packages(run, "Install the NVIDIA driver") == R_OPEN
    assert_repository(run, "debian-12", True)
    pinned = run_case("debian-12_h200_driver-535",
                      host_data("debian-12", "h200", "auto", nvidia_driver_branch="535"))
    assert pinned.ops == [] and pinned.error, pinned.describe()
    assert "nvidia_driver_branch: R535 does not support NVIDIA H200 (10de:2335): first " \
           "listed by R550" in pinned.error, pinned.error
    assert "set nvidia_driver_branch to 550 or newer" in pinned.error, pinned.error


def test_hgx_b200_on_ubuntus_archive_gets_nvlsm_from_nvidias_repository():
    """NVLink 5 boards need NVLSM on every install path: with Ubuntu's driver, nvlsm comes from
    NVIDIA's repository, whose driver packages stay pinned away (Pin-Priority -1)."""
    run = run_case("ubuntu-24.04_b200x8_distro_nvlsm",
                   host_data("ubuntu-24.04", "b200x8", "distro"))
    assert run.error is None, run.error
    driver = packages(run, "Install the NVIDIA driver").split()
    assert driver[:3] == U_SERVER_OPEN.split() and driver[3:] == [
        "nvidia-fabricmanager-580", "libnvidia-nscq-580", "nvlsm", "infiniband-diags"]
    assert "Pin-Priority: -1" in run.uploads()[nvidia_repo.PREFERENCES]
    first_key = min(i for i, op in enumerate(run.ops) if "repository key" in op.name)
    driver_at = next(i for i, op in enumerate(run.ops) if "Install the NVIDIA driver" in op.name)
    assert first_key < driver_at, "the repository is there before nvlsm is installed"


@pytest.mark.parametrize(("gpu", "pinned", "package"), [
    ("t4", "570", "nvidia-driver-570-server"),
    ("rtx-4090", "570", "nvidia-driver-570"),
    ("a100", "550", "nvidia-driver-550-server"),
])
def test_ubuntu_transitional_branches_are_refused_from_the_archive(gpu, pinned, package):
    """Ubuntu's 570 (and 570-server) became transitional packages to 580, and so did
    550-server: pinned from the archive they would install 580, so the plan says so."""
    case = f"ubuntu-24.04_{gpu}_distro_driver-{pinned}"
    run = run_case(case, host_data("ubuntu-24.04", gpu, "distro",
                                   nvidia_driver_branch=pinned))
    assert run.ops == [] and run.error, run.describe()
    assert f"host @fake/{case}: nvidia_driver_branch:" in run.error, run.error
    assert f"{package} is a transitional package that installs R580" in run.error, run.error
    auto = run_case(f"ubuntu-24.04_{gpu}_distro_auto",
                    host_data("ubuntu-24.04", gpu, "distro"))
    assert auto.stack.driver.branch == "580", auto.describe()


def test_ubuntu_550_geforce_is_not_transitional():
    run = run_case("ubuntu-24.04_rtx-4090_distro_driver-550",
                   host_data("ubuntu-24.04", "rtx-4090", "distro", nvidia_driver_branch="550"))
    assert run.error is None, run.error
    assert packages(run, "Install the NVIDIA driver") == (
        "linux-modules-nvidia-550-generic nvidia-headless-no-dkms-550 nvidia-utils-550")


@pytest.mark.parametrize(("display", "key", "desktop"), [
    (None, "auto", False),
    ("ubuntu-24.04-gdm3", "auto", True),
    ("ubuntu-24.04-gdm3", "headless", False),
    (None, "desktop", True),
], ids=["server", "desktop", "desktop-forced-headless", "server-forced-desktop"])
def test_desktop_keeps_its_display_driver(display, key, desktop):
    """A workstation with a display manager gets Ubuntu's full driver (nvidia-driver-580-open:
    X and Wayland libraries) and nvidia-drm modeset; a server the headless build."""
    case = f"ubuntu-24.04_rtx-4090_{display or 'server'}_{key}"
    run = run_case(case, host_data("ubuntu-24.04", "rtx-4090", "distro",
                                   nvidia_driver_display=key, facts={"display": display}))
    assert run.error is None, run.error
    user_space = "nvidia-driver-580-open" if desktop else "nvidia-headless-no-dkms-580-open"
    assert packages(run, "Install the NVIDIA driver") == (
        f"linux-modules-nvidia-580-open-generic {user_space} nvidia-utils-580")
    assert run.stack.driver.display == ("desktop" if desktop else "headless")
    modeset = run.uploads().get(NVIDIA_DRM_MODESET)
    if desktop:
        assert modeset and "options nvidia-drm modeset=1\n" in modeset, run.describe()
        assert any(note.startswith("desktop driver: ") for note in run.stack.notes)
        [initramfs] = run.named("initramfs")
        assert initramfs.conditional, "rebuilt only when the blacklist or modeset changed"
    else:
        assert modeset is None, run.describe()
