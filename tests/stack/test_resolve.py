"""dlws.stack.resolve: the whole derivation per OS x GPU on auto, pins, and every refusal."""

from __future__ import annotations

import pytest

from dlws.stack import (
    HOST_DATA_KEYS,
    HostFacts,
    StackError,
    StackRequest,
    request_from_host_data,
    resolve,
)
from tests.stack.cases import (
    AUTO_CASES,
    GPUS,
    PYTHONS,
    facts,
)


@pytest.mark.parametrize(("os_name", "gpu", "expected"), AUTO_CASES)
def test_auto_stack(os_name, gpu, expected):
    stack = resolve(facts(os_name, GPUS[gpu] or ""), StackRequest())
    got = (stack.driver.branch, stack.driver.flavour, stack.driver.source, stack.cuda.version,
           stack.cudnn.version, stack.tensorflow.package,
           f"{stack.torch.version}+{stack.torch.variant}")
    assert got == expected, stack.as_dict()
    assert stack.python.version == PYTHONS[os_name]
    # One CUDA major in the environment, whatever the frameworks.
    majors = {12} if "[and-cuda]" in (stack.tensorflow.package or "") else set()
    if stack.torch.variant.startswith("cu"):
        majors.add(int(stack.torch.variant[2:-1]))
    assert len(majors) <= 1 and stack.python.cuda_major == (majors.pop() if majors else None)
    assert stack.torch.index_url == f"https://download.pytorch.org/whl/{stack.torch.variant}"
    if gpu == "rtx-5090":
        assert any("TensorFlow skipped" in note and "89272" in note for note in stack.notes)


def test_cpu_profile_has_no_nvidia_stack():
    stack = resolve(facts("debian-12"), StackRequest())
    assert (stack.gpu.models, stack.gpu.arch, stack.transition.keep_installed_driver,
            stack.nccl.version) == ((), None, False, None)


@pytest.mark.parametrize(
    ("os_name", "request_", "expected"),
    [
        pytest.param("debian-13", {"cuda": "12.4"}, (None, "12.4", "distro"),
                     id="debian-13_none_cuda-12.4"),
        pytest.param("ubuntu-24.04", {"cuda": "12.8"}, (None, "12.8", "cuda_repo"),
                     id="ubuntu-24.04_none_cuda-12.8"),
        pytest.param("ubuntu-24.04", {"cuda": "12.0"}, (None, "12.0", "distro"),
                     id="ubuntu-24.04_none_cuda-12.0-distro"),
        pytest.param("ubuntu-24.04", {"driver_branch": "590"}, ("590", None, None),
                     id="ubuntu-24.04_none_driver-590"),
    ],
)
def test_explicit_driver_or_cuda_without_gpu(os_name, request_, expected):
    stack = resolve(facts(os_name), StackRequest(**request_))
    assert (stack.driver.branch, stack.cuda.version, stack.cuda.source) == expected
    assert stack.torch.variant == "cpu"
    if request_.get("driver_branch") == "590":
        assert (stack.driver.source, stack.driver.flavour) == ("cuda_repo", "open")


