"""Molecule `gpu`: a container with the runner's GPUs; verify trains with --require-gpu."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dlws.sandbox.data import controller_data  # noqa: E402

molecule = [
    (
        "@docker/dlws-molecule-gpu",
        {
            **controller_data(python_tag="none"),
            # Declared, so a GPU the container cannot see is a failure, never a skip.
            "gpu_count": int(os.environ.get("DLWS_GPU_COUNT", "1")),
            "gpu_model": os.environ.get("DLWS_GPU_MODEL", "NVIDIA L4"),
            # The runner's kernel module decides the branch: match it (nvidia-smi on the runner).
            "nvidia_driver_branch": os.environ.get("DLWS_DRIVER_BRANCH", "auto"),
        },
    ),
]
