"""The GPU runner itself (@local), before the scenario's container exists: roles/containers
brings the NVIDIA container toolkit and the nvidia runtime to a runner with only a bare engine."""

import os

hosts = [
    (
        "@local",
        {
            "containers_engine": "docker",
            # The runner's engine, whatever its source: dlws adds the toolkit beside it.
            "containers_engine_source": os.environ.get("DLWS_RUNNER_ENGINE_SOURCE", "distro"),
            "gpu_count": int(os.environ.get("DLWS_GPU_COUNT", "1")),
            "gpu_model": os.environ.get("DLWS_GPU_MODEL", "NVIDIA L4"),
            # The runner's own driver stays as it is; its apt sources too.
            "nvidia_driver_branch": "none",
            "base_apt_manage_sources": False,
        },
    ),
]
