"""Driver stage: the branch, kernel module flavour and source, and the packages that install it."""

from __future__ import annotations

import re

from dlws.stack.gpus import Context, label
from dlws.stack.records import (
    AUTO,
    CUDA_REPO,
    DISTRO,
    NONE,
    OPEN,
    PROPRIETARY,
    StackError,
    key_of,
)
from dlws.stack.table import (
    CUDA_MIN_DRIVER,
    DRIVER_BRANCHES,
    FABRIC_MANAGER_UNBRANCHED_FROM,
    LTSB,
    MINOR_COMPAT_MIN_BRANCH,
    NVLINK5_CC_MAJOR,
    NVLSM_FROM_BRANCH,
    OPEN_DEFAULT_FROM_BRANCH,
    OPEN_REQUIRED,
    PROPRIETARY_ONLY,
    REPO_PINNING_BRANCHES,
    TORCH_PYPI_AARCH64,
    min_branch_for_cuda,
    native_cuda,
    variant_cuda,
    version_key,
)

DESKTOP = "desktop"
HEADLESS = "headless"


def installed_branch(ctx: Context) -> int | None:
    if not ctx.facts.installed_driver:
        return None
    try:
        return int(ctx.facts.installed_driver.split(".")[0])
    except ValueError:
        return None


def keep_installed(ctx: Context, branch: int | None) -> bool:
    installed = installed_branch(ctx)
    if installed is None:
        return False
    if branch is None:
        # No driver planned (a container, or driver "none"): whatever is there stays.
        return True
    if installed != branch:
        ctx.notes.append(f"the installed driver {ctx.facts.installed_driver} is replaced by "
                          f"the R{branch} branch")
        return False
    return True


def choose_driver(ctx: Context, cuda: str | None) -> tuple[int | None, str | None, str | None]:
    """The driver branch, kernel module flavour and source."""
    wanted = ctx.request.driver_branch
    if wanted == NONE:
        return None, None, None
    if wanted == AUTO:
        if not ctx.models:
            return None, None, None
        if ctx.facts.in_container:
            ctx.notes.append("in a container the host's driver is used; no driver planned")
            return None, None, None
        branch_request = None
    else:
        if not wanted.isdigit() or int(wanted) not in DRIVER_BRANCHES:
            known = ", ".join(str(b) for b in DRIVER_BRANCHES)
            raise StackError(key_of("driver_branch"), "unknown_driver_branch",
                             f"driver branch {wanted!r} is not in the table; known: {known}, "
                             "or 'auto'/'none'")
        branch_request = int(wanted)
        _check_branch_for_gpus(ctx, branch_request)
        if cuda and branch_request < min_branch_for_cuda(cuda):
            newest = native_cuda(branch_request)
            raise StackError(key_of("cuda"), "driver_too_old_for_cuda",
                             f"CUDA {cuda} needs driver >= {CUDA_MIN_DRIVER[cuda]} but "
                             f"nvidia_driver_branch is {branch_request}; set "
                             f"nvidia_driver_branch to {min_branch_for_cuda(cuda)} or newer, "
                             f"or cuda_version to {newest} or older")
    need_open = _need_open(ctx)
    sources = ([ctx.request.driver_source] if ctx.request.driver_source != AUTO
               else [DISTRO, CUDA_REPO])
    error: StackError | None = None
    for source in sources:
        try:
            offered = _branches(ctx, source, branch_request, cuda, need_open)
        except StackError as refused:
            error = refused  # with auto, the last source's reason (NVIDIA's repository)
            continue
        branch = _prefer(offered)
        flavour = _flavour(ctx, branch)
        try:
            _check_open_quality(ctx, branch, flavour)
        except StackError as refused:
            error = refused
            continue
        return branch, flavour, source
    assert error is not None
    raise error


