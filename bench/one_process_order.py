"""The two trainings by hand on the sandbox, side by side (as verify's floor runs them), three
ways, alternating: alone; with the one-process check in TensorFlow's process (torch imported
after it trained, as verify does); and with it in torch's process. Each round's seconds until
both ended. Prints figures only.

    .venv/bin/python bench/one_process_order.py SANDBOX [--rounds 4]
"""

from __future__ import annotations

import argparse
import subprocess
import time

from all import train_args

WAYS = {"alone": ([], []),
        "torch into TensorFlow's process": (["--also-import", "torch"], []),
        "TensorFlow into torch's process": ([], ["--also-import", "tensorflow"])}


def trainings(name: str, tf_extra: list[str], torch_extra: list[str]) -> float:
    started = time.monotonic()
    procs = [subprocess.Popen(["docker", "exec", name, *train_args(framework), *extra],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for framework, extra in (("tensorflow", tf_extra), ("torch", torch_extra))]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"a training failed (exit {proc.returncode}): {err[-2000:]!r}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sandbox")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    found: dict[str, list[float]] = {way: [] for way in WAYS}
    for _ in range(args.rounds):
        for way, (tf_extra, torch_extra) in WAYS.items():
            found[way].append(trainings(args.sandbox, tf_extra, torch_extra))
            print(f"{way}: {found[way][-1]:.2f} s", flush=True)
    for way, seconds in found.items():
        print(f"{way}: " + ", ".join(f"{s:.2f}" for s in seconds) + " s")


if __name__ == "__main__":
    main()
