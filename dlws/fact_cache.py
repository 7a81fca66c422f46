"""A host's facts in one round trip per run: the deploy's fact reads served from one batched read.

pyinfra 3.10 reads every fact with its own remote command, and caches none: a no-change rerun
of the workstation read 45 to 55 facts per host, each a round trip (a `docker exec`, or a
command over SSH). This module reads them all at once:

- The first time the deploy plans a host (``dlws.plan.host_plan`` through
  ``dlws.facts.pyinfra_reader``), ``prefetch`` reads, in ONE command (``dlws.facts.FactBatch``:
  each fact's own command, split and parsed by each fact's own ``process()``), the facts the
  plan needs plus every fact the deploy read on this host in its last run (the list is kept on
  the controller, ``$XDG_CACHE_HOME/dlws/facts/``; only fact classes of pyinfra, dlws and its
  roles, with plain JSON arguments, are taken from it).
- ``Host.get_fact`` (pyinfra's own operations included) then serves a fact from that snapshot
  while NOTHING has run on the host since it was read: the snapshot is the host as the fact
  would have found it. The first command or upload of an operation on the host drops the
  snapshot, and every later read is live, as without this module. So a no-change rerun reads
  each host once; a deploy that changes things reads live from its first change on.
- A fact is served only with the connector arguments it was read with (sudo/su/doas user, shell,
  working directory, environment less installer/proxy variables); a fact whose command failed
  in the batch, or that cannot run inside another script (another shell, preconditions), is
  read live, so pyinfra reports its errors as before.

``DLWS_FACT_CACHE=0`` turns all of this off (pyinfra's own behaviour), for comparisons.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import json
import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gevent
from gevent.pool import Pool
from pyinfra.api.arguments import pop_global_arguments
from pyinfra.api.host import Host
from pyinfra.api.state import BaseStateCallback
from pyinfra.context import ctx_host

from dlws.facts import FactBatch, FactRequest, batchable, fact_kwargs

# Connector arguments that change what a fact sees; _env counts less these variables, which
# dlws sets for installers and proxies and which no fact's output depends on.
IDENTITY_KEYS = ("_sudo", "_sudo_user", "_use_sudo_login", "_preserve_sudo_env", "_su_user",
                 "_use_su_login", "_preserve_su_env", "_su_shell", "_doas", "_doas_user",
                 "_shell_executable", "_chdir")
NEUTRAL_ENV = {"DEBIAN_FRONTEND", "SSL_CERT_FILE", "PIP_CERT", "UV_LINK_MODE", "PIP_CACHE_DIR",
               "UV_CACHE_DIR", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY",
               "HTTPS_PROXY", "NO_PROXY"}
# Modules whose fact classes a saved request list may name.
FACT_MODULES = ("pyinfra.facts.", "dlws.", "dlws.roles.")


def enabled() -> bool:
    return os.environ.get("DLWS_FACT_CACHE", "1") != "0"


class Snapshot:
    """One host's facts as one batched read found them, and what this run asked for."""

    def __init__(self, identity: tuple) -> None:
        self.identity = identity
        self.values: dict[tuple, Any] = {}
        self.valid = True  # nothing has run on the host since the read
        self.requested: dict[tuple, FactRequest] = {}
        self.hits = self.misses = 0


# state -> {host name: Snapshot}; a new pyinfra state (run) starts empty.
_SNAPSHOTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ORIGINAL = {"get_fact": Host.get_fact, "run_shell_command": Host.run_shell_command,
             "put_file": Host.put_file}


def _snapshot(host) -> Snapshot | None:
    state = getattr(host, "state", None)
    if state is None:
        return None
    return _SNAPSHOTS.get(state, {}).get(host.name)


def request_key(fact_cls, kwargs: Mapping) -> tuple | None:
    """A hashable key of a fact request, or None where its arguments are not plain values."""
    items = []
    for name, value in sorted(kwargs.items()):
        if isinstance(value, list):
            value = tuple(value)
        if not _plain(value):
            return None
        items.append((name, value))
    return (f"{fact_cls.__module__}:{fact_cls.__qualname__}", tuple(items))