def _check_branch_for_gpus(ctx: Context, branch: int) -> None:
    if not ctx.models:
        return
    newest = ctx.max_branch_for_gpus()
    if newest is not None and branch > newest:
        raise StackError(key_of("driver_branch"), "driver_too_new_for_gpu",
                         f"R{branch} does not support {ctx.gpu_names()}: R{newest} is its "
                         f"last branch; set nvidia_driver_branch to {newest} or older")
    if not ctx.supported_by(branch):
        fits = [b for b in DRIVER_BRANCHES if ctx.supported_by(b)]
        first = min([b for b in fits if b > branch] or fits, default=None)
        fix = (f"set nvidia_driver_branch to {first} or newer, or 'auto'" if first
               else "no branch in the table supports all of them: split the host")
        raise StackError(key_of("driver_branch"), "driver_too_old_for_gpu",
                         f"R{branch} does not support {ctx.unsupported_on(branch)} (NVIDIA's "
                         f"per-branch device lists, dlws/stack/data/gpus.json); {fix}")


def _need_open(ctx: Context) -> bool:
    """Whether the plan needs the open modules (asked for, or required by the GPU)."""
    policies = ctx.module_policies()
    flavour = ctx.request.driver_flavour
    if flavour == OPEN and PROPRIETARY_ONLY in policies:
        raise StackError(key_of("driver_flavour"), "open_modules_unsupported",
                         f"the open kernel modules need Turing or newer (the GSP); "
                         f"{ctx.gpu_names()} runs only the proprietary ones: set "
                         "nvidia_driver_flavour to 'proprietary' or 'auto'")
    if OPEN_REQUIRED in policies and PROPRIETARY_ONLY in policies:
        raise StackError("gpu_model", "mixed_kernel_modules",
                         f"{ctx.gpu_names()} cannot share one driver: some need the open "
                         "modules, some only run the proprietary ones; split the host")
    if flavour == PROPRIETARY and OPEN_REQUIRED in policies:
        raise StackError(key_of("driver_flavour"), "open_modules_required",
                         f"{ctx.gpu_names()} requires the open kernel modules; set "
                         "nvidia_driver_flavour to 'open' or 'auto'")
    return flavour == OPEN or OPEN_REQUIRED in policies


