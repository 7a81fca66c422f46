"""An Ansible YAML inventory (hosts.yml) as pyinfra (host, data) groups for deploy and verify."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Ansible connection variables and the pyinfra host data they become:
# https://docs.ansible.com/ansible/latest/inventory_guide/intro_inventory.html#connecting-to-hosts-behavioral-inventory-parameters
CONNECTION_KEYS = {
    "ansible_host": "ssh_hostname",
    "ansible_user": "ssh_user",
    "ansible_port": "ssh_port",
    "ansible_ssh_private_key_file": "ssh_key",
}
CONNECTIONS = ("ssh", "docker", "local")
# Groups Ansible makes by itself; pyinfra has its own "all".
IMPLICIT_GROUPS = ("all",)


class AnsibleInventoryError(ValueError):
    """The hosts.yml cannot be read as a fleet (names the file, the host or group, and why)."""


def _dlws_prefixes() -> set[str]:
    from dlws.schema import KEY_PREFIXES

    return {prefix.split("_", 1)[0] for prefix in KEY_PREFIXES}


def _walk(name: str, node: Any, depth: int, parents: tuple[str, ...], path: Path,
          groups: dict[str, dict], memberships: dict[str, list[tuple[int, str]]],
          host_vars: dict[str, dict]) -> None:
    node = node or {}
    if not isinstance(node, dict):
        raise AnsibleInventoryError(f"{path}: group {name} must be a mapping (hosts, vars, "
                                    f"children), found {type(node).__name__}")
    unknown = set(node) - {"hosts", "vars", "children"}
    if unknown:
        raise AnsibleInventoryError(f"{path}: group {name} has {sorted(unknown)}; a group holds "
                                    "only hosts, vars and children")
    group = groups.setdefault(name, {"vars": {}, "depth": depth})
    group["vars"].update(node.get("vars") or {})
    group["depth"] = max(group["depth"], depth)
    for host, variables in (node.get("hosts") or {}).items():
        host_vars.setdefault(str(host), {}).update(variables or {})
        for group_name in (*parents, name):
            entry = (groups[group_name]["depth"], group_name)
            if entry not in memberships.setdefault(str(host), []):
                memberships[str(host)].append(entry)
    for child, child_node in (node.get("children") or {}).items():
        _walk(str(child), child_node, depth + 1, (*parents, name), path, groups, memberships,
              host_vars)


# Ansible's boolean strings (its `bool` filter): anything else is a mistake, not "true".
_TRUE, _FALSE = ("yes", "on", "true", "1", "y", "t"), ("no", "off", "false", "0", "n", "f", "")


def _ansible_bool(value: Any, host: str, key: str, path: Path) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, int)) and str(value).strip().lower() in _TRUE + _FALSE:
        return str(value).strip().lower() in _TRUE
    raise AnsibleInventoryError(f"{path}: host {host}: {key}: got {value!r}; expected true or "
                                "false")


def _pyinfra_host(name: str, variables: dict[str, Any], path: Path,
                  prefixes: set[str]) -> tuple[str, dict[str, Any]]:
    connection = variables.get("ansible_connection", "ssh")
    if connection not in CONNECTIONS:
        raise AnsibleInventoryError(f"{path}: host {name}: ansible_connection {connection!r} is "
                                    f"not supported; use one of {', '.join(CONNECTIONS)}")
    data: dict[str, Any] = {}
    if connection == "docker":
        pyinfra_name = f"@docker/{variables.get('ansible_host', name)}"
    elif connection == "local":
        pyinfra_name = "@local"
    else:
        pyinfra_name = name
        data.update({pyinfra_key: variables[key] for key, pyinfra_key in CONNECTION_KEYS.items()
                     if variables.get(key) is not None})
    if _ansible_bool(variables.get("ansible_become", False), name, "ansible_become", path):
        data["_sudo"] = True
    # dlws's keys pass through (so a misspelt one is still refused by name); the lab's other
    # variables (ntp_server, ...) belong to its own playbooks and are left out.
    data.update({key: value for key, value in variables.items()
                 if not key.startswith("ansible_") and key.split("_", 1)[0] in prefixes})
    return pyinfra_name, data


def pyinfra_groups(path: str | Path) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Every group of the hosts.yml (``ungrouped`` too) as pyinfra (host, data) lists.

    Data is Ansible's merge: ``all`` vars, then each group's by depth (then name), then the
    host's own vars, as https://docs.ansible.com/ansible/latest/inventory_guide/intro_inventory.html#how-variables-are-merged
    describes. Connection variables become pyinfra's (``ansible_host`` -> ``ssh_hostname``).
    """
    import yaml

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise AnsibleInventoryError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict) or not document:
        raise AnsibleInventoryError(f"{path}: an Ansible YAML inventory starts with a group "
                                    "mapping such as 'all:'")
    groups: dict[str, dict] = {}
    memberships: dict[str, list[tuple[int, str]]] = {}
    host_vars: dict[str, dict] = {}
    groups["all"] = {"vars": {}, "depth": 0}
    for name, node in document.items():
        if name == "all":
            _walk("all", node, 0, (), path, groups, memberships, host_vars)
        else:  # a top-level group other than all is all's child
            _walk(str(name), node, 1, ("all",), path, groups, memberships, host_vars)
    prefixes = _dlws_prefixes()
    result: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for host, member_of in memberships.items():
        merged: dict[str, Any] = {}
        for _, group_name in sorted(member_of):
            merged.update(groups[group_name]["vars"])
        merged.update(host_vars[host])
        entry = _pyinfra_host(host, merged, path, prefixes)
        named = [g for _, g in sorted(member_of) if g not in IMPLICIT_GROUPS]
        for group_name in named or ["ungrouped"]:
            result.setdefault(group_name, []).append(entry)
    if not result:
        raise AnsibleInventoryError(f"{path}: no hosts")
    return result
