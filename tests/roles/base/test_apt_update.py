"""`apt-get update` as the deploy runs it fails when a source cannot be fetched (base role)."""

# A stand-in apt-get on PATH prints what apt 2.x prints when a source is unreachable and exits 0
# (as apt does without Error-Mode=any); the real apt is tried in a container by
# tests/test_links_and_failures.py.

from __future__ import annotations

import os
import subprocess

import pytest

from dlws.roles.base import _apt

FETCH_FAILED = ("W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  "
                "Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection refused)")


def _run(tmp_path, output: str, rc: int) -> subprocess.CompletedProcess:
    fake = tmp_path / "apt-get"
    fake.write_text(f"#!/bin/sh\necho \"$*\" > {tmp_path}/args\nprintf '%s\\n' '{output}'\n"
                    f"exit {rc}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    return subprocess.run(["sh", "-c", _apt.with_lock_wait(_apt.UPDATE, 2)], env=env,
                          capture_output=True, text=True)


UNSIGNED = "E: The repository http://m/debian bookworm Release is not signed."


@pytest.mark.parametrize(("output", "rc"), [(FETCH_FAILED, 0), (FETCH_FAILED, 100),
                                            (UNSIGNED, 0)])
def test_update_fails_naming_the_source(tmp_path, output, rc):
    out = _run(tmp_path, output, rc)
    assert out.returncode != 0, out
    assert output in out.stderr and "could not fetch every declared source" in out.stderr
    assert "APT::Update::Error-Mode=any" in (tmp_path / "args").read_text()


def test_update_that_fetched_everything_passes(tmp_path):
    out = _run(tmp_path, "", 0)
    assert out.returncode == 0, out.stderr


def test_every_apt_get_update_of_the_host_fails_on_a_failed_fetch():
    assert 'APT::Update::Error-Mode "any";' in _apt.lock_conf(120)
