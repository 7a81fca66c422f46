"""Checks of roles/nvidia_driver: the planned branch is installed and, with a GPU, loaded."""

from __future__ import annotations

import pytest

from dlws.command import sh
from dlws.facts.gpu import (
    InstalledNvmlVersion,
    NvidiaModuleVersion,
    NvidiaPackages,
    NvidiaUserSpaceVersion,
)
from dlws.facts.gpu_readings import (
    loaded_modules,
    module_flavour,
    reboot_pending,
)
from dlws.facts.system import HeldPackages
from dlws.roles.nvidia_driver import BRANCH_PIN, REBOOT_MARKER, branch_pin
from dlws.stack import kernel
from dlws.stack.driver import builds_dkms

from .helpers import require_gpus


@pytest.fixture(scope="module")
def driver_plan(plan):
    if not plan.driver.branch:
        pytest.skip("the plan installs no NVIDIA driver (no GPU declared, or branch 'none')")
    return plan


def test_driver_user_space_is_the_planned_branch(read_fact, driver_plan):
    """The installed NVIDIA user space is of the planned branch."""
    version = read_fact(NvidiaUserSpaceVersion)
    assert version, "no NVIDIA user space (nvidia-smi / nvidia-utils) is installed"
    assert version.split(".")[0] == driver_plan.driver.branch, (
        f"NVIDIA user space {version} installed, plan says branch {driver_plan.driver.branch}")


def test_nvidia_smi_installed(host, driver_plan):
    """nvidia-smi is on PATH."""
    assert host.run("command -v nvidia-smi").rc == 0, "nvidia-smi is not on PATH"


def test_kernel_module_matches_user_space(host, target, driver_plan, record_fact, read_fact):
    """The loaded kernel module is the installed user space's version (else a reboot is pending)."""
    loaded = read_fact(NvidiaModuleVersion)
    installed = read_fact(InstalledNvmlVersion) or read_fact(NvidiaUserSpaceVersion)
    pending = reboot_pending(loaded, installed)
    if pending or host.file(REBOOT_MARKER).exists:
        # The fleet report shows "reboot pending" on this host's card.
        record_fact("reboot_pending", pending or f"{REBOOT_MARKER} is present: the deploy "
                    "installed a driver that loads at the next boot")
    if loaded is None:
        require_gpus(target)
        pytest.fail("the nvidia kernel module is not loaded (/proc/driver/nvidia/version, "
                    "/sys/module/nvidia/version)", pytrace=False)
    assert not pending, pending


def test_driver_branch_pinned(host, target, driver_plan, read_fact):
    """The driver's branch is pinned for apt and, with "hold", its packages are held."""
    policy = target["nvidia_driver_updates"]
    if policy == "unmanaged":
        pytest.skip("nvidia_driver_updates = 'unmanaged': no pin, no hold")
    pin = host.file(BRANCH_PIN)
    assert pin.exists, f"{BRANCH_PIN} is missing: an upgrade may switch the driver's branch"
    assert pin.content_string == branch_pin(driver_plan.driver.branch), (
        f"{BRANCH_PIN} does not pin branch {driver_plan.driver.branch}:\n{pin.content_string}")
    if policy == "hold":
        held = set(read_fact(HeldPackages))
        driver = set(read_fact(NvidiaPackages))
        assert held & driver, ("nvidia_driver_updates = 'hold' but no NVIDIA driver package is "
                               f"held (apt-mark showhold: {sorted(held)})")


def _checked_kernels(host) -> dict[str, str]:
    """Kernel release -> why it must have the module: running, default boot, headers (DKMS)."""
    kernels = {}
    in_container = host.run("[ -f /.dockerenv ] || [ -f /run/.containerenv ]").rc == 0
    if not in_container:
        kernels[host.run("uname -r").stdout.strip()] = "running"
    boot = kernel.newest_kernel(host.run("ls -1 /boot/vmlinuz-* 2>/dev/null").stdout.split())
    if boot:
        kernels.setdefault(boot, "default boot")
    # Every kernel with headers is one DKMS builds for: no module there is a failed build.
    dkms = host.run("command -v dkms >/dev/null && ls -1d /lib/modules/*/build 2>/dev/null")
    for path in dkms.stdout.split():
        kernels.setdefault(path.split("/")[3], "installed (headers present)")
    return kernels


def test_kernel_modules_built_for_each_kernel(host, target, driver_plan, record_fact):
    """Every installed kernel has the NVIDIA module of the planned branch and flavour."""
    in_container = host.run("[ -f /.dockerenv ] || [ -f /run/.containerenv ]").rc == 0
    if in_container and host.run("command -v dkms").rc != 0:
        pytest.skip("a container without DKMS: the NVIDIA module is its host's")
    kernels = _checked_kernels(host)
    assert kernels, "no kernel found to check (uname -r, /boot/vmlinuz-*, /lib/modules/*/build)"
    modules, licenses = {}, {}
    for release in kernels:
        # Debian's DKMS package names the module nvidia-current (an alias makes it `nvidia`).
        out = host.run(sh("modinfo -k {} -F version nvidia 2>/dev/null || "
                          "modinfo -k {} -F version nvidia-current 2>/dev/null", release, release))
        modules[release] = out.stdout.strip().splitlines()[0] if out.stdout.strip() else None
        lic = host.run(sh("modinfo -k {} -F license nvidia 2>/dev/null || "
                          "modinfo -k {} -F license nvidia-current 2>/dev/null", release, release))
        licenses[release] = lic.stdout.strip()
    builds = builds_dkms(driver_plan.os.id, driver_plan.driver.source)
    dkms = host.run("dkms status 2>/dev/null").stdout if builds else ""
    record_fact("kernel_modules", {k: v or "missing" for k, v in modules.items()})
    fix = ("install its headers and build the module: apt install linux-headers-{k} && "
           "dkms autoinstall -k {k}" if builds else
           "apt install the linux-modules-nvidia-... package of the planned branch for it "
           "(or redeploy)")
    problems = []
    for release, why in kernels.items():
        problems += kernel.module_problems({release: why}, modules, driver_plan.driver.branch,
                                           driver_plan.driver.flavour, licenses,
                                           fix.format(k=release))
    assert not problems, "; ".join(problems) + (f"\ndkms status:\n{dkms}" if dkms else "")


def test_nouveau_not_loaded(host, target, driver_plan):
    """The nouveau module is not loaded."""
    require_gpus(target)
    out = host.run("cat /proc/modules")
    assert out.rc == 0, f"cannot read the loaded kernel modules: {out.stderr.strip()}"
    modules = loaded_modules(out.stdout)
    assert "nouveau" not in modules, (
        "nouveau is loaded: the NVIDIA module cannot bind the GPU")


def test_kernel_module_flavour(host, target, driver_plan):
    """The loaded NVIDIA module is the planned flavour (open or proprietary)."""
    require_gpus(target)
    out = host.run("modinfo -F license nvidia")
    assert out.rc == 0, f"modinfo nvidia failed: {out.stderr}"
    # Open modules are dual-licensed ("Dual MIT/GPL"); the proprietary module says "NVIDIA".
    flavour = module_flavour(out.stdout)
    assert flavour == driver_plan.driver.flavour, (
        f"{flavour} kernel modules loaded ({out.stdout.strip()}), plan says "
        f"{driver_plan.driver.flavour}")
