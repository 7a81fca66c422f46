"""pyinfra's config for runs from this folder: check the inventory before any host is connected.

pyinfra loads ``config.py`` from the folder it runs in before it reads the inventory, and
connects to every host before it runs a deploy file. Bad data (an ssh_key that is a folder, a
``_sudo: "no"``) would otherwise fail in pyinfra's connector with a traceback, or be used.
It also gives each ``@docker/`` host the connector that runs its commands in one shell in the
container (dlws.docker_connector).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pyinfra import state  # noqa: E402

from dlws.docker_connector import use_sessions  # noqa: E402
from dlws.roles import all_keys  # noqa: E402
from dlws.validate.inventory import check_before_connect  # noqa: E402

check_before_connect(state, all_keys())
use_sessions(state)
