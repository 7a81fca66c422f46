"""The stamp tier: one cheap read of file stamps decides whether the facts batch must run.

A converged host's rerun read its whole facts batch (about 60 readings: dpkg's list, the users
with their last logins, a Python start to list the environment's packages, a digest of every
managed file) only to find what the last converged run found. This module reads, first, in the
same one command as the converged record, the *stamps* of every file and folder those readings
depend on: `find -printf` of each entry's type, inode, size, modification and change time
(ctime, which no user can set back: `touch -d` moves it), mode, owner, group and link target,
the entry itself and what it points to, and every entry below the folders whose contents a
reading lists (/etc/apt, /etc/sudoers.d, dpkg's journal, the environment's dist-info folders);
with the boot id and the kernel's release and build (/proc), digested on the host (one line
comes back). No file is read. Readings that no list of files decides (the clock, services,
devices, anything not declared in ``FACT_STAMPS``/``FILE_FACTS``) are read beside the stamps,
each by its own command, every time.

The converged record (dlws.facts.batch.CONVERGED_FILE, root-only) keeps the stamp the batch of
the recording run read (first in that batch, before any reading: a change during the batch moves
the next stamp) and that batch's raw output of each stamped reading (zlib, base64). Where the
stamp read now equals the recorded one, every stamped reading is parsed from the recorded output
by its fact's own process(), as the batch would have; anything else runs the batch as before.
So a stamp that matches stands for readings that match: a reading whose files moved (a byte
written, a mode, an owner, a package, a user) is read again, and drift plans and is repaired.

``DLWS_STAMPS=0`` turns the tier off (the batch always runs), for comparisons.
"""

from __future__ import annotations

import base64
import json
import os
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyinfra.api import FactBase

from dlws.command import Command, all_of, cmd, sh

# A fact request: the fact's class and its arguments by name (dlws.facts.batch.FactRequest).
FactRequest = tuple[type, dict]

# What find prints of each entry (find(1) -printf): the path, type, inode, size, modification
# and change times (ns), mode, owner, group and a link's target; never an access time.
STAMP_FORMAT = "%p|%y|%i|%s|%T@|%C@|%m|%U|%G|%l\\n"

# Facts whose value follows from their path arguments alone (the entry, and what it points to).
FILE_FACTS = frozenset({
    "pyinfra.facts.files:File", "pyinfra.facts.files:Directory", "pyinfra.facts.files:Link",
    "pyinfra.facts.files:Sha1File", "pyinfra.facts.files:Sha256File",
    "pyinfra.facts.files:Sha384File", "pyinfra.facts.files:Md5File",
    "pyinfra.facts.files:FileContents", "dlws.facts.system:SubordinateIds",
})

_DPKG = (("entry", "/var/lib/dpkg"), ("entry", "/var/lib/dpkg/status"),
         ("entry", "/var/lib/dpkg/arch"), ("entry", "/var/lib/dpkg/info"),
         ("tree", "/var/lib/dpkg/updates"), ("entry", "/usr/bin/dpkg"),
         ("entry", "/usr/bin/dpkg-query"))
