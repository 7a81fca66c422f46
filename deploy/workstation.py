"""Make bare Debian/Ubuntu hosts deep learning workstations (`pyinfra INVENTORY THIS_FILE`)."""

import sys
from pathlib import Path

# pyinfra runs this file by path: make the project's roles importable from any directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyinfra import host, inventory  # noqa: E402

from dlws.plan import check_inventory, host_plan  # noqa: E402
from roles import ROLES, all_defaults, all_keys, frameworks  # noqa: E402

# Bad data on any host stops the run here, before a single operation has run anywhere.
check_inventory(inventory, all_keys())
# The host's whole stack, planned once from its data and its facts; the roles carry it out.
host_plan(host, all_defaults())
# A host whose pip/uv installs have no hash lock in locks/ stops the run here too.
frameworks.check_locks([host])

for role in ROLES:
    role.install()
