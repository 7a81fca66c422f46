"""Driver package names per install source; private to roles/nvidia_driver."""

from __future__ import annotations

import re

from dlws.stack import Stack

# Ubuntu's signed, prebuilt modules: linux-modules-nvidia-<branch>[-server][-open]-<flavour>,
# where flavour is the running kernel's ("generic", "aws", "generic-hwe-22.04"...), with
# nvidia-headless-no-dkms-<branch>[-server][-open] and nvidia-utils-<branch>[-server].
# https://ubuntu.com/server/docs/nvidia-drivers-installation
# Datacentre cards take the -server (ERD) builds.

# The kernel series each Ubuntu release ships as its GA kernel; any other series of the
# generic/lowlatency flavours is an HWE kernel, whose module metapackage is
# linux-modules-nvidia-<...>-generic-hwe-<release> (the plain -generic one follows the GA
# kernel and would pull a second kernel onto an HWE host).
UBUNTU_GA_KERNELS = {"22.04": "5.15", "24.04": "6.8"}
HWE_FLAVOURS = ("generic", "lowlatency", "generic-64k")
# "6.8.0-45-generic" -> series 6.8, ABI 45, flavour "generic"
KERNEL_RELEASE = re.compile(r"^(?P<series>\d+\.\d+)\.\d+-(?P<abi>\d+)-(?P<flavour>.+)$")


def kernel_flavour(kernel_release: str, os_release: str | None = None) -> str:
    """The module metapackage's flavour for a running Ubuntu kernel.

    "6.8.0-45-generic" -> "generic" (24.04) or "generic-hwe-22.04" (22.04); "6.8.0-1015-aws"
    -> "aws".
    """
    match = KERNEL_RELEASE.match(kernel_release.strip())
    if not match:
        return "generic"
    flavour = match["flavour"]
    ga = UBUNTU_GA_KERNELS.get(os_release or "")
    if ga and flavour in HWE_FLAVOURS and match["series"] != ga:
        return f"{flavour}-hwe-{os_release}"
    return flavour


def ubuntu_distro(plan: Stack, kernel_release: str, in_container: bool,
                  server: bool) -> list[str]:
    branch = plan.driver_branch
    srv = "-server" if server else ""
    open_ = "-open" if plan.driver_flavour == "open" else ""
    if in_container:
        # User space only: the host's kernel carries the module.
        return [f"libnvidia-compute-{branch}{srv}", f"nvidia-utils-{branch}{srv}"]
    flavour = kernel_flavour(kernel_release, plan.os_release)
    return [
        f"linux-modules-nvidia-{branch}{srv}{open_}-{flavour}",
        f"nvidia-headless-no-dkms-{branch}{srv}{open_}",
        f"nvidia-utils-{branch}{srv}",
    ]


def debian_distro(plan: Stack, in_container: bool) -> list[str]:
    # https://wiki.debian.org/NvidiaGraphicsDrivers: the module is built by DKMS.
    user_space = ["nvidia-smi", "libcuda1", "libnvidia-ml1"]
    if in_container:
        # The daemon needs the host's devices and init: it belongs to the container's host.
        return user_space
    module = "nvidia-open-kernel-dkms" if plan.driver_flavour == "open" else "nvidia-kernel-dkms"
    firmware = ["firmware-nvidia-gsp"] if plan.driver_flavour == "open" else []
    return [module, *firmware, "nvidia-driver", *user_space, "nvidia-persistenced"]


def cuda_repo(plan: Stack, os_id: str, in_container: bool) -> list[str]:
    # NVIDIA's driver installation guide (r580): pin the branch with nvidia-driver-pinning-<br>,
    # then nvidia-open (open modules) or cuda-drivers (proprietary). From 590 on, Ubuntu
    # packages drop the branch from their names (libnvidia-compute, nvidia-utils).
    branch = int(plan.driver_branch)
    pin = f"nvidia-driver-pinning-{branch}"
    if in_container:
        if os_id == "ubuntu":
            suffix = "" if branch >= 590 else f"-{branch}"
            return [pin, f"libnvidia-compute{suffix}", f"nvidia-utils{suffix}"]
        return [pin, "nvidia-driver-cuda", "libcuda1"]
    return [pin, "nvidia-open" if plan.driver_flavour == "open" else "cuda-drivers"]


# A driver branch in a package name: nvidia-utils-535-server, libnvidia-cfg1-535,
# linux-modules-nvidia-535-server-open-generic, nvidia-firmware-535-535.183.01,
# nvidia-driver-pinning-535. Packages without one (Debian's nvidia-driver, NVIDIA's nvidia-open)
# are upgraded or replaced by apt itself when the new packages depend on or conflict with them.
NAMED_BRANCH = re.compile(r"nvidia(?:-[a-z0-9]+)*?-(?P<branch>[3-9]\d\d)(?:-|$)")
# NVIDIA packages that are not the driver and stay whatever the driver branch.
NOT_DRIVER = re.compile(r"^(lib)?nvidia-(container|docker|cuda|cudnn|fs|gds)")


def named_branch(package: str) -> str | None:
    """The driver branch a package's name carries, or None."""
    if NOT_DRIVER.match(package):
        return None
    match = NAMED_BRANCH.search(package)
    return match["branch"] if match else None
