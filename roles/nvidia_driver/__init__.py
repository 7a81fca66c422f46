"""NVIDIA driver role: the planned branch and flavour, from the distribution or NVIDIA's repository."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import DeployError, deploy
from pyinfra.facts.server import KernelVersion
from pyinfra.operations import apt, files, server

from roles import nvidia_repo
from roles.facts import Container, NvidiaDriverVersion, NvidiaPackages, OsRelease, SecureBoot
from roles.nvidia_driver import _packages
from roles.plan import host_plan
from roles.schema import Key, defaults

KEYS = [
    Key("nvidia_driver_branch", "auto", (str,),
        "driver branch: auto = newest the GPU and source allow (long-term R580 where it "
        "fits); none = no driver; or a branch such as '580'"),
    Key("nvidia_driver_flavour", "auto", (str,),
        "kernel modules: auto = open on Turing and newer from R560 (required on Blackwell), "
        "proprietary on Maxwell/Pascal/Volta", choices=("auto", "open", "proprietary")),
    Key("nvidia_driver_source", "auto", (str,),
        "distro (Ubuntu's signed prebuilt modules / Debian non-free) or cuda_repo (NVIDIA's "
        "repository); auto = distro where it has the planned branch",
        choices=("auto", "distro", "cuda_repo")),
    Key("nvidia_driver_replace", False, (bool,),
        "replace an installed driver that does not satisfy the plan (else the deploy stops "
        "and says so)"),
    Key("nvidia_driver_reboot", False, (bool,),
        "reboot after a driver install when needed (never the controller, never a container); "
        "false = report that a reboot is pending"),
    Key("nvidia_driver_persistenced", True, (bool,), "enable nvidia-persistenced"),
]
DEFAULTS = defaults(KEYS)

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


def stale_packages(installed: dict[str, str], branch: str) -> list[str]:
    """Installed driver packages of another branch, to purge in the same transaction."""
    stale = []
    for name, version in installed.items():
        if not (name.startswith(("nvidia-", "libnvidia-", "linux-modules-nvidia-"))):
            continue
        if version.split(".")[0].split(":")[-1] != branch:
            stale.append(name)
    return sorted(stale)


@deploy("NVIDIA driver", data_defaults=DEFAULTS)
def install() -> None:
    plan = host_plan()
    if not plan.driver_branch:
        host.noop("no NVIDIA driver planned (no GPU declared or nvidia_driver_branch = 'none')")
        return
    os_id = host.get_fact(OsRelease)["id"]
    in_container = bool(host.get_fact(Container))
    installed = host.get_fact(NvidiaDriverVersion)
    if plan.driver_keep_installed:
        host.noop(f"driver {installed} kept: it satisfies the plan (branch {plan.driver_branch})")
        return
    to_purge: list[str] = []
    if installed:
        if not host.data.nvidia_driver_replace:
            raise DeployError(
                f"host {host.name}: nvidia_driver_branch: driver {installed} is installed but the "
                f"plan wants branch {plan.driver_branch}; set nvidia_driver_replace = True to "
                "replace it, or nvidia_driver_branch to its branch; nothing was changed")
        to_purge = stale_packages(host.get_fact(NvidiaPackages), plan.driver_branch)

    if plan.driver_source == "cuda_repo":
        os_release = host.get_fact(OsRelease)
        nvidia_repo.configure(os_id, os_release["version_id"])

    kernel = host.get_fact(KernelVersion)
    wanted = packages_for(plan, os_id, kernel, in_container)
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
        extra_install_args=" ".join(f"{name}-" for name in to_purge) or None,
        _env={"DEBIAN_FRONTEND": "noninteractive"},
    )
    if in_container:
        return
    if host.data.nvidia_driver_persistenced:
        server.service(name="Enable nvidia-persistenced", service="nvidia-persistenced",
                       enabled=True, running=True, _if=install_op.did_succeed)
    _reboot_if_needed(install_op)


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
    if host.name == "@local" or host.name.startswith("@local/"):
        host.noop("the controller itself is never rebooted: reboot it by hand if the driver "
                  "changed")
        return
    if host.data.nvidia_driver_reboot:
        server.reboot(name="Reboot to load the new NVIDIA driver", delay=10,
                      _if=install_op.did_change)
    else:
        files.file(name="Record that a reboot is pending (nvidia_driver_reboot = false)",
                   path=REBOOT_MARKER, present=True, _if=install_op.did_change)
