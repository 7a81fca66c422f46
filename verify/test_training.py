"""The seed's MNIST model trained on each host, proving where training ran and how well."""

from __future__ import annotations

import logging
import threading

import pytest

from dlws.stack.table import MINOR_COMPAT_MIN_BRANCH

from .conftest import (
    TRAIN_CHECK,
    integrity_refusal,
    require_gpus,
    run_train_check,
    train_check_data_args,
)

LOG = logging.getLogger("dlws.verify.training")
# One training run per host and framework, shared by the checks that read its report.
_RUNS: dict[tuple[str, str], tuple[int, dict, str]] = {}


def on_gpu(target, plan, framework: str) -> bool:
    """Whether the plan puts this framework on the GPU: TensorFlow's CPU build is planned where
    its wheels have no kernel for the card (Maxwell) or torch holds the CUDA 13 wheels."""
    if target["gpu_count"] <= 0:
        return False
    if framework == "tensorflow":
        return "[and-cuda]" in (plan.tensorflow.package or "")
    return bool(plan.torch.variant and plan.torch.variant.startswith("cu"))


def _train_args(target, plan, framework: str) -> list[str]:
    # --progress: a line per epoch on stderr, logged as it comes (`dlws verify -v` shows them).
    args = ["--json", "-", "--framework", framework, "--progress", *train_check_data_args(target)]
    if on_gpu(target, plan, framework):
        args += ["--require-gpu", "--all-gpus"]
    return args


def epoch_logger(name: str, frameworks: list[str]):
    """Log each per-epoch line as the host prints it (`dlws verify -v` shows them live)."""
    prefixes = tuple(f"{framework}: epoch " for framework in frameworks)

    def log(line: str) -> None:
        if line.startswith(prefixes):
            LOG.info("%s %s", name, line)

    return log


def _planned(target, plan) -> list[str]:
    return [framework for framework in ("tensorflow", "torch")
            if framework in target["verify_frameworks"] and getattr(plan, framework).version]


def _train_all(host, target, plan, frameworks: list[str]) -> None:
    """Every planned training of a CPU host in one remote call, side by side (its cores allow
    it); a GPU host trains one framework at a time, so each throughput is its own. What runs is
    the controller's copy of the training check (dlws/controller_code.py), never the host's,
    and only in an environment whose files match their RECORDs."""
    refused = integrity_refusal(host, target)
    if refused:
        for framework in frameworks:
            _RUNS[(target.name, framework)] = (2, {}, refused)
        return
    runs, error = run_train_check(host, target, {f: _train_args(target, plan, f)
                                                 for f in frameworks},
                                  on_line=epoch_logger(target.name, frameworks))
    for framework in frameworks:
        if framework in runs:
            rc, report, stderr = runs[framework]
            _RUNS[(target.name, framework)] = (rc, {**(report.get("results") or [{}])[0],
                                                    "script_sha256": report.get(
                                                        "script_sha256")}, stderr)
        else:
            _RUNS[(target.name, framework)] = (2, {}, error)


# Hosts whose trainings run in the background while their other checks run (CPU hosts).
_BACKGROUND: dict[str, threading.Thread] = {}


def start_training(host, target, plan) -> None:
    """Start a CPU host's trainings (side by side, one remote call) in the background, once per
    host and run, so its other checks run meanwhile; train() waits for them. A GPU host trains
    in its own checks, one framework at a time, nothing else beside it."""
    planned = _planned(target, plan)
    if target["gpu_count"] > 0 or len(planned) < 2 or target.name in _BACKGROUND:
        return

    def run() -> None:
        try:
            _train_all(host, target, plan, planned)
        except Exception as error:  # noqa: BLE001 - each training check reports it
            for framework in planned:
                _RUNS.setdefault((target.name, framework),
                                 (2, {}, f"the training runner failed: {error!r}"))

    _BACKGROUND[target.name] = threading.Thread(target=run, name=f"train {target.name}",
                                                daemon=True)
    _BACKGROUND[target.name].start()


