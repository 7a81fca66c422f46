"""Host-data keys of the cache role: each with its default, type, check and doc."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlws.validate.domains import HostPath, Url
from dlws.validate.schema import Key, defaults

KEYS = [
    Key("cache_apt_proxy", None, (str,),
        "apt-cacher-ng (or another apt proxy) for plain-HTTP repositories, e.g. "
        "'http://10.0.0.5:3142': each .deb crosses the uplink once for the fleet; HTTPS "
        "repositories pass through (see roles/cache/README.md)",
        check=Url(("http",), credentials=False, path=False), nullable=True),
    Key("cache_pip_dir", None, (str,),
        "a directory on the host shared by the fleet (NFS, or a bind mount into containers) "
        "used as pip's and uv's download cache; None = each host keeps its own",
        check=HostPath(managed=True, under=("/var/cache/dlws",), example="/srv/pip-cache"),
        nullable=True),
]
DEFAULTS = defaults(KEYS)


def apt_proxy(data: Mapping[str, Any]) -> str | None:
    """The fleet's apt cache a host's plain-HTTP repositories go through, if any (base and
    nvidia_repo ask this role, never its key)."""
    return data.get("cache_apt_proxy") or None


def pip_cache_dir(data: Mapping[str, Any]) -> str | None:
    """The fleet's shared pip/uv download cache on a host, if any (python_env's installer)."""
    return data.get("cache_pip_dir") or None
