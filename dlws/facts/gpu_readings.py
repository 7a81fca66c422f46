"""Pure parsers and verdicts for what the hardware and security checks read from a host."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass

from dlws.command import Command, cmd

# nvidia-smi prints these instead of a value where a field does not apply to the card.
NOT_APPLICABLE = ("[N/A]", "N/A", "[Not Supported]", "Not Supported", "[Unknown Error]")

# Throttle (since R535 "clocks event") reason bits, from nvml.h `nvmlClocksEventReason*`:
# https://docs.nvidia.com/deploy/nvml-api/group__nvmlClocksEventReasons.html
THROTTLE_REASONS = {
    0x1: "GPU idle",
    0x2: "applications clocks setting",
    0x4: "SW power cap",
    0x8: "HW slowdown",
    0x10: "sync boost",
    0x20: "SW thermal slowdown",
    0x40: "HW thermal slowdown",
    0x80: "HW power brake slowdown",
    0x100: "display clock setting",
}
# Reasons that mean the card is cooked, starved of power or told so by the board: a workstation
# that shows one is not fit to train on. The others are policy (idle, power cap, app clocks).
BAD_THROTTLE_BITS = 0x8 | 0x20 | 0x40 | 0x80

# Xid codes that an application causes (illegal address, MMU fault from a bad kernel, a killed
# context); the rest point at the card, its memory, the bus or the driver. Table:
# https://docs.nvidia.com/deploy/xid-errors/index.html
APPLICATION_XIDS = frozenset({13, 31, 43, 45, 68})

# "NVRM: Xid (PCI:0000:01:00): 79, pid=1234, name=python, GPU has fallen off the bus."
XID_LINE = re.compile(r"NVRM: Xid \((?P<pci>[^)]*)\): (?P<code>\d+),\s*(?P<text>.*)$")
# "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build  (...)"
PROC_VERSION = re.compile(
    r"NVRM version:.*?Kernel Module\s+(?:for \S+\s+)?(?P<version>\d+\.\d+(?:\.\d+)?)")
# GNU dd: "268435456 bytes (268 MB, 256 MiB) copied, 0.181 s, 1.5 GB/s"
DD_SUMMARY = re.compile(r"^(?P<bytes>\d+) bytes .*copied, (?P<seconds>[0-9.e+-]+) s,", re.M)

PCIE_FIELDS = ("index", "pci.bus_id", "pstate", "pcie.link.gen.current", "pcie.link.width.current",
               "pcie.link.gen.max", "pcie.link.width.max")
ECC_FIELDS = ("index", "ecc.mode.current", "ecc.errors.uncorrected.volatile.total")
RETIRED_PAGES_FIELDS = ("index", "retired_pages.pending", "retired_pages.double_bit.count")
REMAPPED_ROWS_FIELDS = ("gpu_bus_id", "remapped_rows.correctable", "remapped_rows.uncorrectable",
                        "remapped_rows.pending", "remapped_rows.failure")
THROTTLE_FIELDS = ("index", "clocks_throttle_reasons.active")
POWER_FIELDS = ("index", "power.limit", "power.default_limit", "enforced.power.limit")
PERSISTENCE_FIELDS = ("index", "persistence_mode")
# Performance states where the link runs at full speed; idle cards (P8) drop to gen1 on purpose
# to save power, which is not a fault.
BUSY_PSTATES = frozenset({"P0", "P1", "P2"})


def gpu_query(fields: tuple[str, ...], query: str = "query-gpu") -> Command:
    """The nvidia-smi command line that reads ``fields`` as headerless, unitless CSV."""
    return cmd("nvidia-smi", f"--{query}={','.join(fields)}", "--format=csv,noheader,nounits")


def parse_csv(text: str, fields: tuple[str, ...]) -> list[dict[str, str | None]]:
    """nvidia-smi CSV (noheader, nounits), one dict per row; "[N/A]"-style values become None.

    >>> parse_csv("0, 5, 16\\n", ("index", "pcie.link.gen.current", "pcie.link.width.current"))
    [{'index': '0', 'pcie.link.gen.current': '5', 'pcie.link.width.current': '16'}]
    """
    rows = csv.reader(io.StringIO(text), skipinitialspace=True)
    parsed = []
    for row in rows:
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(fields):
            raise ValueError(f"nvidia-smi row {row} does not match the fields {list(fields)}")
        parsed.append({f: (None if v.strip() in NOT_APPLICABLE else v.strip())
                       for f, v in zip(fields, row, strict=True)})
    return parsed


def _int(value: str | None) -> int | None:
    return None if value is None else int(float(value))


def meminfo_total_gib(meminfo: str) -> float:
    """MemTotal of /proc/meminfo in GiB."""
    kib = next(int(line.split()[1]) for line in meminfo.splitlines()
               if line.startswith("MemTotal:"))
    return kib / 2**20


def gpu_memory_gib(memory_total: str | None, unified: bool, system_gib: float) -> float:
    """The memory a GPU can use, GiB, as its machine reports it.

    + memory_total: nvidia-smi's memory.total in MiB (nounits); None where NVML reports none
      ("[N/A]", as on GB10, whose GPU has no framebuffer of its own)
    + unified: the model's memory is the system's (dlws.stack GpuModel.unified_memory): then
      the system's memory is the GPU's, whatever NVML says
    + system_gib: MemTotal of /proc/meminfo (meminfo_total_gib)

    A GPU with a framebuffer whose NVML reading is missing raises ValueError: that is a fault,
    not a small GPU.
    """
    if unified:
        return system_gib
    if memory_total is None:
        raise ValueError("NVML reports no memory.total for a GPU with its own framebuffer")
    return int(float(memory_total)) / 1024


@dataclass(frozen=True)
class Verdict:
    """One GPU's reading judged: ``problem`` is None when it is healthy, ``note`` says why else."""

    gpu: str
    problem: str | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None