def _branches(ctx: Context, source: str, branch: int | None, cuda: str | None,
              need_open: bool) -> list[int]:
    """Branches a source offers that fit the request; StackError naming the first misfit."""
    where = (f"{label(ctx.os)}'s archive" if source == DISTRO
             else f"NVIDIA's CUDA repository ({ctx.os.cuda_repo_path})")
    offered = list(ctx.os.distro_driver_branches if source == DISTRO
                   else ctx.os.repo_driver_branches)
    listed = ", ".join(str(b) for b in offered)
    other = CUDA_REPO if source == DISTRO else DISTRO
    transitional = _transitional(ctx, source)
    if branch is not None:
        if branch in transitional:
            package, target = transitional[branch]
            raise StackError(key_of("driver_branch"), "source_transitional_branch",
                             f"{where}'s {package} is a transitional package that installs "
                             f"R{target}; set nvidia_driver_branch to {target} or 'auto'")
        if branch not in offered:
            raise StackError(key_of("driver_branch"), "source_lacks_driver_branch",
                             f"{where} offers driver branches {listed}, not {branch}; set "
                             f"nvidia_driver_branch to one of those, or nvidia_driver_source "
                             f"to {other!r}")
        offered = [branch]
    offered = [b for b in offered if b not in transitional]
    if source == CUDA_REPO and ctx.request.driver_flavour == PROPRIETARY:
        fit = [b for b in offered if b not in ctx.os.repo_open_only]
        if not fit:
            raise StackError(key_of("driver_flavour"), "source_open_only",
                             f"{where} ships R{'/R'.join(map(str, offered))} with the open "
                             "kernel modules only; set nvidia_driver_flavour to 'open' or "
                             "'auto', or nvidia_driver_branch to an older branch")
        offered = fit
    floor = _torch_aarch64_floor(ctx)
    if floor:
        fit = [b for b in offered if b >= floor]
        if not fit:
            raise StackError(key_of("driver_branch" if branch else "driver_source"),
                             "driver_too_old_for_torch_aarch64",
                             f"{where} offers R{'/R'.join(map(str, offered))}; torch's Linux "
                             "aarch64 GPU wheels (PyPI) are CUDA 13 builds, which need "
                             f"R{floor} or newer; set "
                             + ("nvidia_driver_branch to 'auto' or a newer branch"
                                if branch else f"nvidia_driver_source to {other!r}")
                             + ", or frameworks_torch to 'none'")
        offered = fit
    if ctx.models:
        newest = ctx.max_branch_for_gpus()
        fit = [b for b in offered if ctx.supported_by(b) and (newest is None or b <= newest)]
        if not fit:
            raise StackError(key_of("driver_source"), "source_lacks_gpu_driver",
                             f"{where} offers driver branches {listed}; "
                             f"{ctx.unsupported_on(max(offered, default=0))}; set "
                             f"nvidia_driver_source to {other!r}")
        offered = fit
    if cuda is not None:
        if source == DISTRO and ctx.os.os_id == "debian" and cuda != ctx.os.distro_cuda:
            # NVIDIA's Debian repository carries its own nvidia-driver, libcuda1, ...
            # packages under Debian's names, so its toolkit is not mixed with Debian's driver.
            raise StackError(key_of("cuda"), "source_lacks_cuda",
                             f"{where} ships CUDA {ctx.os.distro_cuda} only, not {cuda}; set "
                             f"cuda_version to {ctx.os.distro_cuda!r} or 'auto', or "
                             "nvidia_driver_source to 'cuda_repo'")
        fit = [b for b in offered if b >= min_branch_for_cuda(cuda)]
        if not fit:
            raise StackError(key_of("cuda"), "driver_too_old_for_cuda",
                             f"CUDA {cuda} needs R{min_branch_for_cuda(cuda)} or newer and "
                             f"{where} offers {listed}; set cuda_version to "
                             f"{native_cuda(max(offered))} or older, or nvidia_driver_source "
                             f"to {other!r}")
        offered = fit
    if need_open and source == DISTRO:
        fit = [b for b in offered if b in ctx.os.distro_open_branches]
        if not fit:
            raise StackError(key_of("driver_flavour"), "source_lacks_open_modules",
                             f"{where} has no open kernel module package for R"
                             f"{'/R'.join(str(b) for b in offered)}; set "
                             "nvidia_driver_source to 'cuda_repo'"
                             + ("" if OPEN_REQUIRED in ctx.module_policies()
                                else " or nvidia_driver_flavour to 'proprietary'"))
        offered = fit
    return offered


# NVIDIA's open-gpu-kernel-modules README, "Compatible GPUs", at each release tag: from 515 to
# 535 (515.105.01, 520.61.07, 525.147.05, 530.41.03, 535.288.01) "GeForce and Workstation
# support is still considered alpha-quality" and those GPUs need the nvidia.ko parameter
# NVreg_OpenRmEnableUnsupportedGpus=1; from 545 to 555 (545.29.06, 550.163.01, 555.58.02) it
# is "Beta quality ... suitable for broad usage"; from 560 the caveat is gone. Data centre GPUs
# are production quality on every branch.
OPEN_ALPHA_LAST_BRANCH = 535
OPEN_BETA_LAST_BRANCH = 555
# The README's "GeForce and Workstation" GPUs, by NVIDIA's product names: GeForce, TITAN,
# Quadro, RTX (RTX A6000, RTX 6000 Ada), laptop GPUs and the T-series workstation boards
# (T400, T600, T1000; "Tesla T4" is a data centre card).
_GEFORCE_OR_WORKSTATION = re.compile(r"GeForce|TITAN|Quadro|\bRTX\b|Laptop|\bT\d{3,4}\b",
                                     re.I)


def geforce_or_workstation(name: str) -> bool:
    """Whether NVIDIA's README counts a GPU among "GeForce and Workstation" ones."""
    return bool(_GEFORCE_OR_WORKSTATION.search(name))


