"""The offline calculator `python -m dlws.stack`: JSON, table, pins, refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.stack.cases import (
    ROOT,
)


def calculator(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlws.stack", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_json():
    out = calculator("--os", "ubuntu-24.04", "--gpu", "NVIDIA GeForce RTX 4090", "--json")
    assert out.returncode == 0, out.stderr
    stack = json.loads(out.stdout)
    got = {k: stack[stage][field] for k in ("driver.branch", "driver.flavour", "driver.source",
                                            "cuda.version", "cudnn.version",
                                            "tensorflow.version", "torch.version",
                                            "torch.variant")
           for stage, field in [k.split(".")]}
    assert got == {
        "driver.branch": "580", "driver.flavour": "open", "driver.source": "distro",
        "cuda.version": "13.0", "cudnn.version": "wheels", "tensorflow.version": "2.21.0",
        "torch.version": "2.14.1", "torch.variant": "cu126"}


def test_cli_set_and_pci_id():
    out = calculator("--os", "debian-13", "--gpu", "2b85", "--set", "torch=none",
                     "--installed-driver", "580.95.05", "--json")
    stack = json.loads(out.stdout)
    assert (stack["driver"]["source"], stack["torch"]["version"],
            stack["tensorflow"]["version"]) == ("cuda_repo", None, None)
    assert stack["transition"]["keep_installed_driver"] is True


def test_cli_table():
    out = calculator("--os", "debian-12")
    assert out.returncode == 0, out.stderr
    assert "TENSORFLOW" in out.stdout and "tensorflow-cpu==2.21.0" in out.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        pytest.param(("--os", "ubuntu-24.04", "--gpu", "Tesla T4", "--set", "cuda=13.0",
                      "--set", "driver_branch=535"), "error: driver_too_old_for_cuda: ",
                     id="refusal"),
        pytest.param(("--os", "ubuntu-24.04", "--gpu", "RTX 4909"),
                     "did you mean 'NVIDIA GeForce RTX 4090'", id="unknown-gpu"),
        pytest.param(("--os", "ubuntu-20.04"), "error: unsupported_os: ", id="unsupported-os"),
        pytest.param(("--os", "debian-12", "--set", "cdua=12.8"), "did you mean 'cuda'",
                     id="unknown-field"),
    ],
)
def test_cli_refusal_exits_2_without_traceback(args, fragment):
    out = calculator(*args)
    assert out.returncode == 2
    assert fragment in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
