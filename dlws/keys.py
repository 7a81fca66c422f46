"""Every host-data key: what a host is declared to have (dlws.declare) and each role's defaults.

Each role keeps its keys beside it in ``roles/<role>/defaults.py`` (as an Ansible role keeps
``defaults/main.yml``); those modules hold data only, so the core reads them without importing
any role's operations.
"""

from __future__ import annotations

from typing import Any

from dlws import declare
from dlws.schema import Key
from roles.base import defaults as base
from roles.cache import defaults as cache
from roles.cuda import defaults as cuda
from roles.cudnn import defaults as cudnn
from roles.frameworks import defaults as frameworks
from roles.nvidia_driver import defaults as nvidia_driver
from roles.python_env import defaults as python_env

# Owners in deploy order; inventory/group_data/all.py lists their keys in this order.
OWNERS = (declare, cache, base, nvidia_driver, cuda, cudnn, python_env, frameworks)


def all_keys() -> list[Key]:
    return [key for owner in OWNERS for key in owner.KEYS]


def all_defaults() -> dict[str, Any]:
    return {key.name: key.default for key in all_keys()}
