"""A host's facts in one round trip per run: the deploy's fact reads served from one batched read.

pyinfra 3.10 reads every fact with its own remote command, and caches none: a no-change rerun
of the workstation read 45 to 55 facts per host, each a round trip (a `docker exec`, or a
command over SSH). This module reads them all at once:

- The first time the deploy plans a host (``dlws.plan.host_plan`` through
  ``dlws.facts.readers.pyinfra_reader``), ``prefetch`` reads, in ONE command (``FactBatch``:
  each fact's own command, split and parsed by each fact's own ``process()``), the facts the
  plan needs plus every fact the deploy read on this host in its last run (the list is kept on
  the controller, ``$XDG_CACHE_HOME/dlws/facts/``; only fact classes of pyinfra, dlws and its
  roles, with plain JSON arguments, are taken from it).
- ``Host.get_fact`` (pyinfra's own operations included) then serves a fact from that snapshot
  while nothing has run on the host that could change what the fact reads (``touched``,
  ``forget``): an upload or a file command (chmod, mkdir, ...) drops the readings of its paths,
  their folders and what lies below them; a command a role declared (``touches``) drops the
  readings of the paths it named; any other command (an apt install, a script) drops them all.
  A value read live serves later reads until a change touches it.
- After a change that dropped every reading, the first fact read live brings with it, in the
  same one command, every fact the last run of this deploy read live at that point (the saved
  list keeps, per fact, how many such drops came before its live read: ``after``). Those
  values are read after the change, as a live read is, and serve until a change touches them;
  a fact the last run did not read there is read live as before.
- The converged record (``converged``, ``record_after``; ``CONVERGED_FILE`` on the host): a run
  that planned every operation, changed nothing and read every fact from the batch records the
  digest of its readings and its run key (``dlws.plan.run_key``); a later run whose batch finds
  the same readings under the same key plans nothing. ``DLWS_CONVERGED=0`` always plans.
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
import inspect
import json
import os
import re
import secrets
import shlex
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Pool
from pyinfra import host as current_host
from pyinfra import logger
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.api.command import StringCommand
from pyinfra.api.facts import FactBase, ShortFactBase
from pyinfra.api.host import Host
from pyinfra.api.state import BaseStateCallback, StateStage
from pyinfra.context import ctx_config, ctx_host
from pyinfra.facts.server import Date

from dlws import __version__
from dlws.command import sh
from dlws.facts import stamps
from dlws.facts.pyinfra_patch import (
    ORIGINAL,
    keep_global_arguments,
    reading,
    route_host,
    wrap_set_stage,
)

# --- many facts in one round trip ------------------------------------------------------------

# Facts that no operation of a deploy changes (the OS release, the container runtime, the CPU
# architecture): read once per host and pyinfra run. pyinfra 3.10 caches no fact, and each read
# is one round trip (one `docker exec` per read on @docker hosts).
STABLE_FACTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def stable_fact(fact_cls, host=None):
    """`host.get_fact(fact_cls)`, read once per host and run, for facts no deploy changes."""
    host = current_host if host is None else host
    cache = STABLE_FACTS.setdefault(host.state, {})
    key = (host.name, fact_cls)
    if key not in cache:
        cache[key] = host.get_fact(fact_cls)
    return cache[key]


# A fact request: the fact's class and its arguments by name (``File, {"path": "/etc/x"}``).
FactRequest = tuple[type, dict]


def batchable(fact_cls) -> bool:
    """A fact whose command can run inside another shell script: an ordinary FactBase of the
    default shell, without preconditions (those pyinfra checks with further reads)."""
    return (inspect.isclass(fact_cls) and issubclass(fact_cls, FactBase)
            and not issubclass(fact_cls, ShortFactBase) and fact_cls is not FactBatch
            and fact_cls.shell_executable is None
            and fact_cls.check_preconditions is FactBase.check_preconditions)


# pyinfra's facts whose command is one simple command (no exit, cd, set, export or trap):
# shares_shell is true of them.
SHARED_SHELL_FACTS = frozenset({"pyinfra.facts.server:Date"})


def shares_shell(fact_cls) -> bool:
    """True where a fact's command leaves the shell it runs in as it found it (no exit, cd,
    set, export, trap or exec; every variable it reads, it sets first): a batch runs it in its
    own shell, not in a subshell, which is a fork less on the host for each such reading of each
    run. dlws's facts say so with ``shares_shell = True``; tests/facts/test_batch.py runs each in
    a shell under ``set -u`` and compares the shell before and after."""
    return (getattr(fact_cls, "shares_shell", False) is True
            or f"{fact_cls.__module__}:{fact_cls.__qualname__}" in SHARED_SHELL_FACTS)


def fact_kwargs(fact_cls, args: Sequence = (), kwargs: Mapping | None = None) -> dict:
    """A fact's arguments by name, as pyinfra binds them (positional ones named)."""
    kwargs = dict(kwargs or {})
    if not args and not kwargs:
        return {}
    bound = inspect.getcallargs(fact_cls().command, *args, **kwargs)
    bound.pop("self", None)
    return bound


def _build(fact, kwargs: Mapping) -> tuple[Any, Any]:
    command = fact.command(**kwargs) if callable(fact.command) else fact.command
    requires = fact.requires_command(**kwargs) if callable(fact.requires_command) else None
    return command, requires


# (fact class, arguments) -> (command, required binary, what building them left on the
# instance), or None where that cannot be reused: two builds differed, building read a fact of
# the host (pyinfra's Mounts asks for the Kernel), or left a value that is not plain data. A
# fleet's hosts read the same facts, and pyinfra's commands cost more to build (shlex) than
# their output costs to parse.
_BUILT: dict[tuple[type, str], tuple[Any, Any, dict] | None] = {}
_FACT_READS = [0]  # facts asked of any host through get_fact, so far


