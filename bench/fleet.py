"""Fleet scaling: a no-change run on 1 vs 8 containers (target: 8 <= 2x one). Prints figures only.

    .venv/bin/python bench/fleet.py [--hosts 8] [--keep]
"""

from __future__ import annotations

from common import MINIMAL, WORK, fleet_args, fleet_runs, inventory, start


def main() -> None:
    args = fleet_args(__doc__)
    names = [f"dlws-bench-f{i}" for i in range(args.hosts)]
    data = {key: value for key, value in MINIMAL.items() if key != "python_env_extra_packages"}
    start(names)
    fleet = inventory(WORK / "fleet.py", names, data)
    one = inventory(WORK / "fleet1.py", names[:1], data)
    fleet_runs(args, names, one, fleet)


if __name__ == "__main__":
    main()
