"""The one table of GPU, driver, CUDA, framework and OS facts that the solver and roles read."""

from __future__ import annotations

from dataclasses import dataclass

# Every block names its source (gathered in the project's GPU stack facts sheet). Entries marked
# "verify" were seen only in a secondary copy or are from memory: check them against the
# primary source before relying on them.

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
    """One GPU model: how the PCI bus and nvidia-smi name it, and what it can do."""

    slug: str  # short, stable id used in test and case names
    name: str  # exactly as `nvidia-smi --query-gpu=name` prints it
    pci_ids: tuple[str, ...]  # "10de:xxxx", lower case
    arch: str
    compute_capability: str
    memory_gib: int
    # Dense FP16/BF16 tensor TFLOP/s with FP32 accumulation (what frameworks use; GeForce cards
    # run it at half their FP16-accumulate figure); cards without tensor cores give their plain
    # FP16 rate. Approximate public spec figures, used to flag a slow card, not to grade one.
    fp16_tflops: float
    fp32_tflops: float
    # A model-level override of the architecture's kernel module policy (GH200).
    kernel_modules: str | None = None


# Sources: PCI IDs from the PCI ID repository (pci-ids.ucw.cz, vendor 10de) and NVIDIA's driver
# README "Appendix A. Supported NVIDIA GPU Products"; names as nvidia-smi prints them (the
# "NVIDIA " prefix on GeForce/Quadro names since R470; datacentre Pascal/Volta/Turing keep
# "Tesla"); TFLOP/s from each product's datasheet or architecture whitepaper (approximate).
GPU_MODELS: tuple[GpuModel, ...] = (
    # Maxwell
    GpuModel("gtx-980", "NVIDIA GeForce GTX 980", ("10de:13c0",), "Maxwell", "5.2", 4,
             0.08, 5.0),
    GpuModel("tesla-m40", "Tesla M40", ("10de:17fd",), "Maxwell", "5.2", 12,  # verify id
             0.1, 7.0),
    # Pascal: no tensor cores; GP102/GP104 run FP16 at 1/64 of FP32, GP100 at 2x.
    GpuModel("gtx-1080", "NVIDIA GeForce GTX 1080", ("10de:1b80",), "Pascal", "6.1", 8,
             0.14, 8.9),
    GpuModel("gtx-1080-ti", "NVIDIA GeForce GTX 1080 Ti", ("10de:1b06",), "Pascal", "6.1", 11,
             0.18, 11.3),
    GpuModel("p100-pcie", "Tesla P100-PCIE-16GB", ("10de:15f8",), "Pascal", "6.0", 16,
             18.7, 9.3),
    # Volta
    GpuModel("v100-sxm2", "Tesla V100-SXM2-16GB", ("10de:1db1",), "Volta", "7.0", 16,
             125.0, 15.7),
    GpuModel("v100-pcie", "Tesla V100-PCIE-16GB", ("10de:1db4",), "Volta", "7.0", 16,
             112.0, 14.0),
    GpuModel("titan-v", "NVIDIA TITAN V", ("10de:1d81",), "Volta", "7.0", 12,  # verify id
             110.0, 14.9),
    # Turing
    GpuModel("t4", "Tesla T4", ("10de:1eb8",), "Turing", "7.5", 16, 65.0, 8.1),
    GpuModel("rtx-2080-ti", "NVIDIA GeForce RTX 2080 Ti", ("10de:1e07",), "Turing", "7.5", 11,
             53.8, 13.4),
    # Ampere
    GpuModel("a100-pcie-40gb", "NVIDIA A100-PCIE-40GB", ("10de:20f1",), "Ampere", "8.0", 40,
             312.0, 19.5),
    GpuModel("a100-sxm4-40gb", "NVIDIA A100-SXM4-40GB", ("10de:20b0",), "Ampere", "8.0", 40,
             312.0, 19.5),
    GpuModel("a100-sxm4-80gb", "NVIDIA A100-SXM4-80GB", ("10de:20b2",), "Ampere", "8.0", 80,
             312.0, 19.5),
    GpuModel("a100-pcie-80gb", "NVIDIA A100 80GB PCIe", ("10de:20b5",), "Ampere", "8.0", 80,
             312.0, 19.5),
    GpuModel("a30", "NVIDIA A30", ("10de:20b7",), "Ampere", "8.0", 24, 165.0, 10.3),
    GpuModel("a10", "NVIDIA A10", ("10de:2236",), "Ampere", "8.6", 24, 125.0, 31.2),
    GpuModel("rtx-a6000", "NVIDIA RTX A6000", ("10de:2230",), "Ampere", "8.6", 48,
             154.8, 38.7),
    GpuModel("rtx-3080", "NVIDIA GeForce RTX 3080", ("10de:2206",), "Ampere", "8.6", 10,
             59.5, 29.8),
    GpuModel("rtx-3090", "NVIDIA GeForce RTX 3090", ("10de:2204",), "Ampere", "8.6", 24,
             71.0, 35.6),
    # Ada
    GpuModel("l4", "NVIDIA L4", ("10de:27b8",), "Ada", "8.9", 24, 121.0, 30.3),
    GpuModel("l40s", "NVIDIA L40S", ("10de:26b9",), "Ada", "8.9", 48, 362.0, 91.6),
    GpuModel("rtx-6000-ada", "NVIDIA RTX 6000 Ada Generation", ("10de:26b1",), "Ada", "8.9",
             48, 364.0, 91.1),
    GpuModel("rtx-4080", "NVIDIA GeForce RTX 4080", ("10de:2704",), "Ada", "8.9", 16,
             97.5, 48.7),
    GpuModel("rtx-4090", "NVIDIA GeForce RTX 4090", ("10de:2684",), "Ada", "8.9", 24,
             165.2, 82.6),
    # Hopper
    GpuModel("h100-pcie", "NVIDIA H100 PCIe", ("10de:2331",), "Hopper", "9.0", 80,
             756.0, 51.2),
    GpuModel("h100-sxm5", "NVIDIA H100 80GB HBM3", ("10de:2330",), "Hopper", "9.0", 80,
             989.0, 66.9),
    GpuModel("h200", "NVIDIA H200", ("10de:2335",), "Hopper", "9.0", 141, 989.0, 66.9),
    GpuModel("gh200", "NVIDIA GH200 480GB", ("10de:2342",), "Hopper", "9.0", 96,  # verify
             989.0, 66.9, kernel_modules=OPEN_REQUIRED),
    # Blackwell
    GpuModel("b200", "NVIDIA B200", ("10de:2901",), "Blackwell", "10.0", 180, 2250.0, 75.0),
    GpuModel("rtx-5080", "NVIDIA GeForce RTX 5080", ("10de:2c02",), "Blackwell", "12.0", 16,
             112.6, 56.3),
    GpuModel("rtx-5090", "NVIDIA GeForce RTX 5090", ("10de:2b85",), "Blackwell", "12.0", 32,
             209.5, 104.8),
    GpuModel("rtx-pro-6000-blackwell", "NVIDIA RTX PRO 6000 Blackwell Workstation Edition",
             ("10de:2bb1",), "Blackwell", "12.0", 96, 503.8, 125.0),  # verify name
)

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
# R620 support CUDA 13 natively. The kinds of R550/R570 (PB) and R575/R590 (NFB) follow
# NVIDIA's usual naming; their end of life is not in the facts file.
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


