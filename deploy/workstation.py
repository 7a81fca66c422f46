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
    check_locks,
    converged,
    host_data,
    host_plan,
    record_converged,
    recorded_stack,
)
from dlws.roles import ROLES, all_defaults, all_keys  # noqa: E402
from dlws.roles.base import settle  # noqa: E402
from dlws.validate.host import check_host  # noqa: E402
from dlws.validate.inventory import check_inventory  # noqa: E402

# Bad data on any host stops the run here, before a single operation has run anywhere.
check_inventory(inventory, all_keys())
# The host's whole stack, planned once from its data and its facts; the roles carry it out.
host_plan(host, all_defaults())
# What only the host can tell (one disk under two names, a group its sudoers makes root), read
# while every host is planned: before anything is formatted on any host.
check_host(host, host_data(host), all_keys())
# A host whose pip/uv installs have no hash lock in locks/ stops the run here too.
check_locks([host])

# A host whose readings all match its last converged run plans nothing (and says so).
if not converged(host):
    for role in ROLES:
        role.install()
    # An install that roles/base started beside the Python environment ends before the record.
    settle()

    # What was carried out, for verify to hold the host to (and to tell a stale deploy from
    # drift).
    files.directory(name="Create /etc/dlws", path=str(Path(STACK_FILE).parent), mode="755")
    last = files.put(name=f"Record the stack dlws carried out ({STACK_FILE})",
                     src=StringIO(recorded_stack()), dest=STACK_FILE, mode="644")
    # A run that planned all this and changed nothing records the host as converged.
    record_converged(last)
