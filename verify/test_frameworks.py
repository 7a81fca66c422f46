"""Checks of roles/frameworks: the planned TensorFlow and PyTorch builds are the ones installed."""

from __future__ import annotations

import shlex

import pytest

from dlws.facts import canonical


def test_tensorflow_is_the_planned_build(plan, venv_packages):
    if not plan.tensorflow.package:
        pytest.skip(f"the plan installs no TensorFlow: {'; '.join(plan.notes) or 'none asked'}")
    name = canonical(plan.tensorflow.package.split("[")[0].split("==")[0])
    assert name in venv_packages, f"{name} is not installed (plan: {plan.tensorflow.package})"
    assert venv_packages[name] == plan.tensorflow.version, (
        f"{name} {venv_packages[name]} installed, plan says {plan.tensorflow.version}")


def test_torch_is_the_planned_build(plan, venv_packages):
    if not plan.torch.version:
        pytest.skip("the plan installs no PyTorch")
    found = venv_packages.get("torch")
    assert found, "torch is not installed"
    assert found == f"{plan.torch.version}+{plan.torch.variant}", (
        f"torch {found} installed, plan says {plan.torch.version}+{plan.torch.variant}")


@pytest.mark.parametrize("module", ["tensorflow", "torch"])
def test_framework_imports(host, plan, venv_python, module, record_fact):
    if not getattr(plan, module).version:
        pytest.skip(f"the plan installs no {module}")
    out = host.run(f"{shlex.quote(venv_python)} -c 'import {module}; print({module}.__version__)'")
    assert out.rc == 0, f"import {module} failed:\n{out.stderr[-2000:]}"
    record_fact(f"{module}.version", out.stdout.strip())
