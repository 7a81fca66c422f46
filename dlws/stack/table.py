"""The one table of GPU, driver, CUDA, framework and OS facts that the solver and roles read."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

# Every block names its source (gathered in the project's GPU stack facts sheet). Entries marked
# "verify" were seen only in a secondary copy or are from memory: check them against the
# primary source before relying on them.

def version_key(version: str) -> tuple[int, ...]:
    """A sortable key for dotted versions ("12.10" > "12.9")."""
    return tuple(int(part) for part in version.split("."))


# Kernel module policies (driver-installation-guide "Kernel Modules"): the open modules need
# the GSP, so they work only from Turing on; from R560 they are the default; Blackwell and
# Grace Hopper require them.
PROPRIETARY_ONLY = "proprietary_only"
OPEN_RECOMMENDED = "open_recommended"
OPEN_REQUIRED = "open_required"

# The branch from which the open modules are NVIDIA's default installation (R560 transition).
OPEN_DEFAULT_FROM_BRANCH = 560


@dataclass(frozen=True)
class Arch:
    """A GPU architecture and the driver/CUDA range that supports it."""

    name: str
    compute_capabilities: tuple[str, ...]
    first_cuda: str
    # Newest CUDA major that still compiles for it and the last driver branch; None = ongoing.
    last_cuda_major: int | None
    last_driver_branch: int | None
    kernel_modules: str


# Source: NVIDIA "CUDA Toolkit, Driver, and Architecture Matrix"; developer.nvidia.com/cuda-gpus.
# CUDA 13.0 removed offline compilation for Maxwell, Pascal and Volta (CUDA 13.x release
# notes), and R580 is their last driver branch.
ARCHES: dict[str, Arch] = {
    a.name: a
    for a in (
        Arch("Maxwell", ("5.0", "5.2", "5.3"), "6.5", 12, 580, PROPRIETARY_ONLY),
        Arch("Pascal", ("6.0", "6.1"), "8.0", 12, 580, PROPRIETARY_ONLY),
        Arch("Volta", ("7.0",), "9.0", 12, 580, PROPRIETARY_ONLY),
        Arch("Turing", ("7.5",), "10.0", None, None, OPEN_RECOMMENDED),
        Arch("Ampere", ("8.0", "8.6", "8.7"), "11.0", None, None, OPEN_RECOMMENDED),
        Arch("Ada", ("8.9",), "11.8", None, None, OPEN_RECOMMENDED),
        # GH200 requires the open modules: that is a per-model override below.
        Arch("Hopper", ("9.0",), "11.8", None, None, OPEN_RECOMMENDED),
        Arch("Blackwell", ("10.0", "10.3", "11.0", "12.0", "12.1"), "12.8", None, None,
             OPEN_REQUIRED),
    )
}

# Compute capabilities whose first CUDA differs from their architecture's (same matrix):
# Ampere 8.6 came with 11.1; Blackwell 10.3 (B300) and 12.1 (GB10) with 12.9.
FIRST_CUDA_BY_CC: dict[str, str] = {"8.6": "11.1", "10.3": "12.9", "12.1": "12.9"}


def first_cuda(compute_capability: str) -> str:
    """The first CUDA release that compiles for a compute capability."""
    if compute_capability in FIRST_CUDA_BY_CC:
        return FIRST_CUDA_BY_CC[compute_capability]
    return arch_of_cc(compute_capability).first_cuda


def arch_of_cc(compute_capability: str) -> Arch:
    """The architecture of a compute capability (KeyError when none has it)."""
    for arch in ARCHES.values():
        if compute_capability in arch.compute_capabilities:
            return arch
    raise KeyError(compute_capability)


@dataclass(frozen=True)
class GpuModel:
    """One GPU model: how nvidia-smi, lspci and the PCI bus name it, what it can do, and which
    driver branches NVIDIA lists it for (per device ID: dlws/stack/data/gpus.json)."""

    slug: str  # short, stable id used in test and case names ("rtx-4090")
    name: str  # exactly as `nvidia-smi --query-gpu=name` prints it
    pci_ids: tuple[str, ...]  # "10de:xxxx", lower case
    arch: str
    compute_capability: str
    # Dense FP16/BF16 tensor TFLOP/s with FP32 accumulation, None where not in the figures
    # table (sources/performance.tsv); bf16 None = no BF16 tensor cores (Volta, Turing).
    fp16_tflops: float | None = None
    fp32_tflops: float | None = None
    # A model-level override of the architecture's kernel module policy (GH200).
    kernel_modules: str | None = None
    bf16_tflops: float | None = None
    memory_gib: float | None = None
    chip: str | None = None
    lspci_name: str | None = None  # pci.ids: "AD102 [GeForce RTX 4090]"
    # (branch, first release of that branch listing it): "arch" = carried by architecture to
    # R580, "assumed" = newer than the newest list read (unverified).
    branches: tuple[tuple[int, str], ...] = ()
    legacy: str | None = None  # NVIDIA's legacy branch ("470.xx") for Kepler and older
    kernel_open: bool = False  # NVIDIA lists it for the open kernel modules
    # The machines (uname -m) it exists in; () = any. Grace superchips and GB10 are Arm only
    # (sources/machines.tsv).
    machines: tuple[str, ...] = ()
    # No framebuffer of its own: the GPU's memory is the system's (GB10: NVML reports none).
    unified_memory: bool = False

    def supports(self, branch: int) -> bool:
        return any(b == branch for b, _ in self.branches)

    def first_branch(self) -> tuple[int, str] | None:
        """The oldest branch NVIDIA lists it for, with that branch's first release."""
        return min(self.branches, default=None)

    @property
    def tensor_dtype(self) -> str:
        """The dtype its tensor cores run: bf16 from Ampere on, fp16 on Volta and Turing (and
        plain fp16 where there are no tensor cores)."""
        return "bfloat16" if version_key(self.compute_capability) >= (8, 0) else "float16"

    @property
    def tensor_tflops(self) -> float | None:
        """The expected dense figure for tensor_dtype (None where the table has none)."""
        return self.bf16_tflops if self.tensor_dtype == "bfloat16" else self.fp16_tflops


