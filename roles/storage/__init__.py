"""Storage role: the lab's data disks, formatted only when blank, mounted by UUID, shared."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import DeployError, OperationError, deploy, operation
from pyinfra.facts.files import FileContents

from dlws.command import Command, all_of, cmd, sh
from dlws.facts.storage import BlockDevice, SharedFolder
from dlws.roles.base import _apt
from dlws.roles.base.defaults import lab_group
from dlws.roles.storage.defaults import DEFAULTS, KEYS, disk_with_defaults, tools  # noqa: F401

FSTAB = "/etc/fstab"
# Signatures that mean "this disk is part of something else": RAID members, LVM physical
# volumes, encrypted volumes, ZFS/bcache/Ceph members (blkid's TYPE names, libblkid).
MEMBER_TYPES = ("linux_raid_member", "LVM2_member", "crypto_LUKS", "zfs_member", "bcache",
                "ceph_bluestore", "isw_raid_member", "ddf_raid_member",
                "promise_fasttrack_raid_member", "VMFS_volume_member", "drbd")
PARTITION_TABLES = ("gpt", "dos", "PMBR", "atari", "bsd", "sun", "sgi", "mac")
MKFS = {"ext4": "mkfs.ext4", "xfs": "mkfs.xfs"}  # run with -q, never -f/-F


def disk_verdict(disk: dict, found: dict | None) -> tuple[str, str]:
    """("format" | "mount" | "refuse", what was found) for a declared disk and its BlockDevice.

    Formatting needs a disk with no partition table, no filesystem and no RAID/LVM or other
    signature, as both blkid -p and wipefs -n see it; a disk that carries the declared
    filesystem is used as it is; anything else is refused, never reformatted.
    """
    if found is None:
        return "refuse", "no block device answers to it"
    if found.get("missing_tools"):
        return "refuse", (f"it cannot be inspected: {', '.join(found['missing_tools'])} missing "
                          "on the host (install util-linux)")
    blkid, signatures = found["blkid"], found["signatures"]
    kind = blkid.get("TYPE")
    mounted_elsewhere = [m["target"] for m in found["mounts"]
                         if m["target"].rstrip("/") != disk["mount"].rstrip("/")]
    if mounted_elsewhere:
        return "refuse", f"it is mounted at {', '.join(mounted_elsewhere)}"
    if found["holders"]:
        return "refuse", (f"it is in use by {', '.join(found['holders'])} (LVM, RAID or "
                          "device-mapper on top of it)")
    if blkid.get("PTTYPE") or found["children"] or any(
            s["type"] in PARTITION_TABLES for s in signatures):
        table = blkid.get("PTTYPE") or next(
            (s["type"] for s in signatures if s["type"] in PARTITION_TABLES), "a")
        parts = f" with partitions {', '.join(found['children'])}" if found["children"] else ""
        return "refuse", f"it holds a {table} partition table{parts}"
    if kind in MEMBER_TYPES:
        return "refuse", f"it is a {kind} (RAID, LVM or another volume's member)"
    if kind == disk["fs"]:
        return "mount", f"it carries {kind} UUID={blkid.get('UUID', '?')}"
    if kind:
        return "refuse", f"it carries a {kind} filesystem, not the declared {disk['fs']}"
    if signatures:
        return "refuse", ("wipefs finds signatures that blkid does not name: "
                          + ", ".join(f"{s['type']} at {s['offset']}" for s in signatures))
    return "format", "blank: no partition table, filesystem or RAID/LVM signature"


def fstab_line(uuid: str, disk: dict) -> str:
    options = disk["options"].split(",")
    if "nofail" not in options:
        options.append("nofail")  # a missing disk must not stop the boot
    passno = "2" if disk["fs"] == "ext4" else "0"  # xfs is never fsck'd at boot (xfs(5))
    return f"UUID={uuid} {disk['mount']} {disk['fs']} {','.join(options)} 0 {passno}"


@operation()
def fstab_entry(disk: dict, uuid: str | None):
    """
    Mount the disk by UUID in /etc/fstab (the original kept as /etc/fstab.dlws-orig).

    + disk: the storage_disks entry, with defaults
    + uuid: the filesystem's UUID when it exists already; None = read it after formatting
    """
    current = host.get_fact(FileContents, path=FSTAB) or []
    if uuid and fstab_line(uuid, disk) in [line.strip() for line in current]:
        host.noop(f"{disk['mount']} is in {FSTAB} by UUID")
        return
    mount = disk["mount"].rstrip("/")
    wanted = fstab_line("$uuid", disk).replace("UUID=$uuid ", "")
    # Any other line for this mount point goes (the original file is kept first).
    yield sh(
        "{}; "
        'uuid=$(blkid -p -s UUID -o value -- "$dev"); '
        '[ -n "$uuid" ] || {{ echo "dlws: no filesystem UUID on $dev" >&2; exit 1; }}; '
        "touch {} && cp -n -p {} {} && "
        "awk -v m={} '!($1 !~ /^#/ && ($2 == m || $2 == m \"/\"))' {} > {} && "
        "printf 'UUID=%s %s\\n' \"$uuid\" {} >> {} && "
        "cat {} > {} && rm -f {}",
        _resolve(disk), FSTAB, FSTAB, f"{FSTAB}.dlws-orig", mount, FSTAB,
        f"{FSTAB}.dlws-new", wanted, f"{FSTAB}.dlws-new", f"{FSTAB}.dlws-new", FSTAB,
        f"{FSTAB}.dlws-new",
    )


@operation()
def format_blank(disk: dict):
    """
    Make the declared filesystem on a disk that the plan found blank, checking again first.

    + disk: the storage_disks entry, with defaults
    """
    # Checked again right before mkfs: anything written on the disk since the facts were read
    # (another tool, a second admin) stops the format. mkfs never gets -f/-F.
    yield sh(
        "{}; "
        'if [ -n "$(blkid -p -o value -s TYPE -s PTTYPE -- "$dev")" ] || '
        '[ -n "$(wipefs --no-act --noheadings -- "$dev")" ]; then '
        'echo "dlws: $dev is no longer blank; nothing formatted" >&2; exit 1; fi; '
        '{} -q -- "$dev"',
        _resolve(disk), MKFS[disk["fs"]],
    )


@operation()
def mounted(disk: dict, found: dict | None):
    """
    Mount the disk where declared (through its fstab line), unless it is mounted there.

    + disk: the storage_disks entry, with defaults
    + found: the disk's BlockDevice fact
    """
    if found and any(m["target"].rstrip("/") == disk["mount"].rstrip("/")
                     for m in found["mounts"]):
        host.noop(f"{disk['ref']} is mounted at {disk['mount']}")
        return
    yield all_of([cmd("mkdir", "-p", "--", disk["mount"]), cmd("mount", "--", disk["mount"])])


# Every lab member reads and writes what any other puts there: the group owns the folder,
# setgid passes it to new files and folders, and default ACLs give the group rwx whatever the
# creator's umask (acl(5): with a default ACL the umask is not applied).
SHARED_ACL = ("g:{group}:rwx", "d:u::rwx", "d:g::rwx", "d:g:{group}:rwx", "d:m::rwx", "d:o::r-x")


def acl_entries(group: str) -> list[str]:
    """The entries getfacl -cp shows once SHARED_ACL is applied."""
    long = {"g": "group", "u": "user", "m": "mask", "o": "other"}
    out = []
    for entry in SHARED_ACL:
        parts = entry.format(group=group).split(":")
        default = parts[0] == "d"
        parts = parts[1:] if default else parts
        out.append(("default:" if default else "") + f"{long[parts[0]]}:{parts[1]}:{parts[2]}")
    return out


def link_refusal(path: str) -> str:
    """Why a shared folder that is a symbolic link is refused (the deploy's and the run's)."""
    return (f"host {host.name}: storage_disks: {path} is a symbolic link; dlws never changes "
            "owners, modes or ACLs through a link (it would change its target). Remove the "
            "link, or give the disk's datasets another name")


def _unless_link(path: str, then: Command) -> Command:
    """`then`, run only when `path` is not a symbolic link: the check runs on the host right
    before the change, so a link made after the facts were read is refused too."""
    return sh("if [ -L {} ]; then echo {} >&2; exit 1; fi; {}", path, "dlws: " + link_refusal(path),
              then)


@operation()
def shared_folder(path: str, group: str):
    """
    A folder the lab group shares: root:<group>, mode 2775 (setgid), default ACLs.

    Links are never followed: a symbolic link in the folder's place is refused, chown gets -h,
    chmod and setfacl reach only a directory that `find -P` finds as one (not through a link).

    + path: the folder
    + group: the lab group (base_lab_group)
    """
    found = host.get_fact(SharedFolder, path=path)
    if found is not None and found.get("link") is not None:
        raise OperationError(link_refusal(path) + f" (it points to {found['link']})")
    if found is None:
        yield _unless_link(path, cmd("mkdir", "-p", "--", path))
    if found is None or (found["user"], found["group"]) != ("root", group):
        yield _unless_link(path, cmd("chown", "-h", f"root:{group}", "--", path))
    if found is None or found["mode"] != "2775":
        yield _unless_link(path, cmd("find", "-P", path, "-maxdepth", "0", "-type", "d",
                                     "-exec", "chmod", "2775", "--", "{}", ";"))
    if found is None or set(acl_entries(group)) - set(found["acl"]):
        spec = ",".join(entry.format(group=group) for entry in SHARED_ACL)
        yield _unless_link(path, cmd("find", "-P", path, "-maxdepth", "0", "-type", "d",
                                     "-exec", "setfacl", "-P", "-m", spec, "--", "{}", ";"))
    if found is not None and not (set(acl_entries(group)) - set(found["acl"])) and (
            found["mode"] == "2775" and (found["user"], found["group"]) == ("root", group)):
        host.noop(f"{path} is shared with the {group} group")


def _resolve(disk: dict) -> Command:
    """Shell that sets $dev to the disk's device node on the host (or fails naming it)."""
    if disk["serial"]:
        find = sh("dev=$(lsblk -dnrpo NAME,SERIAL | awk -v s={} '$2 == s {{print $1; exit}}')",
                  disk["serial"])
    else:
        find = sh("dev=$(readlink -f -- {})", disk["device"])
    return sh('{}; [ -n "$dev" ] && [ -b "$dev" ] || {{ echo {} >&2; exit 1; }}',
              find, "dlws: no block device for " + disk["ref"])