def pcie_verdict(row: dict[str, str | None]) -> Verdict:
    """A link narrower than the slot allows is a fault; a slower one only under load (P0-P2)."""
    gpu = row["index"] or "?"
    gen, width = _int(row["pcie.link.gen.current"]), _int(row["pcie.link.width.current"])
    gen_max, width_max = _int(row["pcie.link.gen.max"]), _int(row["pcie.link.width.max"])
    if None in (gen, width, gen_max, width_max):
        return Verdict(gpu, note="PCIe link not reported (SXM/NVLink-only board?)")
    link = f"gen{gen} x{width} (max gen{gen_max} x{width_max})"
    if width < width_max:
        return Verdict(gpu, f"PCIe link {link}: fewer lanes than the slot and card allow "
                            "(card seating, riser or BIOS lane split)")
    if gen < gen_max and row.get("pstate") in BUSY_PSTATES:
        return Verdict(gpu, f"PCIe link {link} while busy ({row['pstate']}): the link trained "
                            "below its generation (riser, cable or BIOS PCIe setting)")
    if gen < gen_max:
        return Verdict(gpu, note=f"PCIe link {link} at {row.get('pstate')}: idle cards slow the "
                                 "link down to save power")
    return Verdict(gpu, note=f"PCIe link {link}")


def ecc_verdict(row: dict[str, str | None]) -> Verdict:
    """Uncorrected ECC errors since the driver loaded; cards without ECC pass with a note."""
    gpu = row["index"] or "?"
    errors = _int(row["ecc.errors.uncorrected.volatile.total"])
    if errors is None:
        return Verdict(gpu, note=f"ECC not reported (mode {row.get('ecc.mode.current')})")
    if errors > 0:
        return Verdict(gpu, f"{errors} uncorrected ECC errors since the driver loaded "
                            "(the card's memory is failing or a row remap is pending)")
    return Verdict(gpu, note="0 uncorrected ECC errors")


