"""Which processes run when during a command: this machine's process table read every 0.1 s
while the command runs (a container's processes are this kernel's, so a sandbox's are seen
too); each process's first and last sighting, in seconds from the command's start. Prints
figures only. A development measure: the poll itself takes some CPU, and a process shorter than
the poll may not be seen.

    .venv/bin/python bench/timeline.py [--match WORD ...] -- COMMAND...
    e.g. DLWS_SANDBOX=NAME .venv/bin/python bench/timeline.py -- \\
        .venv/bin/pytest verify --inventory inventory/sandbox.py -q -p no:cacheprovider
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

# Words of the command lines worth following in a verify or a deploy.
MATCH = ("dlws_record_check", "train", "dpkg", "find ", "dd ", "python", "openssl", "pytest",
         "apt", "uv ")


def command_lines() -> dict[str, str]:
    found = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    found[pid] = handle.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--match", nargs="+", default=list(MATCH))
    parser.add_argument("--least", type=float, default=0.2,
                        help="leave out processes seen for less than this many seconds")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: dict[tuple[str, str], list[float]] = {}
    while process.poll() is None:
        now = time.monotonic() - started
        for pid, line in command_lines().items():
            if any(word in line for word in args.match):
                seen.setdefault((pid, line[:160]), [now, now])[1] = now
        time.sleep(0.1)
    print(f"total {time.monotonic() - started:.2f} s, exit {process.returncode}")
    for (_, line), (first, last) in sorted(seen.items(), key=lambda item: item[1][0]):
        if last - first >= args.least:
            print(f"{first:6.2f} {last:6.2f} {last - first:5.2f}  {' '.join(line.split())}")


if __name__ == "__main__":
    main()
