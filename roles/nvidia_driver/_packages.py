"""Driver package names per install source; private to roles/nvidia_driver."""

from __future__ import annotations

from roles.stack import Stack

# Ubuntu's signed, prebuilt modules: linux-modules-nvidia-<branch>[-server][-open]-<flavour>,
# where flavour is the running kernel's ("generic", "aws", "generic-hwe-24.04"...), with
# nvidia-driver-<branch>[-server][-open] or, on servers, nvidia-headless-no-dkms-<branch>... and
# nvidia-utils-<branch>[-server]. https://ubuntu.com/server/docs/nvidia-drivers-installation
# Datacentre cards take the -server (ERD) builds.


def kernel_flavour(kernel_release: str) -> str:
    """"6.8.0-45-generic" -> "generic"; "6.8.0-1015-aws" -> "aws"."""
    parts = kernel_release.split("-")
    return "-".join(parts[2:]) if len(parts) > 2 else "generic"


def ubuntu_distro(plan: Stack, kernel_release: str, in_container: bool,
                  server: bool) -> list[str]:
    branch = plan.driver_branch
    srv = "-server" if server else ""
    open_ = "-open" if plan.driver_flavour == "open" else ""
    if in_container:
        # User space only: the host's kernel carries the module.
        return [f"libnvidia-compute-{branch}{srv}", f"nvidia-utils-{branch}{srv}"]
    return [
        f"linux-modules-nvidia-{branch}{srv}{open_}-{kernel_flavour(kernel_release)}",
        f"nvidia-headless-no-dkms-{branch}{srv}{open_}",
        f"nvidia-utils-{branch}{srv}",
    ]


def debian_distro(plan: Stack, in_container: bool) -> list[str]:
    # https://wiki.debian.org/NvidiaGraphicsDrivers: the module is built by DKMS.
    user_space = ["nvidia-smi", "libcuda1", "libnvidia-ml1", "nvidia-persistenced"]
    if in_container:
        return user_space
    module = "nvidia-open-kernel-dkms" if plan.driver_flavour == "open" else "nvidia-kernel-dkms"
    firmware = ["firmware-nvidia-gsp"] if plan.driver_flavour == "open" else []
    return [module, *firmware, "nvidia-driver", *user_space]


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
