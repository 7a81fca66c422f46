"""dlws.stack.frameworks: TensorFlow and PyTorch builds, their CUDA variants, the NGC route."""

from __future__ import annotations

import pytest

from dlws.stack import (
    HostFacts,
    StackError,
    StackRequest,
    derive,
    resolve,
)
from tests.stack.cases import (
    RTX_5090,
    facts,
)


@pytest.mark.parametrize(
    ("os_name", "request_", "expected"),
    [
        # x.y pins take the newest patch release on PyPI (2.19.1, 2.15.0).
        pytest.param("ubuntu-24.04", {"tensorflow": "2.19"}, ("2.19.1", "2.14.1"),
                     id="ubuntu-24.04_tf-2.19"),
        pytest.param("debian-12", {"torch": "2.8", "tensorflow": "none"}, (None, "2.8.0"),
                     id="debian-12_torch-2.8"),
        pytest.param("debian-12", {"torch": "2.13.1"}, ("2.21.0", "2.13.1"),
                     id="debian-12_torch-2.13.1-patch-kept"),
    ],
)
def test_explicit_framework_versions(os_name, request_, expected):
    stack = resolve(facts(os_name, "NVIDIA GeForce RTX 4090"), StackRequest(**request_))
    assert (stack.tensorflow.version, stack.torch.version) == expected


def test_r580_takes_its_native_torch_build():
    """On R580 torch's cu130 is native; cu132 would run in minor-version compatibility mode."""
    stack = resolve(facts("debian-13", "NVIDIA H100 80GB HBM3"),
                    StackRequest(tensorflow="none", driver_source="cuda_repo"))
    assert (stack.driver.branch, stack.torch.version, stack.torch.variant) == (
        "580", "2.15.0", "cu130")
    newer = resolve(facts("debian-13", "NVIDIA H100 80GB HBM3"),
                    StackRequest(tensorflow="none", driver_branch="595"))
    assert newer.torch.variant == "cu132"  # 13.2 is R595's own CUDA


def test_auto_tensorflow_on_rtx_5090_offers_ngc():
    stack = resolve(HostFacts("ubuntu", "24.04", RTX_5090), StackRequest())
    assert stack.tensorflow.version is None and stack.tensorflow.image is None
    assert any("frameworks_tensorflow = 'ngc'" in note for note in stack.notes), stack.notes


@pytest.mark.parametrize(("facts", "request_", "image"), [
    # R580 planned for the card: the newest release (25.02, CUDA 12.8, R570+).
    (HostFacts("ubuntu", "24.04", RTX_5090), StackRequest(tensorflow="ngc"), "25.02"),
    # An Ada card runs every release's CUDA: still the newest its driver meets.
    (HostFacts("debian", "12", ("NVIDIA GeForce RTX 4090",)),
     StackRequest(tensorflow="ngc", driver_source="distro"), None),
    # A container host keeps its host's driver: R575 meets R570.
    (HostFacts("ubuntu", "24.04", RTX_5090, installed_driver="575.64.05", in_container=True),
     StackRequest(tensorflow="ngc", driver_branch="none"), "25.02"),
], ids=["rtx-5090-r580", "rtx-4090-debian-12-r535", "rtx-5090-container-r575"])
def test_ngc_image(facts, request_, image):
    # NGC's TensorFlow runs in a container: the stack needs an engine beside it.
    stack = derive({"containers_engine": "docker"}, facts, request_)
    if image is None:
        # Debian 12's R535 is under every release from 24.12 on: 23.01 (CUDA 12.0, R525) runs.
        assert stack.driver.branch == "535"
        assert stack.tensorflow.image == "nvcr.io/nvidia/tensorflow:23.01-tf2-py3"
        return
    assert stack.tensorflow.image == f"nvcr.io/nvidia/tensorflow:{image}-tf2-py3"
    assert stack.tensorflow.version is None and stack.tensorflow.package is None
    assert any("unverified" in note for note in stack.notes), "25.xx rows are marked unverified"


def test_ngc_needs_a_container_engine():
    """NGC's TensorFlow without an engine is refused by the stack itself, naming both keys."""
    facts = HostFacts("ubuntu", "24.04", RTX_5090)
    with pytest.raises(StackError) as error:
        derive({"containers_engine": "none"}, facts, StackRequest(tensorflow="ngc"))
    assert error.value.constraint == "ngc_needs_engine"
    assert "containers_engine" in str(error.value)
    stack = derive({"containers_engine": "podman", "base_lab_users": ["ada"]}, facts,
                   StackRequest(tensorflow="ngc"))
    assert stack.containers.engine == "podman" and stack.tensorflow.image


def test_ngc_driver_minimum_refuses_an_older_driver():
    facts = HostFacts("ubuntu", "24.04", RTX_5090, installed_driver="565.57.01",
                      in_container=True)
    with pytest.raises(StackError) as error:
        resolve(facts, StackRequest(tensorflow="ngc", driver_branch="none"))
    assert error.value.key == "frameworks_tensorflow"
    assert error.value.constraint == "driver_too_old_for_ngc"
    assert "R570" in str(error.value) and "R565" in str(error.value)
    assert "25.01, 25.02" in str(error.value), "names the releases that run the card"


def test_ngc_needs_a_gpu():
    with pytest.raises(StackError, match="no GPU") as error:
        resolve(HostFacts("debian", "12"), StackRequest(tensorflow="ngc"))
    assert error.value.constraint == "ngc_needs_gpu"


def test_ngc_release_rule():
    from dlws.stack.table import ngc_tensorflow_release

    # sm_120 needs CUDA 12.8: no release before 25.01, whatever the driver.
    assert ngc_tensorflow_release(["12.0"], 620).release == "25.02"
    assert ngc_tensorflow_release(["12.0"], 569) is None
    assert ngc_tensorflow_release(["12.0"], 570).release == "25.02"
    # sm_89 on R560: 24.12 (CUDA 12.6, R560) is the newest it meets.
    assert ngc_tensorflow_release(["8.9"], 560).release == "24.12"
    assert ngc_tensorflow_release(["8.9"], 524).release == "22.10"  # CUDA 11.8, R520
    assert ngc_tensorflow_release(["8.9"], 519) is None
    assert ngc_tensorflow_release(["8.9"], None).release == "25.02"
