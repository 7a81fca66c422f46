"""One first deploy of the CPU workstation on a fresh container (bench/all.py's first row, the
deploy half alone): wall time, CPU seconds in the container and on the controller, live fact
reads and the slowest operations, as one JSON line. For A/B runs of two commits, alternating
(check out each in turn and run this); prints figures only.

    .venv/bin/python bench/first_once.py NAME
"""

from __future__ import annotations

import json
import sys

import overhead
from all import cpu_used
from common import WORK, remove, start


def main() -> None:
    name = sys.argv[1]
    start([name])
    try:
        stats = WORK / "first-once-stats.jsonl"
        stats.unlink(missing_ok=True)
        inv = overhead.inventory(WORK / "first-once.py", [name], overhead.DATA)
        (seconds, rc, _, _), host_cpu, ctl_cpu = cpu_used(
            name, overhead.deploy, inv, env={"DLWS_FACT_STATS": str(stats)})
        found = json.loads(stats.read_text().splitlines()[-1]) if stats.exists() else {}
        print(json.dumps({"name": name, "exit": rc, "wall": round(seconds, 1),
                          "container_cpu": round(host_cpu, 1),
                          "controller_cpu": round(ctl_cpu, 1),
                          "live_reads": found.get("live_reads"),
                          "slowest": found.get("slowest_operations", [])[:4]}))
    finally:
        remove([name])


if __name__ == "__main__":
    main()
