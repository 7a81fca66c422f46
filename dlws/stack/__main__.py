"""The offline stack calculator: `python -m dlws.stack --os ubuntu-24.04 --gpu "NVIDIA L4"`."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys

from dlws.stack.solver import HostFacts, StackError, StackRequest, resolve
from dlws.stack.table import OS_RELEASES

FIELDS = [f.name for f in dataclasses.fields(StackRequest)]


def _parser() -> argparse.ArgumentParser:
    oses = ", ".join(f"{o}-{r}" for o, r in OS_RELEASES)
    parser = argparse.ArgumentParser(
        prog="python -m dlws.stack",
        description="Resolve the GPU stack (driver, CUDA, cuDNN, frameworks) for a host, offline.",
    )
    parser.add_argument("--os", required=True, metavar="ID-RELEASE", help=f"one of: {oses}")
    parser.add_argument("--gpu", action="append", default=[], metavar="NAME_OR_PCI_ID",
                        help="a GPU as nvidia-smi names it, or its PCI ID (10de:2684 or 2684); "
                             "repeat per GPU; none = a CPU host")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help=f"pin a request field ({', '.join(FIELDS)})")
    parser.add_argument("--installed-driver", metavar="VERSION", help="e.g. 535.183.01")
    parser.add_argument("--container", action="store_true", help="the host is a container")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _request(pairs: list[str]) -> StackRequest:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or name not in FIELDS:
            hint = difflib.get_close_matches(name, FIELDS, n=1)
            did = f"; did you mean {hint[0]!r}?" if hint else ""
            raise SystemExit(_usage(f"--set {pair!r}: unknown field {name!r}{did} "
                                    f"(fields: {', '.join(FIELDS)})"))
        values[name] = value.strip()
    return StackRequest(**values)


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _table(stack: dict) -> str:
    width = max(len(k) for k in stack)
    lines = []
    for key, value in stack.items():
        if key == "notes":
            continue
        shown = ", ".join(value) if isinstance(value, list) else value
        lines.append(f"{key:<{width}}  {'-' if shown in (None, '') else shown}")
    lines += [f"{'note':<{width}}  {note}" for note in stack["notes"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os_id, sep, release = args.os.partition("-")
    if not sep:
        return _usage(f"--os {args.os!r}: use ID-RELEASE, e.g. ubuntu-24.04 or debian-13")
    request = _request(args.set)
    facts = HostFacts(os_id=os_id.lower(), os_release=release, gpus=tuple(args.gpu),
                      installed_driver=args.installed_driver, in_container=args.container)
    try:
        stack = resolve(facts, request).as_dict()
    except StackError as error:
        return _usage(f"{error.constraint}: {error}")
    try:
        print(json.dumps(stack, indent=2) if args.json else _table(stack), flush=True)
    except BrokenPipeError:
        # A reader like `head` closed the pipe: not an error of the calculator.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the exit-time flush
    return 0


if __name__ == "__main__":
    sys.exit(main())
