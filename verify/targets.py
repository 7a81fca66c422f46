"""Turn the pyinfra inventory that deploys a fleet into testinfra hosts and their expectations."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from roles.plan import all_defaults, host_problems


@dataclass(frozen=True)
class Target:
    """One host to verify: its inventory name, testinfra spec and declared data (with defaults)."""

    name: str
    spec: str
    data: dict[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


def host_spec(name: str, data: dict[str, Any]) -> str:
    """The testinfra host spec for a pyinfra inventory name.

    ``@docker/NAME`` -> ``docker://NAME``, ``@local`` -> ``local://``, an SSH host ->
    ``ssh://user@host:port?ssh_identity_file=KEY``.
    """
    if name.startswith("@docker/"):
        return "docker://" + (data.get("docker_identifier") or name.split("/", 1)[1])
    if name == "@local" or name.startswith("@local/"):
        return "local://"
    if name.startswith("@"):
        raise ValueError(f"host {name}: connector {name.split('/')[0]} is not supported by "
                         "verify; use @docker, @local or SSH hosts")
    hostname = data.get("ssh_hostname") or name
    user = data.get("ssh_user")
    spec = "ssh://" + (f"{quote(user)}@" if user else "") + hostname
    if data.get("ssh_port"):
        spec += f":{data['ssh_port']}"
    params = {}
    if data.get("ssh_key"):
        params["ssh_identity_file"] = os.path.expanduser(data["ssh_key"])
    if data.get("_sudo"):
        params["sudo"] = "true"
    return spec + (f"?{urlencode(params)}" if params else "")


def load_targets(inventory_path: str) -> list[Target]:
    """The hosts of a pyinfra inventory file (or an Ansible hosts.yml) as verify targets."""
    path = Path(inventory_path)
    if not path.exists():
        raise FileNotFoundError(f"inventory {inventory_path} does not exist")
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    # pyinfra evaluates inventory files inside a run's state; a bare one is enough to read them.
    with ctx_state.use(State()):
        inventory = make_inventory(str(path), cwd=os.getcwd())
    defaults = all_defaults()
    targets = []
    for host in inventory:
        data = {k: v for k, v in host.data.dict().items()}
        problems = host_problems(host.name, {k: v for k, v in data.items()
                                             if not k.startswith("_")})
        if problems:
            raise ValueError("\n".join(str(p) for p in problems))
        targets.append(
            Target(
                name=host.name,
                spec=host_spec(host.name, data),
                data={**defaults, **data},
                groups=tuple(sorted(g for g in host.groups)),
            )
        )
    return targets