def version_key(version: str) -> tuple[int, ...]:
    """A sortable key for dotted versions ("12.10" > "12.9")."""
    return tuple(int(part) for part in version.split("."))


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
# driver >= 525.60.13 (CUDA 12 minor-version compatibility).
TENSORFLOW_BUILDS: tuple[TensorFlowBuild, ...] = (
    TensorFlowBuild("2.16.1", "3.9", "3.12", "8.9", "12.3"),
    TensorFlowBuild("2.17.0", "3.9", "3.12", "8.9", "12.3"),
    TensorFlowBuild("2.18.0", "3.9", "3.12", "9.3", "12.5"),
    TensorFlowBuild("2.19.0", "3.9", "3.12", "9.3", "12.5"),
    TensorFlowBuild("2.20.0", "3.9", "3.13", "9.3", "12.5"),
    TensorFlowBuild("2.21.0", "3.10", "3.13", "9.3", "12.5"),  # verify: secondary source only
)

# TensorFlow's pip wheels do not run on these compute capabilities (CUDA_ERROR_INVALID_PTX,
# "PTX 8.5 does not support sm_120"): tensorflow#89272, #90291, #97387, #99592, #101746,
# #111958. Users run NVIDIA's NGC TensorFlow container instead.
TENSORFLOW_UNSUPPORTED_CC_MAJORS: tuple[int, ...] = (12,)


