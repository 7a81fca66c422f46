"""GPUs: find a model by name or PCI ID, and the limits the host's GPUs put on every stage."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from dlws.stack.records import HostFacts, StackError, StackRequest
from dlws.stack.table import (
    ARCHES,
    CUDA_MIN_DRIVER,
    GPU_MODELS,
    GpuModel,
    OsRelease,
    first_cuda,
    min_branch_for_cuda,
    version_key,
)

_PCI_ID = re.compile(r"^(?:(?:0x)?10de:)?(?:0x)?([0-9a-f]{4})$")
_NAME_PREFIXES = ("nvidia ", "geforce ", "tesla ", "quadro ")


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


def find_gpu(text: str) -> GpuModel:
    """The GPU model named by an nvidia-smi name (any case, with or without the "NVIDIA " or
    "GeForce " prefix), a PCI ID ("10de:2684" or "2684") or a table slug ("rtx-4090")."""
    wanted = text.strip().lower()
    match = _PCI_ID.match(wanted)
    for model in GPU_MODELS:
        if match and f"10de:{match[1]}" in model.pci_ids:
            return model
        if wanted in (model.name.lower(), model.slug) or _short_name(wanted) == _short_name(
            model.name
        ):
            return model
    names = [m.name for m in GPU_MODELS]
    close = difflib.get_close_matches(text.strip(), names, n=3, cutoff=0.5)
    if not close:
        shorts = {_short_name(m.name): m.name for m in GPU_MODELS}
        close = [shorts[s] for s in difflib.get_close_matches(_short_name(text), shorts, n=3)]
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise StackError(
        "gpu_model",
        "unknown_gpu",
        f"no GPU model matches {text!r}; {hint}use the name nvidia-smi prints or the PCI ID "
        "(10de:xxxx) that `lspci -nn` shows, or add the model to dlws/stack/table.py",
    )



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

    def gpu_names(self) -> str:
        return ", ".join(sorted({f"{m.name} ({m.arch}, sm_{m.compute_capability.replace('.', '')})"
                                 for m in self.models}))

    def min_branch_for_gpus(self) -> int:
        needs = [min_branch_for_cuda(first_cuda(cc)) for cc in self.ccs
                 if first_cuda(cc) in CUDA_MIN_DRIVER]
        return max(needs, default=0)

    def max_branch_for_gpus(self) -> int | None:
        lasts = [a.last_driver_branch for a in self.archs if a.last_driver_branch is not None]
        return min(lasts) if lasts else None

    def module_policies(self) -> set[str]:
        return {m.kernel_modules or ARCHES[m.arch].kernel_modules for m in self.models}

    def cuda_fits_gpus(self, cuda: str) -> bool:
        for arch in self.archs:
            if arch.last_cuda_major is not None and version_key(cuda)[0] > arch.last_cuda_major:
                return False
        return all(version_key(first_cuda(cc)) <= version_key(cuda) for cc in self.ccs)
