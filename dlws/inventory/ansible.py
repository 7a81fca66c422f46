"""Ansible inventories of every form, read by ansible-core itself, as pyinfra hosts and data.

Any source ``ansible-inventory -i`` takes works: an INI or YAML ``hosts`` file, a TOML one, a
directory of them with ``group_vars/`` and ``host_vars/``, host ranges (``ws[01:03]``), vaulted
variables (``ANSIBLE_VAULT_PASSWORD_FILE`` or a password file given here), a dynamic inventory
script and an inventory plugin's YAML file. ansible-core parses the source, merges each host's
variables exactly as ``ansible-inventory --list`` does (``VariableManager.get_vars``, magic
variables left out) and matches ``--limit`` patterns (``gpu:!ws03*``); this module only maps the
result onto pyinfra:

- ``ansible_connection``: ssh (the default) -> the host's name, docker -> ``@docker/NAME``,
  local -> ``@local``;
- ``ansible_host`` / ``_user`` / ``_port`` / ``_ssh_private_key_file`` -> ``ssh_hostname`` /
  ``ssh_user`` / ``ssh_port`` / ``ssh_key``;
- ``ansible_become`` / ``_become_user`` / ``_become_method`` -> ``_sudo`` / ``_sudo_user`` (or
  ``_su_user``, ``_doas`` / ``_doas_user``);
- ``ansible_password`` -> ``ssh_password``, and ``ansible_become_password`` -> ``_sudo_password``
  (sudo reads it on its stdin: dlws.sudo_stdin; su's and doas's are refused, as pyinfra would
  put su's on a command line and runs doas without one), vaulted or not;
- dlws's keys (``gpu_*``, ``nvidia_*``, ...: the families of
  dlws.validate.schema.KEY_PREFIXES) are host data, validated like any inventory's before
  anything connects, and a problem names the file and line the value came from;
- every other variable belongs to the lab's own playbooks: it is not used, and its name (never
  its value) is given once in a notice.

ansible-core runs in a child process (``python -m dlws.inventory.ansible``): pyinfra_cli patches
the interpreter for gevent on import, and an inventory script or plugin is best run outside it.
Only the values dlws reads leave the child; the other variables leave it by name.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlws.validate.connector_keys import check_connector_key
from dlws.validate.inventory import host_problems
from dlws.validate.schema import KEY_PREFIXES
from dlws.validate.secrets import redact

# The variables naming the inventory, the limit and a vault password file for a deploy through
# inventory/ansible.py (ANSIBLE_VAULT_PASSWORD_FILE, Ansible's own, works as well).
INVENTORY_ENV = "DLWS_ANSIBLE_INVENTORY"
LIMIT_ENV = "DLWS_ANSIBLE_LIMIT"
VAULT_ENV = "DLWS_ANSIBLE_VAULT_PASSWORD_FILE"

# Connection variables and their aliases, the later one winning as in Ansible's own option
# resolution: the `vars:` of `host`, `remote_user`, `port`, `private_key_file` and `password` in
# ansible/plugins/connection/ssh.py, and of `become_user` and `become_pass` in
# ansible/plugins/become/sudo.py (ansible-core 2.19.14).
CONNECTION_VARS = {
    "host": ("ansible_host", "ansible_ssh_host"),
    "user": ("ansible_user", "ansible_ssh_user"),
    "port": ("ansible_port", "ansible_ssh_port"),
    "key": ("ansible_private_key_file", "ansible_ssh_private_key_file"),
    "connection": ("ansible_connection",),
    "become": ("ansible_become",),
    "become_user": ("ansible_become_user", "ansible_sudo_user"),
    "become_method": ("ansible_become_method",),
    "password": ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password"),
    "become_password": ("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass"),
}
READ_VARS = frozenset(name for names in CONNECTION_VARS.values() for name in names)
# ansible_connection values and the pyinfra connector each becomes.
CONNECTIONS = {
    "ssh": "ssh", "ansible.builtin.ssh": "ssh", "smart": "ssh", "paramiko": "ssh",
    "paramiko_ssh": "ssh", "ansible.builtin.paramiko_ssh": "ssh",
    "docker": "docker", "community.docker.docker": "docker",
    "community.docker.docker_api": "docker",
    "local": "local", "ansible.builtin.local": "local",
}
BECOME_METHODS = ("sudo", "su", "doas")
# What an SSH host's address and a container's name may be (Docker's rule for names:
# [a-zA-Z0-9][a-zA-Z0-9_.-]+, from its "Invalid container name" error).
_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9._-]*)|\[?[0-9A-Fa-f:.]+\]?")
_CONTAINER = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
# Ansible's groups; pyinfra has its own "all", and a host in no group is in "ungrouped".
IMPLICIT_GROUPS = ("all",)


class AnsibleInventoryError(ValueError):
    """The inventory cannot be deployed: names the file, the host and the key, and why."""


@dataclass(frozen=True)
class AnsibleHost:
    """One host as ansible-core merged it: the variables dlws reads, and where each came from."""

    name: str
    groups: tuple[str, ...]
    vars: dict[str, Any]
    origins: dict[str, str] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    # Vaulted variables: their values never appear in a message.
    secret: tuple[str, ...] = ()


@dataclass(frozen=True)
class PyinfraHost:
    """An inventory host in pyinfra's terms: its name (``@docker/X``...), data and groups."""

    name: str
    data: dict[str, Any]
    groups: tuple[str, ...]
    ansible_name: str
    # Connection variables set for the host that its connection does not use (ansible_user on
    # a docker host: pyinfra's docker connector runs as the container's user).
    unused: tuple[str, ...] = ()


