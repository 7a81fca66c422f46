"""The no-change rerun and verify of the README's sandbox, against plain pyinfra's no-change rerun
of the anchor work (../shared/anchors/workload_pyinfra.py), side by side in the same run.

The sandbox is `pyinfra inventory/sandbox.py deploy/workstation.py` (README), on a container
named by DLWS_SANDBOX as `bin/dlws sandbox` does; the anchor deploy runs on a second fresh
container. Both are deployed once (first run: timed), then the no-change reruns alternate
(anchor, dlws, dlws with DLWS_FACT_CACHE=0 where asked), then verify (`pytest verify`, training
included) runs. Prints each run, the medians, spreads and ratios; asserts nothing.

    .venv/bin/python bench/rerun.py [--rounds 5] [--verify 3] [--uncached] [--prefix dlws-bench]
                                    [--keep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import BIN, ROOT, remove, start

from dlws.sandbox.data import controller_wheelhouse

# ../shared/anchors beside the clone (or beside the folder of worktrees), unless DLWS_ANCHORS.
ANCHORS = Path(os.environ.get("DLWS_ANCHORS") or next(
    (folder for folder in (ROOT.parent / "shared" / "anchors",
                           ROOT.parent.parent / "shared" / "anchors") if folder.is_dir()),
    ROOT.parent / "shared" / "anchors"))


def timed(command: list[str], env: dict | None = None) -> tuple[float, int, str]:
    started = time.monotonic()
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    return time.monotonic() - started, out.returncode, (out.stdout + out.stderr)[-2500:]


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: no runs"
    spread = f"{min(values):.1f} to {max(values):.1f} s"
    return (f"{label}: median {statistics.median(values):.2f} s over {len(values)} runs "
            f"({spread}): " + ", ".join(f"{v:.1f}" for v in values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--verify", type=int, default=3, help="verify runs (0: none)")
    parser.add_argument("--uncached", action="store_true",
                        help="also rerun with DLWS_FACT_CACHE=0 (pyinfra's own fact reads)")
    parser.add_argument("--prefix", default="dlws-bench")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the containers")
    args = parser.parse_args()
    sandbox, anchor = f"{args.prefix}-sandbox", f"{args.prefix}-anchor"
    env = {"DLWS_SANDBOX": sandbox}
    wheelhouse = controller_wheelhouse()
    wheel = sorted(Path(wheelhouse).glob("torch-*cp311*.whl"))[0] if wheelhouse else None
    anchor_cmd = [str(BIN / "pyinfra"), "-y", f"@docker/{anchor}",
                  str(ANCHORS / "workload_pyinfra.py")]
    anchor_env = {"TORCH_WHEEL": str(wheel)} if wheel else {}
    dlws_cmd = [str(BIN / "pyinfra"), "-y", "inventory/sandbox.py", "deploy/workstation.py"]
    fresh = [name for name in (sandbox, anchor)
             if not (args.keep and subprocess.run(["docker", "container", "inspect", name],
                                                  capture_output=True).returncode == 0)]
    try:
        if fresh:
            start(fresh)
        for name, command, extra in ((anchor, anchor_cmd, anchor_env),
                                     (sandbox, dlws_cmd, env)):
            if name not in fresh:
                continue
            seconds, rc, log = timed(command, extra)
            print(f"first deploy, {name}: {seconds:.1f} s (exit {rc})", flush=True)
            if rc:
                raise SystemExit(log)
        runs: dict[str, list[float]] = {"anchor": [], "dlws": [], "dlws uncached": []}
        for _ in range(args.rounds):
            plan = [("anchor", anchor_cmd, anchor_env), ("dlws", dlws_cmd, env)]
            if args.uncached:
                plan.append(("dlws uncached", dlws_cmd, {**env, "DLWS_FACT_CACHE": "0"}))
            for label, command, extra in plan:
                seconds, rc, log = timed(command, extra)
                if rc:
                    print(f"{label}: exit {rc}:\n{log}", flush=True)
                runs[label].append(seconds)
                print(f"no-change rerun, {label}: {seconds:.1f} s", flush=True)
        verify = []
        for _ in range(args.verify):
            seconds, rc, log = timed([str(BIN / "pytest"), "verify", "--inventory",
                                      "inventory/sandbox.py", "-q", "-p", "no:cacheprovider"],
                                     env)
            print(f"verify (training included): {seconds:.1f} s (exit {rc})", flush=True)
            if rc:
                print(log, flush=True)
            verify.append(seconds)
        print(f"\nmachine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        for label, values in runs.items():
            if values:
                print(summary(f"no-change rerun, {label}", values))
        if verify:
            print(summary("verify", verify))
        base = statistics.median(runs["anchor"]) if runs["anchor"] else None
        ours = statistics.median(runs["dlws"]) if runs["dlws"] else None
        if base and ours:
            pairs = [d / a for a, d in zip(runs["anchor"], runs["dlws"], strict=False)]
            print(f"dlws rerun / plain pyinfra rerun: {ours / base:.2f}x (medians; per round "
                  + ", ".join(f"{p:.2f}" for p in pairs) + "; target <= 0.5x)")
        if verify and ours:
            print(f"verify / dlws rerun: {statistics.median(verify) / ours:.2f}x (target <= 2x)")
    finally:
        if not args.keep:
            remove([sandbox, anchor])


if __name__ == "__main__":
    sys.exit(main())