def _check_open_quality(ctx: Context, branch: int, flavour: str) -> None:
    """Refuse the open modules where NVIDIA's README for the branch calls them alpha quality
    for the host's GPUs (they need NVreg_OpenRmEnableUnsupportedGpus=1, which dlws does not
    set); note it where the README calls them beta."""
    if flavour != OPEN or branch > OPEN_BETA_LAST_BRANCH:
        return
    cards = sorted({m.name for m in ctx.models if geforce_or_workstation(m.name)})
    if not cards:
        return
    if branch <= OPEN_ALPHA_LAST_BRANCH:
        raise StackError(
            key_of("driver_flavour"), "open_modules_alpha",
            f"R{branch}'s open kernel modules support {', '.join(cards)} only at alpha quality "
            "(NVIDIA open-gpu-kernel-modules README, \"Compatible GPUs\", 515 to 535): the "
            "module refuses GeForce and Workstation GPUs unless "
            "NVreg_OpenRmEnableUnsupportedGpus=1 is set, which dlws does not plan; set "
            "nvidia_driver_flavour to 'proprietary' (or 'auto'), or nvidia_driver_branch to "
            "560 or newer (e.g. 580, or 'auto'), where they are production quality")
    ctx.notes.append(f"R{branch}'s open kernel modules support {', '.join(cards)} at beta "
                     "quality (NVIDIA open-gpu-kernel-modules README, 545 to 555); production "
                     "quality from R560")


def _torch_aarch64_floor(ctx: Context) -> int | None:
    """The oldest branch that runs torch's GPU wheels on an Arm GPU host: PyPI's aarch64
    wheels are CUDA 13 builds only (TORCH_PYPI_AARCH64), so R580 (minor-version
    compatibility); None where torch is not planned or the host is not such a host."""
    if ctx.facts.machine != "aarch64" or not ctx.models or ctx.request.torch == NONE:
        return None
    majors = {version_key(variant_cuda(v))[0] for v in TORCH_PYPI_AARCH64.values()
              if v != "cpu"}
    return min(MINOR_COMPAT_MIN_BRANCH[m] for m in majors)


def _transitional(ctx: Context, source: str) -> dict[int, tuple[str, int]]:
    """Branches whose archive package for this host's cards is transitional: branch ->
    (package, the branch it installs)."""
    if source != DISTRO or ctx.os.os_id != "ubuntu":
        return {}
    server = any(is_datacentre(m.name) for m in ctx.models)
    found = {}
    for name, target in ctx.os.distro_transitional:
        branch, _, flavour = name.partition("-")
        if (flavour == "server") == server:
            found[int(branch)] = (f"nvidia-driver-{name}", target)
    return found


def _prefer(offered: list[int]) -> int:
    """The newest long-term branch (security fixes for years, e.g. R580 to 2028-06), else the
    newest branch (NVIDIA "Supported Drivers and CUDA Toolkit Versions")."""
    long_term = [b for b in offered if DRIVER_BRANCHES[b].kind == LTSB]
    return max(long_term or offered)


def _flavour(ctx: Context, branch: int) -> str:
    wanted = ctx.request.driver_flavour
    if wanted != AUTO:
        return wanted
    policies = ctx.module_policies()
    if OPEN_REQUIRED in policies:
        return OPEN
    if PROPRIETARY_ONLY in policies:
        return PROPRIETARY
    # Open modules are NVIDIA's default only from R560; below it (Debian 12's 535, Debian
    # 13's 550) NVIDIA still defaulted to the proprietary ones and support for GeForce
    # cards in the open ones was not yet production quality (driver-installation-guide
    # "Kernel Modules"), so auto stays with proprietary there. "open" may be asked for.
    return OPEN if branch >= OPEN_DEFAULT_FROM_BRANCH else PROPRIETARY


# --- packages: what apt installs for the chosen driver on this host ------------------------------


def display_mode(ctx: Context) -> str:
    """desktop (the full driver: X/Wayland libraries, nvidia-drm modeset) where the host runs a
    display manager or graphical session, headless builds elsewhere; nvidia_driver_display
    overrides (auto | desktop | headless)."""
    wanted = ctx.request.driver_display
    if wanted in (DESKTOP, HEADLESS):
        return wanted
    return DESKTOP if ctx.facts.display and not ctx.facts.in_container else HEADLESS