@dataclass(frozen=True)
class TorchBuild:
    """A PyTorch release: its Pythons (None = not confirmed) and its CUDA wheel variants."""

    version: str  # major.minor, as the release matrix gives it
    python_min: str | None
    python_max: str | None
    stable: tuple[str, ...]
    experimental: tuple[str, ...] = ()


# pytorch/pytorch RELEASE.md "Release Compatibility Matrix"; RFCs #172663, #178665, #190355,
# #190385. cu129 was unsupported from 2.10 and dropped in 2.12 (pytorch#187834).
TORCH_BUILDS: tuple[TorchBuild, ...] = (
    TorchBuild("2.5", "3.9", "3.12", ("cu118", "cu121", "cu124")),
    TorchBuild("2.6", "3.9", "3.13", ("cu118", "cu124"), ("cu126",)),
    TorchBuild("2.7", "3.9", "3.13", ("cu118", "cu126"), ("cu128",)),
    TorchBuild("2.8", "3.9", "3.13", ("cu126", "cu128"), ("cu129",)),
    TorchBuild("2.9", "3.10", "3.14", ("cu126", "cu128"), ("cu130",)),
    TorchBuild("2.10", "3.10", "3.14", ("cu126", "cu128"), ("cu130",)),
    TorchBuild("2.11", "3.10", "3.14", ("cu126", "cu128", "cu130")),
    TorchBuild("2.12", "3.10", "3.14", ("cu126", "cu130"), ("cu132",)),
    TorchBuild("2.13", "3.10", "3.15", ("cu126", "cu130"), ("cu132",)),
    TorchBuild("2.14", "3.10", "3.15", ("cu126", "cu130", "cu132")),
    # On PyPI since 2026-10; its Python range is not confirmed, so auto never picks it. The
    # RFC removes cu126, so no Maxwell, Pascal or Volta (verify against the release notes).
    TorchBuild("2.15", None, None, ("cu130", "cu132")),
)

TORCH_INDEX_URL = "https://download.pytorch.org/whl/{variant}"

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


_REPO_BRANCHES = (535, 550, 570, 575, 580, 590)
_REPO_CUDA_12_13 = ("12.2", "12.3", "12.4", "12.5", "12.6", "12.8", "12.9", "13.0", "13.1")

# Debian: read from the package index on 2026-11-28 (facts file section 5). The cuDNN packages
# are contrib installers that download from NVIDIA at install time.
# Ubuntu: Python of each release; the archive's driver branches (nvidia-driver-<br>[-server]
# [-open], Ubuntu's restricted/multiverse); nvidia-cuda-toolkit 11.5 on 22.04, 12.0 on 24.04.
# NVIDIA's repository offers CUDA 12.x/13.x toolkits and drivers 535..590 on each path; which
# 12.x toolkits each path carries is from the repository listings (verify).
OS_RELEASES: dict[tuple[str, str], OsRelease] = {
    (o.os_id, o.release): o
    for o in (
        OsRelease("debian", "12", "bookworm", "3.11", "debian12", (535,), (), "535.261.03",
                  "11.8", "8.5", None, _REPO_CUDA_12_13, _REPO_BRANCHES),
        OsRelease("debian", "13", "trixie", "3.13", "debian13", (550,), (550,), "550.163.01",
                  "12.4", "9.0", "2.22.3",
                  # verify: the CUDA repository supports Debian 13 from CUDA 13.0 (R580).
                  ("13.0", "13.1"), (580, 590)),
        OsRelease("ubuntu", "22.04", "jammy", "3.10", "ubuntu2204", (535, 550, 570, 575, 580),
                  (535, 550, 570, 575, 580), None, "11.5", None, None,
                  ("11.8", "12.0", "12.1", *_REPO_CUDA_12_13), _REPO_BRANCHES),
        OsRelease("ubuntu", "24.04", "noble", "3.12", "ubuntu2404", (535, 550, 570, 575, 580),
                  (535, 550, 570, 575, 580), None, "12.0", None, None,
                  # verify: the ubuntu2404 path starts with CUDA 12.5.
                  ("12.5", "12.6", "12.8", "12.9", "13.0", "13.1"), _REPO_BRANCHES),
    )
}

# cuDNN from NVIDIA's repository: the cudnn9-cuda-<major> packages track the newest cuDNN 9.
REPO_CUDNN = "9"
# NCCL from NVIDIA's repository: libnccl2 built for the planned CUDA, newest 2.x.
REPO_NCCL = "2"
