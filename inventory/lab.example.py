"""A documented fleet: copy to inventory/<lab>.py, then deploy it with pyinfra.

    pyinfra inventory/<lab>.py deploy/workstation.py

Each list is a group; group-wide data goes in inventory/group_data/<group>.py (and all.py for
every host). Host data overrides group data. Keys: README "Host data".
"""

_ssh = {"ssh_user": "admin", "ssh_key": "~/.ssh/lab_ed25519", "_sudo": True}

# Training boxes with one consumer card each.
rtx_workstations = [
    ("ws-01.lab.example", {**_ssh, "gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 4090"}),
    ("ws-02.lab.example", {**_ssh, "gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 3090"}),
    # RTX 50xx: TensorFlow's pip build does not run on sm_120; auto skips it with a note.
    ("ws-03.lab.example", {**_ssh, "gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 5090"}),
]

# The shared server: 4 datacentre GPUs from NVIDIA's repository, long-term driver branch.
gpu_servers = [
    (
        "dgx-01.lab.example",
        {
            **_ssh,
            "ssh_port": 2222,
            "gpu_count": 4,
            "gpu_model": "NVIDIA H100 80GB HBM3",
            "gpu_min_memory_gib": 79,
            "hardware_min_cpu_cores": 64,
            "hardware_min_memory_gib": 512,
            "hardware_data_dir": "/data",
            "hardware_min_free_gib": 2000,
            "nvidia_driver_source": "cuda_repo",
            "nvidia_driver_branch": "580",
        },
    ),
]

# CPU-only nodes for teaching: frameworks' CPU builds, no NVIDIA stack.
cpu_nodes = [
    ("teach-01.lab.example", {**_ssh, "gpu_count": 0}),
]
