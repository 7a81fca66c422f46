"""Extract NVIDIA's own GPU lists into the compact files under dlws/stack/data/sources/ (online).

This is the one step that needs the network or downloaded files; dlws/stack/data/regenerate.py
then builds dlws/stack/data/gpus.json from the extracts alone, offline.

Inputs (each recorded with its version in sources/SOURCES.json):

+ --driver-deb: Debian's nvidia-driver packages (`apt-get download nvidia-driver=VERSION`);
  each carries NVIDIA's /usr/share/doc/nvidia-driver/supported-gpus.json.gz
+ --detect-deb: Debian's nvidia-detect packages; /usr/share/nvidia/*.ids are Debian's per-branch
  device ID lists
+ --pci-ids-deb: Debian's pci.ids package (/usr/share/misc/pci.ids), for lspci's names
+ --open-modules-git: a clone of github.com/NVIDIA/open-gpu-kernel-modules; the "Compatible
  GPUs" table of README.md is read at every release tag

Run: python tools/gpu_sources.py --driver-deb nvidia-driver_550.163.01-2_amd64.deb ...
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "dlws" / "stack" / "data" / "sources"
SUPPORTED_GPUS = "./usr/share/doc/nvidia-driver/supported-gpus.json.gz"
PCI_IDS = "./usr/share/misc/pci.ids"
# "| NVIDIA H200                                  | 2335 10DE 18BE |"
README_ROW = re.compile(r"^\|\s*(?P<name>[^|]*?)\s*\|\s*(?P<ids>[0-9A-F]{4}(?: [0-9A-F]{4} "
                        r"[0-9A-F]{4})?)\s*\|\s*$")
TAG = re.compile(r"^(\d{3})\.\d+(\.\d+)?$")
MIN_BRANCH = 535


def deb_member(deb: Path, member: str) -> bytes:
    """One file of a .deb, read with dpkg-deb (no install)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        return (Path(tmp) / member).read_bytes()


def deb_version(deb: Path) -> tuple[str, str]:
    out = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version"], check=True,
                         capture_output=True, text=True).stdout
    fields = dict(line.split(": ", 1) for line in out.splitlines())
    return fields["Package"], fields["Version"]


def supported_gpus(deb: Path) -> tuple[str, list[str]]:
    """supported-gpus.json as TSV rows: devid subvendor subdevice legacybranch kernelopen name."""
    chips = json.loads(gzip.decompress(deb_member(deb, SUPPORTED_GPUS)))["chips"]
    rows = []
    for chip in chips:
        rows.append("\t".join([
            chip["devid"][2:].upper(),
            chip.get("subvendorid", "")[2:].upper(),
            chip.get("subdevid", "")[2:].upper(),
            chip.get("legacybranch", ""),
            "1" if "kernelopen" in chip.get("features", []) else "0",
            chip["name"],
        ]))
    return deb_version(deb)[1], rows


def detect_lists(deb: Path) -> tuple[str, list[str]]:
    """nvidia-detect's lists as rows: devid, the lists naming it (nvidia, tesla-535, ...)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        lists: dict[str, list[str]] = {}
        for path in sorted((Path(tmp) / "usr/share/nvidia").glob("*.ids")):
            name = path.stem.removeprefix("nvidia-") if path.stem != "nvidia" else "nvidia"
            for line in path.read_text().split():
                if line.upper().startswith("10DE"):
                    lists.setdefault(line[4:].upper(), []).append(name)
    rows = [f"{devid}\t{','.join(names)}" for devid, names in sorted(lists.items())]
    return deb_version(deb)[1], rows


def pci_ids(deb: Path) -> tuple[str, list[str], str]:
    """The NVIDIA vendor block's device lines of pci.ids: devid, name (subsystems dropped)."""
    text = deb_member(deb, PCI_IDS).decode("utf-8", "replace")
    version = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                    if line.startswith("#\tVersion:")), "")
    rows, inside = [], False
    for line in text.splitlines():
        if re.match(r"^[0-9a-f]{4}  ", line):
            inside = line.startswith("10de  ")
            continue
        if inside and re.match(r"^\t[0-9a-f]{4}  ", line):
            devid, name = line[1:5], line[7:]
            rows.append(f"{devid.upper()}\t{name}")
    return deb_version(deb)[1], rows, version


