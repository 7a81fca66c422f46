"""Every Molecule scenario is valid under Molecule's own schema: `molecule list` and `syntax`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SCENARIOS = sorted(path.parent.name for path in (ROOT / "molecule").glob("*/molecule.yml"))
PLAYBOOKS = sorted(path.relative_to(ROOT) for path in (ROOT / "molecule").glob("*/*.yml")
                   if path.name != "molecule.yml")


def _run(*command: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "ANSIBLE_NOCOLOR": "1",
           "PY_COLORS": "0", "NO_COLOR": "1"}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=300)


def test_molecule_lists_every_scenario():
    out = _run(str(VENV_BIN / "molecule"), "list", "-f", "plain")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    listed = {line.split()[3] for line in out.stdout.splitlines() if len(line.split()) >= 4}
    assert set(SCENARIOS) <= listed, out.stdout


def _docker_answers() -> bool:
    """Whether a Docker engine answers: Molecule's docker driver checks it before `syntax`."""
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_syntax(scenario):
    if not _docker_answers():
        pytest.skip("no Docker engine answers here: Molecule's docker driver checks for one "
                    "before `syntax` (bin/dlws test starts one)")
    out = _run(str(VENV_BIN / "molecule"), "syntax", "-s", scenario)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=str)
def test_scenario_playbooks_pass_ansible_syntax_check(playbook):
    """create/destroy/converge playbooks, which `molecule syntax` (converge only) does not read."""
    out = _run(str(VENV_BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,",
               str(playbook))
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
