"""dlws roles, in deploy order: each a package whose ``install()`` carries out its part of a stack.

Each role keeps its host-data keys beside it in ``defaults.py`` (as an Ansible role keeps
``defaults/main.yml``). The core (``dlws``) imports no role: entry points pass it these keys.
"""

from __future__ import annotations

from typing import Any

from dlws import declare
from dlws.roles import (
    base,
    cache,
    containers,
    cuda,
    cudnn,
    frameworks,
    notebooks,
    nvidia_driver,
    python_env,
    storage,
)
from dlws.schema import Key

# The roles deploy/workstation.py runs, in order (nvidia_repo is called by the driver, CUDA and
# cuDNN roles, and the container toolkit's repository by containers; cache is deployed on its own
# host, its keys point the workstations at it).
ROLES = (base, storage, nvidia_driver, cuda, cudnn, python_env, frameworks, notebooks, containers)
# Owners of host-data keys, in the order inventory/group_data/all.py lists them.
KEY_OWNERS = (declare, cache, *ROLES)


def all_keys() -> list[Key]:
    """What a host is declared to have (dlws.declare), then every role's keys in deploy order."""
    return [key for owner in KEY_OWNERS for key in owner.KEYS]


def all_defaults() -> dict[str, Any]:
    return {key.name: key.default for key in all_keys()}

