"""GPUs: find a model by name or PCI ID, and the limits the host's GPUs put on every stage."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable

from dlws.stack.records import HostFacts, StackError, StackRequest
from dlws.stack.table import (
    ARCHES,
    GpuModel,
    OsRelease,
    device_model,
    first_cuda,
    gpu_table,
    version_key,
)

# A PCI ID as people and tools write it, with an optional subsystem: "10de:2335", "2335",
# "0x2335", "[10de:2335]", "10de:2335 10de:18be", "10de:2335:10de:18be", README's
# "2335 10DE 18BE", lspci -vmmnn's "SDevice: 18be" is read by the fact, not here.
_PCI_ID = re.compile(
    r"^\[?(?:(?:0x)?10de:)?(?:0x)?(?P<device>[0-9a-f]{4})\]?"
    r"(?:[ :](?:(?:0x)?(?P<sub_vendor>[0-9a-f]{4})[: ](?:0x)?(?P<sub_device>[0-9a-f]{4})))?$")
_NAME_PREFIXES = ("nvidia ", "geforce ", "tesla ", "quadro ", "nvidia corporation ")
# lspci's name: "NVIDIA Corporation AD102 [GeForce RTX 4090] [10de:2684] (rev a1)", or its
# bracketed part alone.
_LSPCI_NAME = re.compile(r"^(?:nvidia corporation )?(?P<chip>[a-z]{2}\d{2,3}\w*) "
                         r"\[(?P<name>[^\]]+)\](?: \[10de:(?P<device>[0-9a-f]{4})\])?")


_IN_LSPCI_LINE = re.compile(r"\[10de:([0-9a-f]{4})\]")


def _short_name(name: str) -> str:
    """A name without vendor/brand prefixes, lower case: "NVIDIA GeForce RTX 4090" -> "rtx 4090"."""
    text = " ".join(name.lower().split())
    changed = True
    while changed:
        changed = False
        for prefix in _NAME_PREFIXES:
            if text.startswith(prefix):
                text, changed = text[len(prefix):], True
    return text


@functools.cache
def _index() -> dict[str, GpuModel]:
    """Every way a name reaches a model: nvidia-smi's name (short form too), the slug, lspci's
    bracketed name ("geforce rtx 4090", "h200 sxm 141gb"); built on first use."""
    index: dict[str, GpuModel] = {}
    devices, models_by_name = gpu_table()[:2]
    for name, model in models_by_name.items():
        for key in (name.lower(), _short_name(name), model.slug,
                    re.sub(r"[^a-z0-9]+", "-", name.lower())):
            index.setdefault(key, model)
    for device_id, device in devices.items():
        if device["lspci"]:
            match = _LSPCI_NAME.match(device["lspci"].lower())
            if match:
                model = device_model(device_id)
                if model is not None:
                    for key in (match["name"], _short_name(match["name"]),
                                device["lspci"].lower()):
                        index.setdefault(key, model)
    return index


def find_gpu(text: str) -> GpuModel:
    """The GPU model named by an nvidia-smi name (any case, with or without the "NVIDIA " or
    "GeForce " prefix), lspci's name ("AD102 [GeForce RTX 4090]", with or without "[10de:2684]"),
    a PCI ID with or without its subsystem ("10de:2684", "2684", "10de:2335:10de:18be") or a
    slug ("rtx-4090"); StackError for unknown and legacy-only GPUs."""
    wanted = " ".join(text.strip().lower().split())
    models_by_name, by_name = gpu_table()[1], _index()
    model = None
    in_line = _IN_LSPCI_LINE.search(wanted)
    if in_line and not _PCI_ID.match(wanted):
        # a whole `lspci -nn` line: its [10de:xxxx] decides
        return find_gpu(in_line[1])
    match = _PCI_ID.match(wanted)
    if match:
        subsystem = (f"{match['sub_vendor']}:{match['sub_device']}" if match["sub_vendor"]
                     else None)
        model = device_model(match["device"], subsystem)
        if model is None:
            raise StackError("gpu_model", "unknown_gpu",
                             f"PCI ID 10de:{match['device']} is in none of NVIDIA's lists that "
                             "dlws reads (dlws/stack/data/sources/SOURCES.json): not an NVIDIA "
                             "GPU NVIDIA's drivers support, or newer than those lists; check "
                             "the ID `lspci -nn` shows, or regenerate the table "
                             "(docs/gpu-stack.md)")
    if model is None:
        lspci = _LSPCI_NAME.match(wanted)
        model = (models_by_name.get(" ".join(text.split())) or by_name.get(wanted)
                 or by_name.get(_short_name(wanted)))
        if model is None and lspci:
            model = by_name.get(lspci["name"])
    if model is None:
        names = [m.name for m in models_by_name.values() if m.branches]
        shorts = {_short_name(n): n for n in names}
        close = [shorts[s] for s in difflib.get_close_matches(_short_name(text), shorts, n=3)]
        if not close:
            close = difflib.get_close_matches(text.strip(), names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise StackError(
            "gpu_model",
            "unknown_gpu",
            f"no GPU model matches {text!r}; {hint}use the name nvidia-smi prints or the PCI ID "
            "(10de:xxxx) that `lspci -nn` shows",
        )
    if model.legacy or not model.branches:
        raise StackError("gpu_model", "legacy_gpu",
                         f"{model.name} ({', '.join(model.pci_ids)}) is supported only by "
                         f"NVIDIA's legacy {model.legacy or 'older'} driver branch, which dlws "
                         "does not install (NVIDIA supported-gpus.json); plan this host without "
                         "a GPU (gpu_count = 0)")
    return model


def cc_runs(cc: str, archs: Iterable[str]) -> bool:
    """Whether code compiled for `archs` runs on `cc`: a cubin runs on the same major with an
    equal or higher minor; PTX ("+PTX") is JIT-compiled for any newer GPU (CUDA C programming
    guide, "Binary Compatibility" and "PTX Compatibility")."""
    have = version_key(cc)
    for arch in archs:
        ptx = arch.endswith("+PTX")
        built = version_key(arch.removesuffix("+PTX"))
        if built[0] == have[0] and built[1] <= have[1]:
            return True
        if ptx and built <= have:
            return True
    return False


def label(os_release: OsRelease) -> str:
    return f"{os_release.os_id.capitalize()} {os_release.release}"


def mm(version: str) -> str:
    """major.minor of a version."""
    return ".".join(version.split(".")[:2])


class Context:
    """One resolution's inputs and what the GPUs imply; the stages read it and add notes."""

    def __init__(self, facts: HostFacts, request: StackRequest, os_release: OsRelease) -> None:
        self.facts = facts
        self.request = request
        self.os = os_release
        self.models = [find_gpu(gpu) for gpu in facts.gpus]
        self.notes: list[str] = []
        self.archs = [ARCHES[m.arch] for m in self.models]
        self.ccs = sorted({m.compute_capability for m in self.models}, key=version_key)

    def check_machine(self) -> None:
        """Refuse a GPU that cannot be in this machine: a Grace superchip or GB10 (Arm only,
        sources/machines.tsv) reported or declared on an x86_64 host."""
        for model in dict.fromkeys(self.models):
            if model.machines and self.facts.machine not in model.machines:
                raise StackError(
                    "gpu_model", "gpu_not_on_this_machine",
                    f"{model.name} ({', '.join(model.pci_ids)}) exists only in "
                    f"{'/'.join(model.machines)} (Arm) systems: it is part of an NVIDIA Grace "
                    f"superchip or SoC, and this host is {self.facts.machine} (uname -m); "
                    "declare the GPU this host has (gpu_model), or plan the Arm host itself "
                    "(python -m dlws.stack --machine aarch64)")

    def gpu_names(self) -> str:
        return ", ".join(sorted({f"{m.name} ({m.arch}, sm_{m.compute_capability.replace('.', '')})"
                                 for m in self.models}))

    def min_branch_for_gpus(self) -> int:
        """The oldest branch every GPU is listed for (NVIDIA's per-device-ID lists)."""
        firsts = [m.first_branch()[0] for m in self.models if m.first_branch()]
        return max(firsts, default=0)

    def max_branch_for_gpus(self) -> int | None:
        lasts = [a.last_driver_branch for a in self.archs if a.last_driver_branch is not None]
        return min(lasts) if lasts else None

    def supported_by(self, branch: int) -> bool:
        """Whether NVIDIA lists every GPU of the host for this branch (per device ID)."""
        return all(m.supports(branch) for m in self.models)

    def unverified_on(self, branch: int) -> list[str]:
        """Notes for GPUs whose support by this branch is inferred, not listed by NVIDIA."""
        why = {"chip": "assumed from its chip's listed devices (no NVIDIA list names the ID)",
               "assumed": "assumed from R595's list (no list of this branch was read)",
               "arch": "carried by architecture to R580 (NVIDIA lists only to 550 here)"}
        notes = []
        for model in dict.fromkeys(self.models):
            evidence = dict(model.branches).get(branch)
            if evidence in why:
                notes.append(f"R{branch} support for {model.name} ({', '.join(model.pci_ids)}) "
                             f"is {why[evidence]}: unverified")
        return notes

    def unsupported_on(self, branch: int) -> str:
        """"NVIDIA H200 (10de:2335): first listed by R550 (550.40.65)" for each GPU the branch
        lacks."""
        parts = []
        for model in dict.fromkeys(m for m in self.models if not m.supports(branch)):
            first = [b for b, _ in model.branches if b > branch] or [b for b, _ in model.branches]
            newest = [b for b, _ in model.branches if b < branch]
            where = (f"first listed by R{first[0]} ({dict(model.branches)[first[0]]})"
                     if first and first[0] > branch else
                     f"last listed by R{newest[-1]}" if newest else "listed by no branch")
            parts.append(f"{model.name} ({', '.join(model.pci_ids)}): {where}")
        return "; ".join(parts)

    def module_policies(self) -> set[str]:
        return {m.kernel_modules or ARCHES[m.arch].kernel_modules for m in self.models}

    def cuda_fits_gpus(self, cuda: str) -> bool:
        for arch in self.archs:
            if arch.last_cuda_major is not None and version_key(cuda)[0] > arch.last_cuda_major:
                return False
        return all(version_key(first_cuda(cc)) <= version_key(cuda) for cc in self.ccs)
