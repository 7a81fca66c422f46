"""Data disks for real: loop devices handed to a Debian 12 container, formatted only when blank.

Each loop device is a file on the controller (`losetup -f --show`), passed to the container with
`--device /dev/loopN --cap-add SYS_ADMIN` (mounting inside works; no --privileged). Stable
/dev/disk/by-id/ names are made inside the container, as udev makes them on a real host.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
from pathlib import Path

import pytest

from dlws.sandbox.images import ensure_debian_image
from tests.helpers import changed_operations, pyinfra_json, run_verify
from tests.helpers import checked as sh

pytestmark = pytest.mark.integration
CONTAINER = "dlws-i13-disks"
DEPLOY = "tests/fixtures/storage_deploy.py"
SIZE_MIB = 300
USERS = ["ada", "grace"]


def in_container(command: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("docker", "exec", CONTAINER, "sh", "-c", command, check=check)


def mbr_only(path: Path) -> None:
    """A DOS partition table with one partition entry and no filesystem anywhere."""
    entry = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, 4096)
    with path.open("r+b") as disk:
        disk.seek(446)
        disk.write(entry)
        disk.seek(510)
        disk.write(b"\x55\xaa")


def first_mib(device: str) -> str:
    with open(device, "rb") as disk:
        return hashlib.sha256(disk.read(2**20)).hexdigest()


@pytest.fixture(scope="module")
def disks(docker_engine, tmp_path_factory):
    """Three loop devices (blank; ext3 with a file; a partition table only) in one container."""
    ensure_debian_image("bookworm")
    folder = tmp_path_factory.mktemp("disks")
    loops: dict[str, str] = {}
    try:
        for name in ("blank", "ext3", "mbr"):
            image = folder / f"{name}.img"
            with image.open("wb") as f:
                f.truncate(SIZE_MIB * 2**20)
            if name == "ext3":
                sh("mkfs.ext3", "-q", "-F", str(image))
                (folder / "hello.txt").write_text("a dataset someone keeps\n")
                sh("debugfs", "-w", "-R", f"write {folder / 'hello.txt'} hello.txt", str(image))
            if name == "mbr":
                mbr_only(image)
            loops[name] = sh("losetup", "-f", "--show", str(image)).stdout.strip()
        sh("docker", "rm", "-f", CONTAINER, check=False)
        sh("docker", "run", "-d", "--name", CONTAINER, "--cap-add", "SYS_ADMIN",
           *(arg for loop in loops.values() for arg in ("--device", loop)),
           "--tmpfs", "/run", "--tmpfs", "/tmp:exec", "dlws/debian:bookworm", "sleep", "infinity")
        links = " && ".join(f"ln -sf {loop} /dev/disk/by-id/dlws-test-{name}"
                            for name, loop in loops.items())
        in_container(f"mkdir -p /dev/disk/by-id && {links}")
        # ada exists before the deploy, with a shell and a file of her own: both must stay.
        in_container("useradd -m -s /bin/sh ada && echo mine > /home/ada/notes.txt")
        yield loops
    finally:
        sh("docker", "rm", "-f", CONTAINER, check=False)
        for loop in loops.values():
            sh("losetup", "-d", loop, check=False)


def inventory(tmp_path: Path, name: str, *devices: str, users: list[str] = USERS) -> str:
    disks = [{"device": f"/dev/disk/by-id/dlws-test-{device}", "mount": f"/data-{device}",
              "fs": "ext4", "options": "defaults,noatime",
              "min_free_gib": 0.1, "min_read_mib_s": 1, "min_write_mib_s": 1}
             for device in devices]
    data = {"gpu_count": 0, "storage_disks": disks, "base_lab_users": users,
            "python_env_require_hashes": False}
    path = tmp_path / f"{name}.py"
    path.write_text(f"{name} = [('@docker/{CONTAINER}', {data!r})]\n")
    return str(path)


def test_blank_disk_formatted_mounted_by_uuid_and_shared(disks, tmp_path):
    inv = inventory(tmp_path, "blank", "blank")
    fstab_before = in_container("cat /etc/fstab").stdout
    rc, document, log = pyinfra_json(inv, DEPLOY)
    assert rc == 0, log[-4000:]
    assert any(op.startswith("Data disks | Format /dev/disk/by-id/dlws-test-blank as ext4")
               for op in changed_operations(document)), changed_operations(document)
    assert in_container("cat /etc/fstab.dlws-orig").stdout == fstab_before
    line = [ln for ln in in_container("cat /etc/fstab").stdout.splitlines() if "/data-blank" in ln]
    uuid = in_container(f"blkid -s UUID -o value {disks['blank']}").stdout.strip()
    assert line == [f"UUID={uuid} /data-blank ext4 defaults,noatime,nofail 0 2"], line
    # The users and their home: ada's shell and file untouched, grace created.
    assert in_container("getent passwd ada").stdout.strip().endswith(":/bin/sh")
    assert in_container("cat /home/ada/notes.txt").stdout == "mine\n"
    # Every lab member writes what another put there (default ACLs beat a 022 umask).
    in_container("su -s /bin/sh ada -c 'umask 022; echo from-ada > /data-blank/datasets/a.txt'")
    in_container("su -s /bin/sh grace -c 'echo from-grace >> /data-blank/datasets/a.txt && "
                 "mkdir /data-blank/datasets/set1 && touch /data-blank/datasets/set1/x'")
    in_container("su -s /bin/sh ada -c 'echo again >> /data-blank/datasets/set1/x'")
    assert in_container("stat -c %G /data-blank/datasets/set1/x").stdout.strip() == "lab"
    # This checks only (main's other lab-user checks skip on this host).
    out = run_verify(inv, "-k", "test_storage or gpu_and_lab_groups or "
                     "lab_users_have_their_own_home "
                     "or removed_lab_user")
    assert out.returncode == 0, out.stdout[-4000:]
    assert "passed" in out.stdout and "skipped" not in out.stdout, out.stdout[-2000:]

    # Each disk check fails when broken on purpose: floors no disk reaches, nofail taken out.
    fast = inventory(tmp_path, "fast", "blank")
    Path(fast).write_text(Path(fast).read_text().replace("'min_write_mib_s': 1",
                                                         "'min_write_mib_s': 100000"))
    out = run_verify(fast, "-k", "test_disks_sequential_throughput")
    assert out.returncode == 1 and "declared at least 100000" in out.stdout, out.stdout[-3000:]
    in_container("cp /etc/fstab /tmp/fstab && sed -i 's/,nofail//' /etc/fstab")
    out = run_verify(inv, "-k", "test_disks_in_fstab_by_uuid_with_nofail")
    in_container("cp /tmp/fstab /etc/fstab")
    assert out.returncode == 1 and "no nofail in /etc/fstab" in out.stdout, out.stdout[-3000:]

    # The second run changes nothing.
    rc, document, log = pyinfra_json(inv, DEPLOY)
    assert rc == 0, log[-3000:]
    assert document["results"]["totals"]["success"] == 0, changed_operations(document)


def test_unmounted_disk_fails_verify_then_deploy_remounts(disks, tmp_path):
    inv = inventory(tmp_path, "again", "blank")
    in_container("umount /data-blank")
    out = run_verify(inv, "-k", "test_disks_mounted_as_declared")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "/dev/disk/by-id/dlws-test-blank" in out.stdout and "is not mounted at /data-blank" \
        in out.stdout, out.stdout[-3000:]
    rc, document, log = pyinfra_json(inv, DEPLOY)
    assert rc == 0, log[-3000:]
    # Only the mount: the shared folder is read when its operation runs (after the mount).
    assert changed_operations(document) == ["Data disks | Mount /data-blank"], log[-3000:]
    assert in_container("cat /data-blank/datasets/a.txt").stdout == "from-ada\nfrom-grace\n"


def test_removed_lab_user_is_reported_never_deleted(disks, tmp_path):
    inv = inventory(tmp_path, "left", "blank", users=["ada"])
    rc, document, log = pyinfra_json(inv, DEPLOY)
    assert rc == 0, log[-3000:]
    assert in_container("id grace", check=False).returncode == 0, "grace was deleted"
    out = run_verify(inv, "-k", "test_no_removed_lab_user_left_behind")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "removed from base_lab_users but still on the host: ['grace']" in out.stdout, \
        out.stdout[-3000:]


@pytest.mark.parametrize(("device", "found"), [
    ("ext3", "it carries a ext3 filesystem, not the declared ext4"),
    ("mbr", "it holds a dos partition table"),
])
def test_disk_that_is_not_blank_is_refused_untouched(disks, tmp_path, device, found):
    before = first_mib(disks[device])
    fstab = in_container("cat /etc/fstab").stdout
    rc, document, log = pyinfra_json(inventory(tmp_path, f"refuse_{device}", device), DEPLOY)
    assert rc != 0, log[-3000:]
    assert f"/dev/disk/by-id/dlws-test-{device}: {found}" in log, log[-3000:]
    assert "nothing was changed on any host" in log, log[-3000:]
    assert first_mib(disks[device]) == before, f"{device}: the disk's first MiB changed"
    assert in_container("cat /etc/fstab").stdout == fstab
    if device == "ext3":
        kept = sh("debugfs", "-R", "cat hello.txt", disks[device]).stdout
        assert kept == "a dataset someone keeps\n", kept
