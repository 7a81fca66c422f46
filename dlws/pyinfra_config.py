"""pyinfra's config for every `dlws` run (`pyinfra --config THIS_FILE`), from any directory.

pyinfra loads its config before it reads the inventory and connects to every host before it runs
a deploy file; this checks the inventory in between, so bad data (an ssh_key that is a folder, a
``_sudo: "no"``) is refused before any connection. It also gives each ``@docker/`` host the
connector that runs its commands in one shell in the container (dlws.docker_connector).
"""

from pyinfra import state

from dlws.docker_connector import use_sessions
from dlws.roles import all_keys
from dlws.validate.inventory import check_before_connect

check_before_connect(state, all_keys())
use_sessions(state)
