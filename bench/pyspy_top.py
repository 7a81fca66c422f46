"""What dominates a py-spy profile: each function's share of the samples that include it.

    .venv/bin/py-spy record --rate 200 --format raw -o run.raw -- .venv/bin/pyinfra -y INV DEPLOY
    .venv/bin/python bench/pyspy_top.py run.raw [--top 25] [--match get_fact sha1 ...]

py-spy's raw format is one line per distinct stack, frames separated by ";", then the sample
count. Prints figures only.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

FRAME = re.compile(r"^(?P<function>\S+) \((?P<where>[^)]*)\)$")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", nargs="*", default=[],
                        help="also the share of samples whose stack contains each of these")
    args = parser.parse_args()
    inclusive: collections.Counter = collections.Counter()
    matched: collections.Counter = collections.Counter()
    total = 0
    for line in Path(args.raw).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        names = set()
        for frame in stack.split(";"):
            match = FRAME.match(frame.strip())
            where = match["where"].split("/")[-1] if match else ""
            names.add(f"{match['function']} ({where.split(':')[0]})" if match else frame)
        for name in names:
            inclusive[name] += samples
        for word in args.match:
            if word in stack:
                matched[word] += samples
    print(f"{total} samples")
    for name, samples in inclusive.most_common(args.top):
        print(f"{100 * samples / max(total, 1):5.1f} %  {name}")
    for word in args.match:
        print(f"stacks with {word!r}: {100 * matched[word] / max(total, 1):.1f} %")


if __name__ == "__main__":
    main()