def train(host, target, plan, framework: str) -> tuple[int, dict, str]:
    """Run dlws-train-check once per host and framework; skip where none is planned."""
    if framework not in target["verify_frameworks"]:
        pytest.skip(f"{framework} not in verify_frameworks")
    if not getattr(plan, framework).version:
        pytest.skip(f"the plan installs no {framework}: {'; '.join(plan.notes)}")
    key = (target.name, framework)
    if target.name in _BACKGROUND:
        _BACKGROUND[target.name].join()
    planned = _planned(target, plan)
    if key not in _RUNS and target["gpu_count"] == 0 and len(planned) > 1:
        _train_all(host, target, plan, planned)
    if key not in _RUNS:
        _train_all(host, target, plan, [framework])
    return _RUNS[key]


@pytest.mark.parametrize("framework", ["tensorflow", "torch"])
def test_mnist_trains(host, target, plan, framework, record_fact):
    rc, result, stderr = train(host, target, plan, framework)
    evidence = f"exit {rc}; result: {result}; stderr tail: {stderr[-1500:]}"
    for key in ("device", "test_accuracy", "samples_per_second", "train_seconds"):
        if key in result:
            record_fact(f"{framework}.training.{key}", result[key])
    assert rc != 2, f"the training check could not run ({framework}): {evidence}"
    # What ran is the controller's copy (written fresh and checked by the runner; the report
    # carries the digest the script computed of itself).
    record_fact("training.script_sha256", result.get("script_sha256"))
    assert result.get("script_sha256") == TRAIN_CHECK.sha256, (
        f"the training check that ran has sha256 {result.get('script_sha256')}, the "
        f"controller's copy {TRAIN_CHECK.sha256}; {evidence}")
    assert result.get("status") == "passed", (
        f"{framework} training failed: {result.get('reason')}; {evidence}")
    expected_device = "gpu" if on_gpu(target, plan, framework) else "cpu"
    assert result["device"] == expected_device, (
        f"{framework} trained on {result['device']}, expected {expected_device}; {evidence}")
    # The bar is the inventory's, never the one the host reports back.
    bar = target["verify_sample_min_accuracy" if result.get("dataset_is_sample")
                 else "verify_min_accuracy"]
    assert result["test_accuracy"] >= bar, (
        f"{framework}: test accuracy {result['test_accuracy']} under the inventory's bar {bar}; "
        f"{evidence}")
    assert rc == 0, evidence


@pytest.mark.parametrize("framework", ["tensorflow", "torch"])
def test_framework_cuda_build_fits_the_driver(host, target, plan, framework):
    # Wheels bring their own CUDA runtime: the host driver must be new enough for it (CUDA
    # minor-version compatibility: 12.x needs R525+, 13.x R580+).
    require_gpus(target)
    if not on_gpu(target, plan, framework):
        pytest.skip(f"the plan runs {framework} on the CPU here: {'; '.join(plan.notes)}")
    rc, result, stderr = train(host, target, plan, framework)
    build = result.get("cuda_build")
    assert build, f"{framework} is a CPU-only build on a host declared with GPUs: {result}"
    out = host.run("nvidia-smi --query-gpu=driver_version --format=csv,noheader")
    assert out.rc == 0, f"nvidia-smi failed: {out.stderr.strip() or out.stdout}"
    branch = int(out.stdout.split()[0].split(".")[0])
    needed = MINOR_COMPAT_MIN_BRANCH[int(str(build).split(".")[0])]
    assert branch >= needed, (
        f"{framework} was built for CUDA {build}, which needs driver R{needed}+; "
        f"the host runs {out.stdout.split()[0]}")


