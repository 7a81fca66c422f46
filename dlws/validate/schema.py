"""Host-data keys of every role, and the validation that runs before any host is touched."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dlws.validate import domains
from dlws.validate.connector_keys import check_connector_key

# Every dlws key starts with its owner's prefix: what a host is declared to have (dlws.declare),
# then one per role (roles/<role>/defaults.py). tests/test_schema.py holds each key to this list.
KEY_PREFIXES = ("gpu_", "hardware_", "verify_", "network_", "cache_", "base_", "storage_",
                "nvidia_driver_", "cuda_", "cudnn_", "python_env_", "frameworks_", "notebooks_",
                "containers_")

# pyinfra's own keys (connector data and global arguments), checked against pyinfra's declarations.
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
    """Every problem in one host's data: unknown keys (with a suggestion), types, values.

    pyinfra's own keys (connector data, global arguments such as ``_sudo``) are checked against
    pyinfra's own declarations (dlws.validate.connector_keys).
    """
    known = {key.name: key for key in keys}
    problems = []
    for name, value in data.items():
        if not isinstance(name, str):
            problems.append(Problem(host, repr(name), "a key must be a string"))
            continue
        if name.startswith(PYINFRA_PREFIXES) and not name.startswith(KEY_PREFIXES):
            reason = check_connector_key(name, value)
            if reason:
                problems.append(Problem(host, name, reason))
            continue
        key = known.get(name)
        if key is None:
            hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            fix = f"did you mean {hint[0]!r}?" if hint else "remove it, or see README 'Host data'"
            problems.append(Problem(host, name, f"unknown key; {fix}"))
            continue
        try:
            reason = check_value(key, value)
        except Exception as error:  # a check must never end in a traceback: say what was seen
            reason = f"got {value!r}, which cannot be checked ({type(error).__name__}: {error})"
        if reason:
            problems.append(Problem(host, name, reason))
    return problems


# Reusable value checks (the domains themselves are in dlws/validate/domains.py) -----------


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


def url(value: Any) -> str | None:
    """An http(s) URL without credentials (domains.url for other schemes and secrets)."""
    return domains.each(domains.url(("http", "https"), credentials=False))(
        [value] if isinstance(value, str) else value)


def absolute_path(value: Any) -> str | None:
    return domains.host_path()(value)


def str_list(value: Any) -> str | None:
    bad = [item for item in value if not isinstance(item, str)]
    return f"items must be strings, got {bad!r}" if bad else None


def positive(value: Any) -> str | None:
    return None if value > 0 else f"{value!r} must be greater than 0"


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else f"{value!r} must be 0 or more"


def fraction(value: Any) -> str | None:
    return None if 0 < value <= 1 else f"{value!r} must be in (0, 1], e.g. 0.95"
