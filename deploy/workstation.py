"""Make bare Debian/Ubuntu hosts deep learning workstations (`pyinfra INVENTORY THIS_FILE`)."""

import sys
from pathlib import Path

# pyinfra runs this file by path: make the project's roles importable from any directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyinfra import host, inventory  # noqa: E402

from dlws.plan import check_inventory, host_plan  # noqa: E402
from roles.base import tasks as base
from roles.cuda import tasks as cuda
from roles.cudnn import tasks as cudnn
from roles.frameworks import tasks as frameworks
from roles.nvidia_driver import tasks as nvidia_driver
from roles.python_env import tasks as python_env  # noqa: E402

# Bad data on any host stops the run here, before a single operation has run anywhere.
check_inventory(inventory)
host_plan()
# A host whose pip/uv installs have no hash lock in locks/ stops the run here too.
frameworks.check_locks([host])

base.install()
nvidia_driver.install()
cuda.install()
cudnn.install()
python_env.install()
frameworks.install()