_BOOT = ()  # the boot id and the kernel's release and build are in every stamp
# Facts without path arguments, and the files and folders their value follows from: "entry"
# (the entry, and what it points to), "tree" (every entry below a folder), "venv" (an
# environment's interpreter, pyvenv.cfg, site-packages' entries and each dist-info's files).
FACT_STAMPS: dict[str, tuple[tuple[str, str], ...]] = {
    "pyinfra.facts.deb:DebPackages": _DPKG,
    "pyinfra.facts.deb:DebArch": _DPKG,
    "pyinfra.facts.dpkg:DpkgInterrupted": _DPKG,
    "dlws.roles.base._apt:DpkgInterrupted": _DPKG,
    "dlws.facts.system:DpkgArchitecture": _DPKG,
    "dlws.facts.gpu:NvidiaPackages": _DPKG,
    "dlws.facts.system:KernelImagePackages": _DPKG,
    # apt-mark showhold reads dpkg's selections (the status file) and apt's configuration.
    "dlws.facts.system:HeldPackages": (*_DPKG, ("tree", "/etc/apt"),
                                       ("entry", "/usr/bin/apt-mark")),
    "pyinfra.facts.apt:AptSources": (("tree", "/etc/apt"),),
    "pyinfra.facts.apt:AptKeys": (("tree", "/etc/apt"), ("entry", "/usr/bin/apt-key")),
    # pyinfra's Users: /etc/passwd, id's groups, lastlog's record, /etc/shadow's password field.
    "pyinfra.facts.server:Users": (
        ("entry", "/etc/passwd"), ("entry", "/etc/group"), ("entry", "/etc/shadow"),
        ("entry", "/etc/master.passwd"), ("entry", "/var/log/lastlog"),
        ("entry", "/usr/bin/lastlog"), ("entry", "/usr/bin/lastlogin")),
    "pyinfra.facts.server:Groups": (("entry", "/etc/group"),),
    "pyinfra.facts.server:Os": _BOOT,
    "pyinfra.facts.server:Arch": _BOOT,
    "pyinfra.facts.server:Kernel": _BOOT,
    "pyinfra.facts.server:KernelVersion": _BOOT,
    "dlws.facts.system:OsRelease": (("entry", "/etc/os-release"), ("entry", "/usr/lib/os-release")),
    "dlws.facts.system:UidMin": (("entry", "/etc/login.defs"),),
    "dlws.facts.system:SudoersGroups": (("entry", "/etc/sudoers"), ("tree", "/etc/sudoers.d")),
}
# VenvPackages(prefix): importlib.metadata's view of the environment.
VENV_FACT = "dlws.facts.python:VenvPackages"
_PATH = re.compile(r"/[A-Za-z0-9._+@:/-]{0,4000}")
_DIGEST_LINE = re.compile(r"([0-9a-f]{64})  -")


def enabled() -> bool:
    return os.environ.get("DLWS_STAMPS", "1") != "0"


def _fact_name(fact_cls) -> str:
    return f"{fact_cls.__module__}:{fact_cls.__qualname__}"


def _path(value: Any) -> str | None:
    if (isinstance(value, str) and _PATH.fullmatch(value) and "/../" not in f"{value}/"
            and "/./" not in f"{value}/" and "//" not in value):
        return value
    return None


def stamps_of(request: FactRequest) -> tuple[tuple[str, str], ...] | None:
    """The stamps a reading's value follows from, or None: read it beside the stamps."""
    fact_cls, kwargs = request
    return stamps_by_name(_fact_name(fact_cls), kwargs)


def stamps_by_name(name: str, kwargs: Mapping[str, Any]) -> tuple[tuple[str, str], ...] | None:
    """stamps_of a reading named by its fact ("module:Class") and arguments."""
    if name in FILE_FACTS:
        paths = [_path(value) for value in kwargs.values() if isinstance(value, str)]
        if not paths or None in paths:
            return None
        return tuple(("entry", path) for path in paths)
    if name == VENV_FACT:
        prefix = _path(kwargs.get("prefix"))
        return (("venv", prefix),) if prefix and len(kwargs) == 1 else None
    if kwargs:
        return None
    return FACT_STAMPS.get(name)


