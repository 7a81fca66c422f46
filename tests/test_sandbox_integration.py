"""A bare Debian 12 container provisioned for real, re-run without change, verified and broken."""

from __future__ import annotations

import os
import subprocess

import pytest

from dlws.docker_env import ensure_container, remove_container
from dlws.images import ensure_debian_image
from tests.helpers import changed_operations, pyinfra_json, run_verify

pytestmark = pytest.mark.integration
NAME = f"dlws-it-{os.getpid()}"
ENV = {"DLWS_SANDBOX": NAME}


@pytest.fixture(scope="module")
def sandbox(docker_engine):
    image = ensure_debian_image("bookworm")
    remove_container(NAME)
    ensure_container(NAME, image)
    yield NAME
    remove_container(NAME)


@pytest.fixture(scope="module")
def first_deploy(sandbox):
    rc, document, log = pyinfra_json("inventory/sandbox.py", env=ENV)
    assert rc == 0, f"first deploy failed:\n{log[-4000:]}"
    return document


def test_first_deploy_changes_the_bare_host(first_deploy):
    assert first_deploy["results"]["totals"]["success"] > 0
    assert first_deploy["results"]["failed_hosts"] == []


def test_second_deploy_changes_nothing(first_deploy):
    rc, document, log = pyinfra_json("inventory/sandbox.py", env=ENV)
    assert rc == 0, log[-3000:]
    assert document["results"]["totals"]["success"] == 0, (
        f"a second run changed: {changed_operations(document)}")


def test_verify_passes_on_the_provisioned_host(first_deploy):
    out = run_verify("inventory/sandbox.py", env=ENV)
    assert out.returncode == 0, out.stdout[-5000:]
    assert " passed" in out.stdout and "failed" not in out.stdout.splitlines()[-1]


def test_verify_fails_on_an_accuracy_bar_of_0_999(first_deploy, tmp_path):
    inventory = tmp_path / "strict.py"
    inventory.write_text(
        f'strict = [("@docker/{NAME}", {{"gpu_count": 0, "verify_offline": True, '
        '"verify_min_accuracy": 0.999, "verify_sample_min_accuracy": 0.999, '
        '"verify_frameworks": ["torch"]})]\n'
    )
    out = run_verify(str(inventory), "-k", "test_mnist_trains")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "FAILED verify/test_training.py::test_mnist_trains" in out.stdout
    assert "under the bar 0.999" in out.stdout, out.stdout[-3000:]


def test_verify_fails_without_tensorflow_then_deploy_repairs(first_deploy):
    uninstall = subprocess.run(
        ["docker", "exec", NAME, "/opt/dlws/venv/bin/uv", "pip", "uninstall", "--python",
         "/opt/dlws/venv/bin/python", "tensorflow-cpu"], capture_output=True, text=True)
    assert uninstall.returncode == 0, uninstall.stderr
    out = run_verify("inventory/sandbox.py", "-k", "tensorflow", env=ENV)
    assert out.returncode == 1, out.stdout[-3000:]
    assert "test_tensorflow_is_the_planned_build" in out.stdout
    assert "tensorflow-cpu is not installed" in out.stdout, out.stdout[-3000:]
    rc, document, log = pyinfra_json("inventory/sandbox.py", env=ENV)
    assert rc == 0 and changed_operations(document) == ["Install tensorflow-cpu==2.21.0"], log
    assert run_verify("inventory/sandbox.py", "-k", "tensorflow", env=ENV).returncode == 0