def dlws_families() -> tuple[str, ...]:
    """The first word of each dlws key prefix (``nvidia`` for ``nvidia_driver_``): a variable
    of one of these families is dlws's, so a misspelt key is refused rather than ignored."""
    return tuple(sorted({prefix.split("_", 1)[0] + "_" for prefix in KEY_PREFIXES}))


def is_read(name: str) -> bool:
    """Whether dlws reads a variable (a connection variable or a dlws key's family)."""
    return name in READ_VARS or name.startswith(dlws_families())


# The reader: ansible-core in a child process ---------------------------------------------


def read(source: str | Path, limit: str | None = None,
         vault_password_file: str | None = None) -> list[AnsibleHost]:
    """The hosts of an Ansible inventory source (within `limit`), read by ansible-core."""
    source = os.path.expanduser(str(source))
    if not os.path.exists(source):
        raise AnsibleInventoryError(f"Ansible inventory {source} does not exist")
    command = [sys.executable, "-m", "dlws.inventory.ansible", source]
    if limit:
        command += ["--limit", limit]
    vault_password_file = vault_password_file or os.environ.get(VAULT_ENV)
    if vault_password_file:
        command += ["--vault-password-file", os.path.expanduser(vault_password_file)]
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        root, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    try:
        document = json.loads(out.stdout.splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise AnsibleInventoryError(f"Ansible inventory {source} could not be read:\n"
                                    f"{out.stderr.strip()[-2000:]}") from None
    if "error" in document:
        raise AnsibleInventoryError(document["error"])
    return [AnsibleHost(name=h["name"], groups=tuple(h["groups"]), vars=h["vars"],
                        origins=h["origins"], ignored=tuple(h["ignored"]),
                        secret=tuple(h["secret"]))
            for h in document["hosts"]]


def _position(value: Any) -> str | None:
    """file[:line] a parsed value came from. ansible-core 2.19 tags values with an Origin;
    2.17 (the last for Python 3.10) gives YAML/INI values an ``ansible_pos`` (path, line, col)."""
    try:
        from ansible._internal._datatag._tags import Origin
    except ImportError:
        path, line = (getattr(value, "ansible_pos", None) or (None, None, None))[:2]
        return (f"{path}:{line}" if line else path) if path else None
    origin = value if isinstance(value, Origin) else Origin.get_tag(value)
    if origin is None or not origin.path:
        return None
    return f"{origin.path}:{origin.line_num}" if origin.line_num else origin.path


def _origin(value: Any) -> str | None:
    return _position(value)


def _vault_types() -> tuple[type, ...]:
    """The type of a vaulted value: EncryptedString (2.19), AnsibleVaultEncryptedUnicode (2.17)."""
    try:
        from ansible.parsing.vault import EncryptedString
    except ImportError:
        from ansible.parsing.yaml.objects import AnsibleVaultEncryptedUnicode

        return (AnsibleVaultEncryptedUnicode,)
    return (EncryptedString,)


def _has_template(value: Any) -> bool:
    """Whether a value (or an item of it) holds Jinja syntax. A vaulted value is decrypted
    (str()) to be looked at; one that cannot be is left to _plain, which reports it."""
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_template(v) for v in value)
    if isinstance(value, (str,)) or type(value).__name__ in ("EncryptedString",
                                                              "AnsibleVaultEncryptedUnicode"):
        try:
            text = str(value)
        except Exception:  # reported by _plain, with its reason
            return False
        return "{{" in text or "{%" in text
    return False


