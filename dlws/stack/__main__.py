"""The offline stack calculator: `python -m dlws.stack --os ubuntu-24.04 --gpu "NVIDIA L4"`."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from typing import Any

from dlws.stack.records import HOST_DATA_KEYS, HostFacts, StackError
from dlws.stack.resolve import derive
from dlws.stack.services import KEY_DEFAULTS
from dlws.stack.show import table
from dlws.stack.table import OS_RELEASES

# Host-data keys the derivation reads beyond the request (roles' switches that decide packages,
# and the containers and notebooks parts).
EXTRA_KEYS = ("cudnn_nccl", "base_kernel_headers", *KEY_DEFAULTS, "base_lab_users")
# --set values of these keys are typed: a switch is true or false, a list is comma-separated.
LIST_KEYS = ("containers_docker_users", "base_lab_users")
_BOOLEANS = {"true": True, "false": False}
KEYS = (*HOST_DATA_KEYS.values(), *EXTRA_KEYS)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dlws.stack",
        description="Derive a host's stack (driver, CUDA, cuDNN, frameworks) offline, with the "
                    "same function the deploy and verify use.",
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The calculator's options (also `dlws stack`'s)."""
    oses = ", ".join(f"{o}-{r}" for o, r in OS_RELEASES)
    parser.add_argument("--os", required=True, metavar="ID-RELEASE", help=f"one of: {oses}")
    parser.add_argument("--gpu", action="append", default=[], metavar="NAME_OR_PCI_ID",
                        help="a GPU as nvidia-smi names it, or its PCI ID (10de:2684 or 2684); "
                             "repeat per GPU; none = a CPU host")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"a host-data key ({', '.join(KEYS)}); the short request names "
                             f"({', '.join(HOST_DATA_KEYS)}) work too")
    parser.add_argument("--installed-driver", metavar="VERSION", help="e.g. 535.183.01")
    parser.add_argument("--container", action="store_true", help="the host is a container")
    parser.add_argument("--kernel", metavar="RELEASE", help="uname -r, e.g. 6.8.0-45-generic")
    parser.add_argument("--machine", default="x86_64",
                        help="uname -m: x86_64 (default) or aarch64 (arm64: Grace superchips, "
                             "DGX Spark); changes the repository path, packages and wheels")
    parser.add_argument("--nvswitches", type=int, default=0, help="NVSwitch chips (HGX boards)")
    parser.add_argument("--secure-boot", action="store_true", help="UEFI Secure Boot is on")
    parser.add_argument("--display", metavar="NAME",
                        help="the host's display manager or graphical session (e.g. gdm3): a "
                             "desktop workstation")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _data(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = HOST_DATA_KEYS.get(name.strip(), name.strip())
        if not sep or name not in KEYS:
            names = [*KEYS, *HOST_DATA_KEYS]
            hint = difflib.get_close_matches(name, names, n=1)
            did = f"; did you mean {hint[0]!r}?" if hint else ""
            raise SystemExit(_usage(f"--set {pair!r}: unknown key {name!r}{did} "
                                    f"(keys: {', '.join(KEYS)})"))
        values[name] = _typed(name, value.strip())
    return values


def _typed(name: str, value: str) -> Any:
    """A --set value as the key's type: true/false for a switch, a comma list for users."""
    if isinstance(KEY_DEFAULTS.get(name), bool):
        if value.lower() not in _BOOLEANS:
            raise SystemExit(_usage(f"--set {name}={value!r}: use true or false"))
        return _BOOLEANS[value.lower()]
    if name in LIST_KEYS:
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    return calculate(_parser().parse_args(argv))


def calculate(args: argparse.Namespace) -> int:
    os_id, sep, release = args.os.partition("-")
    if not sep:
        return _usage(f"--os {args.os!r}: use ID-RELEASE, e.g. ubuntu-24.04 or debian-13")
    data = _data(args.set)
    facts = HostFacts(os_id=os_id.lower(), os_release=release, gpus=tuple(args.gpu),
                      installed_driver=args.installed_driver, in_container=args.container,
                      kernel_release=args.kernel, machine=args.machine,
                      nvswitches=args.nvswitches, secure_boot=args.secure_boot,
                      display=args.display)
    try:
        stack = derive(data, facts).as_dict()
    except StackError as error:
        return _usage(f"{error.constraint}: {error}")
    try:
        print(json.dumps(stack, indent=2) if args.json else table([(args.os, stack)]),
              flush=True)
    except BrokenPipeError:
        # A reader like `head` closed the pipe: not an error of the calculator.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the exit-time flush
    return 0


if __name__ == "__main__":
    sys.exit(main())