def _command_of(fact, kwargs: Mapping) -> tuple[Any, Any]:
    """(command, required binary or None) of a fact instance, as pyinfra's _get_fact builds them,
    the instance left as building them leaves it (pyinfra's Sha1File keeps its path for its
    parser). Built once per fact and arguments and run where two builds agree in every respect."""
    key = (type(fact), repr(sorted(kwargs.items())))
    built = _BUILT.get(key, False)
    if built:
        command, requires, left = built
        vars(fact).update(left)
        return command, requires
    before, reads = dict(vars(fact)), _FACT_READS[0]
    command, requires = _build(fact, kwargs)
    if built is False:
        twin = type(fact)()
        vars(twin).update(before)
        again = _build(twin, kwargs)
        # (Where get_fact is not dlws's, a read while building would go unseen: no reuse.)
        same = (_FACT_READS[0] == reads and Host.get_fact is get_fact
                and (_raw(command), _raw(requires)) == (_raw(again[0]), _raw(again[1]))
                and vars(fact) == vars(twin) and all(_plain(v) for v in vars(fact).values())
                and request_key(type(fact), kwargs) is not None)
        _BUILT[key] = (command, requires, dict(vars(fact))) if same else None
    return command, requires


# What follows a batch's marker on its line: the fact's index and its exit status.
_MARKER_TAIL = re.compile(r" (\d+) (\d+|missing)")


class FactBatch(FactBase):
    """Several facts read with ONE command (one round trip), each parsed by its own process().

    The command runs each fact's own command in a subshell (in a brace group where the fact
    ``shares_shell``), in order, and after each prints a marker line with its index and exit
    status (or ``missing`` where the fact's ``requires_command`` is absent, as pyinfra's guard
    does). process() splits the output at the markers and hands each part to that fact's own
    process(), on the instance that built its command. Each fact's stderr is discarded, as
    pyinfra keeps stderr out of a fact's output.

    + requests: ``((fact_cls, kwargs), ...)``; every class must be ``batchable``

    Result, in the order of the requests: ``(state, value)`` with state ``ok`` (exit 0: the
    fact's process() of its lines, or its default without output), ``failed`` (non-zero exit,
    or its parser raised: value None) or ``missing`` (its required binary is absent: default).

    .. code:: python

        [("ok", {"id": "debian", "version_id": "12", "codename": "bookworm"}), ("ok", "docker")]
    """

    default = list

    def command(self, requests):
        # A marker that no fact's output can carry by chance.
        self.marker = f"@@dlws-fact-{secrets.token_hex(6)}@@"
        self.facts = []
        bits: list[Any] = []
        outputs: dict[str, int] = {}  # the same command twice runs once
        for index, (fact_cls, kwargs) in enumerate(requests):
            if not batchable(fact_cls):
                raise TypeError(f"{fact_cls!r} cannot be read in a batch")
            fact = fact_cls()
            command, requires = _command_of(fact, kwargs)
            key = repr((_raw(command), _raw(requires)))
            self.facts.append((fact, outputs.setdefault(key, index)))
            if outputs[key] != index:
                continue
            # The newline before ")" or "}" ends a trailing comment in the fact's command.
            run = (["{", command, "\n} 2>/dev/null; echo"] if shares_shell(fact_cls)
                   else ["(", command, "\n) 2>/dev/null; echo"]) + [f'"{self.marker} {index} $?";']
            if requires:
                bits += ["if command -v", requires, ">/dev/null 2>&1; then", *run,
                         "else echo", f"'{self.marker} {index} missing';", "fi;"]
            else:
                bits += run
        return StringCommand(*bits)

    def outputs(self, output) -> list[tuple[Any, str, list[str]]]:
        """(fact, status, lines) of each request, split at the markers: status is the exit
        status, ``missing`` or ``lost`` (no marker came back)."""
        parts: dict[int, tuple[str, list[str]]] = {}
        lines: list[str] = []
        for line in output:
            head, found, tail = line.rpartition(self.marker)
            match = _MARKER_TAIL.fullmatch(tail) if found else None
            if not match:
                lines.append(line)
                continue
            if head:  # the fact's last line had no newline
                lines.append(head)
            parts[int(match[1])] = (match[2], lines)
            lines = []
        return [(fact, *parts.get(source, ("lost", []))) for fact, source in self.facts]

    def process(self, output):
        return [parse(fact, status, lines) for fact, status, lines in self.outputs(output)]


def parse(fact, status: str, lines: list[str]) -> tuple[str, Any]:
    """(state, value) of a fact's raw batch output, as FactBatch parses it."""
    if status == "missing":
        return "missing", fact.default()
    if status != "0":
        return "failed", None
    try:
        return "ok", fact.process(lines) if lines else fact.default()
    except Exception:  # noqa: BLE001 - pyinfra reports it on a live read
        return "failed", None


class RawFactBatch(FactBatch):
    """FactBatch that also returns each fact's raw output (the stamp tier keeps it).

    Result, in the order of the requests: ``(state, value, status, lines)``.
    """

    def process(self, output):
        return [(*parse(fact, status, lines), status, lines)
                for fact, status, lines in self.outputs(output)]


def reparse(request: FactRequest, status: str, lines: list[str]) -> tuple[str, Any]:
    """(state, value) of a request's raw output kept in the converged record (the stamp tier),
    parsed by its fact's own process() on an instance built as the batch builds it (some parsers
    read what their command was built with: pyinfra's Sha1File its path)."""
    fact_cls, kwargs = request
    fact = fact_cls()
    _command_of(fact, kwargs)
    return parse(fact, status, lines)


def _raw(command) -> str | None:
    if command is None:
        return None
    return command.get_raw_value() if isinstance(command, StringCommand) else str(command)


def run_facts(run, requests: Sequence[FactRequest]) -> list:
    """Read several facts in one command through `run(command) -> (exit status, stdout)`,
    with run_fact's result for each (its default where the fact failed or is missing)."""
    batch = FactBatch()
    status, stdout = run(_raw(batch.command(requests)))
    results = batch.process(stdout.splitlines()) if status == 0 else []
    if len(results) != len(requests):
        return [run_fact(run, fact_cls, **kwargs) for fact_cls, kwargs in requests]
    return [value if state == "ok" else fact_cls().default()
            for (state, value), (fact_cls, _) in zip(results, requests, strict=True)]