def retired_pages_verdict(row: dict[str, str | None]) -> Verdict:
    """Pre-Ampere memory repair: a pending retirement needs a reset, double-bit ones a look."""
    gpu = row["index"] or "?"
    pending = row["retired_pages.pending"]
    double = _int(row["retired_pages.double_bit.count"])
    if pending is None and double is None:
        return Verdict(gpu, note="page retirement not reported (Ampere and newer remap rows)")
    if pending and pending.lower() in ("yes", "1"):
        return Verdict(gpu, "a page retirement is pending: reset the GPU or reboot")
    if double:
        return Verdict(gpu, f"{double} pages retired for double-bit ECC errors")
    return Verdict(gpu, note="no pages retired for double-bit errors")


def remapped_rows_verdict(row: dict[str, str | None]) -> Verdict:
    """Ampere+ memory repair: a pending remap needs a reset, a failed one means RMA."""
    gpu = row["gpu_bus_id"] or "?"
    if row["remapped_rows.failure"] is None and row["remapped_rows.pending"] is None:
        return Verdict(gpu, note="row remapping not reported (pre-Ampere or consumer card)")
    if (row["remapped_rows.failure"] or "").lower() in ("yes", "1"):
        return Verdict(gpu, "a row remapping failed: the card's memory cannot be repaired (RMA)")
    if (row["remapped_rows.pending"] or "").lower() in ("yes", "1"):
        return Verdict(gpu, "a row remapping is pending: reset the GPU or reboot")
    return Verdict(gpu, note=f"{row['remapped_rows.uncorrectable']} rows remapped for "
                             "uncorrectable errors, none pending")


def throttle_reasons(mask: int) -> list[str]:
    """The named reasons in a clocks_throttle_reasons.active bit mask."""
    return [name for bit, name in THROTTLE_REASONS.items() if mask & bit]


def throttle_verdict(row: dict[str, str | None]) -> Verdict:
    """Hardware or thermal slowdown active now is a fault; idle and power caps are not."""
    gpu = row["index"] or "?"
    raw = row["clocks_throttle_reasons.active"]
    if raw is None:
        return Verdict(gpu, note="throttle reasons not reported")
    mask = int(raw, 16)
    bad = throttle_reasons(mask & BAD_THROTTLE_BITS)
    if bad:
        return Verdict(gpu, f"clocks held down by {', '.join(bad)} ({raw}): check cooling, "
                            "power cables and the PSU")
    return Verdict(gpu, note=f"active reasons: {', '.join(throttle_reasons(mask)) or 'none'}")


def power_verdict(row: dict[str, str | None], min_fraction: float = 1.0) -> Verdict:
    """The enforced power limit against the card's default (``min_fraction`` of it at least)."""
    gpu = row["index"] or "?"
    enforced = row["enforced.power.limit"] or row["power.limit"]
    default = row["power.default_limit"]
    if enforced is None or default is None:
        return Verdict(gpu, note="power limit not reported")
    enforced_w, default_w = float(enforced), float(default)
    if enforced_w < default_w * min_fraction - 0.5:
        return Verdict(gpu, f"power limit {enforced_w:.0f} W, under {min_fraction:.0%} of the "
                            f"card's default {default_w:.0f} W (nvidia-smi -pl, or "
                            "gpu_min_power_limit_fraction where the cap is meant)")
    return Verdict(gpu, note=f"power limit {enforced_w:.0f} W (default {default_w:.0f} W)")


def persistence_verdict(row: dict[str, str | None], expected: bool) -> Verdict:
    """Persistence mode as nvidia_driver_persistenced asks."""
    gpu = row["index"] or "?"
    enabled = (row["persistence_mode"] or "").lower() == "enabled"
    if enabled != expected:
        return Verdict(gpu, f"persistence mode {row['persistence_mode']}, "
                            f"nvidia_driver_persistenced = {expected}")
    return Verdict(gpu, note=f"persistence mode {row['persistence_mode']}")


@dataclass(frozen=True)
class Xid:
    """One Xid event from the kernel log."""

    pci: str
    code: int
    text: str

    @property
    def hardware(self) -> bool:
        return self.code not in APPLICATION_XIDS


