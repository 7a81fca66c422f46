"""roles/cudnn at the plan level: NCCL held to the planned CUDA."""

from __future__ import annotations

from dlws.roles.cudnn import NCCL_PREFERENCES
from tests.plan.cases import (
    host_data,
    run_case,
)


def test_multi_gpu_host_holds_nccl_to_the_planned_cuda():
    """NVIDIA's libnccl2 builds are versioned <nccl>+cuda<X.Y>: the plan pins the CUDA 13.0
    build (NCCL install guide: libnccl2=<version>+cuda<X.Y>)."""
    run = run_case("debian-13_h100x8_cuda-repo_nccl",
                   host_data("debian-13", "h100x8", "cuda_repo"))
    assert run.error is None, run.error
    assert run.stack.nccl.apt_pin == "*+cuda13.0"
    pin = run.uploads()[NCCL_PREFERENCES]
    assert pin.splitlines()[1:] == ["Package: libnccl2 libnccl-dev",
                                    "Pin: version *+cuda13.0", "Pin-Priority: 1001"], pin