def run_fact(run, fact_cls, *args):
    """Read a fact with the same command and parser pyinfra uses, through any `run(command)`
    that returns (exit status, stdout): verify's testinfra host, a recorded transcript.

    As pyinfra's get_fact: the parser sees the output lines only when the command succeeded
    with output, else the fact's default comes back; a missing `requires_command` gives the
    default too (pyinfra raises MissingCommandError, which its callers treat as absent).
    """
    fact = fact_cls()
    command = fact.command(*args) if callable(fact.command) else fact.command
    requires = fact.requires_command(*args) if callable(fact.requires_command) else None
    if requires:
        command = f"command -v {requires} >/dev/null 2>&1 && ( {command} )"
    status, stdout = run(_raw(command))
    lines = stdout.splitlines()
    if status != 0 or not lines:
        return fact.default()
    return fact.process(lines)


# --- the run's snapshot ----------------------------------------------------------------------


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
        self.valid = True  # nothing has run on the host since the read (no value dropped)
        self.requested: dict[tuple, FactRequest] = {}
        self.hits = self.misses = self.hits_after_change = 0
        self.timings: dict[str, float] = {}  # operation name -> seconds (DLWS_FACT_STATS)
        self.uncovered = 0  # facts read live that no batch can read (see get_fact)
        self.base: set[tuple] = set()  # the plan's own requests (prefetch's argument)
        # What the batch read and how each fared (ok / failed / missing): the readings digest.
        self.states: dict[tuple, str] = {}
        self.changes = 0  # commands and uploads of operations (not fact reads) run this run
        self.live_reads = 0  # facts read with their own round trip, after the batch
        self.drops = 0  # changes this run that dropped every reading (an apt install, a script)
        # fact -> the counts of drops before each time this run read it live (0: none dropped)
        self.phases: dict[tuple, set[int]] = {}
        self.saved_phases: dict[tuple, tuple[int, ...]] = {}  # the same, as the loaded list had it
        self.later: dict[int, list[FactRequest]] = {}  # the loaded list's, by their `after`
        self.fresh = False  # the host had no request list of its own (its first deploy here)
        self.refilled_at: set[int] = set()  # drops after which a refill was made (or tried)
        self.refills = 0  # round trips that read, together, what the last run read live
        self.refilled = 0  # facts those round trips read
        self.live_kinds: dict[str, int] = {}  # what was read live, when (DLWS_FACT_STATS)
        self.readings: str | None = None  # the batch's readings digest, as read (converged)
        # Stamped readings the stamps tier took from the record, parsed only when asked for
        # (_settle): key -> (request, status, lines).
        self.pending: dict[tuple, tuple[FactRequest, str, list[str]]] = {}
        # Each stamped reading as the batch or the record gave it: key -> (state, value).
        self.parsed: dict[tuple, tuple[str, Any]] = {}
        self.read_keys: list[tuple] = []  # the batch's readings (the digest's keys)
        self.live_part: str | None = None  # digest of its unstamped readings, as read
        self.complete = False  # the record held exactly this read's stamped readings
        self.run_key: str | None = None  # set where the deploy asked whether it converged
        self.skipped = False  # this run planned no operation: the host had converged
        self.until: float | None = None  # when a decision of this run taken on the clock flips
        self.stamp: str | None = None  # the stamps the read found (dlws.facts.stamps)
        self.raw: dict = {}  # raw output of each stamped reading, by key (dlws.facts.stamps)
        self.tier = "batch"  # "stamps": the stamps stood in for the batch's stamped readings
        # Set once the batch is in (or failed): the host's deploy file reads nothing before.
        self.ready = Event()


# state -> {host name: Snapshot}; a new pyinfra state (run) starts empty.
_SNAPSHOTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# The runs (states) whose first prefetch has started: the one that reads every host.
_STARTED: weakref.WeakSet = weakref.WeakSet()

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


# host -> {what pop_global_arguments reads: the identity it gave}
_IDENTITIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _identity(host) -> tuple:
    """The connector arguments a read of a fact sees on the host: IDENTITY_KEYS and ``_env``
    (less NEUTRAL_ENV), as pyinfra's pop_global_arguments gives them. That evaluates every
    global argument (about 0.5 ms); its answer is kept per host for the same inputs: the
    operation's and the deploy's arguments, the config and the data a deploy set on the host
    (the inventory's own data does not change during a run)."""
    arguments = dict(host.current_op_global_arguments or {})
    config = ctx_config.get() if ctx_config.isset() else host.state.config
    inputs = repr((id(config), sorted(arguments.items()),
                   sorted((host.current_deploy_kwargs or {}).items()),
                   sorted(host.data.override_datas.items())))
    known = _IDENTITIES.setdefault(host, {})
    if inputs not in known:
        global_kwargs, _ = pop_global_arguments(host.state, host, arguments)
        env = {k: v for k, v in (global_kwargs.get("_env") or {}).items()
               if k not in NEUTRAL_ENV}
        known[inputs] = (*(repr(global_kwargs.get(key)) for key in IDENTITY_KEYS),
                         repr(sorted(env.items())))
    return known[inputs]


def cached(host, fact_cls, kwargs: Mapping, missing: Any = None) -> Any:
    """The snapshot's value of a fact, or `missing` where the snapshot cannot serve it."""
    snapshot = _snapshot(host)
    key = request_key(fact_cls, kwargs)
    if snapshot is not None and key in snapshot.pending:
        _settle(snapshot, (key,))
    if snapshot is None or key is None or key not in snapshot.values:
        return missing
    return copy.deepcopy(snapshot.values[key])


