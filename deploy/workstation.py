"""Make bare Debian/Ubuntu hosts deep learning workstations (`pyinfra INVENTORY THIS_FILE`)."""

import sys
from io import StringIO
from pathlib import Path

# pyinfra runs this file by path: make the project's roles importable from any directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyinfra import host, inventory  # noqa: E402
from pyinfra.operations import files  # noqa: E402

from dlws.plan import (  # noqa: E402
    STACK_FILE,
    check_inventory,
    check_locks,
    host_plan,
    recorded_stack,
)
from dlws.roles import ROLES, all_defaults, all_keys, containers  # noqa: E402

# Bad data on any host stops the run here, before a single operation has run anywhere.
check_inventory(inventory, all_keys())
# The host's whole stack, planned once from its data and its facts; the roles carry it out.
host_plan(host, all_defaults())
# TensorFlow planned in NGC's container needs an engine on the host.
containers.check_plan(host)
# A host whose pip/uv installs have no hash lock in locks/ stops the run here too.
check_locks([host])

for role in ROLES:
    role.install()

# What was carried out, for verify to hold the host to (and to tell a stale deploy from drift).
files.directory(name="Create /etc/dlws", path=str(Path(STACK_FILE).parent), mode="755")
files.put(name=f"Record the stack dlws carried out ({STACK_FILE})",
          src=StringIO(recorded_stack()), dest=STACK_FILE, mode="644")
