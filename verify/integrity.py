"""What was installed, checked by content: the environment against its RECORDs, Debian's files
against dpkg's digests. Read once per host and run, shared by the checks and the training gate."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from dlws.command import cmd, sh
from dlws.controller_code import Script
from dlws.controller_code import parse as parse_runner

RECORD_CHECK = Script.from_path(Path(__file__).resolve().parent / "host" / "dlws_record_check.py")
# In an environment's prefix: the deploy's record of the bytecode pip or uv compiled there (its
# format is RECORD_CHECK's, which writes it and reads it).
BYTECODE_RECORD = "dlws-bytecode.json"
_LOCK = threading.Lock()
_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}  # one per host: hosts check side by side
_RESULTS: dict[tuple[str, str, str], dict] = {}
_STARTED: dict[tuple[str, str, str], threading.Thread] = {}

# Every installed package, verified by dpkg against its md5sums, several at a time (one
# `dpkg --verify` per CPU; dpkg 1.21 exits 0 even when files differ, so the output decides).
DPKG_VERIFY = sh("dpkg-query -W -f '${{Package}}:${{Architecture}}\\n' | "
                 "xargs -r -n 32 -P \"$(nproc)\" dpkg --verify --")
# `??5??????   /usr/bin/lspci`, `missing     /usr/bin/setpci`, `??5?????? c /etc/x` (conffile)
DPKG_LINE = re.compile(r"^(?P<flags>\S{9}|missing) +(?P<conffile>c?) +(?P<path>/.*)$")


def reset() -> None:
    """Forget what an earlier run in this process found (a new pytest session)."""
    with _LOCK:
        _RESULTS.clear()
        _STARTED.clear()


def start_record_check(host, target) -> None:
    """Start the host's RECORD check in the background, once per host and run, so that it runs
    while the host's facts are read and its first checks run; record_report() waits for it."""
    key = (target.name, "record", target["python_env_prefix"])
    with _LOCK:
        if key in _STARTED or key in _RESULTS:
            return
        _STARTED[key] = threading.Thread(target=record_report, args=(host, target),
                                         name=f"record check {target.name}", daemon=True)
    _STARTED[key].start()


def record_report(host, target, prefix: str | None = None, removed: tuple[str, ...] = ()
                  ) -> dict:
    """dlws_record_check's report of an environment: the shared one, or the one at `prefix`
    (the notebooks' hub), cached per host, environment and run. `removed`: folders under the
    prefix whose listed files the deploy removes on purpose."""
    prefix = prefix or target["python_env_prefix"]
    key = (target.name, "record", prefix)
    with _LOCK:
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        if key not in _RESULTS:
            out = host.run(RECORD_CHECK.command(
                f"{prefix}/bin/python",
                {"record": [prefix, target["verify_integrity"], *removed]},
                flags=("-I", "-S", "-B")))
            document = parse_runner(out.stdout)
            rc, stdout, stderr = (document.get("runs") or {}).get("record", (2, "", ""))
            try:
                report = json.loads(stdout)
            except json.JSONDecodeError:
                report = {"error": f"the record check did not run (exit {out.rc}/{rc}): "
                                   f"{document.get('error', '')} {stderr[-1500:]}"
                                   f"{out.stderr[-1000:]}"}
            report["script_sha256"] = document.get("sha256")
            _RESULTS[key] = report
        return _RESULTS[key]


def environment_problems(host, target, prefix: str | None = None,
                         removed: tuple[str, ...] = ()) -> list[str]:
    report = record_report(host, target, prefix, removed)
    if "error" in report:
        return [report["error"]]
    return list(report["problems"]) + (
        [f"... {report['problem_count'] - len(report['problems'])} more"]
        if report["problem_count"] > len(report["problems"]) else [])


def dpkg_problems(host) -> tuple[list[str], str]:
    """Files of installed packages that differ from dpkg's record (conffiles left out: an
    admin may edit those; apt's own settings are checked by test_apt_*), each with its package;
    and what went wrong when dpkg could not be asked."""
    out = host.run(DPKG_VERIFY)
    if out.rc != 0:
        return [], f"dpkg --verify failed (exit {out.rc}): {out.stderr[-1500:]}"
    changed = []
    for line in out.stdout.splitlines():
        match = DPKG_LINE.match(line)
        if match and not match["conffile"]:
            changed.append((match["flags"], match["path"]))
    if not changed:
        return [], ""
    owners = host.run(cmd("dpkg", "-S", "--", *(path for _, path in changed[:50])))
    owner_of = {}
    for line in owners.stdout.splitlines():
        package, _, path = line.partition(": ")
        owner_of[path.strip()] = package
    return [f"{owner_of.get(path, '?')}: {path}: "
            f"{'missing' if flags == 'missing' else 'changed (' + flags + ')'}"
            for flags, path in changed], ""