def get_fact(self, fact_cls, *args, **kwargs):
    """Host.get_fact: from this run's snapshot while nothing has touched what the fact reads,
    else live (and the live value serves later reads until a change touches it)."""
    _FACT_READS[0] += 1
    snapshot = _snapshot(self) if enabled() else None
    key = bound = None
    if snapshot is not None and not any(name.startswith("_") for name in kwargs):
        if batchable(fact_cls):
            try:
                bound = fact_kwargs(fact_cls, args, kwargs)
            except TypeError:
                bound = None
            key = request_key(fact_cls, bound) if bound is not None else None
        if key is not None:
            snapshot.requested.setdefault(key, (fact_cls, bound))
            if key in snapshot.pending:
                _settle(snapshot, (key,))
            if _identity(self) != snapshot.identity:
                key = None
            elif key in snapshot.values:
                snapshot.hits += 1
                # (Each of these was a live read before reads were dropped path by path.)
                snapshot.hits_after_change += bool(snapshot.changes)
                if snapshot.drops:  # read after the last drop: by a live read or a refill
                    snapshot.phases.setdefault(key, set()).add(snapshot.drops)
                # A copy: an operation may change the value it was given.
                return copy.deepcopy(snapshot.values[key])
            elif snapshot.drops and _refill(self, snapshot, (fact_cls, bound)) \
                    and key in snapshot.values:
                snapshot.phases.setdefault(key, set()).add(snapshot.drops)
                return copy.deepcopy(snapshot.values[key])
    if snapshot is not None:
        snapshot.misses += 1
        snapshot.live_reads += 1
        name = f"{fact_cls.__name__} after {snapshot.drops} drops, {snapshot.changes} changes"
        snapshot.live_kinds[name] = snapshot.live_kinds.get(name, 0) + 1
        # A read the next run's batch cannot repeat (another shell, other connector arguments):
        # this run's readings are not the whole of what its operations depend on.
        snapshot.uncovered += key is None
    with reading(self):
        value = ORIGINAL["get_fact"](self, fact_cls, *args, **kwargs)
    if key is not None:
        snapshot.values[key] = copy.deepcopy(value)
        snapshot.phases.setdefault(key, set()).add(snapshot.drops)
        if not snapshot.changes:  # the host as the batch found it: one of its readings
            snapshot.states[key] = "ok"
    return value


def _refill(host, snapshot: Snapshot, request: FactRequest) -> bool:
    """At the first miss after the n-th change that dropped every reading: read `request` and
    every fact the last run read live after its n-th such change, in one round trip (once per
    n). True where the round trip came back; its values are as fresh as live reads."""
    phase = snapshot.drops
    if phase in snapshot.refilled_at:
        return False
    snapshot.refilled_at.add(phase)
    wanted: dict[tuple, FactRequest] = {request_key(*request): request}
    for fact_cls, kwargs in snapshot.later.get(phase, ()):
        key = request_key(fact_cls, kwargs)
        if key not in snapshot.values:
            wanted.setdefault(key, (fact_cls, kwargs))
    if len(wanted) < 2:
        return False  # nothing to bring along: one live read, as pyinfra makes it
    results = _run_batch(host, list(wanted.values()))
    if results is None or len(results) != len(wanted):
        return False
    snapshot.refills += 1
    for key, (state, value, _, _) in zip(wanted, results, strict=True):
        if state != "failed":  # a failed read is read live, so pyinfra reports it
            snapshot.values[key] = value
            snapshot.refilled += 1
    return True


def _run_batch(host, requests: Sequence[FactRequest]) -> list | None:
    """RawFactBatch of `requests` in one round trip, or None where it failed as a whole."""
    with reading(host):
        try:
            return ORIGINAL["get_fact"](host, RawFactBatch, requests=tuple(requests),
                                        _ignore_errors=True)
        except Exception:  # noqa: BLE001 - e.g. an unreachable host: its facts are read live
            return None


def on_change(host, function_name: str, args: Sequence, kwargs: Mapping) -> None:
    """A command that is not a fact's read (an operation's command, an upload, a Python
    callback) may change the host: drop the readings it may have touched (`touched`)."""
    snapshot = _snapshot(host)
    if snapshot is None:
        return
    snapshot.changes += 1
    declared = _declared(host)
    forget(snapshot, declared if declared is not None
           else touched(function_name, args, kwargs))


# --- which readings a command or an upload leaves valid -------------------------------------------

# The files a fact without a path argument reads, where an operation on other paths cannot change
# its value; a fact neither here nor with a path argument is dropped by every change. (The
# package managers' own commands are not parsed: they drop every reading.)
FACT_FILES: dict[str, tuple[str, ...]] = {
    "pyinfra.facts.deb:DebPackages": ("/var/lib/dpkg",),
    "pyinfra.facts.deb:DebPackage": ("/var/lib/dpkg",),
    "pyinfra.facts.deb:DebArch": ("/var/lib/dpkg",),
    "pyinfra.facts.dpkg:DpkgInterrupted": ("/var/lib/dpkg",),
    "pyinfra.facts.apt:AptSources": ("/etc/apt",),
    "pyinfra.facts.apt:AptKeys": ("/etc/apt",),
    "pyinfra.facts.server:Users": ("/etc/passwd", "/etc/shadow", "/etc/group", "/home"),
    "pyinfra.facts.server:Groups": ("/etc/group",),
    "pyinfra.facts.server:Os": (),
    "pyinfra.facts.server:Arch": (),
    "pyinfra.facts.server:KernelVersion": (),
    "pyinfra.facts.server:Kernel": (),
    "pyinfra.facts.server:Which": ("/usr", "/bin", "/sbin"),
    "dlws.facts.system:OsRelease": ("/etc/os-release", "/usr/lib/os-release"),
    "dlws.facts.system:Container": ("/.dockerenv", "/run/.containerenv"),
    "dlws.facts.gpu:NvidiaPciDevices": (),
    "dlws.facts.gpu:NvSwitchCount": (),
    "dlws.facts.gpu:NvidiaModuleVersion": ("/proc/driver/nvidia", "/sys/module/nvidia"),
    "dlws.facts.system:SecureBoot": (),
    "dlws.facts.gpu:NvidiaPackages": ("/var/lib/dpkg",),
    "dlws.facts.system:KernelImagePackages": ("/var/lib/dpkg",),
    "dlws.facts.system:HeldPackages": ("/var/lib/dpkg",),
    "dlws.facts.system:UidMin": ("/etc/login.defs",),
    "dlws.facts.system:Display": ("/etc/X11", "/usr/lib/systemd", "/etc/systemd"),
}
# Programs whose every effect is on the paths named in their arguments (pyinfra's files
# operations: directory, put, link, file); anything else, or any shell syntax, drops everything.
PATH_PROGRAMS = frozenset({"mkdir", "chmod", "chown", "chgrp", "touch", "rm", "ln", "mv", "cp"})
_SHELL_SYNTAX = set(";&|<>`$(){}*?[]~!#\n\\")


# state -> {operation hash: the host paths its commands may change, as its role declared them}
_TOUCHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def touches(operation, paths: Sequence[str]) -> None:
    """Declare that every command of `operation` (an OperationMeta) changes nothing outside
    `paths` (absolute host paths, and what lies below them): the readings of everything else
    stay valid after it runs. For commands this module cannot read (an install into a virtual
    environment); the role that adds the operation owns the claim."""
    state = getattr(current_host, "state", None)
    if state is None or not all(_absolute(path) for path in paths):
        return
    _TOUCHES.setdefault(state, {})[operation._hash] = tuple(paths)