def packages(ctx: Context, branch: str, flavour: str, source: str,
             display: str = HEADLESS) -> list[str]:
    """The packages that install the planned driver here, fabric manager and NVLSM included."""
    facts = ctx.facts
    if source == CUDA_REPO:
        wanted = cuda_repo(branch, flavour, facts.os_id, facts.in_container)
    elif facts.os_id == "ubuntu":
        server = any(is_datacentre(m.name) for m in ctx.models)
        wanted = ubuntu_distro(branch, flavour, facts.os_release, facts.kernel_release or "",
                               facts.in_container, server, display)
    else:
        wanted = debian_distro(flavour, facts.in_container)
    return wanted + fabric_manager(ctx, branch, source)


def is_datacentre(name: str) -> bool:
    """Datacentre cards (Tesla, A100, H100, L4...) take Ubuntu's -server driver builds."""
    return "GeForce" not in name and "RTX" not in name


def fabric_manager(ctx: Context, branch: str, source: str) -> list[str]:
    """Packages that bring NVSwitch boards up: without them CUDA fails to initialise on HGX.

    NVIDIA Fabric Manager user guide and gpu-driver-container: nvidia-fabricmanager-<branch>
    and libnvidia-nscq-<branch>; on NVIDIA's repository from R580 without the branch in the
    name. NVLink 5 boards (B200/B300, cc 10.x) also need the NVLink subnet manager (nvlsm,
    with infiniband-diags) from R570 on every install path; on Ubuntu's archive path nvlsm
    comes from NVIDIA's repository.
    """
    if not ctx.facts.nvswitches or ctx.facts.in_container:
        return []
    if source == DISTRO and ctx.facts.os_id == "debian":
        # Debian's archive packages no nvidia-fabricmanager (apt-cache search, bookworm and
        # trixie with contrib/non-free); without it CUDA does not initialise on an HGX board.
        raise StackError(
            "nvidia_driver_source", "source_lacks_fabric_manager",
            f"{ctx.facts.nvswitches} NVSwitch chips found and Debian's archive has no NVIDIA "
            "fabric manager, without which CUDA does not start on this board; set "
            "nvidia_driver_source = 'cuda_repo'")
    number = int(branch)
    suffix = "" if source == CUDA_REPO and number >= FABRIC_MANAGER_UNBRANCHED_FROM \
        else f"-{number}"
    names = [f"nvidia-fabricmanager{suffix}", f"libnvidia-nscq{suffix}"]
    if needs_nvlsm(ctx, number):
        names += ["nvlsm", "infiniband-diags"]
    return names


def needs_nvlsm(ctx: Context, branch: int) -> bool:
    """NVLink 5 (HGX B200/B300): NVSwitches with Blackwell datacentre GPUs (cc 10.x)."""
    return (bool(ctx.facts.nvswitches) and not ctx.facts.in_container
            and branch >= NVLSM_FROM_BRANCH
            and any(version_key(m.compute_capability)[0] == NVLINK5_CC_MAJOR
                    for m in ctx.models))


def replacement(ctx: Context, data, branch: str, wanted: list[str]) -> tuple[str, ...]:
    """The installed packages of another branch to purge, or StackError saying what to set.

    + data: nvidia_driver_replace (bool) allows replacing an installed driver
    """
    installed = ctx.facts.installed_driver
    if not installed or installed.split(".")[0] == branch:
        return ()
    old = installed.split(".")[0]
    if ctx.facts.in_container:
        raise StackError(
            "nvidia_driver_branch", "container_driver_mismatch",
            f"the container's host runs the driver {installed} and the user space must match "
            f"it, but the plan wants R{branch}; set nvidia_driver_branch to {old!r} or 'auto'")
    packages = dict(ctx.facts.nvidia_packages)
    branches = installed_branches(packages)
    if not branches:
        raise StackError(
            "nvidia_driver_branch", "driver_without_package",
            f"driver {installed} is loaded but no apt package provides it (NVIDIA's .run "
            "installer?): run `nvidia-uninstall` on the host first, or set "
            "nvidia_driver_branch to 'none' to leave it")
    others = sorted(branches - {branch})
    if not others:
        # The new branch is installed and the old module still loaded: a reboot is pending.
        return ()
    if not data.get("nvidia_driver_replace"):
        raise StackError(
            "nvidia_driver_replace", "driver_replace_not_allowed",
            f"driver {installed} is installed (packages of R{', R'.join(others)}) but the plan "
            f"wants R{branch}; set nvidia_driver_replace = True to replace it (its packages are "
            f"purged in the same apt command), or nvidia_driver_branch = {old!r} to keep it")
    # Packages named after the old branch are purged; unnamed ones (Debian's nvidia-driver,
    # libcuda1) are upgraded by apt to the new branch's, as the new packages depend on them.
    return tuple(stale_packages(packages, branch, wanted))


