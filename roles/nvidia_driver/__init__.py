"""NVIDIA driver role: the planned branch and flavour, from the distro or NVIDIA's repository."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from dlws.command import cmd
from dlws.facts.system import HeldPackages
from dlws.plan import host_plan
from dlws.roles import nvidia_repo
from dlws.roles.base import _apt
from dlws.roles.nvidia_driver.defaults import DEFAULTS, KEYS  # noqa: F401

NOUVEAU_BLACKLIST = "/etc/modprobe.d/dlws-blacklist-nouveau.conf"
NVIDIA_DRM_MODESET = "/etc/modprobe.d/dlws-nvidia-drm.conf"
REBOOT_MARKER = "/var/run/reboot-required"
BRANCH_PIN = "/etc/apt/preferences.d/dlws-nvidia-driver"


def branch_pin(branch: str) -> str:
    """apt preferences that keep every NVIDIA driver package on one branch.

    Versions of the branch get priority 1000, every other version keeps 500, so apt and
    unattended-upgrades always choose the branch (apt_preferences(5)); packages with no version
    of that branch (the CUDA toolkit, the container toolkit) are not affected. This is what
    NVIDIA's own nvidia-driver-pinning-<branch> package does on its repository.
    """
    return (
        "# Managed by dlws (roles/nvidia_driver): nvidia_driver_updates keeps the driver on "
        f"branch {branch}.\n"
        f"Explanation: the NVIDIA driver stays on branch {branch}; change nvidia_driver_branch "
        "and deploy to move it\n"
        "Package: *nvidia* libcuda* libnvcuvid* libnvoptix* libxnvctrl* cuda-drivers*\n"
        f"Pin: version {branch}.*\n"
        "Pin-Priority: 1000\n"
    )


@deploy("NVIDIA driver", data_defaults=DEFAULTS)
def install() -> None:
    """Install the planned driver (stack.driver): its packages, and where the host loads its own
    module, nouveau's blacklist, persistenced, the fabric manager and the reboot.

    Keys: nvidia_driver_persistenced, nvidia_driver_reboot (the choice of branch, flavour,
    source and display build (nvidia_driver_display), and a replacement, are the plan's:
    dlws.stack.driver). A desktop also gets nvidia-drm modeset.
    """
    plan = host_plan()
    driver, transition = plan.driver, plan.transition
    if not driver.branch:
        host.noop("no NVIDIA driver planned (no GPU declared, a container, or "
                  "nvidia_driver_branch = 'none')")
        return
    if transition.keep_installed_driver:
        host.noop(f"driver {transition.installed_driver} kept: it satisfies the plan (branch "
                  f"{driver.branch})")
        _pin_branch(driver.branch)
        return
    if transition.reboot_pending and not transition.purge:
        host.noop(f"driver {transition.installed_driver} still loaded; R{driver.branch} loads at "
                  "the next boot")
    if driver.source == "cuda_repo" or "nvlsm" in driver.packages:
        # nvlsm (NVLink 5 boards) comes from NVIDIA's repository on every install path.
        nvidia_repo.configure(plan)
    if not driver.kernel_module:
        host.noop("container: driver user space only; kernel module, nouveau, initramfs and "
                  "reboot are the container host's business")
    else:
        _kernel_steps(plan)
    # A branch change swaps packages in one apt transaction (install new, purge old with the
    # `package-` suffix), so apt never has to hold either side back ("held broken packages").
    install_op = _apt.packages(
        name=f"Install the NVIDIA driver {driver.branch} ({driver.flavour} kernel "
             f"modules, {driver.source})",
        packages=list(driver.packages),
        no_recommends=True,
        # `--purge`: the old branch's configuration goes with it (apt-get(8)); held packages
        # (nvidia_driver_updates = 'hold') are the deploy's own to change.
        extra_install_args=" ".join(["--purge", "--allow-change-held-packages",
                                     *(f"{name}-" for name in transition.purge)])
        if transition.purge else None,
        _env={"DEBIAN_FRONTEND": "noninteractive"},
    )
    _update_policy(driver, install_op)
    if not driver.kernel_module:
        return
    if host.data.nvidia_driver_persistenced:
        # Enabled, not started: the new module loads only after the reboot (nouveau holds the
        # GPU, or the old branch's module is loaded), and the daemon exits without /dev/nvidia*.
        server.service(name="Enable nvidia-persistenced (starts with the new driver at boot)",
                       service="nvidia-persistenced", enabled=True, running=None,
                       _if=install_op.did_succeed)
    if driver.fabric_manager:
        server.service(name="Enable the NVIDIA fabric manager (NVSwitch boards)",
                       service="nvidia-fabricmanager", enabled=True, running=None,
                       _if=install_op.did_succeed)
    _reboot_if_needed(install_op)


def _pin_branch(branch: str) -> None:
    if host.data.nvidia_driver_updates == "unmanaged":
        files.file(name="Remove dlws's pin of the NVIDIA driver branch (updates unmanaged)",
                   path=BRANCH_PIN, present=False)
        return
    files.put(name=f"Pin the NVIDIA driver to branch {branch} (apt preferences: no upgrade "
                   "switches branches)",
              src=StringIO(branch_pin(branch)), dest=BRANCH_PIN, mode="644",
              create_remote_dir=False)


def _update_policy(driver, install_op) -> None:
    """Pin the branch and hold (or release) the driver packages, as nvidia_driver_updates says."""
    policy = host.data.nvidia_driver_updates
    _pin_branch(driver.branch)
    wanted = list(driver.packages)
    held = host.get_fact(HeldPackages)
    if policy == "hold":
        hold = [name for name in wanted if name not in held]
        if hold:
            server.shell(name=f"Hold the NVIDIA driver packages ({', '.join(hold)})",
                         commands=[cmd("apt-mark", "hold", "--", *hold)],
                         _if=install_op.did_succeed)
        else:
            host.noop("the NVIDIA driver packages are held")
        return
    release = [name for name in wanted if name in held]
    if release:
        server.shell(name=f"Release the NVIDIA driver packages ({', '.join(release)}): "
                          f"updates {policy}",
                     commands=[cmd("apt-mark", "unhold", "--", *release)])


def _kernel_steps(plan) -> None:
    if plan.driver.secure_boot_mok:
        host.noop(next(note for note in plan.notes if note.startswith("Secure Boot")))
    blacklist = files.put(
        name="Blacklist nouveau so the NVIDIA module can bind the GPU",
        src=StringIO("# Managed by dlws (roles/nvidia_driver).\n"
                     "blacklist nouveau\noptions nouveau modeset=0\n"),
        dest=NOUVEAU_BLACKLIST,
        mode="644",
    )
    changed = [blacklist]
    if plan.driver.display == "desktop":
        # A desktop's compositor (GNOME/KDE on Wayland) needs kernel mode setting from the
        # nvidia-drm module (NVIDIA driver README "Direct Rendering Manager Kernel Modesetting").
        modeset = files.put(
            name="Enable nvidia-drm kernel mode setting (desktop)",
            src=StringIO("# Managed by dlws (roles/nvidia_driver).\n"
                         "options nvidia-drm modeset=1\n"),
            dest=NVIDIA_DRM_MODESET,
            mode="644",
        )
        changed.append(modeset)
    server.shell(name="Rebuild the initramfs without nouveau", commands=["update-initramfs -u"],
                 _if=any_changed(*changed))


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
