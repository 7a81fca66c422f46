"""Rootless Podman for two lab users, for real in Debian 12 and 13 containers: distinct subordinate
ranges, a container from a locally imported image as each user, nothing changed on a second run,
verify failing by the user's name when a subuid line goes, and the next deploy mending it.

Rootless Podman inside an unprivileged Docker container needs, besides the default: SYS_ADMIN,
no seccomp or AppArmor profile (unshare(CLONE_NEWUSER) and mounts), unmasked /proc paths
(`systempaths=unconfined`: the kernel refuses a new proc mount in a user namespace where /proc
has masked paths) and /dev/fuse. Never --privileged (refused on this machine). The homes lie on
a volume (ext4 here): Podman 5 (Debian 13) refuses its rootless overlay storage on the
container's own overlayfs root ("'overlay' is not supported over overlayfs, a mount_program is
required"), as it would a workstation's overlayfs home; Podman 4.3 falls back to vfs there.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dlws.facts.system import overlapping_ranges, parse_subordinate_ids
from dlws.sandbox.docker_env import ensure_container, remove_container
from dlws.sandbox.images import ensure_debian_image
from tests.helpers import ROOT, changed_operations, pyinfra_json, run_verify

pytestmark = pytest.mark.integration
USERS = ("alice", "bob")
IMAGE = "localhost/i26-tiny:1"
# A range another tool handed out before dlws: it must be kept and never overlapped.
FOREIGN = "svc-builder:100000:65536"
PODMAN_ARGS = ("--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
               "--security-opt", "apparmor=unconfined", "--security-opt", "systempaths=unconfined",
               "--device", "/dev/fuse")
# A minimal root file system from the container's own sh and cat, their libraries, and the
# loader: `podman import` makes it an image, so no registry is needed.
TINY_ROOTFS = (
    "set -e; r=$(mktemp -d); mkdir -p $r/bin; cp /bin/sh /bin/cat $r/bin/; "
    "for b in $r/bin/*; do ldd $b | awk '/=>/ {print $3} /ld-linux/ {print $1}'; done "
    "| sort -u | while read l; do mkdir -p $r$(dirname $l); cp -L $l $r$l; done; "
    "tar -C $r -cf /var/tmp/i26-tiny.tar .; chmod 644 /var/tmp/i26-tiny.tar; rm -rf $r"
)


def dexec(name: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", name, "sh", "-c", script],
                          capture_output=True, text=True)


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def podman_host(request, docker_engine, tmp_path_factory):
    name = f"i26-podman-{request.param}"
    homes = f"{name}-home"
    remove_container(name)
    subprocess.run(["docker", "volume", "rm", "-f", homes], capture_output=True)
    ensure_container(name, ensure_debian_image(request.param),
                     extra=(*PODMAN_ARGS, "-v", f"{homes}:/home"))
    for path in ("/etc/subuid", "/etc/subgid"):
        assert dexec(name, f"echo {FOREIGN} >> {path}").returncode == 0
    inventory = Path(tmp_path_factory.mktemp("inv")) / "podman.py"
    data = {"containers_engine": "podman", "base_lab_users": list(USERS),
            "containers_rootless_check_image": IMAGE}
    inventory.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from dlws.sandbox.data import controller_data\n"
        f"hosts = [('@docker/{name}', {{**controller_data(), **{data!r}}})]\n")
    yield name, str(inventory)
    remove_container(name)
    subprocess.run(["docker", "volume", "rm", "-f", homes], capture_output=True)


def ranges(name: str, path: str) -> list[dict]:
    return parse_subordinate_ids(dexec(name, f"cat {path}").stdout.splitlines())


def test_rootless_podman_for_two_lab_users(podman_host):
    name, inventory = podman_host
    rc, document, log = pyinfra_json(inventory, "deploy/containers.py")
    assert rc == 0, log[-4000:]
    changed = changed_operations(document)
    assert any(op.startswith("Containers | Install Podman") for op in changed), changed
    for path in ("/etc/subuid", "/etc/subgid"):
        entries = ranges(name, path)
        owners = [e["owner"] for e in entries]
        assert owners[0] == "svc-builder" and set(USERS) <= set(owners), entries
        assert overlapping_ranges(entries) == [], entries
        print(path, entries)

    # A second run changes nothing.
    rc, document, log = pyinfra_json(inventory, "deploy/containers.py")
    assert rc == 0, log[-3000:]
    assert changed_operations(document) == [], "the second run changed something"

    # Each user imports the tiny image into their own storage and runs it.
    assert dexec(name, TINY_ROOTFS).returncode == 0
    maps = {}
    for user in USERS:
        out = dexec(name, f"runuser -l {user} -c 'podman import -q /var/tmp/i26-tiny.tar {IMAGE}"
                          f" >/dev/null && podman run --rm --network none {IMAGE} cat "
                          "/proc/self/uid_map'")
        assert out.returncode == 0, out.stderr[-2000:]
        maps[user] = out.stdout.split()
    print(maps)
    assert maps["alice"] != maps["bob"], "the two users share a user namespace mapping"

    out = run_verify(inventory, "-k", "test_containers and (subordinate or rootless)", "-rs")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert "2 passed" in text, text[-3000:]  # the ranges, a container as each user


def test_verify_names_the_user_whose_subuid_line_is_gone_and_the_deploy_mends_it(podman_host):
    name, inventory = podman_host
    assert dexec(name, "sed -i '/^bob:/d' /etc/subuid").returncode == 0
    out = run_verify(inventory, "-k", "test_containers and subordinate")
    text = out.stdout + out.stderr
    assert out.returncode == 1, text[-3000:]
    assert "lab user bob has no range in /etc/subuid" in text, text[-3000:]
    print(next(line for line in text.splitlines()
               if line.startswith("E") and "has no range" in line))

    rc, document, log = pyinfra_json(inventory, "deploy/containers.py")
    assert rc == 0, log[-3000:]
    changed = changed_operations(document)
    assert any("subordinate uid/gid ranges" in op for op in changed), changed
    entries = ranges(name, "/etc/subuid")
    assert overlapping_ranges(entries) == [] and "bob" in [e["owner"] for e in entries], entries
    assert entries[0]["owner"] == "svc-builder", "the foreign range was kept first"
    print("after the deploy:", entries)
    out = run_verify(inventory, "-k", "test_containers and (subordinate or rootless)")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
