"""The part of the workstation every host has (base + python_env): what the cache benchmark runs."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyinfra import inventory  # noqa: E402

from roles import base, python_env  # noqa: E402
from roles.plan import check_inventory  # noqa: E402

check_inventory(inventory)
base.install()
python_env.install()
