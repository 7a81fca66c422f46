"""Molecule `cuda`: Debian 13, the distribution's driver user space (550) and CUDA toolkit 12.4."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dlws.sandbox.data import controller_data  # noqa: E402

molecule = [
    (
        "@docker/dlws-molecule-cuda",
        {
            **controller_data(python_tag="cp313"),
            "gpu_count": 0,
            # Asked for explicitly: a host without a GPU gets no driver or CUDA on "auto".
            "nvidia_driver_branch": "550",
            "nvidia_driver_source": "distro",
            "cuda_version": "12.4",
            # Debian's nvidia-cudnn downloads from NVIDIA at install time (unreachable here).
            "cudnn_version": "none",
            # The toolkit is the subject; frameworks are proven by `default`.
            "frameworks_tensorflow": "none",
            "frameworks_torch": "none",
            "verify_frameworks": [],
        },
    ),
]
