"""The resolved stack of each host, planned once per run from its data and its facts."""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyinfra
from pyinfra import host as current_host
from pyinfra import logger
from pyinfra.api import DeployError

from dlws import __version__
from dlws.facts import batch as fact_cache
from dlws.facts.readers import host_facts, pyinfra_reader
from dlws.stack import Stack, StackError, derive, differences
from dlws.stack.locks import LockSpec, lock_specs


def _own_data(host) -> dict[str, Any]:
    """The inventory's data for a host (host, group and all), without pyinfra's own defaults."""
    return {k: v for k, v in host.data.dict().items() if not k.startswith("_")}


# The current run's plans by host name; they belong to one pyinfra state (one run) and are
# dropped when host_plan sees another, so two runs in one process never share a plan.
_PLANS: dict[str, Stack] = {}
_PLANS_STATE: list = [None]  # a weak reference to the state _PLANS belongs to


def _plans_of(host) -> dict[str, Stack]:
    state = getattr(host, "state", None)
    if state is not None:
        owner = _PLANS_STATE[0]() if _PLANS_STATE[0] is not None else None
        if owner is not state:
            _PLANS.clear()
            _RECORDS.clear()
            _DATA.clear()
            _PLANS_STATE[0] = weakref.ref(state)
    return _PLANS


def host_plan(host=None, defaults: Mapping[str, Any] | None = None) -> Stack:
    """The host's stack (planned once per run); a refusal names the host and the key.

    The deploy plans each host first, with every key's default (``roles.all_defaults()``);
    roles then call ``host_plan()`` for the stack they carry out.
    """
    host = current_host if host is None else host
    plans = _plans_of(host)
    if host.name not in plans:
        if defaults is None:
            raise DeployError(f"host {host.name}: no stack was planned; the deploy file plans "
                              "each host (host_plan(host, all_defaults())) before any role runs")
        data = {**defaults, **_own_data(host)}
        try:
            stack = derive(data, host_facts(pyinfra_reader(host), data))
        except StackError as error:
            raise DeployError(
                f"host {host.name}: {error}; nothing was changed on any host") from None
        plans[host.name] = stack
        _DATA[host.name] = data
        _RECORDS[host.name] = stack_record(stack, data, defaults)
    return plans[host.name]


def host_data(host=None) -> dict[str, Any]:
    """The data the host's stack was planned from: every key, defaults included."""
    host = current_host if host is None else host
    host_plan(host)
    return _DATA[host.name]


def host_locks(host=None) -> list[LockSpec]:
    """The hash locks the host installs from (uv's, then its environment's)."""
    host = current_host if host is None else host
    return lock_specs(host_plan(host), host_data(host))


def missing_lock(name: str, data: Mapping[str, Any], spec: LockSpec) -> str | None:
    """Why a host cannot install `spec` yet, naming the host, the key and the fix; else None."""
    if not data.get("python_env_require_hashes", True) or spec.path.exists():
        return None
    return (f"host {name}: python_env_require_hashes: no hash lock {spec.path} for "
            f"{spec.summary()}; make it on the controller with `dlws lock INVENTORY` "
            "and commit it, or set python_env_require_hashes = False to install by "
            "version pins only; nothing was changed on any host")


def check_locks(hosts: Iterable) -> None:
    """Refuse every host whose hash locks are missing, before any host has changed."""
    problems = [problem for each in hosts for spec in host_locks(each)
                if (problem := missing_lock(each.name, host_data(each), spec))]
    if problems:
        raise DeployError("\n".join(problems))


# What the deploy records on each host, beside the stack it carried out.
STACK_FILE = "/etc/dlws/stack.json"
_RECORDS: dict[str, dict[str, Any]] = {}
_DATA: dict[str, dict[str, Any]] = {}


