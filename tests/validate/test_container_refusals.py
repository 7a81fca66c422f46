"""For real, in a Debian 12 container: the two payloads the issue ran on a fresh container (an
IPv6 zone id carrying a command, and a data disk mounted at /etc/.) are refused before pyinfra
connects, and the container is unchanged: no file written, the blank disk still blank, /etc not
mounted over."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dlws.sandbox.images import ensure_debian_image
from tests.helpers import checked as sh

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CONTAINER = "i21-refusals"
DISK_LINK = "/dev/disk/by-id/i21-blank"


def in_container(command: str) -> subprocess.CompletedProcess:
    return sh("docker", "exec", CONTAINER, "sh", "-c", command, check=False)


@pytest.fixture(scope="module")
def container(docker_engine, tmp_path_factory):
    """A bookworm container holding one blank loop device under a by-id name."""
    ensure_debian_image("bookworm")
    image = tmp_path_factory.mktemp("disk") / "blank.img"
    with image.open("wb") as disk:
        disk.truncate(64 * 2**20)
    loop = sh("losetup", "-f", "--show", str(image)).stdout.strip()
    try:
        sh("docker", "rm", "-f", CONTAINER, check=False)
        sh("docker", "run", "-d", "--name", CONTAINER, "--cap-add", "SYS_ADMIN", "--device", loop,
           "--tmpfs", "/run", "--tmpfs", "/tmp:exec", "dlws/debian:bookworm", "sleep",
           "infinity")
        in_container(f"mkdir -p /dev/disk/by-id && ln -sf {loop} {DISK_LINK}")
        # The control: the container answers, so an absent file below is the refusal's doing.
        assert in_container(f"test -b {DISK_LINK}").returncode == 0
        yield loop
    finally:
        sh("docker", "rm", "-f", CONTAINER, check=False)
        sh("losetup", "-d", loop, check=False)


def deploy(tmp_path: Path, data: dict) -> subprocess.CompletedProcess:
    inventory = tmp_path / "inventory.py"
    inventory.write_text(f"hosts = [('@docker/{CONTAINER}', {{'python_env_require_hashes': "
                         f"False, **{data!r}}})]\n")
    return subprocess.run([str(Path(sys.executable).parent / "pyinfra"), "-y", str(inventory),
                           "deploy/workstation.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def assert_refused(out: subprocess.CompletedProcess, key: str, fix: str) -> None:
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert "Connecting to hosts" not in text, f"pyinfra connected:\n{text[-3000:]}"
    line = next((line for line in text.splitlines()
                 if f"host @docker/{CONTAINER}: {key}:" in line), "")
    assert fix in line, f"no message naming the key with {fix!r}:\n{text[-3000:]}"


def test_zone_id_payload_is_refused_and_runs_nothing(container, tmp_path):
    out = deploy(tmp_path, {"notebooks_enabled": True, "base_lab_users": ["ada"],
                            "notebooks_address": "fe80::1%$(id>/tmp/x)"})
    assert_refused(out, "notebooks_address", "zone id")
    assert in_container("test -e /tmp/x").returncode == 1, "the payload ran in the container"
    assert in_container("test -e /etc/dlws").returncode == 1, "the deploy changed the host"


def test_a_mount_at_etc_dot_is_refused_and_the_disk_stays_blank(container, tmp_path):
    out = deploy(tmp_path, {"storage_disks": [{"device": DISK_LINK, "mount": "/etc/."}]})
    assert_refused(out, "storage_disks", "write it as '/etc'")
    with open(container, "rb") as disk:
        assert disk.read(2**20) == bytes(2**20), "the blank disk was written to"
    assert in_container("findmnt -n /etc").stdout == "", "something is mounted over /etc"
    assert in_container("grep -c nofail /etc/fstab").stdout.strip() in ("", "0")