@deploy("Data disks", data_defaults=DEFAULTS)
def install() -> None:
    """Format (only when blank), mount by UUID with nofail and share each of storage_disks.

    Keys: storage_disks; the shared folders belong to base_lab_group. Any disk that is neither
    blank nor carrying its declared filesystem stops the deploy before anything changes.
    """
    disks = [disk_with_defaults(disk) for disk in host.data.storage_disks]
    if not disks:
        host.noop("no data disks declared (storage_disks)")
        return
    # Every disk is inspected before any operation: one refusal stops the deploy.
    found = {disk["ref"]: host.get_fact(BlockDevice, device=disk["ref"]) for disk in disks}
    verdicts = {disk["ref"]: disk_verdict(disk, found[disk["ref"]]) for disk in disks}
    refused = [f"{ref}: {reason}" for ref, (verdict, reason) in verdicts.items()
               if verdict == "refuse"]
    group = lab_group(host.data)
    for disk in disks:
        # A disk mounted already shows its datasets entry now: a link there stops the deploy
        # before anything changes (one that appears later is refused by the run itself).
        if disk["datasets"] and any(m["target"].rstrip("/") == disk["mount"].rstrip("/")
                                    for m in (found[disk["ref"]] or {}).get("mounts", [])):
            path = f"{disk['mount'].rstrip('/')}/{disk['datasets']}"
            shared = host.get_fact(SharedFolder, path=path)
            if shared is not None and shared.get("link") is not None:
                refused.append(f"{disk['ref']}: {path} is a symbolic link to {shared['link']} "
                               "(dlws never changes owners, modes or ACLs through a link)")
    if refused:
        raise DeployError(
            f"host {host.name}: storage_disks: refused, nothing was changed on any host:\n  - "
            + "\n  - ".join(refused)
            + "\n  dlws formats only blank disks (no partition table, filesystem or RAID/LVM "
            "signature) and mounts one that already carries the declared filesystem; declare "
            "the filesystem it carries, or clear the disk yourself (wipefs -a) if its data may "
            "go")
    # (roles/base installs them in its first apt-get run of a whole deploy: nothing then.)
    needed = tools(host.data)
    _apt.packages_unless_first(
        name="Install the filesystem and ACL tools (" + ", ".join(needed) + ")",
        packages=needed, no_recommends=True, _env={"DEBIAN_FRONTEND": "noninteractive"})
    for disk in disks:
        verdict, reason = verdicts[disk["ref"]]
        state = found[disk["ref"]]
        if verdict == "format":
            format_blank(name=f"Format {disk['ref']} as {disk['fs']} ({reason})", disk=disk)
        else:
            host.noop(f"{disk['ref']} kept as it is: {reason}")
        uuid = state["blkid"].get("UUID") if verdict == "mount" else None
        fstab_entry(name=f"Mount {disk['ref']} at {disk['mount']} by UUID (nofail) in /etc/fstab",
                    disk=disk, uuid=uuid)
        mounted(name=f"Mount {disk['mount']}", disk=disk, found=state)
        if disk["datasets"]:
            path = f"{disk['mount'].rstrip('/')}/{disk['datasets']}"
            shared_folder(name=f"Share {path} with the {group} group (setgid, default ACLs)",
                          path=path, group=group)