def _plain(value: Any) -> Any:
    """A value as plain JSON data (a vaulted string decrypted: str() of an EncryptedString)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return str(value)


def _dump(source: str, limit: str | None, vault_password_file: str | None) -> dict:
    """What the parent needs, as ansible-inventory --list computes it (ansible/cli/inventory.py:
    `_play_prereqs`, then `VariableManager.get_vars(host, include_hostvars=False, stage='all')`
    less C.INTERNAL_STATIC_VARS)."""
    # A source no plugin can parse is an error, not a warning and an empty inventory.
    os.environ["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "True"
    os.environ["ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED"] = "True"
    from ansible import constants as C

    _settings_as_in_2_19(C)
    from ansible.cli import CLI
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.release import __version__ as ansible_version
    from ansible.template import Templar
    from ansible.utils.display import Display
    from ansible.vars.manager import VariableManager

    source = os.path.abspath(source)
    # A source that no plugin parses: each plugin's reason is kept for the one error message.
    failures: list[tuple[str, BaseException]] = []

    def keep_failure(self, msg, exception=None, **_):
        failures.append((str(msg), exception))

    if hasattr(Display, "error_as_warning"):
        Display.error_as_warning = keep_failure
    else:  # ansible-core 2.17 gives each plugin's reason only as a warning's text
        Display.warning = _keep_2_17_failures(Display.warning, failures, AnsibleError)
    init_plugin_loader()
    loader = DataLoader()
    try:
        # initialize_context: ansible-core 2.19's (2.17 has no such argument).
        context = ({"initialize_context": True} if "initialize_context" in
                   inspect.signature(CLI.setup_vault_secrets).parameters else {})
        secrets = CLI.setup_vault_secrets(
            loader, vault_ids=list(C.DEFAULT_VAULT_IDENTITY_LIST),
            vault_password_files=[vault_password_file] if vault_password_file else [],
            ask_vault_pass=False, auto_prompt=False, **context)
        loader.set_vault_secrets(secrets)
        inventory = InventoryManager(loader=loader, sources=[source])
        variables = VariableManager(loader=loader, inventory=inventory)
        if limit:
            inventory.subset(limit)
        hosts = inventory.get_hosts("all")
        if not hosts:
            where = f" within the limit {limit!r}" if limit else ""
            return {"error": f"Ansible inventory {source}: no hosts{where}"}
        result = []
        for host in hosts:
            merged = variables.get_vars(host=host, include_hostvars=False, stage="all")
            names = [n for n in merged if n not in C.INTERNAL_STATIC_VARS and n not in _MAGIC]
            read_names = [n for n in names if is_read(n)]
            values, origins, secret = {}, {}, []
            templar = None
            for name in read_names:
                where = _origin(merged[name]) or source
                origins[name] = where
                if isinstance(merged[name], _vault_types()):
                    secret.append(name)
                try:
                    value = merged[name]
                    if _has_template(value):
                        # What a play would see: rendered with the host's variables (Ansible
                        # renders only templates from trusted sources, such as files).
                        if templar is None:
                            templar = Templar(loader=loader, variables=variables.get_vars(
                                host=host, include_hostvars=True))
                        value = templar.template(value)
                    values[name] = _plain(value)
                except AnsibleError as error:  # a vaulted value without its password, a
                    message = _describe(error, source)[1]  # template that does not render
                    if "vault" in message.lower():
                        message += (" Give the vault password file: ANSIBLE_VAULT_PASSWORD_FILE "
                                    f"or {VAULT_ENV} (verify: --vault-password-file)")
                    return {"error": f"{where}: host {host.name}: {name}: {message}"}
            groups = [g.name for g in host.get_groups() if g.name not in IMPLICIT_GROUPS]
            result.append({"name": host.name, "groups": groups, "vars": values,
                           "origins": origins, "secret": secret,
                           "ignored": sorted(set(names) - set(read_names))})
        return {"hosts": result}
    except AnsibleError as error:
        if failures:
            reasons: dict[str, str] = {}  # message -> where, the first place that says it
            for _, exc in _relevant(failures, source):
                where, message = _describe(exc, source)
                reasons.setdefault(message, where)
            if len(reasons) == 1:
                (message, where), = reasons.items()
                return {"error": f"{where}: {message} (no inventory plugin of ansible-core "
                                 f"{ansible_version} can read it)"}
            lines = "\n".join(f"  - {where}: {message}" for message, where in reasons.items())
            return {"error": f"Ansible inventory {source}: no inventory plugin of ansible-core "
                             f"{ansible_version} can read it:\n{lines}"}
        where, message = _describe(error, source)
        return {"error": f"{where}: {message}"}


# Settings whose default changed between ansible-core 2.17 (the last for Python 3.10) and 2.19,
# each with 2.19's default (ansible/config/base.yml of each): an inventory reads the same on
# every controller. INVENTORY_IGNORE_EXTS: 2.17's default, REJECT_EXTS + ('.orig', '.ini',
# '.cfg', '.retry'), skips a lab's inventory/hosts.ini beside group_vars/; 2.19's has no .ini.
# DEFAULT_JINJA2_NATIVE: 2.17 renders "{{ 1 + 1 }}" as the string '2', 2.19 as the number 2.
_AS_IN_2_19 = {
    "INVENTORY_IGNORE_EXTS": lambda value: [ext for ext in value if ext != ".ini"],
    "DEFAULT_JINJA2_NATIVE": lambda value: True,
}


def _settings_as_in_2_19(C: Any) -> None:  # noqa: N803 (ansible.constants, as Ansible names it)
    """Give each setting of _AS_IN_2_19 left at its default 2.19's default. A value the lab set
    (ansible.cfg, an ANSIBLE_ variable) is Ansible's to apply as it is. Called before
    ansible.inventory.manager is imported (it builds its ignore pattern on import)."""
    for name, as_in_2_19 in _AS_IN_2_19.items():
        value, origin = C.config.get_config_value_and_origin(name)
        if origin == "default":
            setattr(C, name, as_in_2_19(value))


# ansible-core 2.17's warning for a plugin that could not parse a source
# (ansible/inventory/manager.py, parse_source): "\n* Failed to parse SRC with NAME plugin: REASON".
_FAILED_2_17 = re.compile(r"\s*\* Failed to parse (?P<src>.+?) with (?P<plugin>\S+) plugin: "
                          r"(?P<reason>.*)", re.S)


def _keep_2_17_failures(warning: Any, failures: list[tuple[str, BaseException]],
                        AnsibleError: type[BaseException]) -> Any:  # noqa: N803 (Ansible's name)
    """Display.warning that keeps each plugin's reason for the one error (as 2.19's
    error_as_warning hook does) and passes every other warning on."""

    def keep(self, msg, *args, **kwargs):
        found = _FAILED_2_17.fullmatch(str(msg))
        if found is None:
            return warning(self, msg, *args, **kwargs)
        failures.append((f"Failed to parse inventory with {found['plugin']!r} plugin.",
                         AnsibleError(" ".join(found["reason"].split()))))
        return None

    return keep


# The plugins whose reasons matter for a file, by its name (the others only say "not mine").
_PLUGIN_FOR_SUFFIX = {".yml": ("yaml", "auto"), ".yaml": ("yaml", "auto"), ".json": ("yaml",),
                      ".toml": ("toml",), ".ini": ("ini",)}


def _relevant(failures: list[tuple[str, BaseException]], source: str) -> list:
    path = Path(source)
    wanted = _PLUGIN_FOR_SUFFIX.get(path.suffix)
    if wanted is None:
        wanted = ("script",) if os.access(path, os.X_OK) and path.is_file() else ("ini",)
    chosen = [(msg, exc) for msg, exc in failures if any(f"{w!r}" in msg for w in wanted)]
    return chosen or failures


def _describe(error: BaseException, source: str) -> tuple[str, str]:
    """(file[:line], message) of an Ansible error: the place comes from the first Origin in its
    chain of causes (ansible-core 2.19 tags parsed data and errors with it)."""
    where, seen, current = None, set(), error
    while current is not None and id(current) not in seen and where is None:
        seen.add(id(current))
        obj = getattr(current, "obj", None)
        where = _position(obj) if obj is not None else None
        current = current.__cause__ or current.__context__
    return where or source, " ".join(str(error).split())


# Variables VariableManager.get_vars adds itself (ansible/vars/manager.py, _get_magic_variables
# and the per-host ones); ansible-inventory --list shows none of them.
_MAGIC = frozenset({
    "inventory_file", "inventory_dir", "inventory_hostname", "inventory_hostname_short",
    "group_names", "groups", "playbook_dir", "ansible_playbook_python", "ansible_config_file",
    "ansible_version", "ansible_facts", "omit", "role_names", "ansible_check_mode",
    "ansible_diff_mode", "ansible_forks", "ansible_inventory_sources", "ansible_verbosity",
})


# Mapping onto pyinfra, and validation --------------------------------------------------


def _connection_value(variables: dict[str, Any], what: str) -> tuple[str | None, Any]:
    """(the variable that sets `what`, its value): the last alias set wins, as in Ansible."""
    found: tuple[str | None, Any] = (None, None)
    for name in CONNECTION_VARS[what]:
        if variables.get(name) is not None:
            found = (name, variables[name])
    return found


def _password(data: dict[str, Any], key: str, var: str | None, value: Any,
              problems: list[tuple[str, str]]) -> None:
    """`data[key]` = the password `value` of Ansible's `var`, as Ansible's string option reads
    it (a number from INI as its digits), checked as pyinfra's key; a problem never shows it."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    reason = check_connector_key(key, value)
    if reason:
        problems.append((var or key, reason))
    else:
        data[key] = value


