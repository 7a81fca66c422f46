"""The GPU stack solver: auto choices per OS and GPU, every refusal, GPU lookup and the CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dlws.stack import (
    GPU_MODELS,
    HOST_DATA_KEYS,
    HostFacts,
    StackError,
    StackRequest,
    derive,
    find_gpu,
    request_from_host_data,
    resolve,
)
from dlws.stack.table import version_key

ROOT = Path(__file__).resolve().parent.parent

OSES = {"ubuntu-22.04": ("ubuntu", "22.04"), "ubuntu-24.04": ("ubuntu", "24.04"),
        "debian-12": ("debian", "12"), "debian-13": ("debian", "13")}
GPUS = {"none": None, "gtx-1080": "NVIDIA GeForce GTX 1080", "t4": "Tesla T4",
        "rtx-3090": "NVIDIA GeForce RTX 3090", "a100": "NVIDIA A100-SXM4-40GB",
        "rtx-4090": "NVIDIA GeForce RTX 4090", "h100": "NVIDIA H100 80GB HBM3",
        "rtx-5090": "NVIDIA GeForce RTX 5090", "b200": "NVIDIA B200"}

# Expected auto stacks: (driver branch, flavour, source, cuda, cudnn, tensorflow, torch).
# Torch: the newest patch release on PyPI (2.14.1, 2.15.0); beside TensorFlow's CUDA 12 wheels
# a CUDA 12 build (one CUDA major per environment): cu126, or for Blackwell's sm_100 the newest
# CUDA 12 build that has it (2.11.0+cu128). Without TensorFlow (sm_120) torch takes the build
# native to R580: cu130, not cu132 (minor-version compatibility). torch 2.15 needs Python
# >= 3.11 (PyPI wheels), so Ubuntu 22.04 (3.10) stays on 2.14.1.
_CPU = (None, None, None, None, None, "tensorflow-cpu==2.21.0", "2.15.0+cpu")
_CPU_310 = _CPU[:6] + ("2.14.1+cpu",)
_TF = "tensorflow[and-cuda]==2.21.0"
_CU12 = "2.14.1+cu126"
_B200 = "2.11.0+cu128"


def _ubuntu(newest: str) -> dict[str, tuple]:
    return {
        "none": _CPU if newest == "2.15.0" else _CPU_310,
        "gtx-1080": ("580", "proprietary", "distro", "12.9", "wheels", _TF, _CU12),
        "t4": ("580", "open", "distro", "13.0", "wheels", _TF, _CU12),
        "rtx-3090": ("580", "open", "distro", "13.0", "wheels", _TF, _CU12),
        "a100": ("580", "open", "distro", "13.0", "wheels", _TF, _CU12),
        "rtx-4090": ("580", "open", "distro", "13.0", "wheels", _TF, _CU12),
        "h100": ("580", "open", "distro", "13.0", "wheels", _TF, _CU12),
        "rtx-5090": ("580", "open", "distro", "13.0", "wheels", None, f"{newest}+cu130"),
        "b200": ("580", "open", "distro", "13.0", "wheels", _TF, _B200),
    }


_BLACKWELL_DEBIAN = ("580", "open", "cuda_repo", "13.0", "wheels")


def _debian(branch: str, cuda: str) -> dict[str, tuple]:
    # Debian's own driver (proprietary below R560) and toolkit; Blackwell needs R570+, which
    # only NVIDIA's repository has.
    classic = (branch, "proprietary", "distro", cuda, "wheels", _TF, _CU12)
    return {
        "none": _CPU, "gtx-1080": classic, "t4": classic, "rtx-3090": classic, "a100": classic,
        "rtx-4090": classic, "h100": classic,
        "rtx-5090": _BLACKWELL_DEBIAN + (None, "2.15.0+cu130"),
        "b200": _BLACKWELL_DEBIAN + (_TF, _B200),
    }


EXPECTED = {"ubuntu-22.04": _ubuntu("2.14.1"), "ubuntu-24.04": _ubuntu("2.15.0"),
            "debian-12": _debian("535", "11.8"), "debian-13": _debian("550", "12.4")}
AUTO_CASES = [
    pytest.param(os_name, gpu, EXPECTED[os_name][gpu], id=f"{os_name}_{gpu}_auto")
    for os_name in OSES for gpu in GPUS
]
PYTHONS = {"ubuntu-22.04": "3.10", "ubuntu-24.04": "3.12", "debian-12": "3.11",
           "debian-13": "3.13"}


def facts(os_name: str, *gpus: str, **extra) -> HostFacts:
    return HostFacts(*OSES[os_name], gpus=tuple(g for g in gpus if g), **extra)


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


@pytest.mark.parametrize(
    ("os_name", "gpu", "request_", "expected"),
    [
        pytest.param("debian-12", "NVIDIA GeForce RTX 4090", {"driver_flavour": "open"},
                     ("580", "open", "cuda_repo"), id="debian-12_rtx-4090_open-moves-to-repo"),
        pytest.param("debian-13", "NVIDIA GeForce RTX 4090", {"driver_flavour": "open"},
                     ("550", "open", "distro"), id="debian-13_rtx-4090_open-distro"),
        pytest.param("debian-12", "Tesla T4", {"cuda": "12.8"},
                     ("580", "open", "cuda_repo"), id="debian-12_t4_cuda-12.8-moves-to-repo"),
        # Ubuntu's nvidia-driver-570-server is a transitional package to 580 (facts sheet
        # section 0): a pinned 570 comes from NVIDIA's repository.
        pytest.param("ubuntu-24.04", "Tesla T4", {"driver_branch": "570"},
                     ("570", "open", "cuda_repo"), id="ubuntu-24.04_t4_driver-570"),
        pytest.param("ubuntu-24.04", "Tesla T4", {"driver_branch": "535"},
                     ("535", "proprietary", "distro"), id="ubuntu-24.04_t4_driver-535"),
    ],
)
def test_pins_steer_the_source(os_name, gpu, request_, expected):
    stack = resolve(facts(os_name, gpu), StackRequest(**request_))
    assert (stack.driver.branch, stack.driver.flavour, stack.driver.source) == expected


def test_driver_535_gets_cu126_and_cuda_12_2():
    stack = resolve(facts("ubuntu-22.04", "Tesla T4"), StackRequest(driver_branch="535"))
    assert (stack.cuda.version, stack.torch.variant) == ("12.2", "cu126")


def test_container_uses_host_driver():
    stack = resolve(facts("ubuntu-24.04", "NVIDIA L4", in_container=True,
                          installed_driver="580.95.05"), StackRequest())
    assert stack.driver.branch is None and stack.transition.keep_installed_driver
    # Beside TensorFlow's CUDA 12 wheels a CUDA 12 torch; alone, the build native to R580.
    assert stack.torch.variant == "cu126"
    alone = resolve(facts("ubuntu-24.04", "NVIDIA L4", in_container=True,
                          installed_driver="580.95.05"), StackRequest(tensorflow="none"))
    assert (alone.torch.version, alone.torch.variant) == ("2.15.0", "cu130")


@pytest.mark.parametrize(
    ("installed", "keep"),
    [pytest.param("580.95.05", True, id="same-branch-kept"),
     pytest.param("535.183.01", False, id="older-branch-replaced"),
     pytest.param(None, False, id="none-installed")],
)
def test_installed_driver_keep(installed, keep):
    host = dataclasses.replace(
        facts("ubuntu-24.04", "NVIDIA GeForce RTX 4090", installed_driver=installed),
        nvidia_packages=(("nvidia-utils-535", "535.183.01-0ubuntu1"),) if installed else ())
    stack = derive({"nvidia_driver_replace": True}, host)
    assert stack.transition.keep_installed_driver is keep
    assert (installed == "535.183.01") == any("replaced" in n for n in stack.notes)
    # The old branch's named packages go in the same apt transaction as the new branch.
    assert stack.transition.purge == (("nvidia-utils-535",) if installed == "535.183.01" else ())


def test_installed_driver_of_another_branch_is_replaced_only_when_allowed():
    host = dataclasses.replace(
        facts("ubuntu-24.04", "NVIDIA GeForce RTX 4090", installed_driver="535.183.01"),
        nvidia_packages=(("nvidia-utils-535", "535.183.01-0ubuntu1"),))
    with pytest.raises(StackError) as refused:
        derive({}, host)
    assert refused.value.key == "nvidia_driver_replace" and "535.183.01" in str(refused.value)
    # A loaded driver that no package provides (NVIDIA's .run installer) is never replaced.
    with pytest.raises(StackError, match="nvidia-uninstall"):
        derive({"nvidia_driver_replace": True}, dataclasses.replace(host, nvidia_packages=()))


def test_multi_gpu_gets_system_nccl_on_debian_13():
    stack = resolve(facts("debian-13", "10de:2236", "10de:2236"), StackRequest())
    assert stack.nccl.version == "2.22.3"
    assert stack.gpu.models == ("NVIDIA A10", "NVIDIA A10")


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        pytest.param({"tensorflow": "none", "torch": "none"}, ("12.4", "9.0", "distro"),
                     id="no-frameworks-distro-cudnn"),
        pytest.param({}, ("12.4", "wheels", "wheels"), id="frameworks-bring-cudnn"),
        pytest.param({"cudnn": "9.0"}, ("12.4", "9.0", "distro"), id="pinned-distro-cudnn"),
    ],
)
def test_cudnn_choice_debian_13(request_, expected):
    stack = resolve(facts("debian-13", "Tesla T4"), StackRequest(**request_))
    assert (stack.cuda.version, stack.cudnn.version, stack.cudnn.source) == expected


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


# --- refusals -------------------------------------------------------------------------------------

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


# --- GPU lookup ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        pytest.param("10de:2684", "NVIDIA GeForce RTX 4090", id="pci-full"),
        pytest.param("2684", "NVIDIA GeForce RTX 4090", id="pci-short"),
        pytest.param("10DE:1EB8", "Tesla T4", id="pci-upper"),
        pytest.param("nvidia geforce rtx 4090", "NVIDIA GeForce RTX 4090", id="name-lower"),
        pytest.param("RTX 4090", "NVIDIA GeForce RTX 4090", id="name-no-prefix"),
        pytest.param("GeForce RTX 5090", "NVIDIA GeForce RTX 5090", id="name-no-nvidia"),
        pytest.param("T4", "Tesla T4", id="name-no-tesla"),
        pytest.param("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", id="name-exact"),
        pytest.param("rtx-3090", "NVIDIA GeForce RTX 3090", id="slug"),
    ],
)
def test_find_gpu(text, name):
    assert find_gpu(text).name == name


@pytest.mark.parametrize("os_name", OSES)
@pytest.mark.parametrize("model", GPU_MODELS, ids=lambda m: m.slug)
def test_every_model_resolves_on_auto(os_name, model):
    stack = resolve(facts(os_name, model.pci_ids[0]), StackRequest())
    assert stack.driver.branch and stack.torch.version, stack.as_dict()


def test_gpu_table_is_consistent():
    assert len({m.name for m in GPU_MODELS}) == len(GPU_MODELS), "a name is listed twice"
    for model in GPU_MODELS:
        assert all(pci.startswith("10de:") and len(pci) == 9 for pci in model.pci_ids), model
        assert find_gpu(model.name) == model
        for pci in model.pci_ids:
            # By ID the model is that device's own record: one ID, the same architecture.
            by_id = find_gpu(pci)
            assert (by_id.pci_ids, by_id.arch) == ((pci,), model.arch)
            assert version_key(by_id.compute_capability) >= version_key(
                model.compute_capability)


def test_request_from_host_data():
    data = {"nvidia_driver_branch": 580, "cuda_version": "12.8", "frameworks_torch": None,
            "unrelated": 1}
    assert request_from_host_data(data) == StackRequest(driver_branch="580", cuda="12.8")
    assert set(HOST_DATA_KEYS) == set(StackRequest.__dataclass_fields__)


# --- the calculator ------------------------------------------------------------------------------


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


# --- refreshed tables (issue 12) -----------------------------------------------------------------


@pytest.mark.parametrize(("branch", "flavour", "expected"), [
    # nvidia-driver-pinning-<branch> exists for 570, 580, 590, 610 and 615 only; other branches
    # are held by the branch-named metapackage.
    ("535", "proprietary", ["cuda-drivers-535"]),
    ("550", "open", ["nvidia-open-550"]),
    ("570", "open", ["nvidia-driver-pinning-570", "nvidia-open"]),
    ("575", "open", ["nvidia-open-575"]),
    ("580", "open", ["nvidia-driver-pinning-580", "nvidia-open"]),
    ("590", "open", ["nvidia-driver-pinning-590", "nvidia-open"]),
    ("595", "open", ["nvidia-open-595"]),
    ("610", "open", ["nvidia-driver-pinning-610", "nvidia-open"]),
    ("615", "open", ["nvidia-driver-pinning-615", "nvidia-open"]),
])
def test_repository_branch_pins(branch, flavour, expected):
    stack = resolve(facts("ubuntu-24.04", "NVIDIA GeForce RTX 4090"),
                    StackRequest(driver_branch=branch, driver_flavour=flavour,
                                 driver_source="cuda_repo"))
    assert list(stack.driver.packages) == expected


def test_r615_on_debian_13_is_open_only():
    with pytest.raises(StackError) as refused:
        resolve(facts("debian-13", "NVIDIA L4"),
                StackRequest(driver_branch="615", driver_flavour="proprietary",
                             driver_source="cuda_repo"))
    assert refused.value.constraint == "source_open_only"
    ok = resolve(facts("debian-13", "NVIDIA L4"), StackRequest(driver_branch="615"))
    assert (ok.driver.flavour, ok.driver.source, ok.cuda.version) == ("open", "cuda_repo", "13.3")
    assert any("R615 support for NVIDIA L4" in note and "unverified" in note
               for note in ok.notes), ok.notes


def test_ubuntu_595_from_the_archive():
    stack = resolve(facts("ubuntu-24.04", "NVIDIA H100 80GB HBM3"),
                    StackRequest(driver_branch="595", driver_source="distro"))
    assert list(stack.driver.packages) == [
        "linux-modules-nvidia-595-server-open-generic", "nvidia-headless-no-dkms-595-server-open",
        "nvidia-utils-595-server"]
    # CUDA 13.2 needs >= 595.45.04: R595's native CUDA.
    assert stack.cuda.version == "13.2"


def test_debian_12_r535_past_its_end_of_life_says_so():
    import datetime

    stack = resolve(facts("debian-12", "NVIDIA GeForce RTX 3090"), StackRequest())
    assert (stack.driver.branch, stack.driver.source) == ("535", "distro")
    past = datetime.date.today().strftime("%Y-%m") > "2026-06"
    notes = [n for n in stack.notes if "past NVIDIA's end of life (2026-06)" in n]
    assert bool(notes) == past, stack.notes
    if past:
        assert "Debian still patches it" in notes[0] and "cuda_repo" in notes[0]


def test_r580_takes_its_native_torch_build():
    """On R580 torch's cu130 is native; cu132 would run in minor-version compatibility mode."""
    stack = resolve(facts("debian-13", "NVIDIA H100 80GB HBM3"),
                    StackRequest(tensorflow="none", driver_source="cuda_repo"))
    assert (stack.driver.branch, stack.torch.version, stack.torch.variant) == (
        "580", "2.15.0", "cu130")
    newer = resolve(facts("debian-13", "NVIDIA H100 80GB HBM3"),
                    StackRequest(tensorflow="none", driver_branch="595"))
    assert newer.torch.variant == "cu132"  # 13.2 is R595's own CUDA


# --- the NGC route (frameworks_tensorflow = "ngc") -------------------------------------------

RTX_5090 = ("NVIDIA GeForce RTX 5090",)


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
    stack = resolve(facts, request_)
    if image is None:
        # Debian 12's R535 is under every release from 24.12 on: 23.01 (CUDA 12.0, R525) runs.
        assert stack.driver.branch == "535"
        assert stack.tensorflow.image == "nvcr.io/nvidia/tensorflow:23.01-tf2-py3"
        return
    assert stack.tensorflow.image == f"nvcr.io/nvidia/tensorflow:{image}-tf2-py3"
    assert stack.tensorflow.version is None and stack.tensorflow.package is None
    assert any("unverified" in note for note in stack.notes), "25.xx rows are marked unverified"


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
