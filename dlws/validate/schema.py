"""Host-data keys of every role, and the validation that runs before any host is touched."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dlws.validate import domains
from dlws.validate.connector_keys import check_connector_key

# Every dlws key starts with its owner's prefix: what a host is declared to have (dlws.declare),
# then one per role (roles/<role>/defaults.py). tests/validate/test_schema.py holds each key to
# this list.
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
    """One host-data key: its default, accepted types, its closed domain and its doc.

    Every key but a flag (types ``(bool,)``) has a domain: ``choices`` (a few ASCII words), or
    ``check``, one of dlws.validate.domains' Domain types. A key declared without one is refused
    here, when its role is imported, so a new key cannot reach a host unchecked.
    """

    name: str
    default: Any
    types: tuple[type, ...]
    doc: str
    choices: tuple[Any, ...] | None = None
    # The value's domain: None when the value is in it, else the reason and the fix.
    check: domains.Domain | None = None
    nullable: bool = False
    # A check across keys, given the host's data with every default: None, else the problem.
    check_data: Callable[[Mapping[str, Any]], str | None] | None = None

    def __post_init__(self) -> None:
        if self.types == (bool,) and self.check is None and self.choices is None:
            return
        if self.choices is not None:
            if not all(isinstance(c, str) and c.isascii() and len(c) <= domains.NAME_MAX
                       for c in self.choices):
                raise TypeError(f"key {self.name}: choices must be short ASCII strings")
            return
        if not isinstance(self.check, domains.Domain):
            raise TypeError(f"key {self.name}: declare its domain (choices=, or check= one of "
                            f"dlws.validate.domains' Domain types); got {self.check!r}")
        if not set(self.types) <= set(self.check.types):
            raise TypeError(f"key {self.name}: types {self.types} are not all in its domain's "
                            f"{self.check.types}")


@dataclass(frozen=True)
class Problem:
    """One reason a host's data cannot be deployed."""

    host: str
    key: str
    message: str

    def __str__(self) -> str:
        message = self.message if len(self.message) <= 1000 else self.message[:1000] + "..."
        return f"host {self.host}: {self.key}: {message}"


def shown(value: Any, width: int = 120) -> str:
    """repr(value), cut to `width` characters: a message never echoes a huge value."""
    text = repr(value)
    return text if len(text) <= width else f"{text[:width]}... ({len(text)} characters)"


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
        return f"got {shown(value)} ({type(value).__name__}); expected {_type_names(key.types)}"
    if not isinstance(value, key.types):
        return (
            f"got {shown(value)} ({type(value).__name__}); expected {_type_names(key.types)}"
            f" ({key.doc})"
        )
    if key.choices is not None and value not in key.choices:
        hint = difflib.get_close_matches(str(value)[:100], [str(c) for c in key.choices], n=1)
        did = f"; did you mean {hint[0]!r}?" if hint else ""
        allowed = ", ".join(repr(c) for c in key.choices)
        return f"got {shown(value)}; allowed: {allowed}{did}"
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
        if key is None and len(name) > 100:
            problems.append(Problem(host, shown(name, 60), "unknown key; remove it"))
            continue
        if key is None:
            hint = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            fix = f"did you mean {hint[0]!r}?" if hint else "remove it, or see README 'Host data'"
            problems.append(Problem(host, name, f"unknown key; {fix}"))
            continue
        try:
            reason = check_value(key, value)
        except Exception as error:  # a check must never end in a traceback: say what was seen
            reason = (f"got {shown(value)}, which cannot be checked "
                      f"({type(error).__name__}: {error})")
        if reason:
            problems.append(Problem(host, name, reason))
    return problems
