"""Host-data keys of every role, and the validation that runs before any host is touched."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Every dlws key starts with its owner's prefix: what a host is declared to have (dlws.declare),
# then one per role (roles/<role>/defaults.py). tests/test_schema.py holds each key to this list.
KEY_PREFIXES = ("gpu_", "hardware_", "verify_", "cache_", "base_", "nvidia_driver_", "cuda_",
                "cudnn_", "python_env_", "frameworks_", "notebooks_")

# pyinfra's own keys (connectors and global arguments) pass through untouched.
PYINFRA_PREFIXES = (
    "_",
    "ssh_",
    "docker_",
    "dockerssh_",
    "local_",
    "chroot_",
    "vagrant_",
    "terraform_",
    "winrm_",
    "fake_",
)


@dataclass(frozen=True)
class Key:
    """One host-data key: its default, accepted types, an optional value check and its doc."""

    name: str
    default: Any
    types: tuple[type, ...]
    doc: str
    choices: tuple[Any, ...] | None = None
    # Returns None when the value is fine, else the reason and the fix.
    check: Callable[[Any], str | None] | None = None
    nullable: bool = False
    # A check across keys, given the host's data with every default: None, else the problem.
    check_data: Callable[[Mapping[str, Any]], str | None] | None = None


@dataclass(frozen=True)
class Problem:
    """One reason a host's data cannot be deployed."""

    host: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"host {self.host}: {self.key}: {self.message}"


def defaults(keys: Iterable[Key]) -> dict[str, Any]:
    """The DEFAULTS dict of a role, derived from its keys so the two cannot disagree."""
    return {key.name: key.default for key in keys}


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)


def check_value(key: Key, value: Any) -> str | None:
    """Why `value` is not acceptable for `key`, with the fix; None when it is."""
    if value is None:
        return None if key.nullable else f"must be set ({key.doc})"
    # bool is an int subclass; a flag given as 1 or an int given as True is a mistake.
    if isinstance(value, bool) and bool not in key.types:
        return f"got {value!r} ({type(value).__name__}); expected {_type_names(key.types)}"
    if not isinstance(value, key.types):
        return (
            f"got {value!r} ({type(value).__name__}); expected {_type_names(key.types)}"
            f" ({key.doc})"
        )
    if key.choices is not None and value not in key.choices:
        hint = difflib.get_close_matches(str(value), [str(c) for c in key.choices], n=1)
        did = f"; did you mean {hint[0]!r}?" if hint else ""
        allowed = ", ".join(repr(c) for c in key.choices)
        return f"got {value!r}; allowed: {allowed}{did}"
    if key.check is not None:
        return key.check(value)
    return None


def validate(host: str, data: Mapping[str, Any], keys: Iterable[Key]) -> list[Problem]:
    """Every problem in one host's data: unknown keys (with a suggestion), types, values."""
    known = {key.name: key for key in keys}
    problems = []
    for name, value in data.items():
        if name.startswith(PYINFRA_PREFIXES):
            reason = _check_connector_value(name, value)
            if reason:
                problems.append(Problem(host, name, reason))
            continue
        key = known.get(name)
        if key is None:
            hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            fix = f"did you mean {hint[0]!r}?" if hint else "remove it, or see README 'Host data'"
            problems.append(Problem(host, name, f"unknown key; {fix}"))
            continue
        reason = check_value(key, value)
        if reason:
            problems.append(Problem(host, name, reason))
    return problems


def _check_connector_value(name: str, value: Any) -> str | None:
    """pyinfra's own keys that name controller files: a missing one fails before any connect."""
    if name in CONNECTOR_PATH_KEYS and value is not None:
        if not isinstance(value, str):
            return f"got {value!r} ({type(value).__name__}); expected a path string"
        return local_path_exists(CONNECTOR_PATH_KEYS[name])(value)
    return None


# Reusable value checks -------------------------------------------------------------------


def local_path_exists(kind: str) -> Callable[[Any], str | None]:
    """A check that a controller-side path (or each path of a list) exists."""

    def check(value: Any) -> str | None:
        for path in [value] if isinstance(value, str) else value:
            if not isinstance(path, str):
                return f"{path!r} is not a path string"
            if not os.path.exists(os.path.expanduser(path)):
                return f"{kind} {path!r} does not exist on the controller; fix the path or unset it"
        return None

    return check


# pyinfra data keys that name a file on the controller (see pyinfra's connectors/ssh.py).
CONNECTOR_PATH_KEYS = {
    "ssh_key": "SSH private key",
    "ssh_config_file": "SSH config file",
}


def url(value: Any) -> str | None:
    for item in [value] if isinstance(value, str) else value:
        if not str(item).startswith(("http://", "https://", "file://")):
            return f"{item!r} is not an http(s):// or file:// URL"
    return None


def absolute_path(value: Any) -> str | None:
    return None if str(value).startswith("/") else f"{value!r} must be an absolute path"


def str_list(value: Any) -> str | None:
    bad = [item for item in value if not isinstance(item, str)]
    return f"items must be strings, got {bad!r}" if bad else None


def positive(value: Any) -> str | None:
    return None if value > 0 else f"{value!r} must be greater than 0"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else f"{value!r} must be 0 or more"


def fraction(value: Any) -> str | None:
    return None if 0 < value <= 1 else f"{value!r} must be in (0, 1], e.g. 0.95"


# user:password@ in proxy and mirror URLs: never written to a log, report or lock.
_CREDENTIALS = re.compile(r"(?<=://)[^/\s:@\"']+:[^/\s@\"']+@")


def redact(text: str) -> str:
    return _CREDENTIALS.sub("***:***@", text)
