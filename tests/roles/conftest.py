"""Fixtures of the roles' tests that run their commands for real in a shell here."""

from __future__ import annotations

import os

import pytest

from dlws.roles.base import _apt


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    """A stand-in apt-get that sleeps, prints its arguments and exits with $FAKE_APT_RC, and the
    beside folder under tmp_path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apt-get"
    fake.write_text('#!/bin/sh\nsleep "${FAKE_APT_SLEEP:-0}"\necho "apt-get $*"\n'
                    'echo "E: Unable to locate package nope" >&2\nexit "${FAKE_APT_RC:-0}"\n')
    fake.chmod(0o755)
    folder = tmp_path / "beside"
    for name, value in (("BESIDE_DIR", folder), ("BESIDE_LOCK", folder / "lock"),
                        ("BESIDE_STATUS", folder / "status"), ("BESIDE_LOG", folder / "log")):
        monkeypatch.setattr(_apt, name, str(value))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return folder, env
