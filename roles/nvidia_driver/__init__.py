"""NVIDIA driver role: the planned branch and flavour, from the distro or NVIDIA's repository."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, server
from pyinfra.operations.util import any_changed

from dlws.plan import host_plan
from roles import nvidia_repo
from roles.nvidia_driver.defaults import DEFAULTS, KEYS  # noqa: F401

NOUVEAU_BLACKLIST = "/etc/modprobe.d/dlws-blacklist-nouveau.conf"
NVIDIA_DRM_MODESET = "/etc/modprobe.d/dlws-nvidia-drm.conf"
REBOOT_MARKER = "/var/run/reboot-required"


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
    install_op = apt.packages(
        name=f"Install the NVIDIA driver {driver.branch} ({driver.flavour} kernel "
             f"modules, {driver.source})",
        packages=list(driver.packages),
        no_recommends=True,
        # `--purge`: the old branch's configuration goes with it (apt-get(8)).
        extra_install_args=" ".join(["--purge", *(f"{name}-" for name in transition.purge)])
        if transition.purge else None,
        _env={"DEBIAN_FRONTEND": "noninteractive"},
    )
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
