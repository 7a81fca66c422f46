"""Progress lines reach the controller while the host command still runs (dlws.live).

Each case is a handshake: the host command prints its first line, then waits (up to 20 s) for
a flag that only the controller's reader of that line creates, and fails if it never comes.
Lines that arrived only when the command ended (testinfra's host.run) could never create the
flag in time, so the command would fail: no clock is read, nothing is timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import testinfra

from dlws.command import sh
from dlws.controller_code import Script
from dlws.controller_code import parse as parse_runner
from dlws.live import run_live

ROOT = Path(__file__).resolve().parents[1]


def handshake(flag: str):
    """A host command: `burn-in 1/2 min` on stderr, then `burn-in 2/2 min` only once `flag`
    exists (exit 3 when it never does), then `done` on stdout."""
    return sh("echo 'burn-in 1/2 min' >&2; i=0; while [ ! -e {} ] && [ $i -lt 200 ]; do "
              "sleep 0.1; i=$((i+1)); done; test -e {} || exit 3; echo 'burn-in 2/2 min' >&2; "
              "echo done", flag, flag)


def test_lines_arrive_while_the_command_runs(tmp_path):
    flag = tmp_path / "seen"
    seen = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "burn-in 1/2 min":
            flag.touch()

    out = run_live(testinfra.get_host("local://"), handshake(str(flag)), on_line)
    assert out.rc == 0, f"the first line came only after the command ended: {out.stderr!r}"
    assert seen == ["burn-in 1/2 min", "burn-in 2/2 min"]
    # testinfra's CommandResult, whole, as host.run gives it.
    assert out.stdout == "done\n" and out.stderr == "burn-in 1/2 min\nburn-in 2/2 min\n"


def test_a_command_not_built_by_the_builder_is_refused():
    with pytest.raises(TypeError, match="dlws.command"):
        run_live(testinfra.get_host("local://"), "echo hi", print)


# A training check's stand-in, run by the controller's runner (dlws/controller_code.py) as the
# real one is: an epoch line, the wait for the controller's flag, the second line, its report.
TRAINER = b'''import json, os, sys, time
print("torch: epoch 1/2: loss 0.5 (0.1 s)", file=sys.stderr, flush=True)
for _ in range(200):
    if os.path.exists(sys.argv[1]):
        break
    time.sleep(0.1)
else:
    sys.exit(3)
print("torch: epoch 2/2: loss 0.2 (0.1 s)", file=sys.stderr, flush=True)
print(json.dumps({"status": "passed"}))
'''


def test_the_runner_passes_each_epoch_line_on_as_it_comes(tmp_path):
    flag = tmp_path / "seen"
    seen = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line.startswith("torch: epoch 1/2"):
            flag.touch()

    script = Script("trainer.py", TRAINER)
    out = run_live(testinfra.get_host("local://"),
                   script.command(sys.executable, {"torch": [str(flag)]}), on_line)
    document = parse_runner(out.stdout)
    rc, stdout, stderr = document["runs"]["torch"]
    assert rc == 0, f"the epoch line came only after the training ended: {document}"
    assert json.loads(stdout) == {"status": "passed"}
    # The report keeps the whole stderr, as before; the controller saw each line on its way.
    assert stderr.splitlines() == seen == ["torch: epoch 1/2: loss 0.5 (0.1 s)",
                                           "torch: epoch 2/2: loss 0.2 (0.1 s)"]


# What `dlws burn-in` runs, cut to the line logger: pytest with its live log (the options
# dlws.cli gives it), a JUnit file beside.
PERSON = '''
import testinfra
from dlws.command import sh
from dlws.live import run_live
from dlws.verify.test_burn_in import minute_logger
from tests.test_live import handshake


def test_burn_in_minutes():
    out = run_live(testinfra.get_host("local://"), handshake({flag!r}), minute_logger("lab-ws01"))
    assert out.rc == 0, out.stderr
'''


def test_a_person_sees_each_minute_line_before_the_check_ends(tmp_path):
    """pytest's terminal as `dlws burn-in` shows it: the test reads it line by line and, once
    the first minute line is on it, creates the flag the host command waits for."""
    flag = tmp_path / f"seen-{uuid.uuid4().hex}"
    (tmp_path / "test_person.py").write_text(PERSON.replace("{flag!r}", repr(str(flag))))
    junit = tmp_path / "junit.xml"
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_person.py"), "-p",
         "no:cacheprovider", "-o", "log_cli=true", "--log-cli-level=INFO", "-v",
         f"--junitxml={junit}", f"--rootdir={tmp_path}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    screen = []
    for line in child.stdout:
        screen.append(line)
        if "lab-ws01 burn-in 1/2 min" in line:
            flag.touch()
    assert child.wait(timeout=60) == 0, "".join(screen)
    text = "".join(screen)
    first, second = (text.index(f"lab-ws01 burn-in {n}/2 min") for n in (1, 2))
    assert first < second < text.index(" passed")
    assert 'tests="1"' in junit.read_text() and 'failures="0"' in junit.read_text()


@pytest.mark.integration
def test_lines_arrive_live_through_docker_exec(tmp_path):
    """The docker backend (docker exec): a container from the bookworm base image."""
    image = subprocess.run([sys.executable, "-m", "dlws.sandbox.images", "bookworm"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()[-1]
    name = f"i24-live-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "run", "-d", "--name", name, image, "sleep", "600"], check=True,
                   capture_output=True)
    try:
        seen = []

        def on_line(line: str) -> None:
            seen.append(line)
            if line == "burn-in 1/2 min":
                subprocess.run(["docker", "exec", name, "touch", "/tmp/seen"], check=True)

        out = run_live(testinfra.get_host(f"docker://{name}"), handshake("/tmp/seen"), on_line)
        assert out.rc == 0, f"the first line came only after the command ended: {out.stderr!r}"
        assert seen == ["burn-in 1/2 min", "burn-in 2/2 min"]
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