def _boolean(value: Any) -> bool | None:
    """Ansible's boolean() (ansible/module_utils/parsing/convert_bool.py), None if not one."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("y", "yes", "on", "1", "true", "t"):
        return True
    if text in ("n", "no", "off", "0", "false", "f", ""):
        return False
    return None


def to_pyinfra(host: AnsibleHost) -> tuple[PyinfraHost, list[tuple[str, str]]]:
    """One Ansible host as pyinfra's, and the (variable, reason) of each connection problem."""
    variables = host.vars
    problems: list[tuple[str, str]] = []
    data: dict[str, Any] = {}
    # dlws's keys pass through; a connection variable maps onto pyinfra's below.
    data.update({k: v for k, v in variables.items() if k not in READ_VARS})
    var, connection = _connection_value(variables, "connection")
    connector = CONNECTIONS.get(str(connection or "ssh"))
    if connector is None:
        problems.append((var, f"connection {connection!r} has no pyinfra connector here; use "
                              "ssh, docker or local"))
        connector = "ssh"
    address_var, address = _connection_value(variables, "host")
    unused: list[str] = []
    # A name becomes pyinfra's host name and testinfra's URL: a host name, an IP address or a
    # container name, nothing that could read as a connector (@...), a URL part or an option.
    target_var, target = (address_var, address) if address is not None else (
        "inventory_hostname", host.name)
    pattern = _CONTAINER if connector == "docker" else _HOSTNAME
    if connector != "local" and not pattern.fullmatch(str(target)):
        problems.append((target_var, f"{str(target)!r} is not a "
                         f"{'container name' if connector == 'docker' else 'host name or IP'}"))
    if connector in ("docker", "local"):
        name = f"@docker/{address or host.name}" if connector == "docker" else "@local"
        ssh_only = ("user", "port", "key", "password") if connector == "docker" else (
            "host", "user", "port", "key", "password")
        unused = [n for what in ssh_only for n in CONNECTION_VARS[what] if n in variables]
    else:
        name = host.name
        if address is not None:
            data["ssh_hostname"] = str(address)
        var, user = _connection_value(variables, "user")
        if user is not None:
            data["ssh_user"] = str(user)
        var, port = _connection_value(variables, "port")
        if port is not None:
            if isinstance(port, bool) or not str(port).isdigit() or not 0 < int(port) < 65536:
                problems.append((var, f"got {port!r}; expected a port number (1 to 65535)"))
            else:
                data["ssh_port"] = int(port)
        var, key = _connection_value(variables, "key")
        if key is not None:
            data["ssh_key"] = key
        var, password = _connection_value(variables, "password")
        if password is not None:
            _password(data, "ssh_password", var, password, problems)
    var, become = _connection_value(variables, "become")
    if become is not None:
        flag = _boolean(become)
        if flag is None:
            problems.append((var, f"got {become!r}; expected a boolean (true or false)"))
        elif flag:
            _, method = _connection_value(variables, "become_method")
            _, user = _connection_value(variables, "become_user")
            password_var, password = _connection_value(variables, "become_password")
            method = str(method or "sudo")
            if password is not None and method != "sudo":
                problems.append((password_var, f"a password for become method {method!r}: "
                                 "pyinfra would put su's on the host's command line, and runs "
                                 "doas without one; use ansible_become_method sudo, or a rule "
                                 "that asks no password"))
            if method not in BECOME_METHODS:
                problems.append(("ansible_become_method", f"become method {method!r} has no "
                                 f"pyinfra equivalent; use one of {', '.join(BECOME_METHODS)}"))
            elif method == "sudo":
                data["_sudo"] = True
                if user is not None:
                    data["_sudo_user"] = str(user)
                if password is not None:
                    _password(data, "_sudo_password", password_var, password, problems)
            elif method == "su":
                data["_su_user"] = str(user or "root")
            else:
                data["_doas"] = True
                if user is not None:
                    data["_doas_user"] = str(user)
    return PyinfraHost(name=name, data=data, groups=host.groups or ("ungrouped",),
                       ansible_name=host.name, unused=tuple(unused)), problems


