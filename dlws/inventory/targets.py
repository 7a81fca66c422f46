"""Turn the pyinfra inventory that deploys a fleet into testinfra hosts and their expectations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from pyinfra.api import State
from pyinfra.api.exceptions import InventoryError
from pyinfra.context import ctx_state

from dlws.command import cmd
from dlws.inventory import ansible
from dlws.validate.conflicts import group_conflicts, listing_conflicts
from dlws.validate.inventory import host_problems
from dlws.validate.schema import Key

# The pyinfra inventory that reads an Ansible inventory: verify reads one through it, as the
# deploy does, so both see the same hosts, groups and data (inventory/group_data/ included).
ANSIBLE_INVENTORY = Path(__file__).resolve().parents[2] / "inventory" / "ansible.py"
# pyinfra --limit patterns for the child that reads a pyinfra inventory (comma-separated).
PYINFRA_LIMIT_ENV = "DLWS_PYINFRA_LIMIT"
# Lines the child prints for a person (the Ansible-only variables it did not use).
NOTICE_PREFIX = "dlws: "


@dataclass(frozen=True)
class Target:
    """One host to verify: its inventory name, testinfra spec and declared data (with defaults)."""

    name: str
    spec: str
    data: dict[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def options(self) -> dict[str, str]:
        """testinfra backend options its spec cannot carry (host_options)."""
        return host_options(self.spec, self.data)


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
    if data.get("ssh_config_file"):
        params["ssh_config"] = os.path.expanduser(data["ssh_config_file"])
    if data.get("_sudo"):
        params["sudo"] = "true"
    return spec + (f"?{urlencode(params)}" if params else "")


def host_options(spec: str, data: dict[str, Any]) -> dict[str, str]:
    """For an SSH host, the inventory's passwords (`ssh_password`, and `_sudo_password` where it
    has `_sudo`: for dlws.shell_session's ssh backend) and its host key settings as OpenSSH
    options, so that verify logs in and becomes root as the deploy does and trusts the host
    keys the deploy trusts (ssh_known_hosts_file, ssh_strict_host_key_checking);
    testinfra's `ssh_extra_args`, which it puts into its ssh command line as they are: built by
    dlws.command (each word quoted), each value in ssh's own quotes with `%` doubled (ssh
    expands `%` tokens and splits unquoted values at spaces in these options)."""
    if not spec.startswith("ssh://"):
        return {}
    found: dict[str, str] = {}
    options = []
    if data.get("ssh_password") is not None:
        # (dlws.shell_session's ssh backend hands it to ssh through SSH_ASKPASS; ssh asks for
        # it once, whatever the user's ssh config says of batch mode)
        found["ssh_password"] = str(data["ssh_password"])
        options += [("BatchMode", "no"), ("NumberOfPasswordPrompts", "1")]
    if data.get("_sudo") and data.get("_sudo_password") is not None:
        # (the same backend's sudo reads it on its stdin, as pyinfra's sudo reads it where the
        # deploy runs with _sudo and _sudo_password)
        found["sudo_password"] = str(data["_sudo_password"])
    if data.get("ssh_known_hosts_file"):
        options.append(("UserKnownHostsFile", os.path.expanduser(data["ssh_known_hosts_file"])))
    if data.get("ssh_strict_host_key_checking"):
        options.append(("StrictHostKeyChecking", data["ssh_strict_host_key_checking"]))
    if not options:
        return found
    words = []
    for option, value in options:
        quoted = value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
        words += ["-o", option + '="' + quoted + '"']
    return {**found, "ssh_extra_args": str(cmd(*words))}


def load_targets(inventory_path: str, keys: Iterable[Key], limit: str | None = None,
                 vault_password_file: str | None = None,
                 notices: list[str] | None = None) -> list[Target]:
    """The hosts of a pyinfra inventory file (or any Ansible inventory) as verify targets.

    + keys: every key a host may carry (``roles.all_keys()``)
    + limit: host patterns: Ansible's (``gpu:!ws03*``) for an Ansible inventory; pyinfra's
      ``--limit`` patterns (group names or host-name globs, comma-separated) for a pyinfra one.
      Only the selected hosts are read and validated
    + vault_password_file: for an Ansible inventory's vaulted variables
    + notices: where the reader's notices for a person are appended
    """
    keys = list(keys)
    path = Path(inventory_path)
    if not path.exists():
        raise FileNotFoundError(f"inventory {inventory_path} does not exist")
    hosts, conflicts, lines = _read_inventory(path, limit, vault_password_file)
    if notices is not None:
        notices.extend(lines)
    defaults = {key.name: key.default for key in keys}
    targets = []
    problems = [str(p) for name, data, _ in hosts for p in host_problems(name, data, keys)]
    if problems or conflicts:
        raise ValueError("\n".join(problems + conflicts))
    for name, data, groups in hosts:
        targets.append(Target(name=name, spec=host_spec(name, data), data={**defaults, **data},
                              groups=tuple(sorted(set(groups)))))
    return targets


def _read_inventory(path: Path, limit: str | None = None,
                    vault_password_file: str | None = None
                    ) -> tuple[list[tuple[str, dict[str, Any], list[str]]], list[str], list[str]]:
    """(name, data, groups) of each host, the inventory's contradictions, and the reader's
    notices, read by pyinfra's loader in a child process.

    pyinfra_cli patches the whole interpreter for gevent on import, which stalls pytest-xdist's
    workers (`LoopExit: This operation would block forever`); a child keeps verify clean.
    """
    root = str(Path(__file__).resolve().parents[2])
    pythonpath = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    limit_env = ansible.LIMIT_ENV if ansible.is_ansible_source(path) else PYINFRA_LIMIT_ENV
    for name, value in ((limit_env, limit), (ansible.VAULT_ENV, vault_password_file)):
        if value:
            env[name] = value
    out = subprocess.run([sys.executable, "-m", "dlws.inventory.targets", str(path)],
                         capture_output=True, text=True, env=env)
    try:
        document = json.loads(out.stdout.splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise ValueError(f"inventory {path} could not be read:\n{out.stderr.strip()[-2000:]}"
                         ) from None
    if "error" in document:
        raise ValueError(f"inventory {path}: {document['error']}")
    notices = [line for line in out.stderr.splitlines() if line.startswith(NOTICE_PREFIX)]
    return ([(h["name"], h["data"], h["groups"]) for h in document["hosts"]],
            document.get("conflicts", []), notices)


def _dump_inventory(path: Path) -> dict:
    # Only in the child process (_read_inventory): pyinfra_cli patches the interpreter for
    # gevent on import (its __init__ runs gevent's monkey.patch_all()).
    from pyinfra_cli.exceptions import UnexpectedExternalError
    from pyinfra_cli.inventory import make_inventory

    if ansible.is_ansible_source(path):
        # An Ansible inventory goes through inventory/ansible.py, the same file a deploy of it
        # uses, so verify sees the hosts, groups and data the deploy saw.
        os.environ[ansible.INVENTORY_ENV] = str(path.resolve())
        path = ANSIBLE_INVENTORY
    # pyinfra evaluates inventory files inside a run's state; a bare one is enough.
    try:
        with ctx_state.use(State()):
            inventory = make_inventory(str(path), cwd=os.getcwd())
            hosts = selected(inventory, os.environ.get(PYINFRA_LIMIT_ENV))
            conflicts = [str(p) for h in hosts for p in group_conflicts(h)]
            conflicts += [str(p) for p in listing_conflicts(path, {h.name for h in hosts})]
    except InventoryError as error:  # the reader's refusal: its message says it all
        return {"error": str(error)}
    except UnexpectedExternalError as error:  # an exception in the inventory file
        return {"error": f"{type(error.exception).__name__}: {error.exception}"}
    return {"hosts": [{"name": h.name, "data": h.data.dict(), "groups": list(h.groups)}
                      for h in hosts], "conflicts": conflicts}


def selected(inventory, limit: str | None) -> list:
    """The hosts pyinfra's ``--limit`` would select: each comma-separated pattern is a group's
    name or a glob over host names (pyinfra_cli's rule); all hosts without a limit."""
    if not limit:
        return list(inventory)
    names: set[str] = set()
    for pattern in filter(None, (p.strip() for p in limit.split(","))):
        group = inventory.get_group(pattern, None) if pattern in inventory.groups else None
        names |= {h.name for h in group} if group else {
            h.name for h in inventory if fnmatch(h.name, pattern)}
    if not names:
        raise ValueError(f"--limit {limit!r} selects no host of the inventory")
    return [h for h in inventory if h.name in names]


if __name__ == "__main__":
    try:
        result = _dump_inventory(Path(sys.argv[1]))
    except (Exception, SystemExit) as error:  # reported to the parent, which raises it
        result = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(result, default=str))
