"""A deploy killed mid-install is repaired by the next run; a held apt lock fails within a bound."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dlws.sandbox.docker_env import ensure_container, remove_container
from dlws.sandbox.images import ensure_debian_image
from tests.helpers import BIN, ROOT, changed_operations, pyinfra_json, run_verify

pytestmark = pytest.mark.integration
INTERRUPTED = "dlws-test-interrupted"
LOCKED = "dlws-test-locked"
# Minimal stack, so the run's time goes to apt: no frameworks, pip instead of installing uv.
MINIMAL = {
    "frameworks_tensorflow": "none",
    "frameworks_torch": "none",
    "verify_frameworks": [],
    "python_env_installer": "pip",
    "hardware_min_memory_gib": 1,
}
# Holds an fcntl lock as apt and dpkg take it (struct flock on x86_64/arm64); perl is in every
# Debian image, python3 is not.
HOLD_LOCK = (
    'use Fcntl; open(my $f, ">>", $ARGV[0]) or die "open: $!"; '
    'my $s = pack("s s x4 q q i x4", F_WRLCK, 0, 0, 0, 0); fcntl($f, F_SETLK, $s) '
    'or die "lock: $!"; '
    "sleep $ARGV[1];"
)


def write_inventory(tmp_path: Path, name: str, **data) -> str:
    inventory = tmp_path / f"{name}.py"
    inventory.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from dlws.sandbox.data import controller_data\n"
        f"hosts = [('@docker/{name}', {{**controller_data(), **{ {**MINIMAL, **data}!r}}})]\n"
    )
    return str(inventory)


def dexec(name: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", name, "sh", "-c", script],
                          capture_output=True, text=True)


def fresh_container(name: str) -> None:
    remove_container(name)
    ensure_container(name, ensure_debian_image("bookworm"))


# pgrep/pkill are not in a bare image: walk /proc.
PIDS_OF = ('for p in /proc/[0-9]*; do c=$(cat $p/comm 2>/dev/null); case " {names} " in '
           '*" $c "*) echo ${{p#/proc/}};; esac; done')


def kill_when_dpkg_unpacks(name: str, stop: threading.Event, killed: list) -> None:
    """Kill apt-get and dpkg in the container once dpkg has worked for a moment."""
    while not stop.is_set():
        if dexec(name, PIDS_OF.format(names="dpkg")).stdout.strip():
            time.sleep(1.5)  # into the unpack of build-essential's packages
            out = dexec(name, f"kill -9 $({PIDS_OF.format(names='apt-get dpkg')}) 2>&1")
            killed.append(out.stdout + out.stderr)
            return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def interrupted(docker_engine, tmp_path_factory):
    fresh_container(INTERRUPTED)
    yield write_inventory(tmp_path_factory.mktemp("inv"), INTERRUPTED)
    remove_container(INTERRUPTED)


def test_deploy_killed_mid_install_is_repaired_by_the_next_run(interrupted):
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=kill_when_dpkg_unpacks, args=(INTERRUPTED, stop, killed))
    killer.start()
    rc, _, log = pyinfra_json(interrupted)
    stop.set()
    killer.join()
    assert killed, f"dpkg never ran, nothing was interrupted:\n{log[-3000:]}"
    assert rc != 0, f"the deploy survived the kill, the test proves nothing:\n{log[-3000:]}"
    state = dexec(INTERRUPTED, "ls -A /var/lib/dpkg/updates; dpkg --audit")
    assert state.stdout.strip(), "dpkg was killed but left a consistent state; kill later"

    rc, document, log = pyinfra_json(interrupted)
    assert rc == 0, f"the run after the interruption failed:\n{log[-4000:]}"
    changed = changed_operations(document)
    assert "Base system | Finish an interrupted dpkg run (dpkg --configure -a)" in changed, changed
    assert dexec(INTERRUPTED, "dpkg --audit").stdout == ""

    rc, document, log = pyinfra_json(interrupted)
    assert rc == 0, log[-3000:]
    assert changed_operations(document) == [], "the third run still changed something"

    out = run_verify(interrupted)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]


HALF = "dlws-test-half-installed"


@pytest.fixture
def half_installed(docker_engine):
    fresh_container(HALF)
    yield HALF
    remove_container(HALF)


def test_a_package_left_half_installed_is_reinstalled_by_the_repair(half_installed):
    """An unpack cut short leaves a package `reinstreq half-installed`, which `dpkg --configure
    -a` cannot mend (the kill above lands there at times). Made so on purpose, the same way
    each time: the repair's command reinstalls it, and a second run of it finds nothing to do."""
    from dlws.roles.base import _apt

    setup = dexec(HALF, "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && "
                        "apt-get install -y -qq less >/dev/null && "
                        "sed -i '/^Package: less$/,/^$/ s/^Status: install ok installed/"
                        "Status: install reinstreq half-installed/' /var/lib/dpkg/status && "
                        "dpkg --audit")
    assert "less" in setup.stdout, setup
    # (What the repair did before: it leaves the package as it was.)
    assert "less" in dexec(HALF, "dpkg --configure -a; dpkg --audit").stdout, "dpkg mended it"
    for _ in range(2):
        out = dexec(HALF, _apt.repair_command(30))
        assert out.returncode == 0, out.stdout + out.stderr
        assert dexec(HALF, "dpkg --audit").stdout == ""
        assert "install ok installed" in dexec(HALF, "dpkg -s less").stdout


@pytest.fixture(scope="module")
def locked(docker_engine, tmp_path_factory):
    fresh_container(LOCKED)
    yield write_inventory(tmp_path_factory.mktemp("inv"), LOCKED, base_apt_lock_timeout_s=5)
    remove_container(LOCKED)


@pytest.mark.parametrize("lock", ["/var/lib/apt/lists/lock", "/var/lib/dpkg/lock-frontend"],
                         ids=["lists-lock", "dpkg-frontend-lock"])
def test_held_apt_lock_fails_within_bound_naming_lock_and_holder(locked, lock):
    subprocess.run(["docker", "exec", "-d", LOCKED, "perl", "-e", HOLD_LOCK, lock, "300"],
                   check=True)
    time.sleep(1)
    holder = dexec(LOCKED, PIDS_OF.format(names="perl")).stdout.strip()
    assert holder, f"the lock holder did not start on {lock}"
    try:
        started = time.monotonic()
        rc, _, log = pyinfra_json(locked)
        elapsed = time.monotonic() - started
    finally:
        dexec(LOCKED, f"kill $({PIDS_OF.format(names='perl')})")
    assert rc != 0, f"the deploy went through a held lock:\n{log[-3000:]}"
    # 5 s of waiting plus the run up to the first apt command (apt-get update ~5 s here).
    assert elapsed < 60, f"the deploy took {elapsed:.0f} s with a 5 s lock timeout"
    assert lock in log, f"the output does not name {lock}:\n{log[-3000:]}"
    assert "held by process" in log and "(perl)" in log, f"no holder named:\n{log[-3000:]}"


if __name__ == "__main__":
    sys.exit(subprocess.call([str(BIN / "pytest"), __file__, "-v"]))