class Stamps(FactBase):
    """sha256 (taken on the host) of the stamps of files and folders (type, inode, size,
    modification and change times, mode, owner, group, link target; find -printf), the boot id
    and the kernel's release and build: no content. "" where the host gave no digest.

    + entries: paths whose entry, and what it points to, is stamped
    + trees: folders whose every entry below is stamped
    + venvs: virtual environments (interpreter, pyvenv.cfg, site-packages, dist-info files)

    .. code:: python

        "9f2c...e1"
    """

    default = str
    # Its variables and export are set in the pipeline's first part: a subshell of its own.
    shares_shell = True  # dlws.facts.batch.shares_shell

    def command(self, entries=(), trees=(), venvs=()):
        # Paths only (a saved request list is a file too): never an option, and with no
        # character that a find pattern reads (_PATH has none of * ? [ \\).
        entries = [path for path in entries if _path(path)]
        trees = [path for path in trees if _path(path)]
        venvs = [path for path in venvs if _path(path)]
        for prefix in venvs:  # the interpreter and pyvenv.cfg are entries like any other
            entries += [f"{prefix}/bin/python", f"{prefix}/pyvenv.cfg"]
        # The kernel (its release and build) as uname -rv reads it, with the shell's own read.
        parts: list[Command] = [sh("LC_ALL=C; export LC_ALL; "
                                   "read -r boot < /proc/sys/kernel/random/boot_id; "
                                   "read -r release < /proc/sys/kernel/osrelease; "
                                   "read -r build < /proc/sys/kernel/version; "
                                   'echo "$boot $release $build"')]
        if entries or trees:
            # One find for the entries, the trees and the environments, and one more for the
            # entries and trees followed (what they point to). An entry is named from "//" (the
            # same file to Linux), which no walk below a tree prints, and is not walked below
            # (find's -maxdepth is one for all). An environment's lib is walked down to
            # site-packages' entries, and all below each dist-info folder there: a package's
            # own folder is stamped, never walked.
            named = [f"/{path}" for path in sorted(set(entries))] + sorted(set(trees))
            libs = [f"{prefix}/lib" for prefix in sorted(set(venvs))]
            inside: list[str] = []
            for lib in libs:
                inside += [*(["-o"] if inside else []), "(", "-path", f"{lib}/*/*/*",
                           "!", "-path", f"{lib}/*/site-packages/*.dist-info",
                           "!", "-path", f"{lib}/*/site-packages/*.dist-info/*", ")"]
            packages = ["(", *inside, ")", "-printf", STAMP_FORMAT, "-prune", "-o"] if libs \
                else []
            parts += [
                cmd("find", "-P", *named, *libs, "-path", "//*", "-prune", "-printf",
                    STAMP_FORMAT, "-o", *packages, "-printf", STAMP_FORMAT),
                cmd("find", "-L", *named, "-path", "//*", "-prune", "-printf", STAMP_FORMAT,
                    "-o", "-printf", STAMP_FORMAT)]
        for prefix in venvs:
            # An environment that sees the system's packages too (pyvenv.cfg, as Python's
            # site reads it, matched here more widely than less): its stamp is new on every read
            # (a random UUID), so its packages are always read. The shell's own read and case.
            parts.append(sh(
                "dlws_sys=; while IFS= read -r dlws_line || [ -n \"$dlws_line\" ]; do "
                "case $dlws_line in *[Ii][Nn][Cc][Ll][Uu][Dd][Ee]-[Ss][Yy][Ss][Tt][Ee][Mm]-"
                "[Ss][Ii][Tt][Ee]-[Pp][Aa][Cc][Kk][Aa][Gg][Ee][Ss]*=*[Tt][Rr][Uu][Ee]*) "
                "dlws_sys=1;; esac; done 2>/dev/null < {}; "
                "[ -z \"$dlws_sys\" ] || cat /proc/sys/kernel/random/uuid",
                f"{prefix}/pyvenv.cfg"))
        # Every part runs (a missing path is an error line in the stamp); stderr is part of it.
        # The host digests what they print (coreutils' sha256sum, in every Debian and Ubuntu):
        # one line comes back instead of a line for each entry, for the controller to read.
        return sh("{{ {}; }} | sha256sum", all_of(sh("{} 2>&1 || true", part) for part in parts))

    def process(self, output):
        # sha256sum's own line, or no stamp (the batch runs): nothing else stands for one.
        match = _DIGEST_LINE.fullmatch("\n".join(output))
        return match[1] if match else ""


def stamp_request(requests: Sequence[FactRequest]) -> FactRequest:
    """The Stamps read that covers every stamped reading of `requests`."""
    entries: set[str] = set()
    trees: set[str] = set()
    venvs: set[str] = set()
    for request in requests:
        for kind, path in stamps_of(request) or ():
            {"entry": entries, "tree": trees, "venv": venvs}[kind].add(path)
    return (Stamps, {"entries": tuple(sorted(entries)), "trees": tuple(sorted(trees)),
                     "venvs": tuple(sorted(venvs))})


def key_text(key: tuple) -> str:
    """A request key as the record's outputs name it."""
    return json.dumps(key)


UNPACKED_LIMIT = 64 * 1024 * 1024  # bytes: a record's outputs, unpacked, at most


def pack(outputs: dict[str, tuple[str, list[str]]]) -> str:
    """The record's copy of raw outputs: {key: [status, lines]} as zlib'd, base64'd JSON."""
    text = json.dumps(outputs, sort_keys=True, separators=(",", ":"))
    return base64.b64encode(zlib.compress(text.encode(), 9)).decode("ascii")