GPU_TABLE = Path(__file__).resolve().parent / "data" / "gpus.json"


def slug_of(name: str) -> str:
    """"NVIDIA GeForce RTX 4090" -> "rtx-4090"; "Tesla V100-SXM2-16GB" -> "v100-sxm2-16gb"."""
    text = name.lower()
    while text.startswith(("nvidia ", "geforce ", "tesla ", "quadro ")):
        text = text.split(" ", 1)[1]
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def _model(name: str, devices: list[dict], figures: dict) -> GpuModel:
    """One model from the device IDs that carry its name: branches are those that list every
    one of them (a model named without its PCI ID is held to the strictest of its IDs)."""
    first = devices[0]
    common = set.intersection(*({int(b) for b in d["branches"]} for d in devices))
    branches = tuple(sorted((b, max((d["branches"][str(b)] for d in devices), key=_first_key))
                            for b in common))
    fig = figures.get(name, {})
    policies = {d["modules"] for d in devices} - {None}
    return GpuModel(
        slug=slug_of(name), name=name, pci_ids=tuple(f"10de:{d['id']}" for d in devices),
        arch=first["arch"] or "unknown",
        # IDs of one name on different chips (GTX 750: GM107 and GM206): the lowest capability,
        # which every one of them runs.
        compute_capability=min((d["cc"] or "0.0" for d in devices), key=version_key),
        fp16_tflops=fig.get("fp16_tflops"), fp32_tflops=fig.get("fp32_tflops"),
        kernel_modules=policies.pop() if policies else None,
        bf16_tflops=fig.get("bf16_tflops"), memory_gib=fig.get("memory_gib"),
        chip=first["chip"], lspci_name=first["lspci"], branches=branches,
        legacy=first["legacy"], kernel_open=all(d["kernel_open"] for d in devices),
        machines=tuple(sorted(set().union(*(d.get("machines") or () for d in devices)))),
        unified_memory=any(d.get("memory") == "unified" for d in devices),
    )


def _first_key(version: str) -> tuple[int, ...]:
    return (0,) if not version[0].isdigit() else tuple(int(p) for p in version.split("."))


@functools.cache
def gpu_table() -> tuple[dict[str, dict], dict[str, GpuModel], tuple[GpuModel, ...], dict]:
    """(devices by PCI ID, models by name, the table's models, figures by name), read from
    GPU_TABLE on first use: a run that plans no GPU (a CPU host, a no-change rerun) never
    parses its 370 kB."""
    data = json.loads(GPU_TABLE.read_text())
    devices = {d["id"]: d for d in data["devices"]}
    by_name: dict[str, list[dict]] = {}
    for device in data["devices"]:
        for name in device["names"]:
            by_name.setdefault(name, []).append(device)
    models = {name: _model(name, found, data["figures"]) for name, found in by_name.items()}
    # One model per device's own (first) name, in device ID order: the table's GPU models.
    primary = tuple(dict.fromkeys(models[d["names"][0]] for d in data["devices"]
                                  if d["branches"]))
    return devices, models, primary, data["figures"]