def _declared(host) -> tuple[str, ...] | None:
    op_hash = getattr(host, "nested_executing_op_hash", None) or getattr(
        host, "executing_op_hash", None)
    return _TOUCHES.get(host.state, {}).get(op_hash) if op_hash else None


def touched(function_name: str, args: Sequence, kwargs: Mapping) -> tuple[str, ...] | None:
    """The host paths an upload or an operation's command can change, or None where it may
    change anything (a package install, a script, a callback)."""
    if function_name == "put_file":
        remote = args[1] if len(args) > 1 else kwargs.get("remote_filename")
        temp = kwargs.get("remote_temp_filename")
        paths = [p for p in (remote, temp) if p]
        return tuple(paths) if paths and all(_absolute(p) for p in paths) else None
    command = args[0] if args else kwargs.get("command")
    raw = command.get_raw_value() if isinstance(command, StringCommand) else command
    return command_paths(raw) if isinstance(raw, str) else None


def command_paths(raw: str) -> tuple[str, ...] | None:
    """The paths a simple file command changes (``chmod 644 /etc/x``), or None for any other."""
    if any(char in _SHELL_SYNTAX for char in raw):
        return None
    try:
        words = shlex.split(raw)
    except ValueError:
        return None
    if not words or words[0] not in PATH_PROGRAMS:
        return None
    operands = [word for word in words[1:] if not word.startswith("-")]
    if words[0] in ("chmod", "chown", "chgrp") and operands:
        operands = operands[1:]  # the mode or owner
    if not operands or not all(_absolute(word) for word in operands):
        return None
    return tuple(operands)


def _absolute(path: str) -> bool:
    return isinstance(path, str) and path.startswith("/") and "/../" not in f"{path}/"


def fact_paths(key: tuple) -> tuple[str, ...] | None:
    """The host paths a reading depends on: its path arguments, or FACT_FILES; None: unknown."""
    name, items = key
    paths = tuple(value for _, value in items if isinstance(value, str) and _absolute(value))
    if paths:
        return paths
    return FACT_FILES.get(name)


def _related(a: str, b: str) -> bool:
    a, b = a.rstrip("/") or "/", b.rstrip("/") or "/"
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def forget(snapshot: Snapshot, paths: Sequence[str] | None) -> None:
    """Drop the readings that a change of `paths` (None: of anything) may have made wrong."""
    _settle(snapshot, list(snapshot.pending))  # (what the host had before: the digest's)
    if paths is None:
        snapshot.values.clear()
        snapshot.valid = False
        snapshot.drops += 1
        return
    for key in list(snapshot.values):
        depends = fact_paths(key)
        if depends is None or any(_related(p, d) for p in paths for d in depends):
            del snapshot.values[key]
            snapshot.valid = False


def install() -> None:
    """Route pyinfra's Host.get_fact through the snapshot (once per process)."""
    route_host(get_fact, on_change)
    wrap_set_stage(_set_stage)
    keep_global_arguments()


# --- the request list kept between runs ---------------------------------------------------------


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "dlws" / "facts"


def _list_path(host) -> Path:
    digest = hashlib.sha256(host.name.encode()).hexdigest()[:24]
    return cache_dir() / f"{digest}.json"


def _fresh_host_path(base: set[tuple]) -> Path:
    """The request list of the last run of the same deploy (the same plan requests, `base`) on
    any host: what a host without a list of its own (its first deploy) is read with, so that
    its first run reads once, not fact by fact. Facts of another host's that do not apply
    here cost a line of the batch each; a fact the list lacks is read live as before."""
    kinds = sorted({name for name, _ in base})
    digest = hashlib.sha256(json.dumps(kinds).encode()).hexdigest()[:24]
    return cache_dir() / f"fresh-host-{digest}.json"


def _stamped_path(host) -> Path:
    """Present where this controller's last record on the host carried stamps."""
    return _list_path(host).with_suffix(".stamped")


def load_requests(path: Path) -> list[FactRequest]:
    """The requests a saved list names; entries that are not a known fact class with plain
    arguments are skipped (the list is a hint: a skipped fact is read live)."""
    return [request for request, _ in load_list(path)]


