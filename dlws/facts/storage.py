"""Facts of data disks and shared folders (roles/storage): block devices, folders, links."""

from __future__ import annotations

import re

from pyinfra.api import FactBase

from dlws.command import Command, sh

# `wipefs --no-act --noheadings --output TYPE,OFFSET DEV` line: "ext4 0x438", "gpt 0x200".
WIPEFS_LINE = re.compile(r"^(?P<type>\S+)\s+(?P<offset>0x[0-9a-f]+)$", re.I)


class BlockDevice(FactBase):
    """What a declared disk holds, read without changing it (blkid -p, wipefs -n, lsblk).

    ``device`` is a stable path (/dev/disk/by-id/...) or ``serial:<SERIAL>``. None when no
    block device answers to it.

    .. code:: python

        {"path": "/dev/sdb", "blkid": {"TYPE": "ext4", "UUID": "0f3c..."},
         "signatures": [{"type": "ext4", "offset": "0x438"}], "children": ["sdb1"],
         "holders": ["dm-0"], "mounts": [{"target": "/data", "fstype": "ext4"}]}
    """

    def command(self, device: str) -> Command:
        if device.startswith("serial:"):
            # lsblk's SERIAL column (udev's ID_SERIAL_SHORT, or sysfs); values are validated
            # (letters, digits, _ . -) before anything connects, and quoted all the same.
            find = sh("dev=$(lsblk -dnrpo NAME,SERIAL | awk -v s={} '$2 == s {{print $1; exit}}')",
                      device.split(":", 1)[1])
        else:
            find = sh("dev=$(readlink -f -- {})", device)
        return sh(
            # Without one of these tools a signature could go unseen: say so, read nothing.
            "LANG=C; m=; for t in blkid wipefs lsblk findmnt; do "
            'command -v $t >/dev/null 2>&1 || m="$m $t"; done; '
            '[ -z "$m" ] || {{ echo "tools-missing$m"; exit 0; }}; '
            "{}; "
            '[ -n "$dev" ] && [ -b "$dev" ] || {{ echo missing; exit 0; }}; '
            'echo "path=$dev"; echo "--blkid"; blkid -p -o export -- "$dev" 2>/dev/null; '
            'echo "--wipefs"; wipefs --no-act --noheadings --output TYPE,OFFSET -- "$dev" '
            "2>/dev/null; "
            'echo "--children"; lsblk -nro NAME -- "$dev" 2>/dev/null | tail -n +2; '
            'echo "--holders"; ls -A "/sys/class/block/${{dev##*/}}/holders" 2>/dev/null; '
            'echo "--mounts"; findmnt -rno TARGET,FSTYPE --source "$dev" 2>/dev/null; true',
            find,
        )

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if not lines or lines[0] == "missing":
            return None
        if lines[0].startswith("tools-missing"):
            return {"path": None, "missing_tools": lines[0].split()[1:]}
        found: dict = {"path": lines[0].removeprefix("path="), "blkid": {}, "signatures": [],
                       "children": [], "holders": [], "mounts": []}
        section = None
        for line in lines[1:]:
            if line.startswith("--"):
                section = line[2:]
            elif section == "blkid" and "=" in line:
                key, _, value = line.partition("=")
                found["blkid"][key] = value
            elif section == "wipefs":
                match = WIPEFS_LINE.match(line)
                if match:
                    found["signatures"].append({"type": match["type"],
                                                "offset": match["offset"]})
            elif section in ("children", "holders"):
                found[section].append(line)
            elif section == "mounts":
                target, _, fstype = line.partition(" ")
                found["mounts"].append({"target": target.replace("\\x20", " "),
                                        "fstype": fstype})
        return found


class SharedFolder(FactBase):
    """Owner, group, octal mode and ACL entries of a folder (getfacl -cp), or None; a symbolic
    link in its place is reported as the link it is (never followed), with its target.

    .. code:: python

        {"user": "root", "group": "lab", "mode": "2775",
         "acl": ["user::rwx", "group::rwx", "default:group:lab:rwx", ...]}
        {"link": "/etc"}
    """

    def command(self, path: str) -> Command:
        return sh("LANG=C; if [ -L {} ]; then printf 'link %s\\n' \"$(readlink -- {})\"; exit 0; "
                  "fi; [ -d {} ] || exit 0; stat -c 'stat %U %G %a' -- {}; "
                  "getfacl -cp -- {} 2>/dev/null || true", path, path, path, path, path)

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if lines and lines[0].startswith("link "):
            return {"link": lines[0][len("link "):]}
        if not lines or not lines[0].startswith("stat "):
            return None
        _, user, group, mode = lines[0].split()
        acl = [line for line in lines[1:] if not line.startswith("#")]
        return {"user": user, "group": group, "mode": mode.zfill(4), "acl": acl}
