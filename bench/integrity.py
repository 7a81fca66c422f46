"""The integrity checks' own cost on a deployed container, each against a floor read alike.

`bench/integrity.py --container NAME [--rounds 3]`: alternating rounds of
  floor      reading every file of the environment's site-packages once (find | xargs cat),
  full       verify/host/dlws_record_check.py, sizes and sha256 of every RECORD row (parallel)
  fast       the same, sizes and mtimes only
  dpkg       dpkg --verify of every installed package (verify/integrity.py DPKG_VERIFY)
and prints each one's median seconds and its ratio to the floor. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dlws.command import sh  # noqa: E402
from dlws.verify.integrity import DPKG_VERIFY, RECORD_CHECK  # noqa: E402

VENV = "/opt/dlws/venv"


def timed(container: str, command: str) -> tuple[float, str]:
    started = time.monotonic()
    out = subprocess.run(["docker", "exec", container, "sh", "-c", command], capture_output=True,
                         text=True, check=True)
    return time.monotonic() - started, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--container", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    floor = sh("find {} -type f -print0 | xargs -0 cat > /dev/null", VENV)
    commands = {"floor": floor, "dpkg": DPKG_VERIFY}
    for mode in ("full", "fast"):
        commands[mode] = RECORD_CHECK.command(f"{VENV}/bin/python", {"r": [VENV, mode]},
                                              flags=("-I", "-S", "-B"))
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    detail = {}
    timed(args.container, floor)  # warm the page cache once: every round reads from memory
    for _ in range(args.rounds):
        for name, command in commands.items():
            took, stdout = timed(args.container, command)
            seconds[name].append(took)
            if name in ("full", "fast"):
                detail[name] = json.loads(json.loads(stdout)["runs"]["r"][1])
    load = Path("/proc/loadavg").read_text().split()[0]
    base = statistics.median(seconds["floor"])
    print(f"container {args.container}, {args.rounds} rounds, load average {load}")
    for name, runs in seconds.items():
        extra = ""
        if name in detail:
            d = detail[name]
            extra = (f" ({d['files']} files, {d['bytes_hashed'] / 2**30:.2f} GiB hashed, "
                     f"{d['workers']} workers, {d['problem_count']} problems)")
        print(f"{name:6} median {statistics.median(runs):6.2f} s "
              f"({', '.join(f'{r:.2f}' for r in runs)}) = {statistics.median(runs) / base:4.2f}x "
              f"the floor{extra}")


if __name__ == "__main__":
    main()
