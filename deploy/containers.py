"""Only a container engine (and NVIDIA's container toolkit on GPU hosts): base, then containers.

For a CI runner or a container host (`pyinfra INVENTORY THIS_FILE`): the same keys, checks and
roles as deploy/workstation.py, without the GPU stack and the Python environment.
"""

import sys
from pathlib import Path

# pyinfra runs this file by path: make the project's roles importable from any directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyinfra import host, inventory  # noqa: E402

from dlws.plan import host_plan  # noqa: E402
from dlws.roles import all_defaults, all_keys, base, containers  # noqa: E402
from dlws.validate.inventory import check_inventory  # noqa: E402

# Bad data on any host stops the run here, before a single operation has run anywhere.
check_inventory(inventory, all_keys())
# The plan says which GPUs the host has (the toolkit goes where there are some).
host_plan(host, all_defaults())

base.install()
containers.install()
base.settle()
