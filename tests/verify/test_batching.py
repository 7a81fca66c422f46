"""verify's batched remote calls, run for real on this machine (a local shell stands in for the
host): the two training checks side by side in one call, and python_env's wheel quick check.
No timing is asserted: side by side is proven by two commands that each wait for the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dlws.controller_code import Script
from dlws.inventory.targets import Target
from dlws.roles import all_defaults
from dlws.roles.python_env import wheel_is_current
from dlws.verify import helpers


@dataclass
class Out:
    rc: int
    stdout: str
    stderr: str


class LocalHost:
    """testinfra's host.run over a local `sh -c`; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def run(self, command: str) -> Out:
        self.calls += 1
        out = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120)
        return Out(out.returncode, out.stdout, out.stderr)


# Each "training" writes its own mark, then waits (up to 30 s) for the other's: run one after the
# other, the first gives up and exits 3.
RENDEZVOUS = """
import json, os, sys, time
me, other, folder = sys.argv[1], sys.argv[2], sys.argv[3]
open(os.path.join(folder, me), "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(os.path.join(folder, other)):
    if time.monotonic() > deadline:
        sys.exit(3)
    time.sleep(0.05)
print(json.dumps({"results": [{"framework": me, "status": "passed", "framework_version": "1"}]}))
print("log of " + me, file=sys.stderr)
"""


def _target(tmp_path: Path, **data) -> Target:
    merged = {**all_defaults(), "python_env_prefix": str(Path(sys.executable).parent.parent),
              **data}
    return Target(name=f"@local/{tmp_path.name}", spec="local://", data=merged)


@pytest.fixture(autouse=True)
def _fresh_runs(monkeypatch):
    helpers._RUNS.clear()
    # The environment's RECORD check has its own tests (tests/verify/test_integrity.py); here the
    # host is this machine's own venv, which no lock installed.
    monkeypatch.setattr(helpers, "integrity_refusal", lambda host, target: "")
    yield
    helpers._RUNS.clear()


def _rendezvous(monkeypatch, tmp_path: Path) -> None:
    """The controller's script is the rendezvous; each training's arguments name the pair."""
    monkeypatch.setattr(helpers, "TRAIN_CHECK", Script("rendezvous.py",
                                                               RENDEZVOUS.encode()))
    monkeypatch.setattr(helpers, "train_args", lambda target, plan, framework: [
        framework, "torch" if framework == "tensorflow" else "tensorflow", str(tmp_path)])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="side by side needs 2 CPUs")
def test_both_trainings_run_side_by_side_in_one_call(tmp_path, monkeypatch):
    target = _target(tmp_path)
    _rendezvous(monkeypatch, tmp_path)
    host = LocalHost()
    helpers._train_all(host, target, None, ["tensorflow", "torch"])
    assert host.calls == 1
    for framework in ("tensorflow", "torch"):
        rc, result, stderr = helpers._RUNS[(target.name, framework)]
        assert rc == 0, stderr
        # (script_sha256 is what the real check reports of itself; the rendezvous reports none.)
        assert {k: v for k, v in result.items() if k != "script_sha256"} == {
            "framework": framework, "status": "passed", "framework_version": "1"}
        assert stderr.strip() == f"log of {framework}"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="side by side needs 2 CPUs")
def test_trainings_started_in_the_background_are_waited_for(tmp_path, monkeypatch):
    from types import SimpleNamespace

    target = _target(tmp_path)
    plan = SimpleNamespace(tensorflow=SimpleNamespace(package="tensorflow-cpu==2.21.0",
                                                      version="2.21.0"),
                           torch=SimpleNamespace(version="2.13.0"), notes=[])
    _rendezvous(monkeypatch, tmp_path)
    monkeypatch.setattr(helpers, "_BACKGROUND", {})
    host = LocalHost()
    helpers.start_training(host, target, plan)
    helpers.start_training(host, target, plan)  # once per host
    for framework in ("tensorflow", "torch"):
        rc, result, _ = helpers.train(host, target, plan, framework)
        assert rc == 0 and result["framework"] == framework
    assert host.calls == 1


def test_a_broken_runner_fails_each_training_with_its_output(tmp_path, monkeypatch):
    target = _target(tmp_path, python_env_prefix=str(tmp_path / "no-venv"))
    host = LocalHost()
    helpers._train_all(host, target, None, ["tensorflow", "torch"])
    for framework in ("tensorflow", "torch"):
        rc, result, stderr = helpers._RUNS[(target.name, framework)]
        assert rc == 2 and result == {}
        assert "could not be started" in stderr and "no-venv" in stderr


def test_wheel_quick_check(tmp_path):
    wheel = tmp_path / "w.whl"
    wheel.write_bytes(b"x" * 10)
    os.utime(wheel, (1_700_000_000, 1_700_000_000))
    local = wheel.stat()
    mtime = datetime.fromtimestamp(1_700_000_000, timezone.utc).replace(tzinfo=None)
    assert wheel_is_current(local, {"size": 10, "mtime": mtime, "mode": 644})
    assert not wheel_is_current(local, {"size": 11, "mtime": mtime})
    assert not wheel_is_current(local, {"size": 10, "mtime": mtime.replace(second=1)})
    assert not wheel_is_current(local, None)  # not on the host yet


@pytest.mark.parametrize(("gpus", "frameworks", "asked"), [
    (0, ["tensorflow", "torch"], True), (0, ["tensorflow"], False),
    (2, ["tensorflow", "torch"], False)], ids=["cpu-both", "cpu-one", "gpu-host"])
def test_the_one_process_import_rides_in_a_cpu_hosts_tensorflow_training(
        tmp_path, monkeypatch, gpus, frameworks, asked):
    """A CPU host training both side by side imports torch into TensorFlow's training process
    (verify's one-process check reads it); a GPU host keeps that check in its own process."""
    target = _target(tmp_path, gpu_count=gpus)
    sent = {}
    monkeypatch.setattr(helpers, "train_args", lambda target, plan, framework: [framework])
    monkeypatch.setattr(helpers, "run_train_check",
                        lambda host, target, commands, on_line=None: (sent.update(commands)
                                                                      or ({}, "stub")))
    helpers._train_all(LocalHost(), target, None, frameworks)
    assert (sent["tensorflow"] == ["tensorflow", "--also-import", "torch"]) is asked, sent
    assert all("--also-import" not in args for name, args in sent.items() if name == "torch")