REFUSALS = [
    # (case id, os, gpus, request, constraint, key, fragment of the fix)
    ("cuda-13_driver-535", "ubuntu-24.04", ("Tesla T4",),
     {"cuda": "13.0", "driver_branch": "535"}, "driver_too_old_for_cuda", "cuda_version",
     "set nvidia_driver_branch to 580 or newer, or cuda_version to 12.2"),
    ("cuda-13.3_ubuntu-distro", "ubuntu-24.04", ("Tesla T4",),
     {"cuda": "13.3", "driver_source": "distro"}, "driver_too_old_for_cuda", "cuda_version",
     "nvidia_driver_source to 'cuda_repo'"),
    ("open_gtx-1080", "ubuntu-24.04", ("NVIDIA GeForce GTX 1080",),
     {"driver_flavour": "open"}, "open_modules_unsupported", "nvidia_driver_flavour",
     "'proprietary'"),
    ("open_v100", "debian-13", ("Tesla V100-SXM2-16GB",), {"driver_flavour": "open"},
     "open_modules_unsupported", "nvidia_driver_flavour", "'proprietary'"),
    ("open_gtx-980", "ubuntu-22.04", ("NVIDIA GeForce GTX 980",), {"driver_flavour": "open"},
     "open_modules_unsupported", "nvidia_driver_flavour", "'proprietary'"),
    ("proprietary_rtx-5090", "ubuntu-24.04", ("NVIDIA GeForce RTX 5090",),
     {"driver_flavour": "proprietary"}, "open_modules_required", "nvidia_driver_flavour",
     "'open'"),
    ("cuda-13_v100", "ubuntu-24.04", ("Tesla V100-SXM2-16GB",), {"cuda": "13.0"},
     "cuda_too_new_for_gpu", "cuda_version", "12.x"),
    ("cuda-13_gtx-1080", "ubuntu-22.04", ("NVIDIA GeForce GTX 1080",), {"cuda": "13.1"},
     "cuda_too_new_for_gpu", "cuda_version", "12.x"),
    ("cuda-11.8_rtx-5090", "ubuntu-22.04", ("NVIDIA GeForce RTX 5090",), {"cuda": "11.8"},
     "cuda_too_old_for_gpu", "cuda_version", "12.8 or newer"),
    ("tf_rtx-5090", "ubuntu-24.04", ("NVIDIA GeForce RTX 5090",), {"tensorflow": "2.21.0"},
     "tensorflow_gpu_unsupported", "frameworks_tensorflow",
     'frameworks_tensorflow = "none"'),
    ("tf_rtx-pro-6000", "debian-13", ("10de:2bb1",), {"tensorflow": "2.20.0"},
     "tensorflow_gpu_unsupported", "frameworks_tensorflow", "NGC TensorFlow container"),
    ("tf-2.19_python-3.13", "debian-13", (), {"tensorflow": "2.19.0"}, "tensorflow_python",
     "frameworks_tensorflow", "set frameworks_tensorflow to 2.21.0"),
    ("tf-2.16_python-3.13", "debian-13", (), {"tensorflow": "2.16.1"}, "tensorflow_python",
     "frameworks_tensorflow", "3.9-3.12"),
    ("torch-2.5_python-3.13", "debian-13", (), {"torch": "2.5.1"}, "torch_python",
     "frameworks_torch", "frameworks_torch to 'auto'"),
    ("torch-2.5_t4_python-3.13", "debian-13", ("Tesla T4",), {"torch": "2.5"},
     "torch_python", "frameworks_torch", "3.9-3.12"),
    ("torch-2.15_gtx-1080", "ubuntu-24.04", ("NVIDIA GeForce GTX 1080",), {"torch": "2.15"},
     "torch_gpu_unsupported", "frameworks_torch", "older release"),
    ("torch-2.15_driver-550", "debian-13", ("Tesla T4",), {"torch": "2.15"},
     "driver_too_old_for_torch", "frameworks_torch", "nvidia_driver_branch to 580"),
    ("unknown-torch", "debian-13", (), {"torch": "3.1"}, "unknown_torch_version",
     "frameworks_torch", "known: 2.5"),
    ("unknown-tf", "debian-13", (), {"tensorflow": "1.15"}, "unknown_tensorflow_version",
     "frameworks_tensorflow", "known: 2.16.2"),
    ("unknown-gpu", "ubuntu-24.04", ("NVIDIA GeForce RTX 4909",), {}, "unknown_gpu",
     "gpu_model", "did you mean 'NVIDIA GeForce RTX 4090'"),
    ("unknown-pci-id", "ubuntu-24.04", ("10de:ffff",), {}, "unknown_gpu", "gpu_model",
     "PCI ID"),
    ("driver-999", "ubuntu-24.04", ("Tesla T4",), {"driver_branch": "999"},
     "unknown_driver_branch", "nvidia_driver_branch", "known: 535"),
    ("driver-latest", "ubuntu-24.04", (), {"driver_branch": "latest"},
     "unknown_driver_branch", "nvidia_driver_branch", "'auto'"),
    ("driver-590_gtx-1080", "ubuntu-24.04", ("NVIDIA GeForce GTX 1080",),
     {"driver_branch": "590"}, "driver_too_new_for_gpu", "nvidia_driver_branch",
     "580 or older"),
    ("driver-550_b200", "ubuntu-24.04", ("NVIDIA B200",), {"driver_branch": "550"},
     "driver_too_old_for_gpu", "nvidia_driver_branch", "570 or newer"),
    ("debian-distro_cuda-12.8", "debian-12", ("Tesla T4",),
     {"driver_source": "distro", "cuda": "12.8"}, "source_lacks_cuda", "cuda_version",
     "nvidia_driver_source to 'cuda_repo'"),
    ("debian-distro_driver-580", "debian-13", ("Tesla T4",),
     {"driver_source": "distro", "driver_branch": "580"}, "source_lacks_driver_branch",
     "nvidia_driver_branch", "'cuda_repo'"),
    ("ubuntu-distro_driver-590", "ubuntu-24.04", ("Tesla T4",),
     {"driver_source": "distro", "driver_branch": "590"}, "source_lacks_driver_branch",
     "nvidia_driver_branch", "'cuda_repo'"),
    ("debian-distro_rtx-5090", "debian-13", ("NVIDIA GeForce RTX 5090",),
     {"driver_source": "distro"}, "source_lacks_gpu_driver", "nvidia_driver_source",
     "'cuda_repo'"),
    ("debian-12-distro_open", "debian-12", ("Tesla T4",),
     {"driver_source": "distro", "driver_flavour": "open"}, "source_lacks_open_modules",
     "nvidia_driver_flavour", "nvidia_driver_source to 'cuda_repo'"),
    ("debian-13-repo_cuda-12.8", "debian-13", ("Tesla T4",),
     {"driver_source": "cuda_repo", "cuda": "12.8"}, "source_lacks_cuda", "cuda_version",
     "available: 13.0, 13.1"),
    ("cuda-11.5_ubuntu-24.04", "ubuntu-24.04", (), {"cuda": "11.5"}, "source_lacks_cuda",
     "cuda_version", "available:"),
    ("cuda-12.7", "ubuntu-24.04", ("Tesla T4",), {"cuda": "12.7"}, "unknown_cuda_version",
     "cuda_version", "there is no CUDA 12.7"),
    ("cudnn_no-cuda", "ubuntu-24.04", (), {"cudnn": "9.0"}, "cudnn_needs_cuda",
     "cudnn_version", "'wheels'"),
    ("cudnn-8.9_debian-13", "debian-13", ("Tesla T4",), {"cudnn": "8.9"},
     "source_lacks_cudnn", "cudnn_version", "'9.0'"),
    ("python-3.12_debian-12", "debian-12", (), {"python": "3.12"}, "python_not_os_python",
     "python_env_python", "'3.11'"),
    ("flavour-typo", "debian-12", ("Tesla T4",), {"driver_flavour": "opne"}, "invalid_value",
     "nvidia_driver_flavour", "did you mean 'open'"),
    ("source-typo", "debian-12", ("Tesla T4",), {"driver_source": "nvidia"}, "invalid_value",
     "nvidia_driver_source", "cuda_repo"),
    ("mixed-modules", "ubuntu-24.04", ("NVIDIA GeForce GTX 1080", "NVIDIA B200"), {},
     "mixed_kernel_modules", "gpu_model", "split the host"),
]


