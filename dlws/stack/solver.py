"""The GPU stack version solver: host facts and a request in, one consistent stack out."""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dlws.stack.table import (
    ARCHES,
    CUDA_MIN_DRIVER,
    DRIVER_BRANCHES,
    GPU_MODELS,
    LTSB,
    MINOR_COMPAT_MIN_BRANCH,
    OPEN_DEFAULT_FROM_BRANCH,
    OPEN_REQUIRED,
    OS_RELEASES,
    PROPRIETARY_ONLY,
    REPO_CUDNN,
    REPO_NCCL,
    TENSORFLOW_BUILDS,
    TENSORFLOW_UNSUPPORTED_CC_MAJORS,
    TORCH_BUILDS,
    TORCH_INDEX_URL,
    GpuModel,
    OsRelease,
    TensorFlowBuild,
    TorchBuild,
    first_cuda,
    min_branch_for_cuda,
    native_cuda,
    torch_arch_list,
    variant_cuda,
    version_key,
)

AUTO = "auto"
NONE = "none"
WHEELS = "wheels"
DISTRO = "distro"
CUDA_REPO = "cuda_repo"
OPEN = "open"
PROPRIETARY = "proprietary"


@dataclass(frozen=True)
class HostFacts:
    """What the solver needs to know about a host: its OS, its GPUs and its current driver."""

    os_id: str  # "debian" | "ubuntu"
    os_release: str  # "12", "13", "22.04", "24.04"
    gpus: tuple[str, ...] = ()  # one entry per GPU: a PCI ID ("10de:2684") or an nvidia-smi name
    installed_driver: str | None = None  # e.g. "535.183.01"
    in_container: bool = False
    secure_boot: bool | None = None


@dataclass(frozen=True)
class StackRequest:
    """What the inventory asks for; every field is "auto" unless pinned."""

    driver_branch: str = AUTO  # auto | none | "535" | "550" | ... (a branch in the table)
    driver_flavour: str = AUTO  # auto | open | proprietary
    driver_source: str = AUTO  # auto | distro | cuda_repo
    cuda: str = AUTO  # auto | none | "11.8" | "12.4" | "12.8" | "13.0" | ...
    cudnn: str = AUTO  # auto | none | wheels | a version ("9.0", "8.5", "9")
    tensorflow: str = AUTO  # auto | none | a version ("2.21.0")
    torch: str = AUTO  # auto | none | a version ("2.14.0")
    python: str = AUTO  # auto | the OS's Python ("3.12"): dlws builds its venv from it


# Each request field and the host-data key the deploy reads it from.
HOST_DATA_KEYS: dict[str, str] = {
    "driver_branch": "nvidia_driver_branch",
    "driver_flavour": "nvidia_driver_flavour",
    "driver_source": "nvidia_driver_source",
    "cuda": "cuda_version",
    "cudnn": "cudnn_version",
    "tensorflow": "frameworks_tensorflow",
    "torch": "frameworks_torch",
    "python": "python_env_python",
}


def request_from_host_data(data: Mapping[str, Any]) -> StackRequest:
    """The request in a host's data; missing or None keys mean "auto"."""
    values = {}
    for name, key in HOST_DATA_KEYS.items():
        value = data.get(key)
        values[name] = AUTO if value is None else str(value).strip()
    return StackRequest(**values)


@dataclass(frozen=True)
class Stack:
    """The resolved stack of one host: what the roles install and the checks expect."""

    os_id: str
    os_release: str
    gpus: tuple[str, ...]
    arch: str | None
    compute_capability: str | None
    driver_branch: str | None
    driver_flavour: str | None
    driver_source: str | None
    driver_keep_installed: bool
    cuda: str | None
    cuda_source: str | None
    cudnn: str | None
    cudnn_source: str | None
    nccl: str | None
    python: str
    tensorflow: str | None
    tensorflow_package: str | None
    torch: str | None
    torch_variant: str | None
    torch_index_url: str | None
    cuda_repo_path: str | None = None
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """The stack as JSON-ready data (tuples become lists)."""
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


