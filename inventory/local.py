"""The machine you are on: `sudo .venv/bin/pyinfra inventory/local.py deploy/workstation.py`."""

local = [
    (
        "@local",
        {
            # Declare what this machine has; verify holds it to this. 0 = CPU only.
            "gpu_count": 0,
            # "gpu_model": "NVIDIA GeForce RTX 4090",
            # Reboot after a driver install only when you say so (never the controller itself).
            # "nvidia_driver_reboot": False,
        },
    ),
]
