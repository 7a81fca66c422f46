"""Host-data keys of the nvidia_driver role: each with its default, type, check and doc."""

from __future__ import annotations

from dlws.stack.records import DRIVER_DISPLAYS, DRIVER_FLAVOURS, DRIVER_SOURCES
from dlws.validate.domains import version
from dlws.validate.schema import Key, defaults

KEYS = [
    Key("nvidia_driver_branch", "auto", (str,),
        "driver branch: auto = newest the GPU and source allow (long-term R580 where it "
        "fits); none = no driver; or a branch such as '580'",
        check=version(("auto", "none"), r"[0-9]{3}", "580")),
    Key("nvidia_driver_flavour", "auto", (str,),
        "kernel modules: auto = open on Turing and newer from R560 (required on Blackwell), "
        "proprietary on Maxwell/Pascal/Volta", choices=DRIVER_FLAVOURS),
    Key("nvidia_driver_source", "auto", (str,),
        "distro (Ubuntu's signed prebuilt modules / Debian non-free) or cuda_repo (NVIDIA's "
        "repository); auto = distro where it has the planned branch",
        choices=DRIVER_SOURCES),
    Key("nvidia_driver_display", "auto", (str,),
        "desktop = the full driver (X/Wayland libraries) with nvidia-drm modeset; headless = "
        "compute user space only (servers); auto = desktop where a display manager or "
        "graphical session is found", choices=DRIVER_DISPLAYS),
    Key("nvidia_driver_replace", False, (bool,),
        "replace an installed driver that does not satisfy the plan (else the deploy stops "
        "and says so)"),
    Key("nvidia_driver_reboot", False, (bool,),
        "reboot after a driver install when needed (never the controller, never a container); "
        "false = report that a reboot is pending"),
    Key("nvidia_driver_persistenced", True, (bool,), "enable nvidia-persistenced"),
    Key("nvidia_driver_updates", "within_branch", (str,),
        "automatic upgrades (unattended-upgrades, apt upgrade): within_branch = the branch is "
        "pinned (apt preferences) so no upgrade switches branches, updates within it come; "
        "hold = pinned and the driver packages held (apt-mark hold): nothing moves until the "
        "next deploy; unmanaged = no pin, no hold", choices=("within_branch", "hold",
                                                             "unmanaged")),
]
DEFAULTS = defaults(KEYS)
