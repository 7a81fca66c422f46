"""Run-to-run noise of the training check's throughput on one host: the figure behind dlws's
drift noise rule (dlws/report/drift.py NOISE). Prints each run and the spread; asserts nothing.

    .venv/bin/python bench/train_noise.py --container dlws-sandbox --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--container", default="dlws-sandbox")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--framework", action="append", default=None)
    args = parser.parse_args()
    frameworks = args.framework or ["torch", "tensorflow"]
    speeds: dict[str, list[float]] = {name: [] for name in frameworks}
    for run in range(args.runs):
        command = ["docker", "exec", args.container, "/usr/local/bin/dlws-train-check",
                   "--offline", "--json", "-"]
        for name in frameworks:
            command += ["--framework", name]
        out = subprocess.run(command, capture_output=True, text=True)
        for result in json.loads(out.stdout)["results"]:
            speeds[result["framework"]].append(result["samples_per_second"])
        print(f"run {run + 1}: " + ", ".join(f"{name} {values[-1]:,.0f} samples/s"
                                             for name, values in speeds.items()), flush=True)
    for name, values in speeds.items():
        median = statistics.median(values)
        worst = max(abs(v - median) / median for v in values)
        print(f"{name}: median {median:,.0f} samples/s, min {min(values):,.0f}, max "
              f"{max(values):,.0f}; largest departure from the median {worst:.1%}")


if __name__ == "__main__":
    main()
