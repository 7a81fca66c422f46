"""Facts of the operating system: release, container, architecture, Secure Boot, display, init
system, accounts, kernel packages."""

from __future__ import annotations

import re

from pyinfra.api import FactBase

from dlws.command import Command, sh


class Container(FactBase):
    """The container runtime the host runs in, or "" on a machine of its own.

    .. code:: python

        "docker"
    """

    shares_shell = True  # dlws.facts.batch.shares_shell
    # /.dockerenv and /run/.containerenv are written by docker and podman; cgroup names cover
    # LXC and Kubernetes.
    command = (
        "if [ -f /.dockerenv ]; then echo docker; "
        "elif [ -f /run/.containerenv ]; then echo podman; "
        "elif grep -qaE 'lxc|kubepods|docker' /proc/1/cgroup 2>/dev/null; then echo container; "
        "else echo; fi"
    )
    default = str

    def process(self, output):
        return "".join(output).strip()


class OsRelease(FactBase):
    """ID and VERSION_ID from /etc/os-release, the keys the version solver needs.

    .. code:: python

        {"id": "debian", "version_id": "12", "codename": "bookworm"}
    """

    command = "cat /etc/os-release"
    default = dict

    def process(self, output):
        values = {}
        for line in output:
            if "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip('"')
        return {
            "id": values.get("ID", ""),
            "version_id": values.get("VERSION_ID", ""),
            "codename": values.get("VERSION_CODENAME", ""),
        }


class DpkgArchitecture(FactBase):
    """dpkg's architecture: what its packages, NVIDIA's repository and the wheels are built for
    (the machine's, `uname -m`, unless a 32-bit userland runs on a 64-bit kernel).

    .. code:: python

        "arm64"
    """

    command = "dpkg --print-architecture"
    requires_command = "dpkg"

    def process(self, output):
        text = "".join(output).strip()
        return text or None


class SecureBoot(FactBase):
    """True when UEFI Secure Boot is enabled, False when not, None when it cannot be told.

    .. code:: python

        True
    """

    shares_shell = True  # dlws.facts.batch.shares_shell
    command = (
        "if command -v mokutil >/dev/null 2>&1; then mokutil --sb-state 2>/dev/null; "
        "elif [ -d /sys/firmware/efi ]; then od -An -tu1 "
        "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c "
        "2>/dev/null | awk '{print \"SecureBoot \" ($5 == 1 ? \"enabled\" : \"disabled\")}'; "
        "else echo 'legacy BIOS'; fi"
    )

    def process(self, output):
        text = " ".join(output).lower()
        if "enabled" in text:
            return True
        if "disabled" in text or "legacy" in text:
            return False
        return None


# `loginctl show-session ID -p Type --value` answers "x11", "wayland", "tty" or "unspecified".
GRAPHICAL_SESSIONS = ("x11", "wayland", "mir")


class Display(FactBase):
    """What shows the host drives a monitor: its display manager (Debian and Ubuntu record it in
    /etc/X11/default-display-manager and link display-manager.service to it), else a running
    X11/Wayland login session; None on a server. The default systemd target says nothing here:
    Ubuntu's server images boot graphical.target too.

    .. code:: python

        "gdm3"
    """

    shares_shell = True  # dlws.facts.batch.shares_shell
    # (Each program runs only where what it reads is there: a server starts none of them.)
    command = (
        'dm=; [ -f /etc/X11/default-display-manager ] && '
        'dm=$(cat /etc/X11/default-display-manager 2>/dev/null); '
        '[ -n "$dm" ] && echo "display-manager ${dm##*/}"; '
        'unit=; [ -L /etc/systemd/system/display-manager.service ] && '
        'unit=$(readlink /etc/systemd/system/display-manager.service 2>/dev/null); '
        '[ -n "$unit" ] && echo "display-manager-unit ${unit##*/}"; '
        "if command -v loginctl >/dev/null 2>&1; then "
        "for s in $(loginctl list-sessions --no-legend 2>/dev/null | awk '{print $1}'); do "
        'echo "session $(loginctl show-session "$s" -p Type --value 2>/dev/null)"; done; fi; '
        "true"
    )

    def process(self, output):
        return display_from(output)


