"""Test ordering: fast offline tests first, then real containers, then the slow CUDA converge."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def pytest_collection_modifyitems(config, items):
    def rank(item):
        if item.get_closest_marker("slow"):
            return 2
        return 1 if item.get_closest_marker("integration") else 0

    items.sort(key=rank)


@pytest.fixture(scope="session")
def docker_engine():
    """The local Docker engine; integration tests fail (not skip) when it is missing."""
    if shutil.which("docker") is None:
        pytest.fail("docker CLI missing: run the tests through `bin/dlws test`, which installs "
                    "and starts the engine")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if info.returncode != 0:
        pytest.fail(f"the Docker engine is not running: {info.stderr.strip()[:300]}")


@pytest.fixture(scope="module")
def password_sshd(docker_engine, tmp_path_factory):
    """An sshd container whose users log in with helpers.PASSWORD: `lab`, whose sudo asks for
    it, and `free`, whose sudo asks none (NOPASSWD); the inventory data that reaches `lab`
    (an ssh config that would ask nothing, BatchMode yes, keys off, and this container's host
    key alone trusted)."""
    from tests import helpers

    folder = tmp_path_factory.mktemp("ssh-password")
    with helpers.sshd_container(
            folder, "useradd -m lab && useradd -m free && chpasswd && echo 'lab ALL=(ALL:ALL) "
            "ALL' >/etc/sudoers.d/lab && echo 'free ALL=(ALL:ALL) NOPASSWD: ALL' "
            ">/etc/sudoers.d/free", f"lab:{helpers.PASSWORD}\nfree:{helpers.PASSWORD}\n"
    ) as (ip, known):
        config = folder / "config"
        config.write_text("Host *\n  PubkeyAuthentication no\n  BatchMode yes\n"
                          "  LogLevel ERROR\n")
        yield ip, {"ssh_user": "lab", "ssh_password": helpers.PASSWORD,
                   "ssh_config_file": str(config), "ssh_known_hosts_file": str(known),
                   "ssh_strict_host_key_checking": "yes"}


@pytest.fixture(scope="session")
def default_scenario(docker_engine):
    """Molecule's `default` (Debian 12, CPU profile) converged, rerun and verified once; its
    container stays up for every module that reuses it, and goes at the session's end."""
    from dlws.sandbox.images import ensure_debian_image
    from tests.test_molecule import molecule

    ensure_debian_image("bookworm")
    out = molecule("test", "-s", "default", "--destroy", "never")
    yield out
    molecule("destroy", "-s", "default")