def parse_xids(log: str) -> list[Xid]:
    """The ``NVRM: Xid`` events of a kernel log (dmesg or journalctl -k)."""
    xids = []
    for line in log.splitlines():
        match = XID_LINE.search(line)
        if match:
            xids.append(Xid(match["pci"], int(match["code"]), match["text"].strip()))
    return xids


def hardware_xids(log: str) -> list[Xid]:
    """Xid events that point at the card, its memory, the bus or the driver."""
    return [x for x in parse_xids(log) if x.hardware]


def parse_modinfo(text: str) -> dict[str, str]:
    """``modinfo nvidia`` as a dict (first value of each field)."""
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and key.strip() not in info:
            info[key.strip()] = value.strip()
    return info


def module_flavour(license_text: str) -> str:
    """open (``Dual MIT/GPL``) or proprietary (``NVIDIA``) kernel modules."""
    return "open" if "MIT" in license_text else "proprietary"


def loaded_driver_version(proc_version: str) -> str | None:
    """The kernel module version in /proc/driver/nvidia/version, or None."""
    match = PROC_VERSION.search(proc_version)
    return match["version"] if match else None


def loaded_modules(proc_modules: str) -> set[str]:
    """Names of the loaded kernel modules in /proc/modules."""
    return {line.split()[0] for line in proc_modules.splitlines() if line.strip()}


def dd_read_mib_s(dd_stderr: str) -> float:
    """MiB/s from GNU dd's summary line (raises ValueError where there is none)."""
    match = DD_SUMMARY.search(dd_stderr)
    if not match:
        raise ValueError(f"no dd summary in: {dd_stderr.strip()[-300:]!r}")
    return int(match["bytes"]) / 2**20 / max(float(match["seconds"]), 1e-9)


def deb822_stanzas(content: str, comments: bool = True) -> list[dict[str, str]]:
    """The stanzas of a deb822 ``.sources`` file as {lower-case field: value}; continuation and
    comment lines are skipped, and with ``comments=False`` a value's trailing ``# ...`` too."""
    stanzas = []
    for stanza in re.split(r"\n\s*\n", content):
        fields = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith((" ", "\t", "#")):
                fields[key.strip().lower()] = (value if comments
                                               else value.split("#", 1)[0]).strip()
        stanzas.append(fields)
    return stanzas


# An option that switches signature checks off, in any spelling apt accepts: `trusted=yes`,
# `trusted=true`, `Trusted+=...`, a deb822 `Trusted:` field of any value. dlws writes none.
_TRUSTED_OPTION = re.compile(r"(?i)^trusted\s*[-+]?=")
# A one-line entry: its type, then any whitespace (a tab too: apt reads `deb\thttp://...`).
_ONE_LINE = re.compile(
    r"^(?P<type>deb(?:-src)?)(?=\s)\s*(?:\[(?P<options>[^\]]*)\])?\s*(?P<rest>.*)$")


def one_line_entry(line: str) -> dict[str, str] | None:
    """A one-line source as {"type", "options" (lower-case key -> value), "trusted" (the raw
    option, or ""), "rest"}; None for a comment, a blank or another type."""
    match = _ONE_LINE.match(line.split("#", 1)[0].strip())
    if not match:
        return None
    options, trusted = {}, ""
    for option in (match["options"] or "").split():
        key, _, value = option.partition("=")
        if _TRUSTED_OPTION.match(option):
            trusted = option
        options[key.rstrip("+-").lower()] = value
    return {"type": match["type"], "options": options, "trusted": trusted, "rest": match["rest"]}


def source_entry(path: str, content: str, number: int) -> dict[str, str] | None:
    """The entry apt names `path:number` (apt-get indextargets' Sourcesentry): the number-th
    line of a one-line file, the number-th stanza with fields of a deb822 file, as
    {"entry": text, "signed-by": value, "trusted": the option that disables checks or ""}."""
    if path.endswith(".sources"):
        stanzas = [fields for fields in deb822_stanzas(content, comments=False) if fields]
        if not 1 <= number <= len(stanzas):
            return None
        fields = stanzas[number - 1]
        return {"entry": f"{fields.get('uris', '?')} {fields.get('suites', '')}".strip(),
                "signed-by": fields.get("signed-by", ""),
                "trusted": f"Trusted: {fields['trusted']}" if "trusted" in fields else ""}
    lines = content.splitlines()
    if not 1 <= number <= len(lines):
        return None
    parsed = one_line_entry(lines[number - 1])
    if parsed is None:
        return None
    return {"entry": " ".join(lines[number - 1].split()), "signed-by":
            parsed["options"].get("signed-by", ""), "trusted": parsed["trusted"]}