# pyinfra keys this module sets and the Ansible variables they come from, for messages.
_PYINFRA_FROM = {"ssh_key": "key", "ssh_hostname": "host", "ssh_user": "user",
                 "ssh_port": "port"}


def pyinfra_hosts(hosts: Iterable[AnsibleHost], keys: Iterable[Any],
                  source: str | Path = "") -> list[PyinfraHost]:
    """Every host mapped onto pyinfra and validated, or one error naming every problem.

    + keys: every key a host may carry (``roles.all_keys()``); validated by
      dlws.validate.host_problems, as for a pyinfra inventory's data, before anything connects.
    """
    keys = list(keys)
    result, lines = [], []
    for host in hosts:
        mapped, problems = to_pyinfra(host)
        for var, reason in problems:
            lines.append(f"{host.origins.get(var, source)}: host {host.name}: {var}: "
                         f"{_hide(host, var, reason)}")
        own = {k: v for k, v in mapped.data.items() if not k.startswith("_")}
        for problem in host_problems(host.name, own, keys):
            var = problem.key
            if var in _PYINFRA_FROM:
                var = _connection_value(host.vars, _PYINFRA_FROM[var])[0] or var
            # A problem of a key not set (gpu_model for a gpu_count) is where the key it
            # names was set; else the source.
            where = host.origins.get(var) or next(
                (origin for name, origin in host.origins.items() if name in problem.message),
                str(source))
            lines.append(f"{where}: host {host.name}: {var}: "
                         f"{_hide(host, var, problem.message)}{_ini_hint(host, var)}")
        result.append(mapped)
    if lines:
        body = "\n".join(f"  - {line}" for line in lines)
        raise AnsibleInventoryError(f"the Ansible inventory {source} has {len(lines)} "
                                    f"problem(s); nothing was changed on any host:\n{body}")
    return result