@pytest.mark.parametrize(
    ("os_name", "gpus", "request_", "constraint", "key", "fix"),
    [pytest.param(*case[1:], id=case[0]) for case in REFUSALS],
)
def test_refusal(os_name, gpus, request_, constraint, key, fix):
    with pytest.raises(StackError) as caught:
        resolve(facts(os_name, *gpus), StackRequest(**request_))
    error = caught.value
    assert (error.constraint, error.key) == (constraint, key), str(error)
    assert fix in str(error)
    assert str(error).startswith(f"{key}: ")


@pytest.mark.parametrize(("os_id", "release"), [("ubuntu", "20.04"), ("debian", "11"),
                                                 ("fedora", "40")])
def test_unsupported_os(os_id, release):
    with pytest.raises(StackError) as caught:
        resolve(HostFacts(os_id, release), StackRequest())
    assert caught.value.constraint == "unsupported_os"
    assert "debian-12, debian-13, ubuntu-22.04, ubuntu-24.04" in str(caught.value)


def test_request_from_host_data():
    data = {"nvidia_driver_branch": 580, "cuda_version": "12.8", "frameworks_torch": None,
            "unrelated": 1}
    assert request_from_host_data(data) == StackRequest(driver_branch="580", cuda="12.8")
    assert set(HOST_DATA_KEYS) == set(StackRequest.__dataclass_fields__)
