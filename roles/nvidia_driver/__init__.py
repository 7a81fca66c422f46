"""NVIDIA driver role: the planned branch and flavour, from the distro or NVIDIA's repository."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import DeployError, deploy
from pyinfra.facts.server import KernelVersion
from pyinfra.operations import apt, files, server

from dlws.facts import (
    Container,
    NvidiaDriverVersion,
    NvidiaPackages,
    NvSwitchCount,
    OsRelease,
    SecureBoot,
    stable_fact,
)
from dlws.plan import host_plan
from roles import nvidia_repo
from roles.nvidia_driver import _packages
from roles.nvidia_driver.defaults import DEFAULTS, KEYS  # noqa: F401

NOUVEAU_BLACKLIST = "/etc/modprobe.d/dlws-blacklist-nouveau.conf"
REBOOT_MARKER = "/var/run/reboot-required"


def packages_for(plan, os_id: str, kernel_release: str, in_container: bool) -> list[str]:
    """The packages that install the plan's driver on this host."""
    if plan.driver_source == "cuda_repo":
        return _packages.cuda_repo(plan, os_id, in_container)
    if os_id == "ubuntu":
        server = any(_is_datacentre(gpu) for gpu in plan.gpus)
        return _packages.ubuntu_distro(plan, kernel_release, in_container, server)
    return _packages.debian_distro(plan, in_container)


def _is_datacentre(name: str) -> bool:
    """Datacentre cards (Tesla, A100, H100, L4...) take Ubuntu's -server driver builds."""
    return "GeForce" not in name and "RTX" not in name


def stale_packages(installed: dict[str, str], branch: str, wanted: list[str]) -> list[str]:
    """Installed driver packages of another branch, to purge in the same transaction.

    Only names that carry a branch (Ubuntu's and the repository's nvidia-utils-535,
    linux-modules-nvidia-535-..., nvidia-driver-pinning-535) are purged: the container toolkit,
    a CUDA toolkit and packages shared by all branches stay.
    """
    return sorted(
        name for name in installed
        if name not in wanted and _packages.named_branch(name) not in (None, branch)
    )


def _installed_branches(installed: dict[str, str]) -> set[str]:
    return {b for b in map(_packages.named_branch, installed) if b} | {
        version.split(":")[-1].split(".")[0] for name, version in installed.items()
        if name in _UNNAMED_DRIVER_PACKAGES
    }


# Driver packages whose name carries no branch: Debian's and NVIDIA's repository's.
_UNNAMED_DRIVER_PACKAGES = ("nvidia-driver", "nvidia-kernel-dkms", "nvidia-open-kernel-dkms",
                            "nvidia-open", "cuda-drivers", "nvidia-smi", "libcuda1",
                            "nvidia-utils", "libnvidia-compute")


@deploy("NVIDIA driver", data_defaults=DEFAULTS)
def install() -> None:
    plan = host_plan()
    if not plan.driver_branch:
        host.noop("no NVIDIA driver planned (no GPU declared or nvidia_driver_branch = 'none')")
        return
    os_id = stable_fact(OsRelease, host)["id"]
    in_container = bool(stable_fact(Container, host))
    installed = host.get_fact(NvidiaDriverVersion)
    if plan.driver_keep_installed:
        host.noop(f"driver {installed} kept: it satisfies the plan (branch {plan.driver_branch})")
        return

    kernel = host.get_fact(KernelVersion)
    wanted = packages_for(plan, os_id, kernel, in_container)
    switches = 0 if in_container else host.get_fact(NvSwitchCount)
    if switches:
        wanted += _fabric_manager(plan, os_id, switches)
    # Before any operation of this role: a driver that must not be replaced stops the deploy.
    to_purge = _to_replace(plan, installed, wanted, in_container) if installed else []
    if plan.driver_source == "cuda_repo":
        nvidia_repo.configure(os_id, stable_fact(OsRelease, host)["version_id"])
    if in_container:
        host.noop("container: driver user space only; kernel module, nouveau, initramfs and "
                  "reboot are the container host's business")
    else:
        _kernel_steps(plan, os_id)
    # A branch change swaps packages in one apt transaction (install new, purge old with the
    # `package-` suffix), so apt never has to hold either side back ("held broken packages").
    install_op = apt.packages(
        name=f"Install the NVIDIA driver {plan.driver_branch} ({plan.driver_flavour} kernel "
             f"modules, {plan.driver_source})",
        packages=wanted,
        no_recommends=True,
        # `--purge`: the old branch's configuration goes with it (apt-get(8)).
        extra_install_args=" ".join(["--purge", *(f"{name}-" for name in to_purge)])
        if to_purge else None,
        _env={"DEBIAN_FRONTEND": "noninteractive"},
    )
    if in_container:
        return
    if host.data.nvidia_driver_persistenced:
        # Enabled, not started: the new module loads only after the reboot (nouveau holds the
        # GPU, or the old branch's module is loaded), and the daemon exits without /dev/nvidia*.
        server.service(name="Enable nvidia-persistenced (starts with the new driver at boot)",
                       service="nvidia-persistenced", enabled=True, running=None,
                       _if=install_op.did_succeed)
    if switches and _fabric_manager(plan, os_id, switches):
        server.service(name="Enable the NVIDIA fabric manager (NVSwitch boards)",
                       service="nvidia-fabricmanager", enabled=True, running=None,
                       _if=install_op.did_succeed)
    _reboot_if_needed(install_op)


