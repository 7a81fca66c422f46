"""Host-data keys of the storage role: each with its default, type, check and doc."""

from __future__ import annotations

import difflib
import re
from typing import Any

from dlws.validate.schema import Key, defaults

# A disk's fields, their types and defaults (None = required, or off where noted).
DISK_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "device": ((str,), None),  # a stable path: /dev/disk/by-id/... or /dev/disk/by-path/...
    "serial": ((str,), None),  # or the disk's serial number (lsblk -o SERIAL)
    "mount": ((str,), None),  # where it is mounted, required
    "fs": ((str,), "ext4"),  # ext4 | xfs
    "options": ((str,), "defaults"),  # mount options; nofail is always added
    "datasets": ((str,), "datasets"),  # the lab's shared folder on the disk; "" = none
    "min_free_gib": ((int, float), 0),  # floors verify holds the disk to
    "min_read_mib_s": ((int, float), 0),
    "min_write_mib_s": ((int, float), 0),
}
FILESYSTEMS = ("ext4", "xfs")
# Paths that udev keeps the same across reboots and re-cabling; /dev/sdX is not one of them.
STABLE_PREFIXES = ("/dev/disk/by-id/", "/dev/disk/by-path/")
# Folders of the system itself: a data disk mounted over one hides (or replaces) the OS.
SYSTEM_DIRS = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/opt", "/proc",
               "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/@:+-]*$")
_SERIAL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_OPTIONS = re.compile(r"^[A-Za-z0-9_=.:+/-]+(,[A-Za-z0-9_=.:+/-]+)*$")
_FOLDER = re.compile(r"^[A-Za-z0-9._-]+$")


def disk_problem(index: int, disk: Any) -> str | None:
    """What is wrong with one storage_disks entry, with the fix; None when it is fine."""
    where = f"storage_disks[{index}]"
    if not isinstance(disk, dict):
        return f"{where}: got {disk!r}; expected a dict such as {{'device': " \
               "'/dev/disk/by-id/nvme-...', 'mount': '/data', 'fs': 'ext4'}"
    for name, value in disk.items():
        if name not in DISK_FIELDS:
            hint = difflib.get_close_matches(str(name), DISK_FIELDS, n=1)
            return f"{where}: unknown field {name!r}" + (
                f"; did you mean {hint[0]!r}?" if hint else
                f"; known: {', '.join(DISK_FIELDS)}")
        types = DISK_FIELDS[name][0]
        if isinstance(value, bool) or not isinstance(value, types):
            expected = " or ".join(t.__name__ for t in types)
            return f"{where}.{name}: got {value!r}; expected {expected}"
    if ("device" in disk) == ("serial" in disk):
        return f"{where}: give exactly one of 'device' (a /dev/disk/by-id/... path) or 'serial'"
    device = disk.get("device")
    if device is not None and (not device.startswith(STABLE_PREFIXES)
                               or not _SAFE_PATH.match(device) or "/../" in device):
        return (f"{where}.device: {device!r} is not a stable path; use the disk's "
                "/dev/disk/by-id/... name (ls -l /dev/disk/by-id) or its 'serial': /dev/sdX "
                "names change between boots")
    if "serial" in disk and not _SERIAL.match(disk["serial"]):
        return f"{where}.serial: {disk['serial']!r}: letters, digits, '_', '.', '-' only"
    mount = disk.get("mount")
    if mount is None:
        return f"{where}.mount: required: where the disk is mounted, e.g. '/data'"
    if not _SAFE_PATH.match(mount) or "/.." in mount or mount.rstrip("/") in ("", *SYSTEM_DIRS):
        return (f"{where}.mount: {mount!r} must be an absolute path of letters, digits and "
                "._-@:+ outside the system's own folders, e.g. '/data'")
    fs = disk.get("fs", "ext4")
    if fs not in FILESYSTEMS:
        return f"{where}.fs: got {fs!r}; allowed: {', '.join(map(repr, FILESYSTEMS))}"
    if not _OPTIONS.match(disk.get("options", "defaults")):
        return (f"{where}.options: {disk['options']!r}: comma-separated mount options without "
                "spaces, e.g. 'defaults,noatime'")
    datasets = disk.get("datasets", "datasets")
    if datasets and (not _FOLDER.match(datasets) or datasets in (".", "..")):
        return f"{where}.datasets: {datasets!r} must be one folder name, e.g. 'datasets'"
    for floor in ("min_free_gib", "min_read_mib_s", "min_write_mib_s"):
        if disk.get(floor, 0) < 0:
            return f"{where}.{floor}: {disk[floor]!r} must be 0 or more"
    return None


def check_disks(value: list) -> str | None:
    for index, disk in enumerate(value):
        problem = disk_problem(index, disk)
        if problem:
            return problem
    for field in ("device", "serial", "mount"):
        seen = [disk[field].rstrip("/") for disk in value if disk.get(field)]
        twice = sorted({v for v in seen if seen.count(v) > 1})
        if twice:
            return f"{field} {twice[0]!r} is declared for more than one disk"
    return None


def disk_with_defaults(disk: dict) -> dict:
    """A storage_disks entry with every field, and the name the deploy and verify use for it."""
    full = {name: disk.get(name, default) for name, (_, default) in DISK_FIELDS.items()}
    full["ref"] = full["device"] or f"serial:{full['serial']}"
    return full


KEYS = [
    Key("storage_disks", [], (list,),
        "data disks: each {'device': '/dev/disk/by-id/...' (or 'serial': '...'), 'mount': "
        "'/data', 'fs': 'ext4' | 'xfs', 'options': 'defaults', 'datasets': 'datasets', "
        "'min_free_gib': 0, 'min_read_mib_s': 0, 'min_write_mib_s': 0}; a blank disk is "
        "formatted, one carrying the declared filesystem is mounted as it is, anything else "
        "is refused; never reformatted. Mounted by UUID with nofail", check=check_disks),
]
DEFAULTS = defaults(KEYS)
