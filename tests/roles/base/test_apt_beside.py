"""The essential packages' apt-get install beside the Python environment (roles/base/_apt.py):
the plan it makes, and the start and wait commands run for real in a shell here (a stand-in
apt-get on PATH; the real apt runs in the containers of the deploy's integration tests)."""

from __future__ import annotations

import ast
import subprocess
import time
from pathlib import Path

import pytest

from dlws.command import all_of, any_of, cmd
from dlws.roles.base import FIRST_PACKAGES, _apt, split_install
from tests.plan.cases import host_data, packages, run_case

ROLES = Path(__file__).resolve().parents[3] / "roles"


def test_cpu_host_installs_python_first_and_the_rest_beside_the_environment():
    run = run_case("debian-12_no-gpu_beside", host_data("debian-12", "no-gpu", "distro"))
    assert run.error is None, run.error
    assert sorted(packages(run, "Install the system Python").split()) == sorted(FIRST_PACKAGES)
    [start] = run.named("Start installing the other essential packages")
    assert "build-essential" in start.commands[0] and "stress-ng" in start.commands[0]
    assert "setsid -f sh -c" in start.commands[0], run.describe()
    names = [op.name for op in run.ops]
    [wait] = [i for i, name in enumerate(names) if "Wait for the packages installed beside" in name]
    framework = next(i for i, name in enumerate(names) if "Install the frameworks" in name)
    record = next(i for i, name in enumerate(names) if "Record the stack" in name)
    assert names.index(start.name) < framework < wait < record, run.describe()
    assert run.ops[wait].conditional, "waits only where the install beside started"
    # The environment's installs take wheels alone while the build tools may be missing, and
    # wait for them before they build anything.
    [install] = run.named("Install the frameworks")
    line = " ".join(install.commands)
    assert "--no-build" in line and _apt.wait_beside_command() in line, line
    assert line.index("--no-build") < line.index(_apt.wait_beside_command()), line


def test_a_later_roles_apt_install_waits_for_the_install_beside_first():
    data = host_data("debian-12", "no-gpu", "distro", containers_engine="docker",
                     containers_engine_source="distro")
    run = run_case("debian-12_no-gpu_docker_beside", data)
    assert run.error is None, run.error
    names = [op.name for op in run.ops]
    waits = [i for i, name in enumerate(names) if "Wait for the packages installed beside" in name]
    engine = next(i for i, name in enumerate(names) if "Install the Docker engine" in name)
    assert len(waits) == 1 and waits[0] < engine, run.describe()


def test_a_cpu_host_with_data_disks_installs_their_tools_first_and_waits_for_nothing():
    """roles/storage runs before the Python environment: its tools come with the first run, or
    its apt operation would wait for the install beside before the environment started."""
    disk = {"device": "/dev/disk/by-id/nvme-lab-1", "mount": "/data", "fs": "xfs"}
    data = host_data("debian-12", "no-gpu", "distro", storage_disks=[disk])
    data["fake_responses"]["blkid -p -o export"] = [
        "path=/dev/nvme1n1", "--blkid", "--wipefs", "--children", "--holders", "--mounts"]
    run = run_case("debian-12_no-gpu_disk_beside", data)
    assert run.error is None, run.error
    first = packages(run, "Install the system Python").split()
    assert sorted(first) == sorted([*FIRST_PACKAGES, "acl", "util-linux", "xfsprogs"]), first
    assert not run.named("Install the filesystem and ACL tools"), run.describe()
    names = [op.name for op in run.ops]
    assert "mkfs.xfs" in " ".join(run.commands()), run.describe()
    [wait] = [i for i, name in enumerate(names) if "Wait for the packages installed beside" in name]
    framework = next(i for i, name in enumerate(names) if "Install the frameworks" in name)
    assert framework < wait, run.describe()


def test_the_storage_role_alone_installs_its_own_tools():
    """Without roles/base's first run (tests/fixtures/storage_deploy.py), roles/storage
    installs its tools itself."""
    disk = {"device": "/dev/disk/by-id/nvme-lab-1", "mount": "/data"}
    data = host_data("debian-12", "no-gpu", "distro", storage_disks=[disk])
    data["fake_responses"]["blkid -p -o export"] = [
        "path=/dev/nvme1n1", "--blkid", "--wipefs", "--children", "--holders", "--mounts"]
    run = run_case("debian-12_no-gpu_storage_alone", data,
                   deploy="tests/fixtures/storage_deploy.py")
    assert run.error is None, run.error
    assert packages(run, "Install the filesystem and ACL tools").split() == [
        "acl", "util-linux", "e2fsprogs"], run.describe()


def test_a_roles_install_of_packages_the_first_run_has_too_is_still_planned():
    """Only roles/storage's tools are skipped where the first run has them: a lab that lists
    the driver's own packages in base_extra_packages still gets the driver role's install (its
    operation's outcome decides the steps after it)."""
    data = host_data("ubuntu-24.04", "a100", "distro")
    driver = packages(run_case("ubuntu-24.04_a100_driver", data), "Install the NVIDIA driver")
    assert driver, "no driver install planned"
    run = run_case("ubuntu-24.04_a100_driver_in_extras",
                   {**data, "base_extra_packages": driver.split()})
    assert run.error is None, run.error
    assert packages(run, "Install the NVIDIA driver") == driver, run.describe()


def test_driver_host_installs_the_essential_packages_in_one_run():
    run = run_case("ubuntu-24.04_a100_one-run", host_data("ubuntu-24.04", "a100", "distro"))
    assert run.error is None, run.error
    essential = packages(run, "Install essential packages").split()
    assert {"build-essential", "stress-ng", *FIRST_PACKAGES} <= set(essential), run.describe()
    assert not run.named("beside"), run.describe()


