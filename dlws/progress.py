"""A deploy's progress for a person: pyinfra's output condensed, a heartbeat, and its log files.

`dlws deploy` runs pyinfra with ``-vvv`` (each command's output streamed, host by host) and reads
that stream here: operation starts and per-host results pass through with the time since the
run began, apt's and pip's/uv's output shrinks to one line per package, and while an operation
runs longer than HEARTBEAT seconds without a line, one line says which hosts it still waits on.
The whole stream (redacted) and pyinfra's JSON are kept under reports/<inventory>/<time>/.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from dlws.validate.secrets import redact

HEARTBEAT = 10.0  # seconds of silence before a "still running" line
KEEP = 15  # a host's last output lines, shown when its operation fails
_OPERATION = re.compile(r"^--> Starting (?:nested )?operation: (?P<name>.*?)\s*$")
_RESULT = re.compile(r"^\s*\[(?P<host>[^\]]+)\] (?P<what>Success|No changes|Error|Skipped)\b")
_CONNECTED = re.compile(r"^\s*\[(?P<host>[^\]]+)\] Connected\s*$")
_COMMAND = re.compile(r"^\s*\[(?P<host>[^\]]+)\] >>> ")
_OUTPUT = re.compile(r"^\s*\[(?P<host>[^\]]+)\] (?P<line>.*)$")
# One line per package: apt's "Setting up NAME (VERSION) ...", pip's "Successfully installed",
# uv's " + NAME==VERSION", pip's "Collecting NAME" (a download starts).
_PACKAGE_LINES = (
    (re.compile(r"^Setting up (?P<what>\S+ \([^)]*\))"), "apt: set up {what}"),
    (re.compile(r"^Successfully installed (?P<what>.+)$"), "pip: installed {what}"),
    (re.compile(r"^\+ (?P<what>\S+==\S+)"), "uv: installed {what}"),
    (re.compile(r"^Collecting (?P<what>\S+)"), "pip: fetching {what}"),
    (re.compile(r"^Installed (?P<what>\d+ packages? in .+)$"), "uv: installed {what}"),
)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes:d}:{seconds:02d}"


@dataclass
class DeployProgress:
    """Reads pyinfra's -vvv stderr line by line; writes the condensed lines and the raw log."""

    out: IO[str]
    log: IO[str] | None = None
    heartbeat: float = HEARTBEAT
    clock: Any = time.monotonic
    hosts: list[str] = field(default_factory=list)
    operation: str | None = None
    op_started: float = 0.0
    done: set[str] = field(default_factory=set)
    last_line: float = 0.0
    recent: dict[str, deque] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started = self.last_line = self.clock()
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._lock:
            self.out.write(f"[{_clock(self.clock() - self.started)}] {text}\n")
            self.out.flush()
            self.last_line = self.clock()

    def feed(self, raw: str) -> None:
        line = redact(raw.rstrip("\n"))
        if self.log is not None:
            self.log.write(line + "\n")
            self.log.flush()
        if match := _CONNECTED.match(line):
            self.hosts.append(match["host"])
            return self.say(line.strip())
        if match := _OPERATION.match(line):
            self.operation, self.op_started, self.done = match["name"], self.clock(), set()
            return self.say(f"--> {self.operation}")
        if match := _RESULT.match(line):
            self.done.add(match["host"])
            took = _clock(self.clock() - self.op_started)
            if match["what"] == "Error":  # the host's last output lines say why
                for kept in self.recent.pop(match["host"], []):
                    self.say(f"    [{match['host']}] | {kept}")
            return self.say(f"    [{match['host']}] {match['what']} ({took})")
        if _COMMAND.match(line):
            self.recent.pop(_COMMAND.match(line)["host"], None)
            return None
        if match := _OUTPUT.match(line):
            self.recent.setdefault(match["host"], deque(maxlen=KEEP)).append(match["line"])
            for pattern, template in _PACKAGE_LINES:
                if found := pattern.match(match["line"].strip()):
                    return self.say(f"    [{match['host']}] {template.format(**found.groupdict())}")
            return None
        # pyinfra's own lines start with "-->" (its errors too); -vvv's debug lines (fact
        # commands, their continuation lines) stay in deploy.log only.
        if line.startswith("-->"):
            return self.say(line)
        return None

    def beat(self) -> None:
        """Called every second: after `heartbeat` s of silence, say what is still running."""
        now = self.clock()
        if self.operation is None or now - self.last_line < self.heartbeat:
            return
        waiting = [h for h in self.hosts if h not in self.done] or ["?"]
        self.say(f"    ... {self.operation}: {_clock(now - self.op_started)} so far, "
                 f"waiting on {', '.join(waiting)}")

    def follow(self, stream: Iterable[str]) -> None:
        """Feed every line of `stream`, beating once a second in a side thread until it ends."""
        stop = threading.Event()

        def beats() -> None:
            while not stop.wait(1.0):
                self.beat()

        thread = threading.Thread(target=beats, daemon=True)
        thread.start()
        try:
            for raw in stream:
                self.feed(raw)
        finally:
            stop.set()
            thread.join()


def changes(result: dict[str, Any]) -> dict[str, list[str]]:
    """What changed on each host, from pyinfra's --json document (operation names, in order)."""
    per_host: dict[str, list[str]] = {}
    for operation in result.get("results", {}).get("operations", []):
        unchanged = set(operation.get("no_change", []))
        for host in operation.get("success", []):
            per_host.setdefault(host, [])
            if host not in unchanged:
                per_host[host].append(operation["name"])
        for host in operation.get("error", []):
            per_host.setdefault(host, []).append(f"FAILED: {operation['name']}")
    return per_host


def write_log(run_dir: Path, pyinfra_json: str, inventory: str, argv: list[str],
              code: int, seconds: float) -> Path:
    """deploy.json (pyinfra's document and what changed per host) and deploy.txt, in run_dir."""
    try:
        result = json.loads(pyinfra_json) if pyinfra_json.strip() else {}
    except json.JSONDecodeError:
        result = {"unparsed_stdout": pyinfra_json}
    per_host = changes(result)
    document = {"inventory": inventory, "command": argv, "exit": code,
                "seconds": round(seconds, 1), "changed": per_host, "pyinfra": result}
    (run_dir / "deploy.json").write_text(redact(json.dumps(document, indent=2)) + "\n")
    lines = [f"dlws deploy {inventory}: exit {code} after {_clock(seconds)}"]
    for host, names in per_host.items():
        lines.append(f"{host}: {len(names)} change(s)" if names else f"{host}: no changes")
        lines += [f"  - {name}" for name in names]
    text = run_dir / "deploy.txt"
    text.write_text(redact("\n".join(lines)) + "\n")
    return text