class StackError(ValueError):
    """A request the solver refuses: the key at fault, the rule broken, and the fix."""

    def __init__(self, key: str, constraint: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.constraint = constraint
        self.message = message


# --- GPU lookup --------------------------------------------------------------------------------

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


# --- helpers -------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return HOST_DATA_KEYS[name]


def _mm(version: str) -> str:
    """major.minor of a version."""
    return ".".join(version.split(".")[:2])


def _in_range(python: str, low: str | None, high: str | None) -> bool:
    if low is None or high is None:
        return False
    return version_key(low) <= version_key(python) <= version_key(high)


def _label(os_release: OsRelease) -> str:
    return f"{os_release.os_id.capitalize()} {os_release.release}"


def _cc_runs(cc: str, archs: Iterable[str]) -> bool:
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


def _validate(request: StackRequest) -> None:
    """Refuse values that are not of any allowed form, before any rule runs."""
    choices = {
        "driver_flavour": (AUTO, OPEN, PROPRIETARY),
        "driver_source": (AUTO, DISTRO, CUDA_REPO),
    }
    for name, allowed in choices.items():
        value = getattr(request, name)
        if value not in allowed:
            hint = difflib.get_close_matches(value, allowed, n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise StackError(_key(name), "invalid_value",
                             f"got {value!r}{did}; allowed: {', '.join(allowed)}")
    versioned = {
        "cudnn": (AUTO, NONE, WHEELS),
        "tensorflow": (AUTO, NONE),
        "torch": (AUTO, NONE),
        "python": (AUTO,),
    }
    for name, words in versioned.items():
        value = getattr(request, name)
        if value not in words and not re.fullmatch(r"\d+(\.\d+){0,2}", value):
            raise StackError(_key(name), "invalid_value",
                             f"got {value!r}; use {', '.join(repr(w) for w in words)} or a "
                             "version like '3.12'")


# --- the solver ----------------------------------------------------------------------------------


def resolve(facts: HostFacts, request: StackRequest) -> Stack:
    """Resolve a request on a host into one consistent stack, or raise StackError saying why not.

    + facts: the host's OS, GPUs and installed driver
    + request: the inventory's pins; "auto" fields are chosen from the table

    .. code:: python

        resolve(HostFacts("ubuntu", "24.04", ("10de:2684",)), StackRequest()).driver_branch
        # "580"
    """
    os_release = OS_RELEASES.get((facts.os_id, facts.os_release))
    if os_release is None:
        supported = ", ".join(f"{o}-{r}" for o, r in OS_RELEASES)
        raise StackError("os_release", "unsupported_os",
                         f"{facts.os_id} {facts.os_release} is not supported; supported: "
                         f"{supported}. Provision one of those releases")
    _validate(request)
    return _Solver(facts, request, os_release).solve()


class _Solver:
    """One resolution; the steps run in dependency order: driver, CUDA, frameworks, cuDNN."""

    def __init__(self, facts: HostFacts, request: StackRequest, os_release: OsRelease) -> None:
        self.facts = facts
        self.request = request
        self.os = os_release
        self.models = [find_gpu(gpu) for gpu in facts.gpus]
        self.notes: list[str] = []
        self.archs = [ARCHES[m.arch] for m in self.models]
        self.ccs = sorted({m.compute_capability for m in self.models}, key=version_key)

    # GPU-derived limits ------------------------------------------------------------------------

    def _gpu_names(self) -> str:
        return ", ".join(sorted({f"{m.name} ({m.arch}, sm_{m.compute_capability.replace('.', '')})"
                                 for m in self.models}))

    def _min_branch_for_gpus(self) -> int:
        needs = [min_branch_for_cuda(first_cuda(cc)) for cc in self.ccs
                 if first_cuda(cc) in CUDA_MIN_DRIVER]
        return max(needs, default=0)

    def _max_branch_for_gpus(self) -> int | None:
        lasts = [a.last_driver_branch for a in self.archs if a.last_driver_branch is not None]
        return min(lasts) if lasts else None

    def _module_policies(self) -> set[str]:
        return {m.kernel_modules or ARCHES[m.arch].kernel_modules for m in self.models}

    def _cuda_fits_gpus(self, cuda: str) -> bool:
        for arch in self.archs:
            if arch.last_cuda_major is not None and version_key(cuda)[0] > arch.last_cuda_major:
                return False
        return all(version_key(first_cuda(cc)) <= version_key(cuda) for cc in self.ccs)

    # The solve --------------------------------------------------------------------------------

    def solve(self) -> Stack:
        python = self._python()
        cuda_request = self._cuda_request()
        branch, flavour, source = self._driver(cuda_request)
        keep = self._keep_installed(branch)
        effective_branch = branch or self._installed_branch()
        cuda, cuda_source = self._cuda(cuda_request, branch, source, effective_branch)
        tensorflow, tf_package = self._tensorflow(python)
        torch, variant = self._torch(python, effective_branch)
        cudnn, cudnn_source = self._cudnn(cuda, cuda_source, tf_package, variant)
        nccl = None
        if len(self.models) > 1 and cuda:
            # A system NCCL only matters for multi-GPU code compiled on the host; the frameworks'
            # wheels bring their own (nvidia-nccl-cu12/13).
            nccl = self.os.distro_nccl if cuda_source == DISTRO else REPO_NCCL
            if nccl is None:
                self.notes.append(f"{_label(self.os)} packages no NCCL; multi-GPU code compiled "
                                  "on the host must bring its own")
        if self.facts.secure_boot and branch:
            self.notes.append("Secure Boot is on: the DKMS-built NVIDIA modules must be signed "
                              "with a key enrolled as a MOK, or the driver will not load")
        repo_used = CUDA_REPO in (source, cuda_source, cudnn_source)
        archs = sorted({m.arch for m in self.models})
        return Stack(
            os_id=self.os.os_id,
            os_release=self.os.release,
            gpus=tuple(m.name for m in self.models),
            arch="+".join(archs) if archs else None,
            compute_capability="+".join(self.ccs) if self.ccs else None,
            driver_branch=str(branch) if branch else None,
            driver_flavour=flavour,
            driver_source=source,
            driver_keep_installed=keep,
            cuda=cuda,
            cuda_source=cuda_source,
            cudnn=cudnn,
            cudnn_source=cudnn_source,
            nccl=nccl,
            python=python,
            tensorflow=tensorflow,
            tensorflow_package=tf_package,
            torch=torch,
            torch_variant=variant,
            torch_index_url=TORCH_INDEX_URL.format(variant=variant) if variant else None,
            cuda_repo_path=self.os.cuda_repo_path if repo_used else None,
            notes=tuple(self.notes),
        )

    def _python(self) -> str:
        wanted = self.request.python
        if wanted != AUTO and _mm(wanted) != self.os.python:
            raise StackError(_key("python"), "python_not_os_python",
                             f"{_label(self.os)}'s Python is {self.os.python}, not {wanted}; "
                             "dlws builds its environment from the OS's Python: set "
                             f"python_env_python to 'auto' or {self.os.python!r}")
        return self.os.python

    def _installed_branch(self) -> int | None:
        if not self.facts.installed_driver:
            return None
        try:
            return int(self.facts.installed_driver.split(".")[0])
        except ValueError:
            return None

    def _keep_installed(self, branch: int | None) -> bool:
        installed = self._installed_branch()
        if installed is None:
            return False
        if branch is None:
            # No driver planned (a container, or driver "none"): whatever is there stays.
            return True
        if installed != branch:
            self.notes.append(f"the installed driver {self.facts.installed_driver} is replaced by "
                              f"the R{branch} branch")
            return False
        return True

    # CUDA request checks that do not depend on the driver ------------------------------------

    def _cuda_request(self) -> str | None:
        """The explicitly asked CUDA (major.minor), checked against the table and the GPUs."""
        wanted = self.request.cuda
        if wanted in (AUTO, NONE):
            return None
        cuda = _mm(wanted)
        if cuda not in CUDA_MIN_DRIVER:
            known = ", ".join(CUDA_MIN_DRIVER)
            extra = " (there is no CUDA 12.7)" if cuda == "12.7" else ""
            raise StackError(_key("cuda"), "unknown_cuda_version",
                             f"CUDA {wanted} is not in the table{extra}; known: {known}")
        for arch in self.archs:
            if arch.last_cuda_major is not None and version_key(cuda)[0] > arch.last_cuda_major:
                raise StackError(_key("cuda"), "cuda_too_new_for_gpu",
                                 f"CUDA {cuda} cannot compile for {self._gpu_names()}: CUDA "
                                 f"{arch.last_cuda_major}.x is the last for {arch.name} (CUDA "
                                 f"13.0 removed it); set cuda_version to "
                                 f"{arch.last_cuda_major}.x or 'auto'")
        for cc in self.ccs:
            if version_key(first_cuda(cc)) > version_key(cuda):
                raise StackError(_key("cuda"), "cuda_too_old_for_gpu",
                                 f"CUDA {cuda} predates {self._gpu_names()}, which needs CUDA "
                                 f"{first_cuda(cc)} or newer; set cuda_version to "
                                 f"{first_cuda(cc)} or newer, or 'auto'")
        return cuda

    # Driver -------------------------------------------------------------------------------------

    def _driver(self, cuda: str | None) -> tuple[int | None, str | None, str | None]:
        """The driver branch, kernel module flavour and source."""
        wanted = self.request.driver_branch
        if wanted == NONE:
            return None, None, None
        if wanted == AUTO:
            if not self.models:
                return None, None, None
            if self.facts.in_container:
                self.notes.append("in a container the host's driver is used; no driver planned")
                return None, None, None
            branch_request = None
        else:
            if not wanted.isdigit() or int(wanted) not in DRIVER_BRANCHES:
                known = ", ".join(str(b) for b in DRIVER_BRANCHES)
                raise StackError(_key("driver_branch"), "unknown_driver_branch",
                                 f"driver branch {wanted!r} is not in the table; known: {known}, "
                                 "or 'auto'/'none'")
            branch_request = int(wanted)
            self._check_branch_for_gpus(branch_request)
            if cuda and branch_request < min_branch_for_cuda(cuda):
                newest = native_cuda(branch_request)
                raise StackError(_key("cuda"), "driver_too_old_for_cuda",
                                 f"CUDA {cuda} needs driver >= {CUDA_MIN_DRIVER[cuda]} but "
                                 f"nvidia_driver_branch is {branch_request}; set "
                                 f"nvidia_driver_branch to {min_branch_for_cuda(cuda)} or newer, "
                                 f"or cuda_version to {newest} or older")
        need_open = self._need_open()
        sources = ([self.request.driver_source] if self.request.driver_source != AUTO
                   else [DISTRO, CUDA_REPO])
        error: StackError | None = None
        for source in sources:
            try:
                offered = self._branches(source, branch_request, cuda, need_open)
            except StackError as refused:
                error = refused  # with auto, the last source's reason (NVIDIA's repository)
                continue
            branch = self._prefer(offered)
            return branch, self._flavour(branch), source
        assert error is not None
        raise error

    def _check_branch_for_gpus(self, branch: int) -> None:
        if not self.models:
            return
        newest = self._max_branch_for_gpus()
        if newest is not None and branch > newest:
            raise StackError(_key("driver_branch"), "driver_too_new_for_gpu",
                             f"R{branch} does not support {self._gpu_names()}: R{newest} is its "
                             f"last branch; set nvidia_driver_branch to {newest} or older")
        oldest = self._min_branch_for_gpus()
        if branch < oldest:
            raise StackError(_key("driver_branch"), "driver_too_old_for_gpu",
                             f"R{branch} predates {self._gpu_names()}, which needs R{oldest} or "
                             f"newer; set nvidia_driver_branch to {oldest} or newer, or 'auto'")

    def _need_open(self) -> bool:
        """Whether the plan needs the open modules (asked for, or required by the GPU)."""
        policies = self._module_policies()
        flavour = self.request.driver_flavour
        if flavour == OPEN and PROPRIETARY_ONLY in policies:
            raise StackError(_key("driver_flavour"), "open_modules_unsupported",
                             f"the open kernel modules need Turing or newer (the GSP); "
                             f"{self._gpu_names()} runs only the proprietary ones: set "
                             "nvidia_driver_flavour to 'proprietary' or 'auto'")
        if OPEN_REQUIRED in policies and PROPRIETARY_ONLY in policies:
            raise StackError("gpu_model", "mixed_kernel_modules",
                             f"{self._gpu_names()} cannot share one driver: some need the open "
                             "modules, some only run the proprietary ones; split the host")
        if flavour == PROPRIETARY and OPEN_REQUIRED in policies:
            raise StackError(_key("driver_flavour"), "open_modules_required",
                             f"{self._gpu_names()} requires the open kernel modules; set "
                             "nvidia_driver_flavour to 'open' or 'auto'")
        return flavour == OPEN or OPEN_REQUIRED in policies

    def _branches(self, source: str, branch: int | None, cuda: str | None,
                  need_open: bool) -> list[int]:
        """Branches a source offers that fit the request; StackError naming the first misfit."""
        where = (f"{_label(self.os)}'s archive" if source == DISTRO
                 else f"NVIDIA's CUDA repository ({self.os.cuda_repo_path})")
        offered = list(self.os.distro_driver_branches if source == DISTRO
                       else self.os.repo_driver_branches)
        listed = ", ".join(str(b) for b in offered)
        other = CUDA_REPO if source == DISTRO else DISTRO
        if branch is not None:
            if branch not in offered:
                raise StackError(_key("driver_branch"), "source_lacks_driver_branch",
                                 f"{where} offers driver branches {listed}, not {branch}; set "
                                 f"nvidia_driver_branch to one of those, or nvidia_driver_source "
                                 f"to {other!r}")
            offered = [branch]
        if self.models:
            oldest, newest = self._min_branch_for_gpus(), self._max_branch_for_gpus()
            fit = [b for b in offered if b >= oldest and (newest is None or b <= newest)]
            if not fit:
                raise StackError(_key("driver_source"), "source_lacks_gpu_driver",
                                 f"{where} offers driver branches {listed}; {self._gpu_names()} "
                                 f"needs R{oldest} or newer; set nvidia_driver_source to "
                                 f"{other!r}")
            offered = fit
        if cuda is not None:
            if source == DISTRO and self.os.os_id == "debian" and cuda != self.os.distro_cuda:
                # NVIDIA's Debian repository carries its own nvidia-driver, libcuda1, ...
                # packages under Debian's names, so its toolkit is not mixed with Debian's driver.
                raise StackError(_key("cuda"), "source_lacks_cuda",
                                 f"{where} ships CUDA {self.os.distro_cuda} only, not {cuda}; set "
                                 f"cuda_version to {self.os.distro_cuda!r} or 'auto', or "
                                 "nvidia_driver_source to 'cuda_repo'")
            fit = [b for b in offered if b >= min_branch_for_cuda(cuda)]
            if not fit:
                raise StackError(_key("cuda"), "driver_too_old_for_cuda",
                                 f"CUDA {cuda} needs R{min_branch_for_cuda(cuda)} or newer and "
                                 f"{where} offers {listed}; set cuda_version to "
                                 f"{native_cuda(max(offered))} or older, or nvidia_driver_source "
                                 f"to {other!r}")
            offered = fit
        if need_open and source == DISTRO:
            fit = [b for b in offered if b in self.os.distro_open_branches]
            if not fit:
                raise StackError(_key("driver_flavour"), "source_lacks_open_modules",
                                 f"{where} has no open kernel module package for R"
                                 f"{'/R'.join(str(b) for b in offered)}; set "
                                 "nvidia_driver_source to 'cuda_repo'"
                                 + ("" if OPEN_REQUIRED in self._module_policies()
                                    else " or nvidia_driver_flavour to 'proprietary'"))
            offered = fit
        return offered

    @staticmethod
    def _prefer(offered: list[int]) -> int:
        """The newest long-term branch (security fixes for years, e.g. R580 to 2028-06), else the
        newest branch (NVIDIA "Supported Drivers and CUDA Toolkit Versions")."""
        long_term = [b for b in offered if DRIVER_BRANCHES[b].kind == LTSB]
        return max(long_term or offered)

    def _flavour(self, branch: int) -> str:
        wanted = self.request.driver_flavour
        if wanted != AUTO:
            return wanted
        policies = self._module_policies()
        if OPEN_REQUIRED in policies:
            return OPEN
        if PROPRIETARY_ONLY in policies:
            return PROPRIETARY
        # Open modules are NVIDIA's default only from R560; below it (Debian 12's 535, Debian
        # 13's 550) NVIDIA still defaulted to the proprietary ones and support for GeForce
        # cards in the open ones was not yet production quality (driver-installation-guide
        # "Kernel Modules"), so auto stays with proprietary there. "open" may be asked for.
        return OPEN if branch >= OPEN_DEFAULT_FROM_BRANCH else PROPRIETARY

    # CUDA ---------------------------------------------------------------------------------------

    def _cuda(self, cuda: str | None, branch: int | None, driver_source: str | None,
              effective_branch: int | None) -> tuple[str | None, str | None]:
        """The toolkit version and where it comes from."""
        offers = self._cuda_sources(branch, driver_source)
        if self.request.cuda == NONE:
            return None, None
        if cuda is None:  # auto
            if not self.models:
                return None, None
            for source, versions in offers:
                fit = [c for c in versions if self._cuda_fits_gpus(c)
                       and (effective_branch is None or min_branch_for_cuda(c) <= effective_branch)]
                if fit:
                    return max(fit, key=version_key), source
            self.notes.append("no CUDA toolkit offered for this OS fits the GPU and driver; none "
                              "planned (the frameworks' wheels bring their own runtime)")
            return None, None
        for source, versions in offers:
            if cuda in versions:
                if branch is None and effective_branch and effective_branch < min_branch_for_cuda(
                    cuda
                ):
                    self.notes.append(f"CUDA {cuda} needs R{min_branch_for_cuda(cuda)}; the "
                                      f"driver in use is R{effective_branch}")
                return cuda, source
        available = sorted({c for _, vs in offers for c in vs}, key=version_key)
        raise StackError(_key("cuda"), "source_lacks_cuda",
                         f"CUDA {cuda} is not offered for {_label(self.os)} by "
                         f"{' or '.join(s for s, _ in offers)}; available: "
                         f"{', '.join(available)}; set cuda_version to one of those or 'auto'")

    def _cuda_sources(self, branch: int | None,
                      driver_source: str | None) -> list[tuple[str, tuple[str, ...]]]:
        """Toolkit sources in order of preference, with the versions each offers."""
        distro = (DISTRO, (self.os.distro_cuda,) if self.os.distro_cuda else ())
        repo = (CUDA_REPO, self.os.repo_cuda)
        if self.os.os_id == "debian":
            # Debian: the toolkit comes from where the driver does (see _branches).
            if driver_source == DISTRO:
                return [distro]
            if driver_source == CUDA_REPO:
                return [repo]
            return [distro, repo]
        # Ubuntu: NVIDIA's cuda-toolkit-X-Y packages do not pull a driver, so they go with
        # Ubuntu's driver too; Ubuntu's own toolkit (11.5/12.0) lags, so it is only used when
        # asked for by version.
        if driver_source == CUDA_REPO:
            return [repo]
        if self.request.cuda == AUTO:
            return [repo]
        return [distro, repo]

    # Frameworks ---------------------------------------------------------------------------------

    def _tf_gpu_blocked(self) -> list[GpuModel]:
        return [m for m in self.models
                if version_key(m.compute_capability)[0] in TENSORFLOW_UNSUPPORTED_CC_MAJORS]

    def _tensorflow(self, python: str) -> tuple[str | None, str | None]:
        wanted = self.request.tensorflow
        if wanted == NONE:
            return None, None
        blocked = self._tf_gpu_blocked()
        if wanted == AUTO:
            if blocked:
                self.notes.append(f"TensorFlow skipped: its pip build does not support "
                                  f"{blocked[0].name} (sm_120; tensorflow#89272); use NVIDIA's "
                                  "NGC TensorFlow container")
                return None, None
            fits = [b for b in TENSORFLOW_BUILDS if _in_range(python, b.python_min, b.python_max)]
            if not fits:
                self.notes.append(f"TensorFlow skipped: no build in the table for Python {python}")
                return None, None
            build = max(fits, key=lambda b: version_key(b.version))
        else:
            build = self._tf_build(wanted)
            if blocked:
                raise StackError(_key("tensorflow"), "tensorflow_gpu_unsupported",
                                 f"TensorFlow's pip build does not support {blocked[0].name} "
                                 "(sm_120; tensorflow#89272): set frameworks_tensorflow = "
                                 "\"none\" to skip TensorFlow, or use NVIDIA's NGC TensorFlow "
                                 "container")
            if not _in_range(python, build.python_min, build.python_max):
                newest = max((b for b in TENSORFLOW_BUILDS
                              if _in_range(python, b.python_min, b.python_max)),
                             key=lambda b: version_key(b.version), default=None)
                fix = f"set frameworks_tensorflow to {newest.version} or 'auto'" if newest else (
                    "set frameworks_tensorflow to 'none'")
                raise StackError(_key("tensorflow"), "tensorflow_python",
                                 f"TensorFlow {build.version} supports Python {build.python_min}"
                                 f"-{build.python_max}; {_label(self.os)} has {python}: {fix}")
        version = build.version if wanted == AUTO else _full(wanted, build.version)
        package = (f"tensorflow[and-cuda]=={version}" if self.models
                   else f"tensorflow-cpu=={version}")
        return version, package

    @staticmethod
    def _tf_build(wanted: str) -> TensorFlowBuild:
        for build in TENSORFLOW_BUILDS:
            if _mm(build.version) == _mm(wanted):
                return build
        known = ", ".join(b.version for b in TENSORFLOW_BUILDS)
        raise StackError(_key("tensorflow"), "unknown_tensorflow_version",
                         f"TensorFlow {wanted} is not in the table; known: {known}, or 'auto'")

    def _torch(self, python: str, branch: int | None) -> tuple[str | None, str | None]:
        wanted = self.request.torch
        if wanted == NONE:
            return None, None
        if branch is None and self.models:
            self.notes.append("no driver planned or known: torch's CUDA build is chosen for the "
                              "GPU alone; cu13x builds need driver R580 or newer")
        if wanted == AUTO:
            for build in sorted(TORCH_BUILDS, key=lambda b: version_key(b.version), reverse=True):
                if not _in_range(python, build.python_min, build.python_max):
                    continue
                variant = self._torch_variant(build, branch)
                if variant:
                    return f"{build.version}.0", variant
            self.notes.append(f"PyTorch skipped: no build in the table fits Python {python}, "
                              "the GPU and the driver")
            return None, None
        build = self._torch_build(wanted)
        if build.python_min is None:
            self.notes.append(f"torch {build.version}'s Python range is not confirmed; check "
                              "that it ships wheels for Python " + python)
        elif not _in_range(python, build.python_min, build.python_max):
            raise StackError(_key("torch"), "torch_python",
                             f"torch {build.version} supports Python {build.python_min}-"
                             f"{build.python_max}; {_label(self.os)} has {python}: set "
                             "frameworks_torch to 'auto' or a release for that Python")
        variant = self._torch_variant(build, branch)
        if variant is None:
            if self._torch_variant(build, None) is None:
                raise StackError(_key("torch"), "torch_gpu_unsupported",
                                 f"torch {build.version} has no CUDA build for "
                                 f"{self._gpu_names()}; set frameworks_torch to 'auto' or an "
                                 "older release")
            raise StackError(_key("torch"), "driver_too_old_for_torch",
                             f"torch {build.version}'s CUDA builds need a newer driver than "
                             f"R{branch} (cu13x needs R580); set nvidia_driver_branch to 580 or "
                             "newer, or frameworks_torch to 'auto' or an older release")
        return _full(wanted, f"{build.version}.0"), variant

    @staticmethod
    def _torch_build(wanted: str) -> TorchBuild:
        for build in TORCH_BUILDS:
            if build.version == _mm(wanted):
                return build
        known = ", ".join(b.version for b in TORCH_BUILDS)
        raise StackError(_key("torch"), "unknown_torch_version",
                         f"torch {wanted} is not in the table; known: {known}, or 'auto'")

    def _torch_variant(self, build: TorchBuild, branch: int | None) -> str | None:
        """The newest stable CUDA variant of a build that runs the GPUs on the branch (then the
        experimental ones); "cpu" on a host without GPUs."""
        if not self.models:
            return "cpu"
        for variants in (build.stable, build.experimental):
            for variant in sorted(variants, key=lambda v: version_key(variant_cuda(v)),
                                  reverse=True):
                archs = torch_arch_list(variant, build.version)
                if not all(_cc_runs(cc, archs) for cc in self.ccs):
                    continue
                major = version_key(variant_cuda(variant))[0]
                if branch is not None and branch < MINOR_COMPAT_MIN_BRANCH[major]:
                    continue
                return variant
        return None

    # cuDNN --------------------------------------------------------------------------------------

    def _cudnn(self, cuda: str | None, cuda_source: str | None, tf_package: str | None,
               variant: str | None) -> tuple[str | None, str | None]:
        wanted = self.request.cudnn
        if wanted == NONE:
            return None, None
        if wanted == WHEELS:
            return WHEELS, WHEELS
        wheels_bring = bool(self.models) and (bool(tf_package) or variant not in (None, "cpu"))
        if wanted == AUTO:
            if wheels_bring:
                return WHEELS, WHEELS
            if cuda is None:
                return None, None
            offered = self.os.distro_cudnn if cuda_source == DISTRO else REPO_CUDNN
            if offered is None:
                self.notes.append(f"{_label(self.os)} packages no cuDNN; none planned")
                return None, None
            return offered, cuda_source
        if cuda is None:
            raise StackError(_key("cudnn"), "cudnn_needs_cuda",
                             f"a system cuDNN {wanted} needs a CUDA toolkit and none is planned; "
                             "set cuda_version, or cudnn_version to 'wheels' or 'none'")
        offered = self.os.distro_cudnn if cuda_source == DISTRO else REPO_CUDNN
        if offered is None or not (wanted == offered or wanted.startswith(offered + ".")
                                   or offered.startswith(wanted + ".")):
            where = (f"{_label(self.os)}'s archive" if cuda_source == DISTRO
                     else "NVIDIA's CUDA repository")
            raise StackError(_key("cudnn"), "source_lacks_cudnn",
                             f"{where} offers cuDNN {offered or 'none'}, not {wanted}; set "
                             f"cudnn_version to {offered!r}, 'auto' or 'wheels'")
        return wanted, cuda_source


def _full(wanted: str, default: str) -> str:
    """A pinned version as asked ("2.13.1"), or the table's with ".0" when only x.y was given."""
    return wanted if wanted.count(".") >= 2 else default
