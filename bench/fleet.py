"""Fleet scaling: a no-change run on 1 vs 8 containers (target: 8 <= 2x one). Prints figures only.

    .venv/bin/python bench/fleet.py [--hosts 8] [--keep]
"""

from __future__ import annotations

import argparse

from common import MINIMAL, WORK, deploy, inventory, remove, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the containers")
    args = parser.parse_args()
    names = [f"dlws-bench-f{i}" for i in range(args.hosts)]
    data = {key: value for key, value in MINIMAL.items() if key != "python_env_extra_packages"}
    start(names)
    fleet = inventory(WORK / "fleet.py", names, data)
    one = inventory(WORK / "fleet1.py", names[:1], data)
    seconds, rc, _, log = deploy(fleet)
    if rc != 0:
        raise SystemExit(f"the first deploy failed:\n{log}")
    print(f"first deploy of {args.hosts} fresh containers: {seconds:.0f} s", flush=True)
    for label, inv in (("1 host", one), (f"{args.hosts} hosts", fleet), ("1 host", one),
                       (f"{args.hosts} hosts", fleet)):
        seconds, rc, changed, log = deploy(inv)
        if rc != 0 or changed:
            raise SystemExit(f"the rerun failed or changed {changed}:\n{log}")
        print(f"no-change run, {label}: {seconds:.1f} s", flush=True)
    if not args.keep:
        remove(names)


if __name__ == "__main__":
    main()