def _hide(host: AnsibleHost, var: str, message: str) -> str:
    """A message with a vaulted value, or credentials in a URL, left out."""
    if var in host.secret and var in host.vars:
        message = message.replace(repr(host.vars[var]), "<vaulted value>")
    return redact(message)


def _ini_hint(host: AnsibleHost, var: str) -> str:
    value = host.vars.get(var)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and \
            host.origins.get(var, "").rsplit(":", 1)[0].endswith((".ini", "hosts")):
        return f" (INI reads {value} as a number; quote it: {var}=\"{value}\")"
    return ""


def notice(hosts: Iterable[AnsibleHost], mapped: Iterable[PyinfraHost],
           source: str | Path) -> str | None:
    """The Ansible-only variables dlws does not use, each named once (values never shown)."""
    ignored = sorted({name for host in hosts for name in host.ignored})
    unused: dict[str, set[str]] = {}
    for host in mapped:
        for name in host.unused:
            unused.setdefault(name, set()).add(host.name.split("/")[0].lstrip("@"))
    parts = []
    if ignored:
        parts.append(f"{', '.join(ignored)} (Ansible's or the lab's own: dlws reads its own keys "
                     "and the ansible_ connection variables)")
    if unused:
        parts.append(", ".join(f"{name} on {' and '.join(sorted(kinds))} hosts"
                               for name, kinds in sorted(unused.items()))
                     + " (not used by pyinfra's docker/local connectors)")
    if not parts:
        return None
    return f"dlws: not used from the Ansible inventory {source}: {'; '.join(parts)}"