def unsigned_apt_sources(files: dict[str, str]) -> list[str]:
    """Apt source entries (one-line and deb822) that carry no ``signed-by`` or an option that
    switches signature checks off (``trusted=`` of any value, deb822 ``Trusted:``).

    ``files`` maps a path to its content; each problem names the file and the entry.
    """
    problems = []
    for path, content in files.items():
        if path.endswith(".sources"):
            for fields in deb822_stanzas(content, comments=False):
                if "types" not in fields or fields.get("enabled", "yes").lower() == "no":
                    continue
                entry = f"{path}: {fields.get('uris', '?')} {fields.get('suites', '')}".strip()
                if "trusted" in fields:
                    problems.append(f"{entry}: Trusted: {fields['trusted']}")
                elif not fields.get("signed-by"):
                    problems.append(f"{entry}: no Signed-By")
        else:
            for line in content.splitlines():
                parsed = one_line_entry(line)
                if parsed is None:
                    continue
                shown = " ".join(line.split("#", 1)[0].split())
                if parsed["trusted"]:
                    problems.append(f"{path}: {shown}: {parsed['trusted']}")
                elif not parsed["options"].get("signed-by"):
                    problems.append(f"{path}: {shown}: no signed-by")
    return problems


def apt_components(files: dict[str, str]) -> set[str]:
    """Components of the enabled ``deb`` entries (one-line and deb822), comments left out.

    A commented-out line, a stanza with ``Enabled: no`` and a ``deb-src`` entry give apt no
    binary packages, so they do not count.
    """
    found: set[str] = set()
    for path, content in files.items():
        if path.endswith(".sources"):
            for fields in deb822_stanzas(content, comments=False):
                if "deb" not in fields.get("types", "").split():
                    continue
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                found.update(fields.get("components", "").split())
        else:
            for line in content.splitlines():
                line = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
                if len(line) >= 4 and line[0] == "deb":
                    found.update(line[3:])
    return found


# The user space's version from the library it loads: ldconfig's libnvidia-ml.so.1 resolves
# to ".../libnvidia-ml.so.535.216.01" on Debian, Ubuntu and NVIDIA's repository alike.
NVML_LIBRARY = re.compile(r"libnvidia-ml\.so\.(?P<version>\d+\.\d+(?:\.\d+)?)$")
INSTALLED_NVML_COMMAND = (
    "p=$(ldconfig -p 2>/dev/null | awk '/libnvidia-ml\\.so\\.1 / {print $NF; exit}'); "
    '[ -n "$p" ] && readlink -f -- "$p" || true'
)


def installed_nvml_version(resolved_path: str) -> str | None:
    """The installed user space's version from the resolved libnvidia-ml.so.1 path, or None."""
    match = NVML_LIBRARY.search(resolved_path.strip())
    return match["version"] if match else None


def reboot_pending(loaded: str | None, installed: str | None) -> str | None:
    """Why a reboot is pending (the loaded module is not the installed user space), or None.

    This is the state that makes every CUDA program fail with "Failed to initialize NVML:
    Driver/library version mismatch" after unattended-upgrades moved the user space.
    """
    if not loaded or not installed or loaded == installed:
        return None
    return (f"the loaded NVIDIA kernel module is {loaded} but the installed user space "
            f"(libnvidia-ml) is {installed}: NVML and CUDA fail with 'Driver/library version "
            f"mismatch' until the host reboots; fix: reboot it (sudo reboot) so that the "
            f"{installed} module loads")
