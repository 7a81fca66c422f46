"""The embedded default: local sandbox containers that `./dlws sandbox` starts (CPU profile)."""

import os

# `./dlws sandbox` starts this container from a bare Debian 12 image; override the name with
# DLWS_SANDBOX to keep several sandboxes side by side.
sandbox = [
    (
        f"@docker/{os.environ.get('DLWS_SANDBOX', 'dlws-sandbox')}",
        {
            "gpu_count": 0,
            # A lab member: created, put in the GPU groups, kept out of docker.
            "base_lab_users": ["researcher"],
            "hardware_min_memory_gib": 1,
        },
    ),
]
