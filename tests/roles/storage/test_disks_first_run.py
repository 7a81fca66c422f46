"""A CPU host with a data disk, for real: roles/base installs the disk's tools in its first
apt-get run, starts the rest of the essential packages beside, and roles/storage formats and
shares the disk meanwhile, without waiting for them (a loop device handed to a Debian 12
container, as in test_disks.py)."""

from __future__ import annotations

import pytest

from dlws.roles.base import _apt
from dlws.sandbox.images import ensure_debian_image
from tests.helpers import changed_operations, checked, disk_container, pyinfra_json

pytestmark = pytest.mark.integration
CONTAINER = "dlws-i44-disk-first"
DEPLOY = "tests/fixtures/base_storage_deploy.py"
DISK = "/dev/disk/by-id/dlws-test-first"


def in_container(command: str) -> str:
    return checked("docker", "exec", CONTAINER, "sh", "-c", command).stdout.strip()


@pytest.fixture
def blank_disk(docker_engine, tmp_path):
    ensure_debian_image("bookworm")
    image = tmp_path / "blank.img"
    with image.open("wb") as f:
        f.truncate(300 * 2**20)
    with disk_container(CONTAINER, image) as loop:
        checked("docker", "exec", CONTAINER, "ln", "-sf", loop, DISK)
        yield loop


def test_the_disk_is_formatted_while_the_essential_packages_install_beside(blank_disk,
                                                                           tmp_path):
    data = {"gpu_count": 0, "base_lab_users": ["ada"], "python_env_require_hashes": False,
            "storage_disks": [{"device": DISK, "mount": "/data", "fs": "ext4"}]}
    inventory = tmp_path / "first.py"
    inventory.write_text(f"first = [('@docker/{CONTAINER}', {data!r})]\n")
    rc, document, log = pyinfra_json(str(inventory), DEPLOY)
    assert rc == 0, log[-4000:]
    changed = changed_operations(document)
    [first] = [op for op in changed if "Install the system Python and CA certificates" in op]
    assert "e2fsprogs" in first and "acl" in first, changed
    assert not [op for op in changed if "Install the filesystem and ACL tools" in op], changed
    assert any(op.startswith("Data disks | Format") for op in changed), changed
    assert any("Wait for the packages installed beside" in op for op in changed), changed
    # The disk was shared before the install beside ended (its status is written at its end):
    # roles/storage did not wait for it.
    shared, ended = in_container(f"stat -c %.9Y /data/datasets {_apt.BESIDE_STATUS}").split()
    assert float(shared) < float(ended), (shared, ended, changed)
    assert in_container(f"cat {_apt.BESIDE_STATUS}") == "0"
    assert in_container(f"blkid -s TYPE -o value {blank_disk}") == "ext4"
    assert in_container("dpkg-query -W -f '${Status}' build-essential") == (
        "install ok installed")

    rc, document, log = pyinfra_json(str(inventory), DEPLOY)
    assert rc == 0, log[-3000:]
    assert document["results"]["totals"]["success"] == 0, changed_operations(document)
