"""The storage role never follows a link: the fact reports one as a link, the commands refuse it.

Run with a real shell on this machine against a folder, a link to a folder and a dangling link;
the deploy's own path through a container is tests/test_links_and_failures.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dlws.facts.storage import SharedFolder


def _fact(path: Path):
    fact = SharedFolder()
    out = subprocess.run(["sh", "-c", fact.command(str(path))], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return fact.process(out.stdout.splitlines())


def test_fact_reports_a_link_as_a_link(tmp_path):
    target = tmp_path / "etc"
    target.mkdir()
    (tmp_path / "datasets").symlink_to(target)
    assert _fact(tmp_path / "datasets") == {"link": str(target)}
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert _fact(tmp_path / "dangling") == {"link": str(tmp_path / "nowhere")}
    found = _fact(target)
    assert found is not None and "link" not in found and found["mode"].isdigit(), found
    assert _fact(tmp_path / "missing") is None


@pytest.mark.parametrize("kind", ["link", "dangling"])
def test_guarded_commands_refuse_a_link_and_leave_its_target(tmp_path, kind, monkeypatch):
    from dlws.roles import storage

    monkeypatch.setattr(storage, "host", type("H", (), {"name": "ws1"})())
    target = tmp_path / "etc"
    target.mkdir(mode=0o755)
    path = tmp_path / "datasets"
    path.symlink_to(target if kind == "link" else tmp_path / "nowhere")
    line = storage._unless_link(str(path), storage.cmd(
        "find", "-P", str(path), "-maxdepth", "0", "-type", "d", "-exec", "chmod", "2775", "--",
        "{}", ";"))
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True)
    assert out.returncode == 1, (line, out)
    assert f"host ws1: storage_disks: {path} is a symbolic link" in out.stderr, out.stderr
    assert oct(target.stat().st_mode & 0o7777) == "0o755", "the link's target changed"


def test_guarded_chmod_works_on_a_folder(tmp_path, monkeypatch):
    from dlws.roles import storage

    monkeypatch.setattr(storage, "host", type("H", (), {"name": "ws1"})())
    folder = tmp_path / "datasets"
    folder.mkdir(mode=0o755)
    line = storage._unless_link(str(folder), storage.cmd(
        "find", "-P", str(folder), "-maxdepth", "0", "-type", "d", "-exec", "chmod", "2775",
        "--", "{}", ";"))
    out = subprocess.run(["sh", "-c", line], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert oct(folder.stat().st_mode & 0o7777) == "0o2775"