def _fabric_manager(plan, os_id: str, switches: int) -> list[str]:
    """Packages that bring NVSwitch boards up: without them CUDA fails to initialise on HGX.

    NVIDIA Fabric Manager user guide: nvidia-fabricmanager-<branch> (590 on: no branch in the
    name on NVIDIA's repository), plus the NVLink subnet manager (nvlsm) on Blackwell HGX.
    """
    # Debian's own archive has none: dlws/plan.py refuses that plan before any change.
    branch = int(plan.driver_branch)
    name = "nvidia-fabricmanager" if (plan.driver_source == "cuda_repo" and branch >= 590) \
        else f"nvidia-fabricmanager-{branch}"
    extra = ["nvlsm"] if plan.arch == "Blackwell" and plan.driver_source == "cuda_repo" else []
    return [name, *extra]


def _to_replace(plan, installed: str, wanted: list[str], in_container: bool) -> list[str]:
    """The packages of an installed driver of another branch, or DeployError saying what to set."""
    branch = installed.split(".")[0]
    if in_container:
        raise DeployError(
            f"host {host.name}: nvidia_driver_branch: the container's host runs the driver "
            f"{installed} and the user space must match it, but the plan wants R"
            f"{plan.driver_branch}; set nvidia_driver_branch to {branch!r} or 'auto'; nothing "
            "was changed")
    packages = host.get_fact(NvidiaPackages)
    branches = _installed_branches(packages)
    if not branches:
        raise DeployError(
            f"host {host.name}: nvidia_driver_branch: driver {installed} is loaded but no apt "
            "package provides it (NVIDIA's .run installer?): run `nvidia-uninstall` on the host "
            "first, or set nvidia_driver_branch to 'none' to leave it; nothing was changed")
    others = sorted(branches - {plan.driver_branch})
    if not others:
        # The new branch is installed and the old module still loaded: a reboot is pending.
        host.noop(f"driver {installed} still loaded; R{plan.driver_branch} is installed and "
                  "loads at the next boot")
        return []
    if not host.data.nvidia_driver_replace:
        raise DeployError(
            f"host {host.name}: nvidia_driver_replace: driver {installed} is installed "
            f"(packages of R{', R'.join(others)}) but the plan wants R{plan.driver_branch}; set "
            "nvidia_driver_replace = True to replace it (its packages are purged in the same apt "
            f"command), or nvidia_driver_branch = {branch!r} to keep it; nothing was changed")
    # Packages named after the old branch are purged; unnamed ones (Debian's nvidia-driver,
    # libcuda1) are upgraded by apt to the new branch's, as the new packages depend on them.
    return stale_packages(packages, plan.driver_branch, wanted)


def _kernel_steps(plan, os_id: str) -> None:
    secure_boot = host.get_fact(SecureBoot)
    builds_dkms = plan.driver_source == "cuda_repo" or os_id == "debian"
    if secure_boot and builds_dkms:
        host.noop(
            "Secure Boot is on and this driver's modules are built by DKMS: they load only "
            "once DKMS's signing key is enrolled: run `mokutil --import /var/lib/dkms/mok.pub`, "
            "set a one-time password, reboot and confirm 'Enroll MOK' at the console")
    blacklist = files.put(
        name="Blacklist nouveau so the NVIDIA module can bind the GPU",
        src=StringIO("# Managed by dlws (roles/nvidia_driver).\n"
                     "blacklist nouveau\noptions nouveau modeset=0\n"),
        dest=NOUVEAU_BLACKLIST,
        mode="644",
    )
    server.shell(name="Rebuild the initramfs without nouveau", commands=["update-initramfs -u"],
                 _if=blacklist.did_change)


def _reboot_if_needed(install_op) -> None:
    is_controller = host.name == "@local" or host.name.startswith("@local/")
    if host.data.nvidia_driver_reboot and is_controller:
        host.noop("the controller itself is never rebooted (nvidia_driver_reboot ignored): reboot "
                  "it by hand once the deploy is done")
    if host.data.nvidia_driver_reboot and not is_controller:
        server.reboot(name="Reboot to load the new NVIDIA driver", delay=10,
                      _if=install_op.did_change)
    else:
        # The same marker Ubuntu's update-notifier writes: login banners show it.
        files.file(name="Record that a reboot is pending to load the new NVIDIA driver",
                   path=REBOOT_MARKER, present=True, _if=install_op.did_change)