def unpack(packed: Any) -> dict[str, tuple[str, list[str]]] | None:
    if not isinstance(packed, str):
        return None
    try:
        inflate = zlib.decompressobj()
        text = inflate.decompress(base64.b64decode(packed, validate=True), UNPACKED_LIMIT)
        if inflate.unconsumed_tail:  # larger than any record this module writes
            return None
        document = json.loads(text)
    except (ValueError, zlib.error):
        return None
    if not isinstance(document, dict):
        return None
    outputs = {}
    for key, entry in document.items():
        if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str)
                or not isinstance(entry[1], list)
                or not all(isinstance(line, str) for line in entry[1])):
            return None
        outputs[key] = (entry[0], entry[1])
    return outputs


class Found:
    """What the read of a host found: each request's (state, value), the stamp, the raw outputs
    of the stamped readings, and whether the stamps stood in for the batch."""

    def __init__(self, results, stamp, raw, tier, complete=False):
        self.results: list[tuple[str, Any]] = results
        self.stamp: str | None = stamp
        self.raw: dict[str, tuple[str, list[str]]] = raw
        self.tier: str = tier  # "stamps" or "batch"
        # The record's outputs were exactly this read's stamped readings, no more (the stamps
        # tier only): the record's digest of them stands for theirs.
        self.complete: bool = complete


def read(run: Callable[[list[FactRequest]], list | None], batch: list[FactRequest],
         keys: list[tuple], reparse: Callable[[FactRequest, str, list[str]], tuple[str, Any]],
         try_stamps: bool = True) -> Found | None:
    """Read `batch` (its first request the converged record; `keys` its request keys) through
    `run` (one round trip of a RawFactBatch): where `try_stamps`, the stamps and the unstamped
    readings first, and where the stamp equals the record's, the stamped readings from the
    record; else the whole batch with the stamp first. None where the read failed as a whole."""
    readings = batch[1:]
    stamp = stamp_request(readings)
    stamped = [stamps_of(request) is not None for request in readings]
    if try_stamps and enabled():
        live = [request for request, known in zip(readings, stamped, strict=True) if not known]
        first = run([batch[0], stamp, *live])
        if first is not None and len(first) == len(live) + 2:
            found = _from_record(first, readings, keys[1:], stamped, reparse)
            if found is not None:
                return found
    results = run([batch[0], stamp, *readings])
    if results is None or len(results) != len(batch) + 1:
        return None
    state, value, _, _ = results[1]
    raw = {key_text(key): (status, lines)
           for key, known, (_, _, status, lines) in zip(keys[1:], stamped, results[2:],
                                                         strict=True) if known}
    return Found([results[0][:2], *(each[:2] for each in results[2:])],
                 value if state == "ok" else None, raw, "batch")


def _from_record(first, readings, keys, stamped, reparse) -> Found | None:
    record_state, record, _, _ = first[0]
    stamp_state, stamp, _, _ = first[1]
    if (record_state != "ok" or stamp_state != "ok" or not isinstance(record, dict)
            or not stamp or record.get("stamp") != stamp):
        return None
    outputs = unpack(record.get("outputs"))
    if outputs is None:
        return None
    results = [first[0][:2]]
    raw = {}
    live = iter(first[2:])
    for request, key, known in zip(readings, keys, stamped, strict=True):
        if not known:
            results.append(next(live)[:2])
            continue
        entry = outputs.get(key_text(key))
        if entry is None:
            return None  # a reading the recording run did not make: read the batch
        results.append(reparse(request, *entry))
        raw[key_text(key)] = entry
    return Found(results, stamp, raw, "stamps", complete=len(raw) == len(outputs))


def record_fields(raw: dict[str, tuple[str, list[str]]], stamp: str | None,
                  keys: Sequence[tuple]) -> dict[str, str]:
    """The converged record's stamp fields for readings `keys`, or {} where the stamps cannot
    stand for them (a reading read live, or no stamp)."""
    if not stamp:
        return {}
    wanted = {}
    for key in keys:
        text = key_text(key)
        if text in raw:
            wanted[text] = raw[text]
    return {"stamp": stamp, "outputs": pack(wanted)}