def test_the_labs_extra_packages_install_first_in_pyinfras_apt():
    first, beside = split_install(["build-essential", "python3", "htop=3.2.2-2"],
                                  ["htop=3.2.2-2"], driver=False)
    assert first == ["python3", "htop=3.2.2-2"] and beside == ["build-essential"]
    assert split_install(["build-essential", "python3"], [], driver=True) == (
        ["build-essential", "python3"], [])


def test_every_roles_apt_operation_waits_for_the_install_beside():
    """No role calls pyinfra's apt operations itself: `_apt.packages` and `_apt.refresh` wait
    for an install beside first (base's own, before it starts one, are the exception)."""
    offenders = []
    for path in sorted(ROLES.rglob("*.py")):
        if path.relative_to(ROLES).parts[0] == "base":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "pyinfra.operations" and any(
                    alias.name == "apt" for alias in node.names):
                offenders.append(f"{path.relative_to(ROLES)}:{node.lineno}")
            if isinstance(node, ast.Import) and any(
                    alias.name.startswith("pyinfra.operations.apt") for alias in node.names):
                offenders.append(f"{path.relative_to(ROLES)}:{node.lineno}")
    assert not offenders, offenders


def test_start_returns_at_once_and_the_wait_waits_for_the_install(fake_apt):
    folder, env = fake_apt
    env = {**env, "FAKE_APT_SLEEP": "2"}
    started = time.monotonic()
    subprocess.run(["sh", "-c", _apt.beside_command(["git", "stress-ng"])], env=env, check=True,
                   timeout=10)
    assert time.monotonic() - started < 1.5, "the start waited for the install"
    assert (folder / "status").read_text().strip() == "running"
    assert (folder.stat().st_mode & 0o777) == 0o700
    waited = subprocess.run(["sh", "-c", _apt.wait_beside_command()], env=env, capture_output=True,
                            text=True, timeout=10)
    assert waited.returncode == 0, waited.stderr
    assert time.monotonic() - started >= 2, "the wait returned before the install ended"
    log = (folder / "log").read_text()
    assert "install --no-install-recommends git stress-ng" in log, log
    assert "DEBIAN_FRONTEND" not in log and (folder / "status").read_text().strip() == "0"


def test_a_command_joined_after_the_wait_runs(fake_apt, tmp_path):
    """The environment's fallback (python_env) joins its install after the wait: the wait must
    end only itself, or that install would never run and the operation would pass."""
    folder, env = fake_apt
    subprocess.run(["sh", "-c", _apt.beside_command(["git"])], env=env, check=True, timeout=10)
    marker = tmp_path / "installed"
    line = any_of([cmd("false"), all_of([_apt.wait_beside_command(), cmd("touch", marker)])])
    out = subprocess.run(["sh", "-c", line], env=env, capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0 and marker.exists(), out


def test_a_failed_install_beside_fails_the_wait_with_its_output(fake_apt):
    folder, env = fake_apt
    env = {**env, "FAKE_APT_RC": "100"}
    subprocess.run(["sh", "-c", _apt.beside_command(["nope"])], env=env, check=True, timeout=10)
    waited = subprocess.run(["sh", "-c", _apt.wait_beside_command()], env=env, capture_output=True,
                            text=True, timeout=10)
    assert waited.returncode == 1
    assert "E: Unable to locate package nope" in waited.stderr, waited.stderr
    assert "ended with status 100" in waited.stderr, waited.stderr


def test_an_install_that_died_fails_the_wait(fake_apt):
    """Killed before it wrote its status (the status still reads `running`): the lock is free,
    the wait fails rather than hangs or passes."""
    folder, env = fake_apt
    env = {**env, "FAKE_APT_SLEEP": "30"}
    subprocess.run(["sh", "-c", _apt.beside_command(["git"])], env=env, check=True, timeout=10)
    subprocess.run(["pkill", "-KILL", "-f", f"{folder}/log"], check=False)
    time.sleep(0.3)
    subprocess.run(["pkill", "-KILL", "-f", "sleep 30"], check=False)
    waited = subprocess.run(["sh", "-c", _apt.wait_beside_command()], env=env, capture_output=True,
                            text=True, timeout=10)
    assert waited.returncode == 1 and "ended with status running" in waited.stderr, waited


def test_a_link_for_the_folder_is_refused(fake_apt, tmp_path):
    folder, env = fake_apt
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder.symlink_to(elsewhere)
    out = subprocess.run(["sh", "-c", _apt.beside_command(["git"])], env=env,
                         capture_output=True, text=True, timeout=10)
    assert out.returncode != 0 and not list(elsewhere.iterdir())


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o707])
def test_a_folder_others_can_write_or_read_is_refused(fake_apt, mode):
    """A status another user could have written is never trusted: neither the start nor the
    wait goes on in a folder that is not the running user's alone (0700)."""
    folder, env = fake_apt
    folder.mkdir()
    folder.chmod(mode)
    (folder / "status").write_text("0\n")
    out = subprocess.run(["sh", "-c", _apt.beside_command(["git"])], env=env,
                         capture_output=True, text=True, timeout=10)
    assert out.returncode != 0 and "is not root's alone" in out.stderr, out
    assert not (folder / "log").exists(), "the install started"
    waited = subprocess.run(["sh", "-c", _apt.wait_beside_command()], env=env,
                            capture_output=True, text=True, timeout=10)
    assert waited.returncode == 1 and "is not root's alone" in waited.stderr, waited
