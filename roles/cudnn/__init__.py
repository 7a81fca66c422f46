"""cuDNN and NCCL role: from NVIDIA's repository or the distribution, or left to the wheels."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import files

from dlws.plan import host_plan
from dlws.roles import nvidia_repo
from dlws.roles.base import _apt
from dlws.roles.cudnn.defaults import DEFAULTS, KEYS  # noqa: F401

NCCL_PREFERENCES = "/etc/apt/preferences.d/dlws-nccl"


def nccl_preferences(apt_pin: str) -> str:
    """Hold libnccl2/libnccl-dev to the planned CUDA's build ("*+cuda13.0"); priority 1001 also
    moves a newer CUDA's build back to it (apt_preferences(5))."""
    return ("# Managed by dlws (roles/cudnn): NCCL built for the planned CUDA.\n"
            f"Package: libnccl2 libnccl-dev\nPin: version {apt_pin}\nPin-Priority: 1001\n")


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
    if plan.nccl.apt_pin:
        # NVIDIA's repository builds libnccl2 per CUDA ("2.28.9-1+cuda13.0"): unpinned, apt
        # takes the newest CUDA's build (NVIDIA's NCCL install guide pins <version>+cuda<X.Y>).
        files.put(name=f"Hold NCCL to the CUDA {plan.cuda.version} build",
                  src=StringIO(nccl_preferences(plan.nccl.apt_pin)), dest=NCCL_PREFERENCES,
                  mode="644", create_remote_dir=False)
    _apt.packages(name=f"Install {', '.join(packages)}", packages=packages, no_recommends=True,
                  _env={"DEBIAN_FRONTEND": "noninteractive"})
