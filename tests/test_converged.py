"""A converged host's rerun plans nothing, and any drift of what the deploy manages defeats it.

A real Debian 12 container, the workstation without frameworks: deploy, rerun (records the
converged run), then for each kind of drift the deploy manages (a config file edited, a package
removed, a pip package removed, a managed file's bytes changed in place with its size and
modification time kept, an apt source edited, a lab user removed, a folder's mode and a lab
user's GPU group changed) the rerun must plan and repair it, although the run before it skipped
the facts batch on the stamps alone (dlws.facts.stamps), and the run after that is converged again.
(Services: a container runs no systemd, so the deploy manages none here; a service's reading
is no file's: dlws.facts.stamps reads it beside the stamps on every run, as the batch does.)
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dlws.facts.batch import CONVERGED_FILE
from dlws.sandbox.docker_env import ensure_container, remove_container
from dlws.sandbox.images import ensure_debian_image
from tests.helpers import ROOT, changed_operations, pyinfra_json

pytestmark = pytest.mark.integration
NAME = f"{os.environ.get('DLWS_TEST_PREFIX', 'dlws-test')}-converged"
PREFIX = "/opt/dlws/venv"
MINIMAL = {
    "frameworks_tensorflow": "none",
    "frameworks_torch": "none",
    "verify_frameworks": [],
    "python_env_extra_packages": ["numpy==2.2.6"],
    "hardware_min_memory_gib": 1,
    "base_lab_users": ["researcher"],
}
SKIPPED = "converged: every reading matches"
STAMPED = "read from the stamps"
SOURCES = "/etc/apt/sources.list.d/dlws-components.sources"
# A managed file's bytes changed in place (same inode, same size), its modification time set
# back: only the change time (ctime) moved.
IN_PLACE = ("sha256sum /etc/pip.conf > /root/pip.conf.sum && m=$(stat -c %y /etc/pip.conf) && "
            "printf '#' | dd of=/etc/pip.conf bs=1 seek=1 conv=notrunc 2>/dev/null && "
            "touch -d \"$m\" /etc/pip.conf && ! sha256sum -c --quiet /root/pip.conf.sum "
            ">/dev/null 2>&1")


def dexec(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", NAME, "sh", "-c", script], capture_output=True,
                          text=True)


@pytest.fixture(scope="module")
def converged_host(docker_engine, tmp_path_factory):
    inventory = tmp_path_factory.mktemp("converged") / "inventory.py"
    inventory.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from dlws.sandbox.data import controller_data\n"
        f"hosts = [('@docker/{NAME}', {{**controller_data(), **{MINIMAL!r}}})]\n")
    remove_container(NAME)
    ensure_container(NAME, ensure_debian_image("bookworm"))
    env = {"XDG_CACHE_HOME": str(tmp_path_factory.mktemp("cache"))}
    rc, _, log = pyinfra_json(str(inventory), env=env)
    assert rc == 0, log[-3000:]
    yield str(inventory), env
    remove_container(NAME)


def deploy(inventory: str, env: dict) -> tuple[list[str], str]:
    rc, document, log = pyinfra_json(inventory, env=env)
    assert rc == 0, log[-3000:]
    return changed_operations(document), log


def converge(inventory: str, env: dict) -> None:
    """Reruns until one records the converged run, then until one skips planning on the
    stamps alone (dlws.facts.stamps: no facts batch)."""
    for _ in range(2):
        changed, log = deploy(inventory, env)
        assert not changed, f"a rerun changed {changed}"
        if "recorded this converged run" in log:
            break
    for _ in range(2):
        changed, log = deploy(inventory, env)
        assert SKIPPED in log and not changed, log[-3000:]
        if STAMPED in log:
            break
    assert STAMPED in log, log[-3000:]


def test_a_converged_rerun_plans_nothing_and_says_so(converged_host):
    inventory, env = converged_host
    converge(inventory, env)
    # The record is root's alone.
    out = dexec(f"stat -c '%U %a' {CONVERGED_FILE} {Path(CONVERGED_FILE).parent}")
    assert out.stdout.split("\n")[:2] == ["root 600", "root 700"], out
    # Turned off, the same rerun plans every operation, and finds nothing to change.
    changed, log = deploy(inventory, {**env, "DLWS_CONVERGED": "0"})
    assert SKIPPED not in log and not changed


# (drift on the host, the check that it is repaired)
DRIFTS = {
    "config file edited": ("echo 'index-url = http://127.0.0.1:9/' >> /etc/pip.conf",
                           "! grep -q 127.0.0.1:9 /etc/pip.conf"),
    "package removed": ("dpkg -r --force-depends curl >/dev/null",
                        "dpkg-query -W -f '${Status}' curl | grep -q 'install ok installed'"),
    "pip package removed": (f"{PREFIX}/bin/uv pip uninstall --python {PREFIX}/bin/python numpy",
                            f"{PREFIX}/bin/python -c 'import numpy'"),
    "content changed, size and mtime kept": (IN_PLACE,
                                             "sha256sum -c --quiet /root/pip.conf.sum"),
    "apt source edited": (f"test -f {SOURCES} && echo '# drift' >> {SOURCES}",
                          f"! grep -q '# drift' {SOURCES}"),
    "lab user removed": ("userdel researcher", "id researcher >/dev/null"),
    "mode changed": (f"chmod 700 {PREFIX}", f"test $(stat -c %a {PREFIX}) = 755"),
    # The files this deploy manages with an owner are the proxy's and the index credentials'
    # (none without a proxy or a private index): a lab user's GPU group stands for ownership.
    "group membership changed": ("gpasswd -d researcher video >/dev/null",
                                 "id -nG researcher | grep -qw video"),
    # The record of the environment's bytecode verify checks it against (roles/python_env).
    "bytecode record removed": (f"rm {PREFIX}/dlws-bytecode.json",
                                f"test -s {PREFIX}/dlws-bytecode.json"),
}


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_drift_defeats_the_converged_record_and_is_repaired(converged_host, drift):
    inventory, env = converged_host
    converge(inventory, env)
    change, repaired = DRIFTS[drift]
    out = dexec(change)
    assert out.returncode == 0, out
    assert dexec(repaired).returncode != 0, f"{drift}: the drift did not take"
    changed, log = deploy(inventory, env)
    assert SKIPPED not in log, f"{drift}: the rerun skipped planning over drift"
    assert changed, f"{drift}: the rerun changed nothing"
    assert dexec(repaired).returncode == 0, f"{drift}: not repaired by {changed}"
