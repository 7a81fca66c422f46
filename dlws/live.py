"""A host command whose stderr lines reach the controller as the host prints them (progress).

testinfra's ``host.run`` returns a command's output when it ends (``BaseBackend.run_local``:
``Popen(...).communicate()``), so a training check's per-epoch lines and a burn-in's line a
minute would all arrive at once, minutes late. :func:`run_live` runs the command through the
same backend, built the same way (the docker, podman, ssh, local and other backends that run
a local ``docker exec`` / ``ssh`` / ``sh`` process), but reads that process's stderr line by line
and hands each line to a callback as it comes; the result is testinfra's own CommandResult,
with the whole stdout and stderr, as ``host.run`` gives. A backend that runs no local process
(paramiko, salt, winrm, ansible) is run by ``host.run`` as before: its lines are handed over
when the command ends.
"""

from __future__ import annotations

import contextlib
import copy
import subprocess
import threading
import types
from collections.abc import Callable
from typing import Any

from dlws.command import Command
from dlws.shell_session import local_input


def _live_run_local(on_line: Callable[[str], None], called: list[bool]) -> Callable:
    """A ``run_local`` for one backend copy: testinfra 10's BaseBackend.run_local (the same
    quoting, encoding, Popen and result), with stderr read line by line as it arrives."""

    def run_local(self: Any, command: str, *args: str) -> Any:
        called.append(True)
        command = self.quote(command, *args)
        line = self.encode(command)
        # shell=True as in testinfra's run_local: `line` is the backend's own quoted command
        # (docker exec NAME /bin/sh -c QUOTED, ssh ... QUOTED), the one host.run would run.
        # (`local_env`: dlws.shell_session's backends' environment for their processes, and
        # `local_input` what their process reads on its stdin: a sudo password)
        feed = local_input(self)
        process = subprocess.Popen(line, shell=True,
                                   stdin=subprocess.DEVNULL if feed is None else subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=getattr(self, "local_env", None))
        if feed is not None:
            with contextlib.suppress(OSError):  # (a process that ended without reading it)
                process.stdin.write(feed)
                process.stdin.close()
        stdout: list[bytes] = []
        reader = threading.Thread(target=lambda: stdout.append(process.stdout.read()),
                                  name="live stdout", daemon=True)
        reader.start()
        stderr: list[bytes] = []
        for raw in iter(process.stderr.readline, b""):
            stderr.append(raw)
            on_line(self.decode(raw).rstrip("\r\n"))
        reader.join()
        process.wait()
        return self.result(process.returncode, line, stdout[0] if stdout else b"",
                           b"".join(stderr))

    return run_local


def run_live(host: Any, command: Command, on_line: Callable[[str], None]) -> Any:
    """Run `command` (built by dlws.command) on a testinfra `host`, calling `on_line` with each
    stderr line as the host prints it; return testinfra's CommandResult of the whole run.

    The backend is copied for this one call, so checks running beside it (verify's background
    training) keep the plain backend."""
    if not isinstance(command, Command):
        raise TypeError("run_live takes a command built by dlws.command (cmd, sh, Script)")
    called: list[bool] = []
    backend = getattr(host, "backend", None)
    if hasattr(backend, "run_local"):
        # (Not through dlws.shell_session's one shell: its own process, read as it prints.)
        backend = backend.plain() if hasattr(backend, "plain") else copy.copy(backend)
        backend.run_local = types.MethodType(_live_run_local(on_line, called), backend)
        out = backend.run(command)
    else:  # a host without a testinfra backend (a recorded host in the tests)
        out = host.run(command)
    if not called:  # no local process read (paramiko, salt, winrm): the lines at the end
        for line in out.stderr.splitlines():
            on_line(line)
    return out
