"""Checks of roles/storage: each data disk mounted as declared, by UUID, shared, fast enough."""

from __future__ import annotations

import uuid

import pytest

from dlws.command import cmd
from dlws.facts.gpu_readings import dd_read_mib_s
from dlws.facts.storage import BlockDevice, SharedFolder
from dlws.roles.storage import acl_entries
from dlws.roles.storage.defaults import disk_with_defaults

# Sequential write then read of this many MiB, past the page cache (O_DIRECT).
PROBE_MIB = 128


def _disks(target) -> list[dict]:
    disks = [disk_with_defaults(disk) for disk in target["storage_disks"]]
    if not disks:
        pytest.skip("no data disks declared (storage_disks)")
    return disks


def _device(read_fact, disk: dict) -> dict | None:
    found = read_fact(BlockDevice, disk["ref"])
    if found and found.get("missing_tools"):
        pytest.fail(f"{disk['ref']} cannot be inspected: {', '.join(found['missing_tools'])} "
                    "missing on the host (install util-linux)", pytrace=False)
    return found


def test_disks_mounted_as_declared(target, read_fact):
    """Every declared disk is found and mounted at its mount point with its filesystem."""
    problems = []
    for disk in _disks(target):
        found = _device(read_fact, disk)
        if found is None:
            problems.append(f"{disk['ref']}: no block device answers to it")
            continue
        mounts = {m["target"].rstrip("/"): m["fstype"] for m in found["mounts"]}
        fstype = mounts.get(disk["mount"].rstrip("/"))
        if fstype is None:
            problems.append(f"{disk['ref']} ({found['path']}) is not mounted at {disk['mount']} "
                            f"(mounted at: {sorted(mounts) or 'nowhere'})")
        elif fstype != disk["fs"]:
            problems.append(f"{disk['mount']} is {fstype}, declared {disk['fs']}")
    assert not problems, "data disks: " + "; ".join(problems)


def test_disks_in_fstab_by_uuid_with_nofail(host, target, read_fact):
    """Every declared disk is in fstab by UUID, with nofail."""
    fstab = host.file("/etc/fstab").content_string.splitlines()
    problems = []
    for disk in _disks(target):
        found = _device(read_fact, disk) or {"blkid": {}}
        fs_uuid = found["blkid"].get("UUID")
        lines = [line.split() for line in fstab if line.strip() and not line.startswith("#")]
        mine = [f for f in lines if len(f) >= 4 and f[1].rstrip("/") == disk["mount"].rstrip("/")]
        if not mine:
            problems.append(f"no /etc/fstab line for {disk['mount']}")
        elif mine[0][0] != f"UUID={fs_uuid}":
            problems.append(f"{disk['mount']} is mounted from {mine[0][0]} in /etc/fstab, not "
                            f"its filesystem's UUID={fs_uuid}")
        elif "nofail" not in mine[0][3].split(","):
            problems.append(f"{disk['mount']}: no nofail in /etc/fstab ({mine[0][3]}): a missing "
                            "disk would stop the boot")
    assert not problems, "; ".join(problems)


def test_datasets_folders_shared_with_the_lab(target, read_fact):
    """Each datasets folder is root:lab group, mode 2775, with the lab's ACL entries."""
    group = target["base_lab_group"]
    problems = []
    for disk in _disks(target):
        if not disk["datasets"]:
            continue
        path = f"{disk['mount'].rstrip('/')}/{disk['datasets']}"
        found = read_fact(SharedFolder, path)
        if found is None:
            problems.append(f"{path} does not exist")
            continue
        if "link" in found:
            problems.append(f"{path} is a symbolic link to {found['link']}, not the lab's "
                            "shared folder (dlws refuses to change anything through it)")
            continue
        if found["group"] != group or found["mode"] != "2775":
            problems.append(f"{path} is {found['user']}:{found['group']} mode {found['mode']}, "
                            f"expected root:{group} mode 2775 (setgid)")
        missing = sorted(set(acl_entries(group)) - set(found["acl"]))
        if missing:
            problems.append(f"{path} lacks the ACL entries {missing} (getfacl: {found['acl']})")
    assert not problems, "; ".join(problems)


def test_disks_free_space(host, target, record_fact):
    """Every declared disk has at least its declared free space."""
    problems = []
    for disk in _disks(target):
        out = host.run(cmd("df", "-Pk", "--", disk["mount"]))
        assert out.rc == 0, f"df {disk['mount']}: {out.stderr}"
        free_gib = int(out.stdout.splitlines()[-1].split()[3]) / 2**20
        record_fact(f"storage.{disk['mount']}.free_gib", round(free_gib, 1))
        if free_gib < disk["min_free_gib"]:
            problems.append(f"{disk['mount']} has {free_gib:.1f} GiB free, declared at least "
                            f"{disk['min_free_gib']}")
    assert not problems, "; ".join(problems)


def test_disks_sequential_throughput(host, target, record_fact):
    """Every declared disk reads and writes at least its declared MiB/s."""
    problems = []
    for disk in _disks(target):
        probe = f"{disk['mount'].rstrip('/')}/.dlws-probe-{uuid.uuid4().hex[:12]}"
        try:
            # Random bytes: a compressing filesystem cannot make it look faster.
            host.run(cmd("dd", "if=/dev/urandom", f"of={probe}.src", "bs=1M",
                         f"count={PROBE_MIB}", "status=none"))
            write = host.run(cmd("env", "LANG=C", "dd", f"if={probe}.src", f"of={probe}", "bs=1M",
                                 "oflag=direct", "conv=fsync"))
            assert write.rc == 0, f"cannot write to {disk['mount']}: {write.stderr}"
            read = host.run(cmd("env", "LANG=C", "dd", f"if={probe}", "of=/dev/null", "bs=1M",
                                "iflag=direct"))
            assert read.rc == 0, f"cannot read back {probe}: {read.stderr}"
        finally:
            host.run(cmd("rm", "-f", "--", probe, f"{probe}.src"))
        write_mib_s, read_mib_s = dd_read_mib_s(write.stderr), dd_read_mib_s(read.stderr)
        record_fact(f"storage.{disk['mount']}.write_mib_s", round(write_mib_s, 1))
        record_fact(f"storage.{disk['mount']}.read_mib_s", round(read_mib_s, 1))
        if write_mib_s < disk["min_write_mib_s"]:
            problems.append(f"{disk['mount']} writes {write_mib_s:.0f} MiB/s (O_DIRECT), "
                            f"declared at least {disk['min_write_mib_s']}")
        if read_mib_s < disk["min_read_mib_s"]:
            problems.append(f"{disk['mount']} reads {read_mib_s:.0f} MiB/s (O_DIRECT), "
                            f"declared at least {disk['min_read_mib_s']}")
    assert not problems, "; ".join(problems)