def display_from(lines) -> str | None:
    """The display manager ("gdm3") or graphical session ("wayland session") in Display's
    output, or None."""
    sessions = []
    for line in lines:
        kind, _, value = line.strip().partition(" ")
        value = value.strip()
        if kind == "display-manager" and value:
            return value
        if kind == "display-manager-unit" and value:
            return value.removesuffix(".service")
        if kind == "session" and value in GRAPHICAL_SESSIONS:
            sessions.append(f"{value} session")
    return sessions[0] if sessions else None


class SystemdRunning(FactBase):
    """True when systemd is the host's init (sd_booted(3): /run/systemd/system exists).

    A container without systemd has nothing that starts or restarts a service.

    .. code:: python

        True
    """

    command = "if [ -d /run/systemd/system ]; then echo yes; else echo no; fi"

    def process(self, output):
        return "".join(output).strip() == "yes"


# A sudoers user specification for a group: "%NAME HOSTS = ..." (sudoers(5)); a trailing
# comment or a Defaults line is no grant.
SUDOERS_GROUP = re.compile(r"\s*%(?P<group>[A-Za-z0-9_.\\-]+)\s+[^#=]*=")


class SudoersGroups(FactBase):
    """Groups the host's own sudoers (/etc/sudoers and /etc/sudoers.d/*) lets run commands as
    another user (``%admin ALL=(ALL) ALL``): membership is root.

    .. code:: python

        ["admin", "sudo"]
    """

    # Read as root (sudoers is 0440); a file that cannot be read adds nothing.
    command = "LANG=C; cat /etc/sudoers /etc/sudoers.d/* 2>/dev/null; true"

    def process(self, output):
        groups = set()
        for line in output:
            match = SUDOERS_GROUP.match(line)
            if match:
                groups.add(match["group"].replace("\\", ""))
        return sorted(groups)


class UidMin(FactBase):
    """The first UID of a person's account (UID_MIN in /etc/login.defs; 1000 when unset).

    .. code:: python

        1000
    """

    command = "awk '$1 == \"UID_MIN\" {print $2}' /etc/login.defs 2>/dev/null || true"

    def process(self, output):
        text = "".join(output).strip()
        return int(text) if text.isdigit() else 1000


class KernelImagePackages(FactBase):
    """Installed linux-image packages (metapackages and versioned kernels), for kernel headers.

    .. code:: python

        ["linux-image-6.1.0-28-amd64", "linux-image-amd64"]
    """

    command = ("dpkg-query -W -f='${Status}|${Package}\\n' 'linux-image-*' 2>/dev/null "
               "| awk -F'|' '$1 == \"install ok installed\" {print $2}' || true")
    default = list

    def process(self, output):
        return sorted(line.strip() for line in output if line.strip())


class HeldPackages(FactBase):
    """Packages apt-mark holds (no upgrade touches them).

    .. code:: python

        ["nvidia-driver", "nvidia-kernel-dkms"]
    """

    command = "apt-mark showhold 2>/dev/null || true"
    default = list

    def process(self, output):
        return sorted(line.strip() for line in output if line.strip())


SUBUID = "/etc/subuid"


SUBGID = "/etc/subgid"


# subuid(5): "login:start:count" per line; the owner may be a name or a numeric uid.
SUBID_LINE = re.compile(r"^(?P<owner>[^:\s]+):(?P<start>\d{1,10}):(?P<count>\d{1,10})$")


class SubordinateIds(FactBase):
    """The ranges /etc/subuid or /etc/subgid hands out, in file order ([] when missing).

    .. code:: python

        [{"owner": "alice", "start": 100000, "count": 65536}]
    """

    default = list

    def command(self, path: str) -> Command:
        return sh("if [ -f {} ]; then cat {}; fi", path, path)

    def process(self, output):
        return parse_subordinate_ids(output)


def parse_subordinate_ids(lines) -> list[dict]:
    found = []
    for line in lines:
        match = SUBID_LINE.match(line.strip())
        if match:
            found.append({"owner": match["owner"], "start": int(match["start"]),
                          "count": int(match["count"])})
    return found


def overlapping_ranges(entries: list[dict]) -> list[tuple[str, str]]:
    """Pairs of owners whose ranges share an id ("alice 100000+65536", ...), in file order."""
    pairs = []
    for i, one in enumerate(entries):
        for other in entries[i + 1:]:
            if (one["start"] < other["start"] + other["count"]
                    and other["start"] < one["start"] + one["count"]):
                pairs.append((f"{one['owner']} {one['start']}+{one['count']}",
                              f"{other['owner']} {other['start']}+{other['count']}"))
    return pairs
