"""cuDNN and NCCL role: from NVIDIA's repository or the distribution, or left to the wheels."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt

from dlws.plan import host_plan
from roles import nvidia_repo
from roles.cudnn.defaults import DEFAULTS, KEYS  # noqa: F401


@deploy("cuDNN and NCCL", data_defaults=DEFAULTS)
def install() -> None:
    plan = host_plan()
    packages = [*plan.cudnn.packages, *plan.nccl.packages]
    if not packages:
        cudnn = "left to the framework wheels" if plan.cudnn.version == "wheels" else "not planned"
        host.noop(f"cuDNN {cudnn}; NCCL not planned")
        return
    # cuDNN and NCCL come from where the toolkit does (the plan's rule): NVIDIA's repository
    # builds libnccl2 per CUDA release.
    if "cuda_repo" in (plan.cudnn.source, plan.nccl.source):
        nvidia_repo.configure(plan)
    apt.packages(name=f"Install {', '.join(packages)}", packages=packages, no_recommends=True,
                 _env={"DEBIAN_FRONTEND": "noninteractive"})