def data_digest(data: Mapping[str, Any], keys: Iterable[str]) -> str:
    """sha256 of a host's dlws keys (defaults included): changes when its data or dlws's
    defaults change. Credentials in the data stay out of the record: only the digest is kept."""
    text = json.dumps({key: data.get(key) for key in sorted(keys)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def stack_record(stack: Stack, data: Mapping[str, Any],
                 defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The document /etc/dlws/stack.json holds: the dlws version, the data's digest and the
    stack (less how the host got there, so a rerun writes the same file)."""
    return {"dlws_version": __version__, "data_digest": data_digest(data, defaults),
            "stack": stack.recorded()}


def recorded_stack(host=None) -> str:
    """The current host's record as the deploy writes it (sorted, one trailing newline)."""
    host = current_host if host is None else host
    return json.dumps(_RECORDS[host.name], indent=2, sort_keys=True) + "\n"


def record_problems(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """How a host's record differs from what verify derives now: the version, the data, and
    each field of the stack."""
    problems = []
    if recorded.get("dlws_version") != expected["dlws_version"]:
        problems.append(f"dlws version: recorded {recorded.get('dlws_version')!r}, running "
                        f"{expected['dlws_version']!r}")
    if recorded.get("data_digest") != expected["data_digest"]:
        problems.append("host data: the inventory's data for this host changed since the deploy")
    problems += differences(recorded.get("stack") or {}, expected["stack"])
    return problems


# --- the converged record: a rerun that finds what the last converged run found plans nothing ---

# What, beside the host's readings, decides the operations: the code and hash locks that plan them.
_CODE_FOLDERS = ("dlws", "roles", "deploy", "locks")
_CODE_DIGEST: list[str] = []


def code_digest() -> str:
    """sha256 of the project's code, templates and hash locks (once per process): an edit
    anywhere in them is a new run key, as a new dlws version is."""
    if not _CODE_DIGEST:
        root = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        for folder in _CODE_FOLDERS:
            for path in sorted((root / folder).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    digest.update(str(path.relative_to(root)).encode() + b"\0")
                    digest.update(path.read_bytes() + b"\0")
        _CODE_DIGEST.append(digest.hexdigest())
    return _CODE_DIGEST[0]


def controller_stamps(data: Mapping[str, Any]) -> list:
    """Size and modification time of each controller file or folder the data names (CA
    bundles, the wheelhouse, a TLS key): what the deploy uploads from the controller."""
    stamps = []
    for value in sorted(_strings(data)):
        path = Path(value)
        if not value.startswith("/") or not path.exists():
            continue
        entries = sorted(path.iterdir()) if path.is_dir() else [path]
        for entry in entries:
            info = entry.stat()
            stamps.append([str(entry), info.st_size, info.st_mtime_ns])
    return stamps


def _strings(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return set().union(*(_strings(each) for each in value)) if value else set()
    return set()


def run_key(host, deploy: str) -> str:
    """What the operations of `deploy` on the host depend on besides its facts: the dlws and
    pyinfra versions, the code, the host's data (every key, pyinfra's own included) and the
    controller files the data names."""
    data = host.data.dict()
    text = json.dumps({"dlws": __version__, "pyinfra": pyinfra.__version__,
                       "code": code_digest(), "deploy": deploy,
                       "data": {key: repr(value) for key, value in sorted(data.items())},
                       "controller": controller_stamps(data)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def converged(host=None, deploy: str = "workstation") -> bool:
    """True where the host has converged and nothing it depends on moved since: its batch of
    readings (dlws.facts.batch) equals the one its last converged run recorded, under the same
    run key. The deploy then plans no operation and says so; anything else plans as always."""
    host = current_host if host is None else host
    if not fact_cache.converged(host, run_key(host, deploy)):
        return False
    # Always shown (host.noop is shown only with -v): a skipped run must say so.
    logger.info(f"{host.print_prefix}converged: every reading matches the host's last "
                f"converged run ({fact_cache.CONVERGED_FILE}; read {fact_cache.tier(host)}); "
                "no operation planned (DLWS_CONVERGED=0 plans them all)")
    return True


def record_converged(operation, host=None) -> None:
    """After `operation` (the deploy's last) succeeds on a run that planned everything and
    changed nothing, record the host's readings as converged (dlws.facts.batch.record_after)."""
    fact_cache.record_after(current_host if host is None else host, operation)