def load(source: str | Path, keys: Iterable[Any], limit: str | None = None,
         vault_password_file: str | None = None) -> tuple[list[PyinfraHost], str | None]:
    """An Ansible inventory's hosts within `limit` in pyinfra's terms, and the notice."""
    hosts = read(source, limit=limit, vault_password_file=vault_password_file)
    mapped = pyinfra_hosts(hosts, keys, source)
    return mapped, notice(hosts, mapped, source)


def pyinfra_groups(hosts: Iterable[PyinfraHost]) -> dict[str, list[tuple[str, dict]]]:
    """pyinfra's inventory-file form: each group's (name, data) list, ``ungrouped`` too."""
    groups: dict[str, list[tuple[str, dict]]] = {}
    for host in hosts:
        for group in host.groups:
            groups.setdefault(group, []).append((host.name, host.data))
    return groups


def is_ansible_source(path: str | Path) -> bool:
    """Whether verify should read `path` as an Ansible inventory (not a pyinfra .py file): a
    directory, any non-.py file, or an executable .py script with a #! line (dynamic)."""
    path = Path(path)
    if path.is_dir():
        return True
    if path.suffix != ".py":
        return True
    if os.access(path, os.X_OK):
        with open(path, "rb") as handle:
            return handle.read(2) == b"#!"
    return False


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlws.inventory.ansible",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("--limit")
    parser.add_argument("--vault-password-file")
    args = parser.parse_args(argv)
    try:
        result = _dump(args.source, args.limit, args.vault_password_file)
    except Exception as error:  # reported to the parent, which raises it with the source
        result = {"error": f"Ansible inventory {args.source}: {type(error).__name__}: {error}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
