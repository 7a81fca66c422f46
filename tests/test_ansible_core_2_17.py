"""The Ansible reader on ansible-core 2.17, the one Python 3.10 controllers get (pyproject.toml).

The checkout's environment holds 2.19; this builds a throw-away one with 2.17 beside it (uv,
PyPI) and runs the reader's tests (tests/inventory/test_ansible.py) there, so both versions
are held to the same fixtures and to ansible-inventory's own view.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"
# What pyproject.toml gives a Python 3.10 controller.
ANSIBLE_CORE_2_17 = "ansible-core>=2.17,<2.18"


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info >= (3, 13), reason="ansible-core 2.17 supports controllers "
                    "on Python 3.10 to 3.12 (its support matrix); 3.13 gets 2.19")
def test_ansible_reader_passes_its_tests_on_ansible_core_2_17(tmp_path):
    venv = tmp_path / "venv"
    override = tmp_path / "override.txt"
    override.write_text(ANSIBLE_CORE_2_17 + "\n")
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    # This checkout (editable, so the tests import this tree) with ansible-core held to 2.17.
    out = subprocess.run([str(UV), "pip", "install", "-q", "--python", str(python), "--override",
                          str(override), f"pytest=={pytest.__version__}", "-e", str(ROOT)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    version = subprocess.run([str(python), "-c", "import ansible.release as a; "
                              "print(a.__version__)"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("2.17."), version.stdout
    run = subprocess.run([str(venv / "bin" / "pytest"), "tests/inventory/test_ansible.py", "-q",
                          "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "inner")],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    tail = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, f"ansible-core {version.stdout.strip()}:\n{tail}"
    counts = dict((kind, int(n)) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error)",
                                                           run.stdout.splitlines()[-1]))
    assert counts.get("passed", 0) >= 40 and set(counts) == {"passed"}, run.stdout.splitlines()[-1]
