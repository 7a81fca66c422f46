"""Facts of NVIDIA hardware and its driver: PCI devices, NVSwitches, the loaded and installed
driver, device nodes."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pyinfra.api import FactBase

from dlws.facts.gpu_readings import (
    INSTALLED_NVML_COMMAND,
    installed_nvml_version,
    loaded_driver_version,
)

# `lspci -nn` line: "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation AD102 [GeForce
# RTX 4090] [10de:2684] (rev a1)". 3D controllers (class 0302) are datacentre cards.
LSPCI_NVIDIA = re.compile(
    r"^(?P<slot>\S+) (?P<klass>[^\[]+) \[(?P<class_id>03[0-9a-f]{2})\]: "
    r"(?P<name>.*) \[10de:(?P<device>[0-9a-f]{4})\]",
    re.I,
)


class NvidiaPciDevices(FactBase):
    """NVIDIA display/3D controllers on the PCI bus, found without any driver installed.

    Uses ``lspci -nn`` when pciutils is there, else reads sysfs, which a bare host always has.

    .. code:: python

        [{"slot": "01:00.0", "device_id": "10de:2684", "name": "NVIDIA Corporation AD102 ..."}]
    """

    shares_shell = True  # dlws.facts.batch.shares_shell
    # The shell's own `read` looks for an NVIDIA function in sysfs first: a host without one
    # (every CPU host, on each rerun) starts no program; lspci (or the sysfs listing) runs
    # where one is there, or where sysfs lists no PCI device at all (lspci then decides).
    command = (
        "dlws_pci=; dlws_nv=; for v in /sys/bus/pci/devices/*/vendor; do "
        '[ -r "$v" ] || continue; dlws_pci=1; dlws_id=; read -r dlws_id < "$v"; '
        '[ "$dlws_id" = 0x10de ] && dlws_nv=1 && break; done; '
        'if [ -z "$dlws_nv" ] && [ -n "$dlws_pci" ]; then :; '
        "elif command -v lspci >/dev/null 2>&1; then LANG=C lspci -nn -d 10de:; else "
        "for d in /sys/bus/pci/devices/*; do [ -r $d/vendor ] || continue; "
        '[ "$(cat $d/vendor)" = 0x10de ] || continue; '
        'echo "${d##*/} sysfs [$(cut -c3-6 $d/class)]: NVIDIA [10de:$(cut -c3- $d/device)]"; '
        "done; fi"
    )
    default = list

    def process(self, output):
        devices = []
        for line in output:
            match = LSPCI_NVIDIA.match(line.strip())
            if match:
                devices.append(
                    {
                        "slot": match["slot"],
                        "device_id": f"10de:{match['device'].lower()}",
                        "name": match["name"].strip(),
                    }
                )
        return devices


# An NVSwitch on the same listing: "05:00.0 Bridge [0680]: NVIDIA Corporation GH100 [H100
# NVSwitch] [10de:22a3] (rev a1)".
LSPCI_NVSWITCH = re.compile(r"^\S+ .*\[0680\]: .*\[10de:[0-9a-f]{4}\]", re.I)


class NvSwitchCount(FactBase):
    """NVSwitch chips on the PCI bus (HGX boards): they need NVIDIA's fabric manager.

    .. code:: python

        4
    """

    command = NvidiaPciDevices.command
    default = int

    def process(self, output):
        return sum(1 for line in output if LSPCI_NVSWITCH.match(line.strip()))


def installed_user_space_version(packages: Mapping[str, str]) -> str | None:
    """The driver version of the installed user space, from NvidiaPackages' installed packages:
    nvidia-smi's (Debian's and NVIDIA's packaging), else the first nvidia-utils-<branch>'s
    (Ubuntu's) by name; epoch and Debian revision dropped ("1:550.163.01-2" -> "550.163.01")."""
    names = sorted(name for name in packages if name.startswith("nvidia-utils-"))
    for name in ("nvidia-smi", *names):
        match = PACKAGE_VERSION.match(packages.get(name, "").split(":")[-1])
        if match:
            return match[1]
    return None


# A driver package's Debian version: "535.183.01-0ubuntu1", "1:550.163.01-2" (epoch dropped).
PACKAGE_VERSION = re.compile(r"^(\d+\.\d+(?:\.\d+)?)")


class NvidiaPackages(FactBase):
    """Installed dpkg packages whose name carries nvidia or cuda, with versions.

    .. code:: python

        {"nvidia-driver-535": "535.183.01-0ubuntu1", "libnvidia-compute-535": "..."}
    """

    command = (
        "dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\\n' "
        "'*nvidia*' '*cuda*' 2>/dev/null | awk '$1 == \"ii\" {print $2, $3}' || true"
    )
    default = dict

    def process(self, output):
        return dict(line.split(" ", 1) for line in output if " " in line)


# /dev/char/MAJOR:MINOR links for every NVIDIA character device node: runc finds device nodes
# through them when systemd re-applies a container's device rules (NVIDIA/nvidia-docker#1730).
# One line a node: "<node> <major>:<minor> <where /dev/char/MAJOR:MINOR points, or ->".
NVIDIA_NODE_LINE = re.compile(r"^(?P<node>/dev/\S+) (?P<devno>\d+:\d+) (?P<link>\S+)$")


class NvidiaDevCharLinks(FactBase):
    """Each NVIDIA character device node and where its /dev/char link points ("-": none).

    .. code:: python

        [{"node": "/dev/nvidia0", "devno": "195:0", "link": "/dev/nvidia0"}]
    """

    command = (
        "for d in /dev/nvidia* /dev/nvidia-caps/*; do [ -c \"$d\" ] || continue; "
        "n=$(printf '%d:%d' 0x$(stat -c %t \"$d\") 0x$(stat -c %T \"$d\")); "
        "l=$(readlink -f \"/dev/char/$n\" 2>/dev/null || true); "
        "[ -e \"/dev/char/$n\" ] || l=-; echo \"$d $n ${l:--}\"; done"
    )
    default = list

    def process(self, output):
        return [m.groupdict() for line in output if (m := NVIDIA_NODE_LINE.match(line.strip()))]


def missing_dev_char_links(nodes: list[dict]) -> list[str]:
    """The NVIDIA device nodes whose /dev/char link is missing or points elsewhere."""
    return [f"{n['node']} ({n['devno']})" for n in nodes if n["link"] != n["node"]]


class NvidiaModuleVersion(FactBase):
    """The loaded NVIDIA kernel module's version, None when none is loaded.

    /proc/driver/nvidia/version first (both module lines: "Kernel Module  535.183.01" and "Open
    Kernel Module for x86_64  580.95.05"), else /sys/module/nvidia/version.

    .. code:: python

        "580.95.05"
    """

    shares_shell = True  # dlws.facts.batch.shares_shell
    # Guarded by the shell's own test: a host without the module loaded (every CPU host, on
    # each rerun) starts no program for it.
    command = ("if [ -e /proc/driver/nvidia/version ]; then cat /proc/driver/nvidia/version; "
               "elif [ -e /sys/module/nvidia/version ]; then cat /sys/module/nvidia/version; "
               "fi 2>/dev/null || true")

    def process(self, output):
        text = "\n".join(output)
        bare = text.strip()
        return loaded_driver_version(text) or (bare if MODULE_VERSION.fullmatch(bare) else None)


# /sys/module/nvidia/version holds the version alone: "580.95.05".
MODULE_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?")


class NvidiaUserSpaceVersion(FactBase):
    """The installed NVIDIA user space's version (nvidia-smi, nvidia-utils-<branch>), or None:
    NvidiaPackages' reading, read by the plan's rule (installed_user_space_version).

    .. code:: python

        "580.95.05"
    """

    command = NvidiaPackages.command

    def process(self, output):
        return installed_user_space_version(NvidiaPackages().process(output))


class InstalledNvmlVersion(FactBase):
    """The installed user space's version from the libnvidia-ml.so.1 ldconfig resolves, or None
    (dlws.facts.gpu_readings.installed_nvml_version parses the path).

    .. code:: python

        "580.95.05"
    """

    command = INSTALLED_NVML_COMMAND

    def process(self, output):
        return installed_nvml_version("\n".join(output))
