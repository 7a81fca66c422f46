"""Recorded host facts and the expected stacks the solver stage tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlws.stack import (
    HostFacts,
)

ROOT = Path(__file__).resolve().parents[2]


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


RTX_5090 = ("NVIDIA GeForce RTX 5090",)
