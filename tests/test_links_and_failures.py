"""For real, in a Debian 12 container: a link is never followed, a failed apt fetch fails the run.

A data disk (a loop device, as tests/roles/storage/test_disks.py) whose top-level `datasets`
entry is a symbolic link to /etc: the deploy is refused naming the link, and /etc keeps its
owner, mode and ACLs. An apt proxy on a closed port of 127.0.0.1: `apt-get update` fails the
deploy and the message names the source it could not fetch.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dlws.sandbox.images import ensure_debian_image
from tests.helpers import checked as run
from tests.helpers import disk_container, pyinfra_json

pytestmark = pytest.mark.integration
CONTAINER = "i21b-links"
DEPLOY = "tests/fixtures/storage_deploy.py"
SIZE_MIB = 64
CLOSED_PORT = 9  # discard: nothing listens on the container's own loopback


def in_container(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return run("docker", "exec", CONTAINER, *argv, check=check)


def etc_state() -> str:
    """/etc's owner, group, mode and ACL entries, as the container sees them."""
    stat = in_container("stat", "-c", "%U:%G %a", "/etc").stdout
    acl = in_container("getfacl", "-cp", "/etc", check=False).stdout
    return stat + acl


@pytest.fixture(scope="module")
def linked_disk(docker_engine, tmp_path_factory):
    """An ext4 disk whose top-level `datasets` is a symbolic link to /etc, in a container."""
    ensure_debian_image("bookworm")
    image = tmp_path_factory.mktemp("links") / "linked.img"
    with image.open("wb") as f:
        f.truncate(SIZE_MIB * 2**20)
    run("mkfs.ext4", "-q", "-F", str(image))
    run("debugfs", "-w", "-R", "symlink datasets /etc", str(image))
    with disk_container(CONTAINER, image) as loop:
        in_container("ln", "-sf", loop, "/dev/disk/by-id/i21b-linked")
        yield loop


def inventory(tmp_path: Path, name: str, **data) -> str:
    data = {"gpu_count": 0, "base_lab_users": ["ada"], "python_env_require_hashes": False,
            **data}
    path = tmp_path / f"{name}.py"
    path.write_text(f"{name} = [('@docker/{CONTAINER}', {data!r})]\n")
    return str(path)


DISK = {"device": "/dev/disk/by-id/i21b-linked", "mount": "/data-linked", "fs": "ext4",
        "options": "defaults", "min_free_gib": 0.01, "min_read_mib_s": 1, "min_write_mib_s": 1}


def test_datasets_link_to_etc_is_refused_and_etc_unchanged(linked_disk, tmp_path):
    inv = inventory(tmp_path, "linked", storage_disks=[DISK])
    # getfacl comes with the deploy's acl package: install it first so /etc's ACLs are read
    # the same way before and after.
    in_container("sh", "-c", "apt-get update -qq && apt-get install -qq -y acl >/dev/null")
    before = etc_state()
    assert "group:lab" not in before, before

    # First run: the disk is mounted during the run, so the link shows only then; the host's
    # own check refuses it before chown, chmod or setfacl.
    rc, _, log = pyinfra_json(inv, DEPLOY)
    assert rc != 0, log[-4000:]
    assert "/data-linked/datasets is a symbolic link" in log, log[-4000:]
    assert "storage_disks" in log and "Remove the link" in log, log[-4000:]
    assert etc_state() == before, "/etc changed through the datasets link"
    assert in_container("test", "-L", "/data-linked/datasets", check=False).returncode == 0

    # Second run: the disk is mounted now, the fact reports the link as a link (not a folder)
    # and the deploy stops before anything changes.
    rc, _, log = pyinfra_json(inv, DEPLOY)
    assert rc != 0, log[-4000:]
    assert "/data-linked/datasets is a symbolic link to /etc" in log, log[-4000:]
    assert "nothing was changed on any host" in log, log[-4000:]
    assert etc_state() == before, "/etc changed through the datasets link"


def test_apt_update_through_a_closed_proxy_fails_naming_the_source(linked_disk, tmp_path):
    inv = inventory(tmp_path, "proxied", base_http_proxy=f"http://127.0.0.1:{CLOSED_PORT}")
    # The index must be fetched now, whatever the stamp of an earlier update says.
    in_container("rm", "-f", "/var/lib/apt/periodic/update-success-stamp")
    rc, document, log = pyinfra_json(inv, "deploy/workstation.py")
    assert rc != 0, log[-4000:]
    assert "Failed to fetch http://" in log, log[-4000:]
    assert "apt-get update could not fetch every declared source" in log, log[-4000:]
    assert "base_http_proxy" in log, log[-4000:]