def stale_packages(installed: dict[str, str], branch: str, wanted: list[str]) -> list[str]:
    """Installed driver packages of another branch, to purge in the same transaction.

    Only names that carry a branch (Ubuntu's and the repository's nvidia-utils-535,
    linux-modules-nvidia-535-..., nvidia-driver-pinning-535) are purged: the container toolkit,
    a CUDA toolkit and packages shared by all branches stay.
    """
    return sorted(
        name for name in installed
        if name not in wanted and named_branch(name) not in (None, branch)
    )


def installed_branches(installed: dict[str, str]) -> set[str]:
    return {b for b in map(named_branch, installed) if b} | {
        version.split(":")[-1].split(".")[0] for name, version in installed.items()
        if name in UNNAMED_DRIVER_PACKAGES
    }


# Driver packages whose name carries no branch: Debian's and NVIDIA's repository's.
UNNAMED_DRIVER_PACKAGES = ("nvidia-driver", "nvidia-kernel-dkms", "nvidia-open-kernel-dkms",
                           "nvidia-open", "cuda-drivers", "nvidia-smi", "libcuda1",
                           "nvidia-utils", "libnvidia-compute")


def builds_dkms(os_id: str, source: str | None) -> bool:
    """Whether the kernel module is built on the host by DKMS (Debian, NVIDIA's repository);
    Ubuntu's archive ships signed prebuilt modules."""
    return source == CUDA_REPO or os_id == "debian"


# Ubuntu's signed, prebuilt modules: linux-modules-nvidia-<branch>[-server][-open]-<flavour>,
# where flavour is the running kernel's ("generic", "aws", "generic-hwe-22.04"...), with
# nvidia-headless-no-dkms-<branch>[-server][-open] and nvidia-utils-<branch>[-server].
# https://ubuntu.com/server/docs/nvidia-drivers-installation
# Datacentre cards take the -server (ERD) builds.

# The kernel series each Ubuntu release ships as its GA kernel; any other series of the
# generic/lowlatency flavours is an HWE kernel, whose module metapackage is
# linux-modules-nvidia-<...>-generic-hwe-<release> (the plain -generic one follows the GA
# kernel and would pull a second kernel onto an HWE host).
UBUNTU_GA_KERNELS = {"22.04": "5.15", "24.04": "6.8"}
HWE_FLAVOURS = ("generic", "lowlatency", "generic-64k")
# "6.8.0-45-generic" -> series 6.8, ABI 45, flavour "generic"
KERNEL_RELEASE = re.compile(r"^(?P<series>\d+\.\d+)\.\d+-(?P<abi>\d+)-(?P<flavour>.+)$")


def kernel_flavour(kernel_release: str, os_release: str | None = None) -> str:
    """The module metapackage's flavour for a running Ubuntu kernel.

    "6.8.0-45-generic" -> "generic" (24.04) or "generic-hwe-22.04" (22.04); "6.8.0-1015-aws"
    -> "aws".
    """
    match = KERNEL_RELEASE.match(kernel_release.strip())
    if not match:
        return "generic"
    flavour = match["flavour"]
    ga = UBUNTU_GA_KERNELS.get(os_release or "")
    if ga and flavour in HWE_FLAVOURS and match["series"] != ga:
        return f"{flavour}-hwe-{os_release}"
    return flavour


