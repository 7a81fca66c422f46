"""Build dlws/stack/data/gpus.json from the committed extracts in sources/, offline.

`python dlws/stack/data/regenerate.py` rewrites gpus.json (run it by path: it must work even
while gpus.json is broken); `--check` only compares and exits 1
when the committed file differs. The extracts come from NVIDIA's and Debian's own files through
tools/gpu_sources.py (SOURCES.json names each one and its version).

Per device ID the table records: its names (nvidia-smi's, per subsystem where NVIDIA lists
several), lspci's name and chip (pci.ids), architecture and compute capability (chips.tsv),
whether NVIDIA lists it for the open kernel modules, and per driver branch the first release
that lists it:
+ 535 and 550: NVIDIA's supported-gpus.json shipped in Debian's nvidia-driver packages, and
  the open-gpu-kernel-modules README at each tag (Turing and newer)
+ 570 to 595: the open-gpu-kernel-modules README (Turing and newer); Maxwell, Pascal and Volta
  devices of the 550 list are carried to R580, their last branch (NVIDIA's R580 release notes:
  "the last driver branch to support Maxwell, Pascal and Volta") and marked "arch"
+ 535 and 550 also from Debian's nvidia-detect lists of the same packages (NVIDIA's
  supported-gpus.json omits some datacentre cards, e.g. Tesla T4); a branch between two that
  list a device is marked "between"
+ IDs that pci.ids names on a GPU chip and no NVIDIA list read here names: the branches that
  list every listed device of the same chip, marked "chip" (unverified)
+ 610, 615 and 620: no README tag was available here; a device of 595's list is assumed
  supported and marked "assumed" (unverified)
+ machines.tsv: the devices that exist only in Arm (aarch64) systems (Grace superchips, GB10)
  and those whose memory is the system's (unified)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parent
SOURCES = DATA / "sources"
TABLE = DATA / "gpus.json"
# Branches dlws plans; the README extract has more (545, 555, ...), which no source offers.
BRANCHES = (535, 550, 570, 575, 580, 590, 595, 610, 615, 620)
LISTED = {535: "supported-gpus-535.261.03.tsv", 550: "supported-gpus-550.163.01.tsv"}
# Debian's nvidia-detect lists of the same packages: "nvidia" is the package's own branch,
# "tesla-<branch>" Debian's datacentre packages, "open" the open kernel modules' devices.
DETECT = {535: ("nvidia-detect-535.261.03.tsv", ("nvidia", "tesla-535")),
          550: ("nvidia-detect-550.163.01.tsv", ("nvidia", "tesla-550"))}
LAST_BRANCH_BY_ARCH = {"Maxwell": 580, "Pascal": 580, "Volta": 580}
ASSUMED_FROM = 595  # the newest branch whose list was read
NOT_A_GPU = re.compile(r"Reserved|NVSwitch|Audio|USB|Serial|Bridge|bridge|SMBus|PCIe? host",
                       re.I)
CHIP = re.compile(r"^([A-Z]{2}\d{2,3}[A-Z]?)(?:GLM|GL|BM|M)?\b")


def rows(name: str) -> list[list[str]]:
    lines = (SOURCES / name).read_text().splitlines()
    return [line.split("\t") for line in lines if line and not line.startswith("#")]


def chip_of(lspci: str, chips: dict[str, tuple[str, str]]) -> str | None:
    match = CHIP.match(lspci)
    if not match:
        return None
    chip = match[1]
    for candidate in (chip, chip.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), chip[:2]):
        if candidate in chips:
            return candidate
    # "GM20B" keeps its letter; "GP104B" (a board variant) maps to GP104
    return chip[:-1] if chip[:-1] in chips else None


def build() -> dict:
    chips = {c[0]: (c[1], c[2]) for c in rows("chips.tsv")}
    pci = {c[0]: c[1] for c in rows("pci.ids-10de.tsv")}
    policies = {c[0]: c[1] for c in rows("kernel-modules.tsv")}
    # Arm-only devices and unified memory (machines.tsv: NVIDIA's product documentation).
    machines = {c[0].lower(): c[1:] for c in rows("machines.tsv")}
    perf = {c[0]: c[1:5] for c in rows("performance.tsv")}
    devices: dict[str, dict] = {}

    def device(devid: str) -> dict:
        return devices.setdefault(devid, {"names": {}, "subsystems": {}, "branches": {},
                                          "kernel_open": False, "legacy": None})

    for branch, name in LISTED.items():
        version = name.removeprefix("supported-gpus-").removesuffix(".tsv")
        for devid, sub_vendor, sub_device, legacy, kernel_open, product in rows(name):
            entry = device(devid)
            if legacy:
                entry["legacy"] = legacy
                entry["names"].setdefault(product, None)
                continue
            entry["names"].setdefault(product, None)
            if sub_vendor:
                entry["subsystems"][f"{sub_vendor}:{sub_device}".lower()] = product
            entry["kernel_open"] |= kernel_open == "1"
            entry["branches"].setdefault(str(branch), version)
    for branch, (name, lists) in DETECT.items():
        version = name.removeprefix("nvidia-detect-").removesuffix(".tsv")
        for devid, named in rows(name):
            named_lists = named.split(",")
            if any(entry in named_lists for entry in lists):
                entry = device(devid)
                entry["branches"].setdefault(str(branch), version)
                entry["kernel_open"] |= "open" in named_lists
    for devid, sub_vendor, sub_device, firsts, product in rows("open-gpu-kernel-modules.tsv"):
        entry = device(devid)
        entry["names"].setdefault(product, None)
        if sub_vendor:
            entry["subsystems"][f"{sub_vendor}:{sub_device}".lower()] = product
        entry["kernel_open"] = True  # the README lists the devices of the open modules only
        for pair in firsts.split(","):
            branch, tag = pair.split(":")
            if int(branch) in BRANCHES:
                have = entry["branches"].get(branch)
                if have is None or _key(tag) < _key(have):
                    entry["branches"][branch] = tag

    # Device IDs pci.ids names on a GPU chip that no NVIDIA list read here names (10de:233d,
    # "H100 96GB"): recognised, with the branches that list every listed device of the same
    # chip, marked "chip" (unverified).
    by_chip: dict[str, list[dict]] = {}
    for devid, entry in devices.items():
        chip = chip_of(pci.get(devid, ""), chips)
        if chip and entry["branches"]:
            by_chip.setdefault(chip, []).append(entry)
    for devid, lspci in pci.items():
        chip = chip_of(lspci, chips)
        if devid in devices or not chip or chip not in by_chip or "[" not in lspci \
                or NOT_A_GPU.search(lspci):
            continue
        common = set.intersection(*(set(e["branches"]) for e in by_chip[chip]))
        if common:
            entry = device(devid)
            entry["branches"] = {b: "chip" for b in sorted(common, key=int)}
            entry["kernel_open"] = all(e["kernel_open"] for e in by_chip[chip])
    table, unnamed = [], []
    for devid in sorted(devices):
        entry = devices[devid]
        lspci = pci.get(devid)
        chip = chip_of(lspci, chips) if lspci else None
        if not entry["names"] and not (lspci and "[" in lspci):
            unnamed.append(devid.lower())  # an ID in Debian's lists only, named nowhere
            continue
        arch, cc = chips.get(chip, (None, None)) if chip else (None, None)
        branches = entry["branches"]
        listed = sorted(int(b) for b in branches)
        for branch in BRANCHES:
            # Listed by an older and a newer branch: the ones between support it too (NVIDIA
            # drops devices only with their architecture; the README's table has gaps, e.g.
            # Tesla T4 is missing from 570's and present in 535's and 575's lists).
            if listed and listed[0] < branch < listed[-1]:
                branches.setdefault(str(branch), "between")
        if arch in LAST_BRANCH_BY_ARCH and "550" in branches:
            for branch in BRANCHES:
                if 550 < branch <= LAST_BRANCH_BY_ARCH[arch]:
                    branches.setdefault(str(branch), "arch")
        if str(ASSUMED_FROM) in branches:
            for branch in BRANCHES:
                if branch > ASSUMED_FROM:
                    branches.setdefault(str(branch), "assumed")
        names = list(entry["names"])
        if not names and lspci and "[" in lspci:
            # Only Debian's ID lists name the ID: lspci's product name stands in.
            names = ["NVIDIA " + lspci.split("[", 1)[1].rstrip("]")]
        # The generic row's name first (a device's own name); subsystem-only names after it.
        generic = [n for n in names if n not in entry["subsystems"].values()]
        names = generic + [n for n in names if n not in generic]
        record = {
            "id": devid.lower(),
            "names": names,
            "lspci": lspci,
            "chip": chip,
            "arch": arch,
            "cc": cc,
            "kernel_open": entry["kernel_open"],
            "modules": policies.get(devid),
            **({"machines": machines[devid.lower()][0].split(","),
                "memory": machines[devid.lower()][1],
                "machines_evidence": machines[devid.lower()][2]} if devid.lower() in machines
               else {}),
            "legacy": entry["legacy"] if not branches else None,
            "branches": {b: branches[b] for b in sorted(branches, key=int)},
            "subsystems": dict(sorted(entry["subsystems"].items())),
        }
        table.append(record)
    figures = {name: {key: None if value == "-" else float(value) for key, value in
                      zip(("memory_gib", "fp16_tflops", "bf16_tflops", "fp32_tflops"), values,
                          strict=True)}
               for name, values in perf.items()}
    manifest = json.loads((SOURCES / "SOURCES.json").read_text())
    return {
        "generated_by": "python dlws/stack/data/regenerate.py (from dlws/stack/data/sources/)",
        "sources": manifest,
        "branches": list(BRANCHES),
        "unnamed": unnamed,
        "figures": figures,
        "devices": table,
    }


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def render() -> str:
    """The table as JSON, one device (and one figures row) per line: diffs stay readable."""
    data = build()
    head = {k: v for k, v in data.items() if k not in ("devices", "figures")}
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2]
    figures = ",\n".join(f"  {json.dumps(name, ensure_ascii=False)}: "
                         f"{json.dumps(values, separators=(',', ':'))}"
                         for name, values in data["figures"].items())
    devices = ",\n".join(f"  {json.dumps(d, ensure_ascii=False, separators=(',', ':'))}"
                         for d in data["devices"])
    return f'{text},\n "figures": {{\n{figures}\n }},\n "devices": [\n{devices}\n ]\n}}\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed gpus.json instead of writing it")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = TABLE.exists() and TABLE.read_text() == text
        print("gpus.json is up to date" if same else "gpus.json differs from its sources: run "
              "python dlws/stack/data/regenerate.py", file=sys.stderr)
        return 0 if same else 1
    TABLE.write_text(text)
    print(f"wrote {TABLE} ({len(json.loads(text)['devices'])} devices)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
