"""pyinfra's own host-data keys (connector data, global arguments), read from pyinfra itself."""

from __future__ import annotations

import difflib
import functools
from typing import Any, get_type_hints

from pyinfra.api.arguments import all_global_arguments
from pyinfra.api.connectors import get_all_connectors
from pyinfra.api.util import raise_if_bad_type

from dlws.validate import domains

# Keys pyinfra reads as paths of files on the controller, and what each must be.
PATH_CHECKS = {
    "ssh_key": domains.ControllerPath(domains.ssh_key),
    "ssh_config_file": domains.ControllerPath(domains.controller_file("SSH config file")),
    "ssh_known_hosts_file": domains.ControllerPath(
        domains.controller_file("SSH known_hosts file")),
}
# Values pyinfra passes to a shell or to sudo/su as names: the same portable set as user names
# (root is fine here: it is whom pyinfra becomes, not a lab member).
NAME_KEYS = ("ssh_user", "_sudo_user", "_su_user", "_doas_user", "_dzdo_user")
_LOGIN = domains.Name(domains.USER_PATTERN, "a portable user name (lower-case letters, digits, _ "
                      "and -)", example="admin")
# Counts and seconds (retries, timeouts, parallel connections): finite, and at most a day.
COUNT = domains.Number(0, 86400, integer=False)
DOMAINS: dict[str, domains.Domain] = {
    **dict.fromkeys(NAME_KEYS, _LOGIN),
    "ssh_port": domains.port(),
    # An SSH target may be a link-local address with its interface (fe80::1%eth0).
    "ssh_hostname": domains.Address(names=True, zone=True, example="ws-01.lab.example"),
    "docker_identifier": domains.Name(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", "a container name "
                                      "or id", example="dlws-sandbox"),
}
# ssh_strict_host_key_checking takes OpenSSH's values (ssh_config(5) StrictHostKeyChecking).
STRICT_HOST_KEY_CHECKING = ("yes", "no", "accept-new", "off", "ask")
# pyinfra keys dlws refuses as host data: why, and what to use instead.
REFUSED = {
    "_su_password": "pyinfra writes it into the host's command line (env PYINFRA_SU_PASSWORD=...), "
                    "where any user of the host can read it; use _sudo with _sudo_password "
                    "(dlws gives sudo the password on its stdin) or a NOPASSWD sudoers rule",
}
# pyinfra keys whose value is a secret: a message about one names its type, never its value.
SECRET_KEYS = ("ssh_password", "ssh_key_password", "_sudo_password", "_su_password")
# Global arguments that make sense only per operation, never as host data.
OPERATION_ONLY = ("name", "_if", "_retry_until", "_stdin", "_chdir")


@functools.cache
def pyinfra_keys() -> dict[str, Any]:
    """Every connector's data keys and every global argument, with pyinfra's declared type."""
    keys: dict[str, Any] = {}
    for connector in get_all_connectors().values():
        data_cls = getattr(connector, "data_cls", None)
        if data_cls is not None:
            keys.update(get_type_hints(data_cls))
    keys.update((name, kind) for name, kind in all_global_arguments()
                if name not in OPERATION_ONLY)
    return keys


def _type_problem(name: str, value: Any, kind: Any) -> str | None:
    """pyinfra's own type check (the one its connectors run when they connect)."""
    if kind in (int, float) and isinstance(value, bool):
        return f"got {value!r} (bool); expected {kind.__name__}"
    if kind is bool and not isinstance(value, bool):
        return (f"got {value!r} ({type(value).__name__}); expected true or false (a string such "
                "as 'no' counts as true)")
    if kind is float and isinstance(value, int):
        return None
    try:
        raise_if_bad_type(value, kind, TypeError, "")
    except TypeError as error:
        return f"got {value!r} ({type(value).__name__}); {str(error).lstrip(': ')}"
    except Exception:  # a type pyinfra cannot check at runtime (a Callable): accept
        return None
    return None


def check_connector_key(name: str, value: Any) -> str | None:
    """Why `value` is not acceptable for pyinfra's key `name` (or `name` is not one); else None.
    A password's value is never in the reason."""
    reason = _connector_key_problem(name, value)
    if reason is None or name not in SECRET_KEYS:
        return reason
    # (each reason written again without the value)
    if name in REFUSED:
        return reason
    if not isinstance(value, str):
        return f"got a value of type {type(value).__name__} (not shown: a secret); expected text"
    if domains.no_control(value):
        return "holds a control character (newline, tab, escape; not shown: a secret); remove it"
    return f"a value of {len(value)} characters (not shown: a secret); at most 1024"


def _connector_key_problem(name: str, value: Any) -> str | None:
    keys = pyinfra_keys()
    if name not in keys:
        hint = difflib.get_close_matches(name, keys, n=1, cutoff=0.6)
        fix = f"did you mean {hint[0]!r}?" if hint else "remove it (see pyinfra's connector docs)"
        return f"unknown pyinfra key; {fix}"
    if value is None:
        return None
    if name in REFUSED:
        return REFUSED[name]
    reason = _type_problem(name, value, keys[name])
    if reason:
        return reason
    if name in PATH_CHECKS:
        return PATH_CHECKS[name](value)
    if name in DOMAINS:
        return DOMAINS[name](value)
    if name == "ssh_strict_host_key_checking" and value not in STRICT_HOST_KEY_CHECKING:
        return f"got {value!r}; allowed: {', '.join(STRICT_HOST_KEY_CHECKING)}"
    if isinstance(value, str):
        # Passwords and other free text pyinfra passes to its connector, never to a shell.
        if len(value) > 1024:
            return f"a value of {len(value)} characters; at most 1024"
        return domains.no_control(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return COUNT(value)
    return None