def test_gpu_matmul_throughput(host, target, plan, record_fact):
    # A card far under its model's figure is throttling, on a narrow PCIe link or power-capped.
    # The probe runs the dtype of the card's tensor cores (fp16 on Volta/Turing, bf16 from
    # Ampere) and is held to that dtype's figure.
    require_gpus(target)
    from dlws.stack import find_gpu

    if not plan.torch.version:
        pytest.fail("the matmul probe needs PyTorch, and the plan installs none on a GPU host")
    model = find_gpu(target["gpu_model"])
    runs, error = run_train_check(host, target, {"probe": [
        "--matmul-probe", "gpu", "--matmul-dtype", model.tensor_dtype, "--json", "-"]})
    rc, report, stderr = runs.get("probe", (2, {}, error))
    readings = [r for r in report.get("matmul", []) if "tflops" in r]
    assert rc == 0 and readings, f"the matmul probe did not run (exit {rc}): {report} {stderr}"
    assert len(readings) == target["gpu_count"], (
        f"the probe saw {len(readings)} GPUs, {target['gpu_count']} declared: {readings}")
    for reading in readings:
        record_fact(f"matmul.{reading['device']}.tflops", round(reading["tflops"], 1))
    assert {r["dtype"] for r in readings} == {model.tensor_dtype}, readings
    expected = model.tensor_tflops
    if expected is None:
        pytest.skip(f"no {model.tensor_dtype} figure for {model.name} in the table "
                    "(dlws/stack/data/sources/performance.tsv): readings recorded only")
    bar = target["verify_min_tflops_fraction"] * expected
    # The report draws each GPU against these (dlws/report.py chart_rows).
    record_fact("matmul.expected_tflops", expected)
    record_fact("matmul.min_tflops", round(bar, 1))
    slow = [f"{r['device']} {r['name']}: {r['tflops']:.0f} TFLOP/s" for r in readings
            if r["tflops"] < bar]
    assert not slow, (f"under {bar:.0f} TFLOP/s ({target['verify_min_tflops_fraction']} of the "
                      f"{expected:.0f} {model.tensor_dtype} TFLOP/s expected for "
                      f"{target['gpu_model']}): {slow}")


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_ngc_tensorflow_trains_in_its_container(host, target, plan, record_fact, engine):
    # frameworks_tensorflow = "ngc": TensorFlow is NVIDIA's image, not a pip build; the seed
    # model trains inside it with every GPU (dlws-train-check --container), in each engine the
    # host runs: Podman and Docker's CDI mode take the GPUs as the CDI device nvidia.com/gpu=all.
    from dlws.roles.containers import docker_gpu_mode, engines

    if not plan.tensorflow.image:
        pytest.skip("the plan runs no NGC TensorFlow (frameworks_tensorflow is not 'ngc')")
    if not dict(zip(("docker", "podman"), engines(target["containers_engine"]),
                    strict=True))[engine]:
        pytest.skip(f"{target.name} runs no {engine} (containers_engine = "
                    f"{target['containers_engine']!r})")
    require_gpus(target)
    access = ("cdi" if engine == "podman" or docker_gpu_mode(
        target["containers_gpu_mode"], plan.os.id, plan.os.release,
        target["containers_engine_source"]) == "cdi" else "gpus")
    args = [*_train_args(target, plan, "tensorflow"), "--container", plan.tensorflow.image,
            "--engine", engine, "--gpu-access", access, "--require-gpu", "--all-gpus"]
    runs, error = run_train_check(host, target, {"ngc": args})
    rc, report, stderr = runs.get("ngc", (2, {}, error))
    result = (report.get("results") or [{}])[0]
    evidence = f"{engine}: exit {rc}; result: {result}; stderr tail: {stderr[-1500:]}"
    for key in ("device", "test_accuracy", "samples_per_second"):
        if key in result:
            record_fact(f"tensorflow-ngc.{engine}.training.{key}", result[key])
    assert result.get("container") == plan.tensorflow.image, evidence
    assert result.get("status") == "passed", f"NGC TensorFlow training failed: {evidence}"
    assert result["device"] == "gpu", evidence
    assert rc == 0, evidence
