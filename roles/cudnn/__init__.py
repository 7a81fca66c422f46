"""cuDNN and NCCL role: from NVIDIA's repository or the distribution, or left to the wheels."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt

from dlws.facts import OsRelease, stable_fact
from dlws.plan import host_plan
from roles import nvidia_repo
from roles.cudnn.defaults import DEFAULTS, KEYS  # noqa: F401


def packages_for(plan) -> list[str]:
    major = plan.cuda.split(".")[0] if plan.cuda else "12"
    packages = []
    if plan.cudnn and plan.cudnn != "wheels":
        if plan.cudnn_source == "cuda_repo":
            # https://docs.nvidia.com/deeplearning/cudnn/installation/latest/linux.html
            packages.append(f"cudnn9-cuda-{major}")
        else:
            # Debian's contrib nvidia-cudnn downloads NVIDIA's archive at install time.
            packages.append("nvidia-cudnn")
    return packages


@deploy("cuDNN and NCCL", data_defaults=DEFAULTS)
def install() -> None:
    plan = host_plan()
    packages = packages_for(plan)
    nccl = host.data.cudnn_nccl == "yes" or (host.data.cudnn_nccl == "auto" and plan.nccl)
    if nccl:
        packages += ["libnccl2", "libnccl-dev"]
    if not packages:
        cudnn = "left to the framework wheels" if plan.cudnn == "wheels" else "not planned"
        host.noop(f"cuDNN {cudnn}; NCCL not planned")
        return
    # NCCL comes from where the toolkit does (the solver's rule): NVIDIA's repository builds
    # libnccl2 per CUDA release.
    if plan.cudnn_source == "cuda_repo" or (nccl and plan.cuda_source == "cuda_repo"):
        os_release = stable_fact(OsRelease, host)
        nvidia_repo.configure(os_release["id"], os_release["version_id"])
    apt.packages(name=f"Install {', '.join(packages)}", packages=packages, no_recommends=True,
                 _env={"DEBIAN_FRONTEND": "noninteractive"})
