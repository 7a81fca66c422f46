"""A three-host fleet on this controller, to see a verify report with each kind of outcome.

    docker create --name dlws-stopped dlws/debian:bookworm sleep infinity     # never started
    docker commit dlws-sandbox dlws/sandbox-snapshot
    docker run -d --name dlws-gpu-declared dlws/sandbox-snapshot sleep infinity
    bin/dlws verify --inventory inventory/fleet_sandbox.py -n auto

dlws-sandbox is the deployed CPU sandbox (passes); dlws-stopped is unreachable; dlws-gpu-declared
is a copy of the sandbox declared with a GPU it does not have (its GPU checks fail).
"""

# All three in the sandbox group: group_data/sandbox.py gives each this controller's CA bundle,
# wheelhouse and offline MNIST, as `dlws sandbox` does.
sandbox = [
    ("@docker/dlws-sandbox", {"gpu_count": 0, "hardware_min_memory_gib": 1}),
    ("@docker/dlws-stopped", {"gpu_count": 0}),
    ("@docker/dlws-gpu-declared", {"gpu_count": 1, "gpu_model": "NVIDIA L4",
                                   "hardware_min_memory_gib": 1}),
]
