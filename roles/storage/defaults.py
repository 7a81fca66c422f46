"""Host-data keys of the storage role: each with its default, type, check and doc."""

from __future__ import annotations

from typing import Any

from dlws.validate.domains import Choice, HostPath, ListOf, Name, Number, Record
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
# The largest floor: a petabyte free, a terabyte a second.
MAX_FLOOR = 10**6


def _one_reference(disk: dict) -> str | None:
    if ("device" in disk) == ("serial" in disk):
        return "give exactly one of 'device' (a /dev/disk/by-id/... path) or 'serial'"
    return None


def _once_each(disks: list) -> str | None:
    """One device, serial or mount point listed for two disks (the same disk under two names
    is found on the host, before anything is formatted: dlws.validate.host)."""
    for field in ("device", "serial", "mount"):
        seen = [disk[field] for disk in disks if isinstance(disk.get(field), str)]
        twice = sorted({v for v in seen if seen.count(v) > 1})
        if twice:
            return f"{field} {twice[0]!r} is declared for more than one disk"
    return None


_FLOOR = Number(0, MAX_FLOOR, integer=False)
DISK = Record({
    "device": Name(r"/dev/disk/by-(id|path)/[A-Za-z0-9][A-Za-z0-9._:+@-]{0,200}",
                   "the disk's /dev/disk/by-id/... name (ls -l /dev/disk/by-id) or its 'serial': "
                   "/dev/sdX names change between boots", noun="a stable path",
                   example="/dev/disk/by-id/nvme-Samsung_SSD_990_PRO_2TB_S7KGNU0X1", max_len=255),
    "serial": Name(r"[A-Za-z0-9._-]{1,64}", "letters, digits, '_', '.', '-' only",
                   example="S7KGNU0X1"),
    "mount": HostPath(managed=True, kind="mount point", example="/data"),
    "fs": Choice(*FILESYSTEMS),
    "options": Name(r"[A-Za-z0-9_=.:+/-]+(,[A-Za-z0-9_=.:+/-]+)*",
                    "comma-separated mount options without spaces, e.g. 'defaults,noatime'",
                    example="defaults,noatime", max_len=256),
    "datasets": Name(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}", "one folder name, e.g. 'datasets' "
                     "('' = none)", example="datasets", words=("",),
                     refuse={"..": "is not a folder name"}),
    "min_free_gib": _FLOOR, "min_read_mib_s": _FLOOR, "min_write_mib_s": _FLOOR,
}, required=("mount",), what="such as {'device': '/dev/disk/by-id/nvme-...', 'mount': '/data', "
   "'fs': 'ext4'}", also=(_one_reference,))


# The Debian packages of each filesystem's tools (mkfs, fsck); acl for the shared folders' ACLs.
FS_PACKAGES = {"ext4": ["e2fsprogs"], "xfs": ["xfsprogs"]}


def tools(data) -> list[str]:
    """The Debian packages the storage role needs for a host's storage_disks (none without):
    roles/base installs them in its first apt-get run, before the Python environment, so that
    nothing waits for the install it starts beside the environment (roles/base/_apt.py)."""
    disks = data.get("storage_disks") or []
    if not disks:
        return []
    filesystems = sorted({disk_with_defaults(disk)["fs"] for disk in disks})
    return ["acl", "util-linux", *(name for fs in filesystems for name in FS_PACKAGES[fs])]


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
        "is refused; never reformatted. Mounted by UUID with nofail",
        check=ListOf(DISK, max_items=64, also=(_once_each,))),
]
DEFAULTS = defaults(KEYS)