def readme_tables(repo: Path) -> tuple[dict[str, str], list[str]]:
    """Per README row (name, device and subsystem IDs): per branch, the first release tag that
    lists it; only rows the newest tag of that branch still lists count for the branch."""
    tags = subprocess.run(["git", "-C", str(repo), "tag"], check=True, capture_output=True,
                          text=True).stdout.split()
    tags = sorted((t for t in tags if TAG.match(t)),
                  key=lambda t: tuple(int(p) for p in t.split(".")))
    by_branch: dict[str, list[str]] = {}
    for tag in tags:
        by_branch.setdefault(tag.split(".")[0], []).append(tag)
    first: dict[tuple[str, str], dict[str, str]] = {}
    newest = {}
    for branch, branch_tags in by_branch.items():
        newest[branch] = branch_tags[-1]
        last_rows = set(_rows(repo, branch_tags[-1]))
        for tag in branch_tags:
            for row in _rows(repo, tag):
                if row in last_rows:
                    first.setdefault(row, {}).setdefault(branch, tag)
    lines = []
    for (name, ids), branches in sorted(first.items(), key=lambda item: (item[0][1], item[0][0])):
        # Only the branches dlws plans (535 on) are kept: the extract stays small.
        branches = {b: t for b, t in branches.items() if int(b) >= MIN_BRANCH}
        if not branches:
            continue
        devid, _, subsystem = ids.partition(" ")
        sub_vendor, _, sub_device = subsystem.partition(" ")
        lines.append("\t".join([devid, sub_vendor, sub_device,
                                ",".join(f"{b}:{t}" for b, t in sorted(branches.items())),
                                name]))
    return newest, lines


def _rows(repo: Path, tag: str) -> list[tuple[str, str]]:
    text = subprocess.run(["git", "-C", str(repo), "show", f"{tag}:README.md"], check=True,
                          capture_output=True, text=True).stdout
    rows = []
    for line in text.split("## Compatible GPUs", 1)[-1].splitlines():
        match = README_ROW.match(line)
        if match and match["name"] not in ("Product Name",):
            rows.append((match["name"], match["ids"]))
    return rows


def write(name: str, header: str, rows: list[str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_text(header + "\n" + "\n".join(rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver-deb", type=Path, action="append", default=[])
    parser.add_argument("--detect-deb", type=Path, action="append", default=[])
    parser.add_argument("--pci-ids-deb", type=Path, required=True)
    parser.add_argument("--open-modules-git", type=Path, required=True)
    args = parser.parse_args(argv)
    manifest: dict[str, dict] = {}
    for deb in args.driver_deb:
        version, rows = supported_gpus(deb)
        name = f"supported-gpus-{version.split('-')[0]}.tsv"
        write(name, "# devid\tsubvendor\tsubdevice\tlegacybranch\tkernelopen\tname", rows)
        manifest[name] = {"source": "NVIDIA supported-gpus.json in Debian's nvidia-driver",
                          "file": SUPPORTED_GPUS[1:], "package": f"nvidia-driver {version}",
                          "entries": len(rows)}
    for deb in args.detect_deb:
        version, rows = detect_lists(deb)
        name = f"nvidia-detect-{version.split('-')[0]}.tsv"
        write(name, "# devid\tlists (/usr/share/nvidia/nvidia-<list>.ids)", rows)
        manifest[name] = {"source": "Debian nvidia-detect per-branch ID lists",
                          "file": "/usr/share/nvidia/*.ids", "package": f"nvidia-detect {version}",
                          "entries": len(rows)}
    version, rows, dated = pci_ids(args.pci_ids_deb)
    write("pci.ids-10de.tsv", "# devid\tname (pci.ids vendor 10de, device lines)", rows)
    manifest["pci.ids-10de.tsv"] = {"source": "The PCI ID Repository (pci-ids.ucw.cz)",
                                    "file": PCI_IDS[1:], "package": f"pci.ids {version}",
                                    "version": dated, "entries": len(rows)}
    newest, rows = readme_tables(args.open_modules_git)
    write("open-gpu-kernel-modules.tsv",
          "# devid\tsubvendor\tsubdevice\tbranch:first tag listing it (while the branch's "
          "newest tag still does)\tname", rows)
    commit = subprocess.run(["git", "-C", str(args.open_modules_git), "rev-parse", "HEAD"],
                            check=True, capture_output=True, text=True).stdout.strip()
    manifest["open-gpu-kernel-modules.tsv"] = {
        "source": "NVIDIA open-gpu-kernel-modules README.md 'Compatible GPUs', every release tag",
        "repository": "https://github.com/NVIDIA/open-gpu-kernel-modules", "commit": commit,
        "newest_tag_per_branch": newest, "entries": len(rows)}
    old = json.loads((OUT / "SOURCES.json").read_text()) if (OUT / "SOURCES.json").exists() \
        else {}
    old.update(manifest)
    buffer = io.StringIO()
    json.dump(dict(sorted(old.items())), buffer, indent=2)
    (OUT / "SOURCES.json").write_text(buffer.getvalue() + "\n")
    print(f"wrote {len(manifest)} extracts to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