def ubuntu_distro(branch: str, flavour: str, os_release: str, kernel_release: str,
                  in_container: bool, server: bool, display: str = HEADLESS) -> list[str]:
    srv = "-server" if server else ""
    open_ = "-open" if flavour == "open" else ""
    if in_container:
        # User space only: the host's kernel carries the module.
        return [f"libnvidia-compute-{branch}{srv}", f"nvidia-utils-{branch}{srv}"]
    kernel = kernel_flavour(kernel_release, os_release)
    # A desktop takes the full driver (nvidia-driver-<br>: X and Wayland libraries, the X
    # driver, settings); a server the headless user space. Both with the signed prebuilt
    # modules (ubuntu.com/server/docs/nvidia-drivers-installation).
    user_space = (f"nvidia-driver-{branch}{srv}{open_}" if display == DESKTOP
                  else f"nvidia-headless-no-dkms-{branch}{srv}{open_}")
    return [
        f"linux-modules-nvidia-{branch}{srv}{open_}-{kernel}",
        user_space,
        f"nvidia-utils-{branch}{srv}",
    ]


def debian_distro(flavour: str, in_container: bool) -> list[str]:
    # https://wiki.debian.org/NvidiaGraphicsDrivers: the module is built by DKMS.
    user_space = ["nvidia-smi", "libcuda1", "libnvidia-ml1"]
    if in_container:
        # The daemon needs the host's devices and init: it belongs to the container's host.
        return user_space
    module = "nvidia-open-kernel-dkms" if flavour == "open" else "nvidia-kernel-dkms"
    firmware = ["firmware-nvidia-gsp"] if flavour == "open" else []
    return [module, *firmware, "nvidia-driver", *user_space, "nvidia-persistenced"]


def cuda_repo(branch_name: str, flavour: str, os_id: str, in_container: bool) -> list[str]:
    # NVIDIA's driver installation guide (r580): pin the branch with nvidia-driver-pinning-<br>
    # (570, 580, 590, 610, 615 only), then nvidia-open (open modules) or cuda-drivers
    # (proprietary); without a pinning package the branch-named metapackage holds the branch.
    # From 590 on, Ubuntu packages drop the branch from their names (libnvidia-compute,
    # nvidia-utils). cuda-drivers and nvidia-open are the full driver, desktop or not.
    branch = int(branch_name)
    pin = [f"nvidia-driver-pinning-{branch}"] if branch in REPO_PINNING_BRANCHES else []
    if in_container:
        if os_id == "ubuntu":
            suffix = "" if branch >= 590 else f"-{branch}"
            return [*pin, f"libnvidia-compute{suffix}", f"nvidia-utils{suffix}"]
        return [*pin, "nvidia-driver-cuda", "libcuda1"]
    if pin:
        return [*pin, "nvidia-open" if flavour == "open" else "cuda-drivers"]
    return [f"nvidia-open-{branch}" if flavour == "open" else f"cuda-drivers-{branch}"]


# A driver branch in a package name: nvidia-utils-535-server, libnvidia-cfg1-535,
# linux-modules-nvidia-535-server-open-generic, nvidia-firmware-535-535.183.01,
# nvidia-driver-pinning-535. Packages without one (Debian's nvidia-driver, NVIDIA's nvidia-open)
# are upgraded or replaced by apt itself when the new packages depend on or conflict with them.
NAMED_BRANCH = re.compile(r"nvidia(?:-[a-z0-9]+)*?-(?P<branch>[3-9]\d\d)(?:-|$)")
# NVIDIA packages that are not the driver and stay whatever the driver branch.
NOT_DRIVER = re.compile(r"^(lib)?nvidia-(container|docker|cuda|cudnn|fs|gds)")


def named_branch(package: str) -> str | None:
    """The driver branch a package's name carries, or None."""
    if NOT_DRIVER.match(package):
        return None
    match = NAMED_BRANCH.search(package)
    return match["branch"] if match else None