def _plain(value) -> bool:
    if isinstance(value, tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def _identity(host) -> tuple:
    arguments = dict(host.current_op_global_arguments or {})
    global_kwargs, _ = pop_global_arguments(host.state, host, arguments)
    env = {k: v for k, v in (global_kwargs.get("_env") or {}).items() if k not in NEUTRAL_ENV}
    return (*(repr(global_kwargs.get(key)) for key in IDENTITY_KEYS), repr(sorted(env.items())))


def cached(host, fact_cls, kwargs: Mapping, missing: Any = None) -> Any:
    """The snapshot's value of a fact, or `missing` where the snapshot cannot serve it."""
    snapshot = _snapshot(host)
    key = request_key(fact_cls, kwargs)
    if snapshot is None or key is None or not snapshot.valid or key not in snapshot.values:
        return missing
    return copy.deepcopy(snapshot.values[key])


def get_fact(self, fact_cls, *args, **kwargs):
    """Host.get_fact: from this run's snapshot while nothing has run on the host, else live."""
    snapshot = _snapshot(self) if enabled() else None
    if snapshot is not None and not any(name.startswith("_") for name in kwargs):
        key = None
        if batchable(fact_cls):
            try:
                bound = fact_kwargs(fact_cls, args, kwargs)
            except TypeError:
                bound = None
            key = request_key(fact_cls, bound) if bound is not None else None
        if key is not None:
            snapshot.requested.setdefault(key, (fact_cls, bound))
            if snapshot.valid and key in snapshot.values and _identity(self) == snapshot.identity:
                snapshot.hits += 1
                # A copy: an operation may change the value it was given.
                return copy.deepcopy(snapshot.values[key])
        snapshot.misses += 1
    self._dlws_reading = getattr(self, "_dlws_reading", 0) + 1
    try:
        return _ORIGINAL["get_fact"](self, fact_cls, *args, **kwargs)
    finally:
        self._dlws_reading -= 1


def _changes_host(function_name: str):
    original = _ORIGINAL[function_name]

    def wrapper(self, *args, **kwargs):
        # A command that is not a fact's read (an operation's command, an upload) may change
        # the host: from here on, facts are read live.
        if not getattr(self, "_dlws_reading", 0):
            snapshot = _snapshot(self)
            if snapshot is not None:
                snapshot.valid = False
        return original(self, *args, **kwargs)

    wrapper.__name__ = function_name
    wrapper.__doc__ = original.__doc__
    return wrapper


def install() -> None:
    """Route pyinfra's Host.get_fact through the snapshot (once per process)."""
    if Host.get_fact is get_fact:
        return
    Host.get_fact = get_fact
    Host.run_shell_command = _changes_host("run_shell_command")
    Host.put_file = _changes_host("put_file")


# --- the request list kept between runs ---------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "dlws" / "facts"


def _list_path(host) -> Path:
    digest = hashlib.sha256(host.name.encode()).hexdigest()[:24]
    return cache_dir() / f"{digest}.json"


def load_requests(path: Path) -> list[FactRequest]:
    """The requests a saved list names; entries that are not a known fact class with plain
    arguments are skipped (the list is a hint: a skipped fact is read live)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    requests = []
    for entry in document.get("requests", []) if isinstance(document, dict) else []:
        try:
            module, _, name = str(entry["fact"]).partition(":")
            kwargs = dict(entry.get("kwargs") or {})
        except (KeyError, TypeError, ValueError):
            continue
        if not module.startswith(FACT_MODULES) or request_key(object, kwargs) is None:
            continue
        try:
            fact_cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        if batchable(fact_cls):
            requests.append((fact_cls, kwargs))
    return requests


def save_requests(path: Path, host_name: str, requests: Sequence[FactRequest]) -> None:
    entries = [{"fact": f"{cls.__module__}:{cls.__qualname__}", "kwargs": kwargs}
               for cls, kwargs in requests]
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"host": host_name, "requests": entries}, indent=1) + "\n")
    tmp.replace(path)


class _SaveOnDisconnect(BaseStateCallback):
    """Keeps each host's request list when pyinfra disconnects from it (the run's end)."""

    @staticmethod
    def host_disconnect(state, host):
        snapshot = _SNAPSHOTS.get(state, {}).get(host.name)
        if snapshot is None or not snapshot.requested:
            return
        # A read-only home: the next run reads live where it must.
        with contextlib.suppress(OSError):
            save_requests(_list_path(host), host.name, list(snapshot.requested.values()))


def prefetch(host, requests: Sequence[FactRequest]) -> None:
    """Read `requests` and the facts this deploy read on the host last run, in one round trip;
    pyinfra's get_fact serves them until something runs on the host.

    pyinfra runs a deploy file's top level one host after another; the first call of a run
    therefore reads every active host of the inventory at once (pyinfra's pool), so a fleet's
    reads overlap instead of queueing host by host.
    """
    state = getattr(host, "state", None)
    if not enabled() or state is None:
        return
    install()
    hosts = _SNAPSHOTS.setdefault(state, {})
    if not hosts:
        state.add_callback_handler(_SaveOnDisconnect())
        # (A pool of its own: the deploy file may itself run in a slot of pyinfra's.)
        others = [each for each in _active_hosts(state) if each.name != host.name]
        pool = Pool(getattr(state.config, "PARALLEL", None) or None)
        greenlets = [pool.spawn(_prefetch_in_context, each, requests) for each in others]
        _prefetch_one(host, requests)
        gevent.joinall(greenlets)
    elif host.name not in hosts:
        _prefetch_one(host, requests)


def _active_hosts(state) -> list:
    inventory = getattr(state, "inventory", None)
    try:
        return list(inventory.get_active_hosts()) if inventory is not None else []
    except Exception:  # noqa: BLE001 - an inventory without the API: this host only
        return []


def _prefetch_in_context(host, requests) -> None:
    with ctx_host.use(host):
        _prefetch_one(host, requests)


def _prefetch_one(host, requests: Sequence[FactRequest]) -> None:
    hosts = _SNAPSHOTS.setdefault(host.state, {})
    if host.name in hosts:
        return
    snapshot = hosts[host.name] = Snapshot(_identity(host))
    wanted: dict[tuple, FactRequest] = {}
    for fact_cls, kwargs in [*requests, *load_requests(_list_path(host))]:
        key = request_key(fact_cls, kwargs)
        if key is not None and batchable(fact_cls):
            wanted.setdefault(key, (fact_cls, dict(kwargs)))
    if not wanted:
        return
    batch = list(wanted.values())
    host._dlws_reading = getattr(host, "_dlws_reading", 0) + 1
    try:
        results = _ORIGINAL["get_fact"](host, FactBatch, requests=tuple(batch),
                                        _ignore_errors=True)
    except Exception:  # noqa: BLE001 - e.g. an unreachable host: its facts are read live
        results = None
    finally:
        host._dlws_reading -= 1
    if len(results or ()) != len(batch):
        return  # the batch failed as a whole: every fact is read live
    for (key, _), (state, value) in zip(wanted.items(), results, strict=True):
        if state != "failed":
            snapshot.values[key] = value
