"""The controller's copy of a script, run on a host from a fresh private file checked by sha256."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path

from dlws.command import Command, cmd

# Runs on the host under the interpreter given (-I: no PYTHON* variables, no user site, no
# script folder on sys.path; -B: no bytecode written). It writes the controller's script into a
# new 0700 folder of its own (mkdtemp, O_EXCL|O_NOFOLLOW), checks the written file's sha256
# against the controller's, runs each command with the same interpreter and flags (side by side
# when the host has two CPUs or more), passes each command's stderr lines on to its own stderr
# as they come (progress: dlws.live reads them live), removes the folder, and prints one JSON
# document (each command's whole stdout and stderr in it); it exits 1 when a command failed,
# so that a deploy's operation fails with it. A copy
# installed on the host is never what runs, so a replaced one cannot report for it.
RUNNER = r"""
import base64, hashlib, json, os, shutil, subprocess, sys, tempfile, threading, zlib
name, payload, expected = sys.argv[1], sys.argv[2], sys.argv[3]
commands, flags = json.loads(sys.argv[4]), json.loads(sys.argv[5])
folder = tempfile.mkdtemp(prefix="dlws-code-")
try:
    path = os.path.join(folder, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o500)
    with os.fdopen(fd, "wb") as out:
        out.write(zlib.decompress(base64.b64decode(payload)))
    with open(path, "rb") as handle:
        ran = hashlib.sha256(handle.read()).hexdigest()
    if ran != expected:
        print(json.dumps({"sha256": ran, "error": "the copy differs from the controller's"}))
        sys.exit(2)
    together = len(os.sched_getaffinity(0)) >= 2

    def start(argv):
        out, lines = tempfile.TemporaryFile(), []
        process = subprocess.Popen([sys.executable, *flags, path, *argv], stdout=out,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

        def forward():  # each stderr line kept, and passed on at once (progress, live)
            for raw in iter(process.stderr.readline, b""):
                lines.append(raw)
                sys.stderr.buffer.write(raw)
                sys.stderr.buffer.flush()

        thread = threading.Thread(target=forward, daemon=True)
        thread.start()
        return process, out, (thread, lines)

    def finish(process, out, err):
        code = process.wait()
        thread, lines = err
        thread.join()
        out.seek(0)
        return [code, out.read().decode(errors="replace"),
                b"".join(lines).decode(errors="replace")]

    if together:
        running = {key: start(argv) for key, argv in commands.items()}
        runs = {key: finish(*started) for key, started in running.items()}
    else:
        runs = {key: finish(*start(argv)) for key, argv in commands.items()}
    print(json.dumps({"sha256": ran, "together": together, "runs": runs}))
finally:
    shutil.rmtree(folder, ignore_errors=True)
sys.exit(1 if any(run[0] != 0 for run in runs.values()) else 0)
"""


@dataclass(frozen=True)
class Script:
    """A script the controller ships: its file name on the host and its bytes."""

    name: str
    source: bytes

    @classmethod
    def from_path(cls, path: Path) -> Script:
        return cls(path.name, path.read_bytes())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source).hexdigest()

    def command(self, python: str, commands: dict[str, list[str]],
                flags: tuple[str, ...] = ("-I", "-B")) -> Command:
        """One host command that runs each of `commands` (name -> arguments) with this script,
        under `python` and `flags` (the runner too); its stdout is RUNNER's JSON document.
        Add "-S" where the environment's own site-packages must not run (its .pth files)."""
        if not {"-I", "-B"} <= set(flags) or not all(f in ("-I", "-B", "-S") for f in flags):
            raise ValueError(f"flags must hold -I and -B (and may hold -S): {flags}")
        payload = base64.b64encode(zlib.compress(self.source, 9)).decode()
        return cmd(python, *flags, "-c", RUNNER, self.name, payload, self.sha256,
                   json.dumps(commands), json.dumps(list(flags)))


def parse(stdout: str) -> dict:
    """RUNNER's document, or {} when the host printed something else."""
    try:
        document = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
    except (json.JSONDecodeError, IndexError):
        return {}
    return document if isinstance(document, dict) else {}
