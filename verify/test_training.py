"""The seed's MNIST model trained on each host, proving where training ran and how well."""

from __future__ import annotations

import pytest

from verify.conftest import run_json


def _train_args(target, framework: str) -> list[str]:
    args = [target["frameworks_train_check_path"], "--json", "-", "--framework", framework,
            "--epochs", str(target["verify_epochs"]),
            "--min-accuracy", str(target["verify_min_accuracy"]),
            "--sample-min-accuracy", str(target["verify_sample_min_accuracy"])]
    if target["verify_mnist_path"]:
        args += ["--mnist", target["verify_mnist_path"]]
    if target["verify_offline"]:
        args.append("--offline")
    if target["gpu_count"] > 0:
        args += ["--require-gpu", "--all-gpus"]
    return args


@pytest.mark.parametrize("framework", ["tensorflow", "torch"])
def test_mnist_trains(host, target, plan, framework, record_fact):
    if framework not in target["verify_frameworks"]:
        pytest.skip(f"{framework} not in verify_frameworks")
    if not getattr(plan, framework):
        pytest.skip(f"the plan installs no {framework}: {'; '.join(plan.notes)}")
    rc, report, stderr = run_json(host, _train_args(target, framework))
    results = report.get("results") or [{}]
    result = results[0]
    evidence = f"exit {rc}; result: {result}; stderr tail: {stderr[-1500:]}"
    for key in ("device", "test_accuracy", "samples_per_second", "train_seconds"):
        if key in result:
            record_fact(f"{framework}.training.{key}", result[key])
    assert rc != 2, f"the training check could not run ({framework}): {evidence}"
    assert result.get("status") == "passed", (
        f"{framework} training failed: {result.get('reason')}; {evidence}")
    expected_device = "gpu" if target["gpu_count"] > 0 else "cpu"
    assert result["device"] == expected_device, (
        f"{framework} trained on {result['device']}, expected {expected_device}; {evidence}")
    assert result["test_accuracy"] >= result["min_accuracy"], evidence
    assert rc == 0, evidence