# Sources: dlws/stack/data/gpus.json, generated from NVIDIA's own per-branch lists by
# dlws/stack/data/regenerate.py (each source and version in its "sources"); see
# docs/gpu-stack.md. Every device ID NVIDIA lists for a branch dlws plans is a model here.
# GPU_DEVICES, GPU_MODELS_BY_NAME, GPU_MODELS: gpu_table()'s parts, read on first use.
_LAZY = {"GPU_DEVICES": 0, "GPU_MODELS_BY_NAME": 1, "GPU_MODELS": 2}


def __getattr__(name: str):
    """The GPU table's parts, read on first use (PEP 562)."""
    if name in _LAZY:
        return gpu_table()[_LAZY[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def device_model(device_id: str, subsystem: str | None = None) -> GpuModel | None:
    """The model of a PCI device ID ("2335"), named as NVIDIA names its subsystem variant."""
    devices, by_name, _, figures = gpu_table()
    device = devices.get(device_id.lower())
    if device is None:
        return None
    name = device["subsystems"].get(subsystem or "", device["names"][0])
    model = by_name[name]
    if len(model.pci_ids) > 1:
        # The name is shared by several IDs: this ID's own branches decide, not the strictest.
        model = _model(name, [device], figures)
    return model

# CUDA releases and the minimum Linux x86_64 driver of their GA (CUDA 13.1 Release Notes,
# "CUDA Toolkit and Corresponding Driver Versions"). There is no CUDA 12.7
# (ComputeCanada/software-stack-config PR#101). 11.5 is not in the facts file: it is Ubuntu
# 22.04's packaged toolkit, and its minimum (495.29.05) is from the CUDA 11.5 release notes.
CUDA_MIN_DRIVER: dict[str, str] = {
    "11.5": "495.29.05",
    "11.8": "520.61.05",
    "12.0": "525.60.13",
    "12.1": "530.30.02",
    "12.2": "535.54.03",
    "12.3": "545.23.06",
    "12.4": "550.54.14",
    "12.5": "555.42.02",
    "12.6": "560.28.03",
    "12.8": "570.26",
    "12.9": "575.51.03",
    "13.0": "580.65.06",
    "13.1": "590.44.01",
    # CUDA 13.2 release notes Table 3 (facts sheet section 0); 13.3 GA: copies of the 13.3
    # release notes' table (several public repositories quote ">=610.43.02"; the page itself
    # not read here). 13.4 and 13.5 exist (PyPI nvidia-cuda-runtime 13.5.37) but their notes
    # no longer name a bundled driver: their minimum is unconfirmed, so they are not planned.
    "13.2": "595.45.04",
    "13.3": "610.43.02",
}

# Minor-version compatibility ("Minor Version Compatibility"): an application built with any
# CUDA of a major runs, with a reduced feature set, on a driver of at least this branch. Pip
# wheels bundle their runtime, so this is the only host constraint for them (cu12x vs cu13x).
MINOR_COMPAT_MIN_BRANCH: dict[int, int] = {11: 450, 12: 525, 13: 580}

LTSB = "LTSB"  # long-term support branch
PB = "PB"  # production branch
NFB = "NFB"  # new feature branch


@dataclass(frozen=True)
class DriverBranch:
    """A driver branch: its kind and end of life (None where the facts file gives none)."""

    branch: int
    kind: str
    eol: str | None


# NVIDIA "Supported Drivers and CUDA Toolkit Versions" (the 615/620 pages): R535 LTSB EOL
# 2026-06; R580 LTSB EOL 2028-06; R595 PB EOL 2027-03; R620 LTSB EOL 2029-09. R580, R595 and
# R620 support CUDA 13 natively. The kinds of R550/R570 (PB), R575/R590 (NFB) and R610/R615
# (NFB) follow NVIDIA's usual naming and are unverified; their end of life is not known here.
DRIVER_BRANCHES: dict[int, DriverBranch] = {
    b.branch: b
    for b in (
        DriverBranch(535, LTSB, "2026-06"),
        DriverBranch(550, PB, None),
        DriverBranch(570, PB, None),
        DriverBranch(575, NFB, None),
        DriverBranch(580, LTSB, "2028-06"),
        DriverBranch(590, NFB, None),
        DriverBranch(595, PB, "2027-03"),
        DriverBranch(610, NFB, None),
        DriverBranch(615, NFB, None),
        DriverBranch(620, LTSB, "2029-09"),
    )
}


def native_cuda(branch: int) -> str | None:
    """The newest CUDA whose GA minimum driver the branch meets (derived from the table)."""
    fits = [c for c, d in CUDA_MIN_DRIVER.items() if int(d.split(".")[0]) <= branch]
    return max(fits, key=version_key) if fits else None


def min_branch_for_cuda(cuda: str) -> int:
    """The driver branch a CUDA release needs natively."""
    return int(CUDA_MIN_DRIVER[cuda].split(".")[0])


@dataclass(frozen=True)
class TensorFlowBuild:
    """A TensorFlow release: its Pythons and the CUDA/cuDNN it was built with."""

    version: str
    python_min: str
    python_max: str
    cudnn: str
    cuda: str


# tensorflow.org/install/source "Tested build configurations", cross-checked against the pins
# of `tensorflow[and-cuda]`. TF 2.18 disabled TF-TRT (tensorflow#87911). The pip doc asks for a
# driver >= 525.60.13 (CUDA 12 minor-version compatibility). Each version is the newest patch
# release on PyPI, and each Python range matches the cp tags of its wheels there
# (data/sources/pypi-wheels.tsv, checked by tests/stack/test_table.py). 2.21.0's [and-cuda]
# requires nvidia-*-cu12 <13 (PyPI metadata): TensorFlow's GPU build is CUDA 12 only.
TENSORFLOW_BUILDS: tuple[TensorFlowBuild, ...] = (
    TensorFlowBuild("2.16.2", "3.9", "3.12", "8.9", "12.3"),
    TensorFlowBuild("2.17.1", "3.9", "3.12", "8.9", "12.3"),
    TensorFlowBuild("2.18.1", "3.9", "3.12", "9.3", "12.5"),
    TensorFlowBuild("2.19.1", "3.9", "3.12", "9.3", "12.5"),
    TensorFlowBuild("2.20.0", "3.9", "3.13", "9.3", "12.5"),
    TensorFlowBuild("2.21.0", "3.10", "3.13", "9.3", "12.5"),
)
# The CUDA major of TensorFlow's GPU wheels (tensorflow[and-cuda] pins nvidia-*-cu12).
TENSORFLOW_CUDA_MAJOR = 12
# Linux aarch64: PyPI has no tensorflow-cpu wheel for it, and its `tensorflow` wheels
# (manylinux_2_27_aarch64, cp310-cp313 for 2.21.0) are CPU builds: the 2.21.0 aarch64 wheel
# carries none of the CUDA headers and libraries (include/external/cuda_*) its x86_64 wheel
# has (the two wheels' file lists read from PyPI, 17,941 vs 23,963 files). A GPU on Arm runs
# TensorFlow only through NVIDIA's NGC container (frameworks_tensorflow = "ngc").
TENSORFLOW_AARCH64_PACKAGE = "tensorflow"

# Kernels in TensorFlow's official wheels: sm_60, sm_70, sm_80, sm_89 and compute_90 PTX
# (tensorflow/.bazelrc, TF_CUDA_COMPUTE_CAPABILITIES of the release builds). Maxwell (5.x) has
# neither a cubin nor PTX it can run: tensorflow[and-cuda] would run on the CPU there.
TENSORFLOW_ARCHS: tuple[str, ...] = ("6.0", "7.0", "8.0", "8.9", "9.0+PTX")
# Beyond the arch list, the wheels fail on these compute capabilities although compute_90 PTX
# should JIT (CUDA_ERROR_INVALID_PTX, "PTX 8.5 does not support sm_120"): tensorflow#89272,
# #90291, #97387, #99592, #101746, #111958. Users run NVIDIA's NGC TensorFlow container instead.
TENSORFLOW_UNSUPPORTED_CC_MAJORS: tuple[int, ...] = (12,)


@dataclass(frozen=True)
class TorchBuild:
    """A PyTorch release: its Pythons and its CUDA wheel variants."""

    version: str  # major.minor, as the release matrix gives it
    python_min: str | None
    python_max: str | None
    stable: tuple[str, ...]
    experimental: tuple[str, ...] = ()
    patch: str | None = None  # the newest x.y.z on PyPI; None = x.y.0

    @property
    def newest(self) -> str:
        return self.patch or f"{self.version}.0"


# pytorch/pytorch RELEASE.md "Release Compatibility Matrix"; RFCs #172663, #178665, #190355,
# #190385. cu129 was unsupported from 2.10 and dropped in 2.12 (pytorch#187834). Patch
# releases and Python ranges from PyPI's wheels (data/sources/pypi-wheels.tsv): 2.13 and 2.14
# have no cp315 wheels; 2.15.0 requires Python >= 3.11 (cp311-cp315, no cp310).
TORCH_BUILDS: tuple[TorchBuild, ...] = (
    TorchBuild("2.5", "3.9", "3.12", ("cu118", "cu121", "cu124"), patch="2.5.1"),
    TorchBuild("2.6", "3.9", "3.13", ("cu118", "cu124"), ("cu126",)),
    TorchBuild("2.7", "3.9", "3.13", ("cu118", "cu126"), ("cu128",), patch="2.7.1"),
    TorchBuild("2.8", "3.9", "3.13", ("cu126", "cu128"), ("cu129",)),
    TorchBuild("2.9", "3.10", "3.14", ("cu126", "cu128"), ("cu130",), patch="2.9.1"),
    TorchBuild("2.10", "3.10", "3.14", ("cu126", "cu128"), ("cu130",)),
    TorchBuild("2.11", "3.10", "3.14", ("cu126", "cu128", "cu130")),
    TorchBuild("2.12", "3.10", "3.14", ("cu126", "cu130"), ("cu132",), patch="2.12.1"),
    TorchBuild("2.13", "3.10", "3.14", ("cu126", "cu130"), ("cu132",)),
    TorchBuild("2.14", "3.10", "3.14", ("cu126", "cu130", "cu132"), patch="2.14.1"),
    # The RFC removes cu126, so no Maxwell, Pascal or Volta; its PyPI default build is CUDA
    # 13.2 (cuda-toolkit==13.2.2). The variant list is the RFC's (download.pytorch.org is not
    # reachable here: unverified).
    TorchBuild("2.15", "3.11", "3.15", ("cu130", "cu132")),
)

TORCH_INDEX_URL = "https://download.pytorch.org/whl/{variant}"

# PyPI's own torch wheels for Linux aarch64 (manylinux*_aarch64), per release: the build each
# one is, read from the wheel's METADATA (sources/pypi-torch-aarch64.tsv, with each file's
# sha256). Up to 2.10 every CUDA dependency carries `platform_machine == "x86_64"`: on aarch64
# the wheel is a CPU build. From 2.11 it requires cuda-toolkit 13.0 (2.15: 13.2) on every Linux
# machine: a CUDA build. These are the only aarch64 builds dlws plans: PyTorch's own index
# (cu126/cu128/cu129 aarch64 wheels, and +cpu ones) is not reachable from this project, so
# which variants it serves for aarch64, and from which release, is unverified here.
TORCH_PYPI_AARCH64: dict[str, str] = {
    "2.5": "cpu", "2.6": "cpu", "2.7": "cpu", "2.8": "cpu", "2.9": "cpu", "2.10": "cpu",
    "2.11": "cu130", "2.12": "cu130", "2.13": "cu130", "2.14": "cu130", "2.15": "cu132",
}
# The newest release whose PyPI aarch64 wheel is a CPU build: a CPU host on Arm gets it from
# PyPI (PyTorch's CPU index is unreachable here; newer releases bring several GB of CUDA).
TORCH_AARCH64_CPU_NEWEST = max((v for v, b in TORCH_PYPI_AARCH64.items() if b == "cpu"),
                               key=version_key)

# Architectures compiled into each torch CUDA variant, x86_64 (same RELEASE.md). A "+PTX"
# suffix also embeds PTX that the driver JIT-compiles for newer GPUs. Keys are (variant, torch
# minor) ranges, looked up by torch_arch_list(). cu118/cu121/cu124 are from the builder
# scripts, not the facts file: verify.
_ARCHS_CU12_6 = ("5.0", "6.0", "7.0", "7.5", "8.0", "8.6", "9.0")
_ARCHS_CU13 = ("7.5", "8.0", "8.6", "9.0", "10.0", "12.0+PTX")
TORCH_ARCH_LISTS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    # (variant, first torch, last torch, archs)
    ("cu118", "2.5", "2.7", ("3.7", "5.0", "6.0", "7.0", "7.5", "8.0", "8.6", "9.0")),  # verify
    ("cu121", "2.5", "2.5", _ARCHS_CU12_6),  # verify
    ("cu124", "2.5", "2.6", _ARCHS_CU12_6),  # verify
    ("cu126", "2.6", "2.15", _ARCHS_CU12_6),
    # 2.7's experimental cu128 still had Maxwell and Pascal (removed in 2.8): verify.
    ("cu128", "2.7", "2.7", ("5.0", "6.0", "7.0", "7.5", "8.0", "8.6", "9.0", "10.0", "12.0")),
    ("cu128", "2.8", "2.10", ("7.0", "7.5", "8.0", "8.6", "9.0", "10.0", "12.0")),
    ("cu129", "2.8", "2.10", ("7.0", "7.5", "8.0", "8.6", "9.0", "10.0", "12.0")),
    ("cu128", "2.11", "2.11", ("7.5", "8.0", "8.6", "9.0", "10.0", "12.0")),
    ("cu130", "2.9", "2.15", _ARCHS_CU13),
    ("cu132", "2.12", "2.15", _ARCHS_CU13),
)


def torch_arch_list(variant: str, torch_minor: str) -> tuple[str, ...]:
    """The compute capabilities compiled into a torch CUDA variant of a release."""
    for name, first, last, archs in TORCH_ARCH_LISTS:
        if name == variant and version_key(first) <= version_key(torch_minor) <= version_key(
            last
        ):
            return archs
    return ()


def variant_cuda(variant: str) -> str:
    """"cu128" -> "12.8"."""
    digits = variant.removeprefix("cu")
    return f"{digits[:-1]}.{digits[-1]}"


@dataclass(frozen=True)
class RepoKey:
    """The key that signs one path of NVIDIA's CUDA repository: its file there and fingerprint."""

    file: str
    fingerprint: str


# NVIDIA's repository keys differ per repository path (facts sheet section 0). ubuntu2204,
# ubuntu2404 and debian12: 3bf863cc.pub since the 2022 rotation (developer.nvidia.com/blog
# "Updating the CUDA Linux GPG Repository Key"). debian13: 8793F200.pub, uid "Kitmaker (Debian
# 13 Trixie)"; several independent public configs agree and one report read the debian13
# InRelease signature (not read here: NVIDIA's repository is not reachable from this project).
KEY_3BF863CC = RepoKey("3bf863cc.pub", "EB693B3035CD5710E231E123A4B469963BF863CC")
KEY_8793F200 = RepoKey("8793F200.pub", "02182E60104FCDC26EAE1B8597A5D4CB8793F200")


@dataclass(frozen=True)
class OsRelease:
    """What one OS release ships, and what NVIDIA's CUDA repository offers for it."""

    os_id: str
    release: str
    codename: str
    python: str
    cuda_repo_path: str  # https://developer.download.nvidia.com/compute/cuda/repos/<path>/
    distro_driver_branches: tuple[int, ...]
    distro_open_branches: tuple[int, ...]  # branches with an open kernel module package
    distro_driver_version: str | None  # Debian's exact version; Ubuntu's varies per branch
    distro_cuda: str | None
    distro_cudnn: str | None
    distro_nccl: str | None
    repo_cuda: tuple[str, ...]
    repo_driver_branches: tuple[int, ...]
    repo_key: RepoKey = KEY_3BF863CC
    # Archive packages of a branch that are transitional packages to another branch:
    # ("570", 580) = nvidia-driver-570 now installs 580; ("550-server", 580) = the -server one.
    distro_transitional: tuple[tuple[str, int], ...] = ()
    # Branches NVIDIA's repository ships with the open kernel modules only on this path.
    repo_open_only: tuple[int, ...] = ()


_REPO_BRANCHES = (535, 550, 570, 575, 580, 590, 595, 610, 615)
_REPO_CUDA_12_13 = ("12.2", "12.3", "12.4", "12.5", "12.6", "12.8", "12.9", "13.0", "13.1",
                    "13.2", "13.3")
# Ubuntu's archive (restricted/multiverse, jammy and noble): nvidia-driver-<br>[-server]
# [-open] for 535, 550, 570, 575, 580 and 595 (595 and 595-server exist for both releases).
# nvidia-driver-570 became a transitional package to 580 (2026-04), and 550-server is
# transitional too (to 580-server; the target is unverified): a pin on them would install 580.
# Read from copies of Ubuntu's package index (facts sheet section 0): Ubuntu's archive is not
# reachable from this project.
_UBUNTU_BRANCHES = (535, 550, 570, 575, 580, 595)
_UBUNTU_TRANSITIONAL = (("570", 580), ("570-server", 580), ("550-server", 580))

# Debian: read from the package index on 2026-11-29 (bookworm, trixie and their backports:
# apt-cache madison). Debian 12's contrib has nvidia-open-kernel-dkms 535.261.03 only, while
# bookworm-security's nvidia-driver is 535.309.01: they cannot be installed together, so Debian
# 12 offers no open modules. The cuDNN packages are installers that download from NVIDIA.
# Ubuntu: Python of each release; nvidia-cuda-toolkit 11.5 on 22.04, 12.0 on 24.04.
# NVIDIA's repository: CUDA 12.x/13.x toolkits and drivers 535..615 on each path; which 12.x
# toolkits each path carries, and 610/615 on each path, are from the repository listings as
# copied in the facts sheet (verify). debian13 starts with CUDA 13.0 (R580), and at R615 it
# ships the open kernel modules only.
OS_RELEASES: dict[tuple[str, str], OsRelease] = {
    (o.os_id, o.release): o
    for o in (
        OsRelease("debian", "12", "bookworm", "3.11", "debian12", (535,), (), "535.261.03",
                  "11.8", "8.5", None, _REPO_CUDA_12_13, _REPO_BRANCHES),
        OsRelease("debian", "13", "trixie", "3.13", "debian13", (550,), (550,), "550.163.01",
                  "12.4", "9.0", "2.22.3", ("13.0", "13.1", "13.2", "13.3"),
                  (580, 590, 595, 610, 615), repo_key=KEY_8793F200, repo_open_only=(615,)),
        OsRelease("ubuntu", "22.04", "jammy", "3.10", "ubuntu2204", _UBUNTU_BRANCHES,
                  _UBUNTU_BRANCHES, None, "11.5", None, None,
                  ("11.8", "12.0", "12.1", *_REPO_CUDA_12_13), _REPO_BRANCHES,
                  distro_transitional=_UBUNTU_TRANSITIONAL),
        OsRelease("ubuntu", "24.04", "noble", "3.12", "ubuntu2404", _UBUNTU_BRANCHES,
                  _UBUNTU_BRANCHES, None, "12.0", None, None,
                  # verify: the ubuntu2404 path starts with CUDA 12.5.
                  ("12.5", "12.6", "12.8", "12.9", *_REPO_CUDA_12_13[7:]), _REPO_BRANCHES,
                  distro_transitional=_UBUNTU_TRANSITIONAL),
    )
}


@dataclass(frozen=True)
class Machine:
    """A CPU architecture dlws plans for: `uname -m`, dpkg's name and the folders built for it."""

    name: str  # uname -m
    dpkg_arch: str  # dpkg --print-architecture
    repo_folder: str  # NVIDIA's CUDA repository: repos/<path>/<folder>/
    cuda_target: str  # the toolkit's per-target folder: /usr/local/cuda-X.Y/targets/<target>
    wheel_platform: str  # the manylinux platform of PyPI's wheels (uv --python-platform)


# NVIDIA CUDA installation guide, "Network Repository Installation": $arch is x86_64 or sbsa
# (Arm64 servers: Server Base System Architecture); the toolkit's headers and libraries live in
# targets/x86_64-linux or targets/sbsa-linux (the guide's "Post-installation Actions" and the
# toolkit's own layout). NVIDIA's repository is not reachable here: the sbsa folder of each path
# below is from independent public configs that agree (ubuntu2204, ubuntu2404, debian12,
# debian13), not read at the source.
MACHINES: dict[str, Machine] = {
    m.name: m
    for m in (
        Machine("x86_64", "amd64", "x86_64", "x86_64-linux", "x86_64-manylinux_2_28"),
        Machine("aarch64", "arm64", "sbsa", "sbsa-linux", "aarch64-manylinux_2_28"),
    )
}
# dpkg's name for each machine, and the other spellings people use (--machine arm64).
MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64", **{m: m for m in MACHINES}}


def repo_path(os_release: OsRelease, machine: str) -> str:
    """NVIDIA's repository path of an OS release on a machine: "ubuntu2404/sbsa"."""
    return f"{os_release.cuda_repo_path}/{MACHINES[machine].repo_folder}"


def repo_key(path: str) -> RepoKey:
    """The signing key of one path of NVIDIA's repository ("debian13" -> 8793F200.pub; the
    machine's folder may follow: "debian13/sbsa"). One key signs both folders of a path (the
    keys' URLs under x86_64/ and sbsa/ in the public configs name the same file)."""
    path = path.split("/")[0]
    for release in OS_RELEASES.values():
        if release.cuda_repo_path == path:
            return release.repo_key
    raise KeyError(path)


# cuDNN from NVIDIA's repository: the cudnn9-cuda-<major> packages track the newest cuDNN 9.
REPO_CUDNN = "9"
# NCCL from NVIDIA's repository: libnccl2 built for the planned CUDA, newest 2.x. Its Debian
# version ends in "+cuda<X.Y>" ("2.28.9-1+cuda13.0"); unpinned, apt takes the newest CUDA's
# build, so the plan pins the version glob to the planned CUDA (NVIDIA's NCCL installation
# guide: `apt install libnccl2=<version>+cuda<X.Y>`).
REPO_NCCL = "2"

# NVIDIA's repository: branch-pinning packages nvidia-driver-pinning-<branch> exist for these
# branches only (not 535, 550 or 575; 595 is unverified, so it is treated as without):
# NVIDIA driver installation guide r580 "Version locking" and the repository listings copied in
# the facts sheet. Other branches are held with the branch-named metapackages
# cuda-drivers-<branch> / nvidia-open-<branch> (unverified naming for 595).
REPO_PINNING_BRANCHES: tuple[int, ...] = (570, 580, 590, 610, 615)
# From R580 the fabric manager packages carry no branch on NVIDIA's repository
# (nvidia-fabricmanager, libnvidia-nscq, nvidia-imex: NVIDIA gpu-driver-container).
FABRIC_MANAGER_UNBRANCHED_FROM = 580
# NVLink 5 boards (HGX B200/B300, GB200) need the NVLink subnet manager from R570 on every
# install path (NVIDIA gpu-driver-container installs nvlsm there).
NVLSM_FROM_BRANCH = 570
NVLINK5_CC_MAJOR = 10

@dataclass(frozen=True)
class NgcTensorFlowRelease:
    """A monthly release of NVIDIA's NGC TensorFlow container: its CUDA and the driver it needs."""

    release: str  # "25.02": the image is nvcr.io/nvidia/tensorflow:<release>-tf2-py3
    cuda: str  # the CUDA the release is built on (major.minor)
    min_driver_branch: int  # "requires NVIDIA Driver release N or later" (consumer GPUs)
    verified: bool  # True where the release's own notes were read; False = verify


# NVIDIA "Frameworks Support Matrix" and each release's notes, "Driver Requirements"
# (docs.nvidia.com/deeplearning/frameworks/tensorflow-release-notes/rel-YY-MM.html): release ->
# CUDA -> minimum driver. Data-centre GPUs may run older long-term branches through NVIDIA's
# forward-compatibility package; dlws does not plan for it and holds every GPU to the minimum.
# The GPU rule is derived, not tabulated: a release runs a GPU when its CUDA is at least the
# GPU's first CUDA (FIRST_CUDA_BY_CC / ARCHES), so sm_120 (RTX 50xx) needs a CUDA 12.8 release.
# Rows marked verified=False are from memory of the release notes, not re-read: verify them.
NGC_TENSORFLOW_IMAGE = "nvcr.io/nvidia/tensorflow:{release}-tf2-py3"
NGC_TENSORFLOW_RELEASES: tuple[NgcTensorFlowRelease, ...] = (
    # rel-22-10: "based on CUDA 11.8.0, which requires NVIDIA Driver release 520 or later"
    NgcTensorFlowRelease("22.10", "11.8", 520, True),
    # rel-23-01: "based on CUDA 12.0.1, which requires NVIDIA Driver release 525 or later"
    NgcTensorFlowRelease("23.01", "12.0", 525, True),
    NgcTensorFlowRelease("24.12", "12.6", 560, False),  # verify: CUDA 12.6.3, R560
    # The first releases with Blackwell support, and 25.02 the last TensorFlow release NVIDIA
    # announced for NGC (verify both against the 25.01/25.02 release notes).
    NgcTensorFlowRelease("25.01", "12.8", 570, False),  # verify: CUDA 12.8.0, R570
    NgcTensorFlowRelease("25.02", "12.8", 570, False),  # verify: CUDA 12.8.0, R570
)


def ngc_runs_gpus(release: NgcTensorFlowRelease, compute_capabilities) -> bool:
    """Whether a release's CUDA compiles for every GPU (its CUDA >= each GPU's first CUDA)."""
    return all(version_key(first_cuda(cc)) <= version_key(release.cuda)
               for cc in compute_capabilities)


def ngc_tensorflow_release(compute_capabilities: list[str] | tuple[str, ...],
                           driver_branch: int | None) -> NgcTensorFlowRelease | None:
    """The newest NGC TensorFlow release that runs every GPU on the driver branch.

    + compute_capabilities: the host's GPUs ("12.0"); driver_branch: the planned or installed
      branch (570), None where no driver is known (then the GPUs alone decide)
    """
    fits = [r for r in NGC_TENSORFLOW_RELEASES if ngc_runs_gpus(r, compute_capabilities)]
    if driver_branch is not None:
        fits = [r for r in fits if r.min_driver_branch <= driver_branch]
    return max(fits, key=lambda r: version_key(r.release), default=None)