def load_list(path: Path) -> list[tuple[FactRequest, tuple[int, ...]]]:
    """load_requests, each request with its ``after``: for each time the saving run read it
    live after a change that dropped every reading, how many such changes came before."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    requests = []
    for entry in document.get("requests", []) if isinstance(document, dict) else []:
        try:
            module, _, name = str(entry["fact"]).partition(":")
            kwargs = dict(entry.get("kwargs") or {})
            after = entry.get("after", [])
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if not module.startswith(FACT_MODULES) or request_key(object, kwargs) is None:
            continue
        try:
            fact_cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        if batchable(fact_cls):
            valid = (isinstance(after, list) and len(after) <= 1000
                     and all(type(n) is int and 0 < n <= 100_000 for n in after))
            requests.append(((fact_cls, kwargs), tuple(after) if valid else ()))
    return requests


def save_requests(path: Path, host_name: str, requests: Sequence[FactRequest],
                  phases: Mapping[tuple, Iterable[int]] | None = None) -> None:
    entries = []
    for cls, kwargs in requests:
        entry = {"fact": f"{cls.__module__}:{cls.__qualname__}", "kwargs": kwargs}
        after = sorted(n for n in (phases or {}).get(request_key(cls, kwargs), ()) if n)
        if after:
            entry["after"] = after
        entries.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"host": host_name, "requests": entries}, indent=1) + "\n")
    tmp.replace(path)


class _SaveOnDisconnect(BaseStateCallback):
    """Keeps each host's request list when pyinfra disconnects from it (the run's end), and
    writes the converged record after the operation record_after named."""

    @staticmethod
    def operation_host_start(state, host, op_hash):
        if os.environ.get("DLWS_FACT_STATS"):
            host._dlws_op_started = time.monotonic()

    @staticmethod
    def operation_host_success(state, host, op_hash, retry_count=0):
        snapshot = _SNAPSHOTS.get(state, {}).get(host.name)
        if snapshot is None:
            return
        if os.environ.get("DLWS_FACT_STATS") and hasattr(host, "_dlws_op_started"):
            name = ", ".join(state.get_op_meta(op_hash).names) or op_hash
            snapshot.timings[name] = (snapshot.timings.get(name, 0.0)
                                      + time.monotonic() - host._dlws_op_started)
        if op_hash in _RECORD_AFTER.get(state, {}).get(host.name, ()):
            _write_record(state, host, snapshot)

    @staticmethod
    def host_disconnect(state, host):
        snapshot = _SNAPSHOTS.get(state, {}).get(host.name)
        if snapshot is None:
            return
        _report(host, snapshot)
        # A run that skipped its operations asked for less than the list holds: keep the list.
        if not snapshot.requested or snapshot.skipped:
            return
        # A read-only home: the next run reads live where it must.
        # Where the facts were read live (after which drop) is learnt on a fresh host; another
        # run keeps what its list said.
        phases = snapshot.phases if snapshot.fresh and snapshot.drops else snapshot.saved_phases
        with contextlib.suppress(OSError):
            requested = list(snapshot.requested.values())
            save_requests(_list_path(host), host.name, requested, phases)
            save_requests(_fresh_host_path(snapshot.base), host.name, requested, phases)


def prefetch(host, requests: Sequence[FactRequest]) -> None:
    """Read `requests` and the facts this deploy read on the host last run, in one round trip;
    pyinfra's get_fact serves them until something runs on the host.

    The first call of a run reads every active host of the inventory at once (a pool of its
    own, so --parallel 1 cannot deadlock), so a fleet's reads overlap instead of queueing. pyinfra
    (3.10) loads the deploy file of many hosts side by side, in greenlets that reach this call
    before that first read has begun for them: each call returns only once its own host's batch
    is in, so no host's plan reads a fact live that its batch is about to read.
    """
    state = getattr(host, "state", None)
    if not enabled() or state is None:
        return
    install()
    hosts = _SNAPSHOTS.setdefault(state, {})
    if state not in _STARTED:  # (checked and marked with no switch between: one first call)
        _STARTED.add(state)
        _BUILT.clear()  # commands are reused within a run, never from an earlier one
        state.add_callback_handler(_SaveOnDisconnect())
        others = [each for each in _active_hosts(state) if each.name != host.name]
        pool = Pool(getattr(state.config, "PARALLEL", None) or None)
        greenlets = [pool.spawn(_prefetch_in_context, each, requests) for each in others]
        _prefetch_one(host, requests)
        gevent.joinall(greenlets)
    else:
        _prefetch_one(host, requests)
    snapshot = hosts.get(host.name)
    if snapshot is not None:
        snapshot.ready.wait()


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
        return  # read (or being read) by another call: prefetch waits for it
    snapshot = hosts[host.name] = Snapshot(_identity(host))
    try:
        _read_batch(host, snapshot, requests)
    finally:
        snapshot.ready.set()


def _read_batch(host, snapshot: Snapshot, requests: Sequence[FactRequest]) -> None:
    wanted: dict[tuple, FactRequest] = {}
    snapshot.base = {key for fact_cls, kwargs in requests
                     if (key := request_key(fact_cls, kwargs)) is not None}
    own = _list_path(host)
    snapshot.fresh = not own.exists()
    listed = load_list(_fresh_host_path(snapshot.base) if snapshot.fresh else own)
    saved = [request for request, _ in listed]
    for (fact_cls, kwargs), after in listed:
        if after:
            snapshot.saved_phases[request_key(fact_cls, kwargs)] = after
        for phase in after:
            snapshot.later.setdefault(phase, []).append((fact_cls, kwargs))
    for fact_cls, kwargs in [(ConvergedRecord, {}), *requests, *saved]:
        key = request_key(fact_cls, kwargs)
        if key is not None and batchable(fact_cls):
            wanted.setdefault(key, (fact_cls, dict(kwargs)))
    if not wanted:
        return
    batch = list(wanted.values())

    def run(requests):
        return _run_batch(host, requests)

    # The stamp tier first (dlws.facts.stamps): the batch only where a stamp moved.
    # (Tried only where this controller recorded stamps on the host: else one more round trip.)
    found = stamps.read(run, batch, list(wanted), _pending, _stamped_path(host).exists())
    if found is None:
        return  # the batch failed as a whole: every fact is read live
    snapshot.stamp, snapshot.raw, snapshot.tier = found.stamp, found.raw, found.tier
    snapshot.complete = found.complete
    for (key, _), (state, value) in zip(wanted.items(), found.results, strict=True):
        if state == "pending":
            snapshot.pending[key] = value
            continue
        snapshot.states[key] = state
        if state != "failed":
            snapshot.values[key] = value
        if _stamped(key):
            snapshot.parsed[key] = (state, value)
    snapshot.read_keys = [key for key in wanted if key not in (_RECORD_KEY, _CLOCK_KEY)]
    snapshot.live_part = _part([(key, snapshot.states.get(key, "unread"),
                                 snapshot.values.get(key))
                                for key in snapshot.read_keys if not _stamped(key)])


def _pending(request: FactRequest, status: str, lines: list[str]) -> tuple[str, Any]:
    """A stamped reading from the record, kept to be parsed when something asks for it."""
    return "pending", (request, status, lines)


def _settle(snapshot: Snapshot, keys: Iterable[tuple]) -> None:
    """Parse the pending readings of `keys` (reparse), as the batch would have read them."""
    for key in keys:
        entry = snapshot.pending.pop(key, None)
        if entry is None:
            continue
        state, value = reparse(*entry)
        snapshot.states[key] = state
        if state != "failed":
            snapshot.values[key] = value
        snapshot.parsed[key] = (state, value)


def _stamped(key: tuple) -> bool:
    """Whether a reading (by its request key) is one the stamps stand for."""
    return stamps.stamps_by_name(key[0], dict(key[1])) is not None


# --- the record of the last converged run -------------------------------------------------------

CONVERGED_FILE = "/var/lib/dlws/converged.json"
RECORD_LIMIT = 100_000  # characters: one argument of the writing command (Linux: 128 KiB)


class ConvergedRecord(FactBase):
    """The host's record of its last converged run (``CONVERGED_FILE``, root-only), {} if none.

    .. code:: python

        {"dlws_version": "0.9.0", "run": "<sha256>", "readings": "<sha256>"}
    """

    default = dict
    shares_shell = True

    def command(self):
        return sh("cat {} 2>/dev/null || true", CONVERGED_FILE)

    def process(self, output):
        try:
            document = json.loads("\n".join(output))
        except ValueError:
            return {}
        return document if isinstance(document, dict) else {}


_RECORD_KEY = request_key(ConvergedRecord, {})
# The host's clock: never the same twice, so never in the digest; a run whose operations read
# it records until when their decisions hold (valid_until), and a later run skips only before.
_CLOCK_KEY = request_key(Date, {})


def tier(host) -> str:
    """How this run read the host: "from the stamps" (dlws.facts.stamps stood in for the batch) or
    "the whole batch"."""
    snapshot = _snapshot(host)
    return "from the stamps" if snapshot is not None and snapshot.tier == "stamps" else (
        "the whole batch")


def valid_until(host, moment: float) -> None:
    """Say that a decision this run took on the host's clock (an index still fresh) holds until
    `moment` (seconds since the epoch, the host's clock): a converged record expires then."""
    snapshot = _snapshot(host)
    if snapshot is not None:
        snapshot.until = moment if snapshot.until is None else min(snapshot.until, moment)


def _host_now(snapshot: Snapshot) -> float | None:
    value = snapshot.values.get(_CLOCK_KEY)
    return value.timestamp() if hasattr(value, "timestamp") else None


# Parts of a reading that reading itself moves, and that no operation compares: a file's access
# time (pyinfra's File/Directory facts carry it; the next Sha1File read of the file updates it).
VOLATILE_FIELDS = frozenset({"atime"})


def _canonical(value: Any) -> Any:
    """A fact's value as plain JSON, the same for the same value (sets sorted, keys as text)."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items() if k not in VOLATILE_FIELDS}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_canonical(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def _set_as_list(value: Any) -> Any:
    """json.dumps' fallback: a set as the list of its members in the order of their text."""
    if isinstance(value, set | frozenset):
        return sorted(value, key=_value_text)
    return repr(value)


def _value_text(value: Any) -> str:
    """A reading's value as JSON text, the same for the same value: in one call of the json
    module's encoder where the value is plain (sets as sorted lists, other objects as their
    repr) and names no volatile field; else through _canonical."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=_set_as_list)
    except (TypeError, ValueError):  # keys that are not text and not all of one kind
        text = None
    if text is None or any(f'"{field}"' in text for field in VOLATILE_FIELDS):
        text = json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"))
    return text


def _part(readings: Iterable[tuple[tuple, str, Any]]) -> str:
    """sha256 of (key, state, value) readings: the request, how it fared, its value, in the
    order of the requests' text."""
    lines = sorted(f"{json.dumps([json.dumps(key), state])}{_value_text(value)}\n"
                   for key, state, value in readings)
    if os.environ.get("DLWS_READINGS_DUMP"):  # what went into the digest, one reading a line
        with contextlib.suppress(OSError), open(os.environ["DLWS_READINGS_DUMP"], "a") as out:
            out.write("".join(lines))
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _whole(stamped: str, live: str) -> str:
    return hashlib.sha256(f"stamped {stamped}\nlive {live}\n".encode()).hexdigest()


def readings_digest(snapshot: Snapshot, keys: Iterable[tuple]) -> str:
    """sha256 of the readings of `keys` as the snapshot holds them now: the digest of the
    stamped ones with that of the others; never the converged record or the clock. Two equal
    digests are two equal sets of readings."""
    keys = [key for key in keys if key != _RECORD_KEY and key != _CLOCK_KEY]
    _settle(snapshot, keys)
    parts = [_part((key, snapshot.states.get(key, "unread"), snapshot.values.get(key))
                   for key in keys if _stamped(key) is stamped) for stamped in (True, False)]
    return _whole(*parts)


def _stamped_part(snapshot: Snapshot) -> str:
    """The digest of the batch's stamped readings as read (parsing those still pending)."""
    keys = [key for key in snapshot.read_keys if _stamped(key)]
    _settle(snapshot, keys)
    return _part((key, *snapshot.parsed.get(key, ("unread", None))) for key in keys)


_DIGEST = re.compile(r"[0-9a-f]{64}")


def converged(host, run_key: str) -> bool:
    """True where the host's batch read found exactly the readings of its last converged run
    under the same `run_key` (dlws version, code, data; dlws.plan.run_key): the operations
    would plan no change, and need not be planned. ``DLWS_CONVERGED=0`` always plans."""
    snapshot = _snapshot(host)
    if snapshot is None or snapshot.live_part is None:
        return False
    snapshot.run_key = run_key
    recorded = snapshot.values.get(_RECORD_KEY) or {}
    # Where the stamps stood for the batch, under the same run key (the same code parses the
    # same outputs), the record's digest of its stamped readings stands for theirs: the record
    # holds it only where they were all read from the batch it recorded (_add_stamps). Else
    # (or with DLWS_CONVERGED=0) every stamped reading is parsed and digested again.
    stamped = recorded.get("stamped")
    if not (snapshot.tier == "stamps" and snapshot.complete and recorded.get("run") == run_key
            and isinstance(stamped, str) and _DIGEST.fullmatch(stamped)
            and os.environ.get("DLWS_CONVERGED", "1") != "0"):
        stamped = _stamped_part(snapshot)
    snapshot.readings = _whole(stamped, snapshot.live_part)
    until, now = recorded.get("until"), _host_now(snapshot)
    in_time = until is None or (isinstance(until, int | float) and now is not None
                                and now < until)
    snapshot.skipped = (os.environ.get("DLWS_CONVERGED", "1") != "0"
                        and recorded.get("run") == run_key
                        and recorded.get("readings") == snapshot.readings and in_time)
    return snapshot.skipped


# state -> {host name: hashes of the operations after which the record is written}
_RECORD_AFTER: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def record_after(host, operation) -> None:
    """Write the converged record once `operation` (the deploy's last) has succeeded on the
    host, where this run qualifies: it planned every operation, none changed anything, and every
    fact it read came from the batch (so the batch's readings are all it depended on)."""
    state = getattr(host, "state", None)
    if state is None or not enabled():
        return
    _RECORD_AFTER.setdefault(state, {}).setdefault(host.name, set()).add(operation._hash)


def _qualifies(state, host, snapshot: Snapshot) -> bool:
    results = state.get_results_for_host(host)
    return (snapshot.run_key is not None and not snapshot.skipped and snapshot.changes == 0
            and snapshot.uncovered == 0 and snapshot.valid and snapshot.readings is not None
            and not results.error_ops and not results.ignored_error_ops)


def _add_stamps(host, snapshot: Snapshot, document: dict, keys) -> None:
    """Add the stamps and raw outputs that let the next run skip the batch (stamps.py), where
    they stand for every reading of `keys` and fit in one command's argument."""
    fields = stamps.record_fields(snapshot.raw, snapshot.stamp, keys)
    marked = [key for key in keys if key not in (_RECORD_KEY, _CLOCK_KEY) and _stamped(key)]
    # The digest of the stamped readings, where each is the batch's own parse of the output
    # recorded here (none failed and read live instead): what the next run would parse.
    if fields and all(stamps.key_text(key) in snapshot.raw and key in snapshot.parsed
                      and snapshot.parsed[key][0] in ("ok", "missing")
                      and snapshot.states.get(key) == snapshot.parsed[key][0]
                      and snapshot.values.get(key) is snapshot.parsed[key][1]
                      for key in marked):
        fields["stamped"] = _part((key, *snapshot.parsed[key]) for key in marked)
    if len(json.dumps({**document, **fields})) <= RECORD_LIMIT:
        document.update(fields)
    with contextlib.suppress(OSError):  # a read-only home: the batch runs every time
        if "stamp" in document:
            _stamped_path(host).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _stamped_path(host).touch()
        else:
            _stamped_path(host).unlink(missing_ok=True)


def _restamp(state, host, snapshot: Snapshot) -> None:
    """A run that skipped planning after reading the whole batch (its stamps had moved, or
    its record had none for some reading): the same record, with this batch's stamps, so the
    next run reads the stamps alone. Its readings equal the recorded ones (else it had planned),
    and the stamps were read before them."""
    recorded = snapshot.values.get(_RECORD_KEY) or {}
    if not snapshot.skipped or snapshot.tier != "batch" or not snapshot.stamp:
        return
    document = {key: recorded[key] for key in ("dlws_version", "run", "readings", "until")
                if key in recorded}
    _add_stamps(host, snapshot, document, [key for key in snapshot.states
                                           if key not in (_RECORD_KEY, _CLOCK_KEY)])
    if "stamp" in document and document != recorded:
        _write_document(state, host, document)


def _set_stage(self, stage):
    """State.set_stage: as the run starts executing (never in --dry, nor before the user's
    confirmation), the hosts that skipped planning keep this run's stamps (_restamp)."""
    ORIGINAL["set_stage"](self, stage)
    if stage != StateStage.Execute:
        return
    pending = [(host, snapshot) for host in _active_hosts(self)
               if (snapshot := _SNAPSHOTS.get(self, {}).get(host.name)) is not None
               and snapshot.skipped and snapshot.tier == "batch"]
    if pending:
        pool = Pool(getattr(self.config, "PARALLEL", None) or None)
        gevent.joinall([pool.spawn(_restamp_in_context, self, host, snapshot)
                        for host, snapshot in pending])


def _restamp_in_context(state, host, snapshot: Snapshot) -> None:
    with ctx_host.use(host):
        _restamp(state, host, snapshot)


def _write_record(state, host, snapshot: Snapshot) -> None:
    if not _qualifies(state, host, snapshot):
        return
    # The batch's readings and those read live before any change: what the next run's batch,
    # which reads every fact this run asked for, will find if nothing moves.
    # (The facts this run asked for are the list the next run's batch reads, with the plan's.)
    keys = {*snapshot.base, *snapshot.requested}
    document = {"dlws_version": __version__, "run": snapshot.run_key,
                "readings": readings_digest(snapshot, keys)}
    # The stamps and raw outputs that let the next run skip the batch (dlws.facts.stamps); left out
    # where they would make the record too long for one command's argument.
    _add_stamps(host, snapshot, document, keys)
    if _CLOCK_KEY in keys:  # the operations read the clock: the record holds until they say
        if snapshot.until is None:
            return
        document["until"] = snapshot.until
    if snapshot.values.get(_RECORD_KEY) == document:
        return
    _write_document(state, host, document)


def _write_document(state, host, document: dict) -> None:
    folder = os.path.dirname(CONVERGED_FILE)
    temporary = f"{CONVERGED_FILE}.tmp"
    command = sh("umask 077 && mkdir -p {} && test ! -L {} && chmod 700 {} && "
                 "printf '%s\\n' {} > {} && mv -f {} {}", folder, folder, folder,
                 json.dumps(document, sort_keys=True), temporary, temporary, CONVERGED_FILE)
    global_kwargs, _ = pop_global_arguments(state, host, {})
    arguments = {key: global_kwargs[key] for key in CONNECTOR_ARGUMENT_KEYS
                 if key in global_kwargs}
    with reading(host):  # not an operation's change
        status, _ = ORIGINAL["run_shell_command"](host, StringCommand(command), **arguments)
    if status:
        logger.info(f"{host.print_prefix}dlws: recorded this converged run ({CONVERGED_FILE})")


def _report(host, snapshot: Snapshot) -> None:
    """One line per host and run for the benchmarks (``DLWS_FACT_STATS=FILE``)."""
    path = os.environ.get("DLWS_FACT_STATS")
    if not path:
        return
    slowest = sorted(snapshot.timings.items(), key=lambda item: -item[1])[:12]
    line = json.dumps({"host": host.name, "batch_hits": snapshot.hits,
                       "live_reads": snapshot.live_reads,
                       "refills": snapshot.refills, "refilled": snapshot.refilled,
                       "live": snapshot.live_kinds,
                       "live_reads_if_dropped_whole": snapshot.live_reads
                       + snapshot.hits_after_change,
                       "changes": snapshot.changes, "skipped": snapshot.skipped,
                       "tier": snapshot.tier,
                       "slowest_operations": [[name, round(sec, 2)] for name, sec in slowest]})
    with contextlib.suppress(OSError), open(path, "a") as stream:
        stream.write(line + "\n")
