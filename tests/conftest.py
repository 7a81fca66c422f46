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
