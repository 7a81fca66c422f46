"""The seed's MNIST model trained on each host, proving where training ran and how well."""

from __future__ import annotations

import pytest

from dlws.facts.gpu import NvidiaModuleVersion
from dlws.stack import find_gpu
from dlws.stack.services import docker_gpu_mode, engines
from dlws.stack.table import MINOR_COMPAT_MIN_BRANCH

from .helpers import TRAIN_CHECK, on_gpu, require_gpus, run_train_check, train_args


@pytest.mark.parametrize("framework", ["tensorflow", "torch"])
def test_mnist_trains(host, target, plan, framework, record_fact, trained):
    """The seed's MNIST model trains on the planned device to the inventory's accuracy bar."""
    rc, result, stderr = trained(framework)
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
def test_framework_cuda_build_fits_the_driver(target, plan, framework, trained, read_fact):
    # Wheels bring their own CUDA runtime: the host driver must be new enough for it (CUDA
    # minor-version compatibility: 12.x needs R525+, 13.x R580+).
    """Each framework's CUDA build needs no newer driver than the host runs."""
    require_gpus(target)
    if not on_gpu(target, plan, framework):
        pytest.skip(f"the plan runs {framework} on the CPU here: {'; '.join(plan.notes)}")
    rc, result, stderr = trained(framework)
    build = result.get("cuda_build")
    assert build, f"{framework} is a CPU-only build on a host declared with GPUs: {result}"
    version = read_fact(NvidiaModuleVersion)
    assert version, ("no NVIDIA kernel module is loaded (/proc/driver/nvidia/version, "
                     "/sys/module/nvidia/version)")
    branch = int(version.split(".")[0])
    needed = MINOR_COMPAT_MIN_BRANCH[int(str(build).split(".")[0])]
    assert branch >= needed, (
        f"{framework} was built for CUDA {build}, which needs driver R{needed}+; "
        f"the host runs {version}")


def test_gpu_matmul_throughput(host, target, plan, record_fact):
    # A card far under its model's figure is throttling, on a narrow PCIe link or power-capped.
    # The probe runs the dtype of the card's tensor cores (fp16 on Volta/Turing, bf16 from
    # Ampere) and is held to that dtype's figure.
    """Every GPU reaches verify_min_tflops_fraction of its model's matmul figure."""
    require_gpus(target)
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
    # The report draws each GPU against these (dlws/report/ chart_rows).
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
    """NGC TensorFlow trains the seed's model on the GPUs inside its container."""
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
    args = [*train_args(target, plan, "tensorflow"), "--container", plan.tensorflow.image,
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
