"""CUDA stage: the toolkit and its layout, cuDNN and NCCL, and the packages that install them."""

from __future__ import annotations

from dlws.stack.gpus import Context, label, mm
from dlws.stack.records import AUTO, CUDA_REPO, DISTRO, NONE, WHEELS, StackError, key_of
from dlws.stack.table import (
    CUDA_MIN_DRIVER,
    MACHINES,
    REPO_CUDNN,
    REPO_NCCL,
    first_cuda,
    min_branch_for_cuda,
    version_key,
)


def requested_cuda(ctx: Context) -> str | None:
    """The explicitly asked CUDA (major.minor), checked against the table and the GPUs."""
    wanted = ctx.request.cuda
    if wanted in (AUTO, NONE):
        return None
    cuda = mm(wanted)
    if cuda not in CUDA_MIN_DRIVER:
        known = ", ".join(CUDA_MIN_DRIVER)
        extra = " (there is no CUDA 12.7)" if cuda == "12.7" else ""
        raise StackError(key_of("cuda"), "unknown_cuda_version",
                         f"CUDA {wanted} is not in the table{extra}; known: {known}")
    for arch in ctx.archs:
        if arch.last_cuda_major is not None and version_key(cuda)[0] > arch.last_cuda_major:
            raise StackError(key_of("cuda"), "cuda_too_new_for_gpu",
                             f"CUDA {cuda} cannot compile for {ctx.gpu_names()}: CUDA "
                             f"{arch.last_cuda_major}.x is the last for {arch.name} (CUDA "
                             f"13.0 removed it); set cuda_version to "
                             f"{arch.last_cuda_major}.x or 'auto'")
    for cc in ctx.ccs:
        if version_key(first_cuda(cc)) > version_key(cuda):
            raise StackError(key_of("cuda"), "cuda_too_old_for_gpu",
                             f"CUDA {cuda} predates {ctx.gpu_names()}, which needs CUDA "
                             f"{first_cuda(cc)} or newer; set cuda_version to "
                             f"{first_cuda(cc)} or newer, or 'auto'")
    return cuda


def choose_cuda(ctx: Context, cuda: str | None, branch: int | None, driver_source: str | None,
          effective_branch: int | None) -> tuple[str | None, str | None]:
    """The toolkit version and where it comes from."""
    offers = _cuda_sources(ctx, branch, driver_source)
    if ctx.request.cuda == NONE:
        return None, None
    if cuda is None:  # auto
        if not ctx.models:
            return None, None
        for source, versions in offers:
            fit = [c for c in versions if ctx.cuda_fits_gpus(c)
                   and (effective_branch is None or min_branch_for_cuda(c) <= effective_branch)]
            if fit:
                return max(fit, key=version_key), source
        ctx.notes.append("no CUDA toolkit offered for this OS fits the GPU and driver; none "
                          "planned (the frameworks' wheels bring their own runtime)")
        return None, None
    for source, versions in offers:
        if cuda in versions:
            if branch is None and effective_branch and effective_branch < min_branch_for_cuda(
                cuda
            ):
                ctx.notes.append(f"CUDA {cuda} needs R{min_branch_for_cuda(cuda)}; the "
                                  f"driver in use is R{effective_branch}")
            return cuda, source
    available = sorted({c for _, vs in offers for c in vs}, key=version_key)
    raise StackError(key_of("cuda"), "source_lacks_cuda",
                     f"CUDA {cuda} is not offered for {label(ctx.os)} by "
                     f"{' or '.join(s for s, _ in offers)}; available: "
                     f"{', '.join(available)}; set cuda_version to one of those or 'auto'")


def _cuda_sources(ctx: Context, branch: int | None,
                  driver_source: str | None) -> list[tuple[str, tuple[str, ...]]]:
    """Toolkit sources in order of preference, with the versions each offers."""
    distro = (DISTRO, (ctx.os.distro_cuda,) if ctx.os.distro_cuda else ())
    repo = (CUDA_REPO, ctx.os.repo_cuda)
    if ctx.os.os_id == "debian":
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
    if ctx.request.cuda == AUTO:
        return [repo]
    return [distro, repo]


def choose_cudnn(ctx: Context, cuda: str | None, cuda_source: str | None, tf_package: str | None,
           variant: str | None) -> tuple[str | None, str | None]:
    wanted = ctx.request.cudnn
    if wanted == NONE:
        return None, None
    if wanted == WHEELS:
        return WHEELS, WHEELS
    wheels_bring = bool(ctx.models) and (bool(tf_package) or variant not in (None, "cpu"))
    if wanted == AUTO:
        if wheels_bring:
            return WHEELS, WHEELS
        if cuda is None:
            return None, None
        offered = ctx.os.distro_cudnn if cuda_source == DISTRO else REPO_CUDNN
        if offered is None:
            ctx.notes.append(f"{label(ctx.os)} packages no cuDNN; none planned")
            return None, None
        return offered, cuda_source
    if cuda is None:
        raise StackError(key_of("cudnn"), "cudnn_needs_cuda",
                         f"a system cuDNN {wanted} needs a CUDA toolkit and none is planned; "
                         "set cuda_version, or cudnn_version to 'wheels' or 'none'")
    offered = ctx.os.distro_cudnn if cuda_source == DISTRO else REPO_CUDNN
    if offered is None or not (wanted == offered or wanted.startswith(offered + ".")
                               or offered.startswith(wanted + ".")):
        where = (f"{label(ctx.os)}'s archive" if cuda_source == DISTRO
                 else "NVIDIA's CUDA repository")
        raise StackError(key_of("cudnn"), "source_lacks_cudnn",
                         f"{where} offers cuDNN {offered or 'none'}, not {wanted}; set "
                         f"cudnn_version to {offered!r}, 'auto' or 'wheels'")
    return wanted, cuda_source


def home(version: str | None, source: str | None) -> str | None:
    """CUDA_HOME: NVIDIA's side-by-side /usr/local/cuda-X.Y, or the distribution's /usr."""
    if not version:
        return None
    return f"/usr/local/cuda-{version}" if source == CUDA_REPO else "/usr"


def target(version: str | None, source: str | None, machine: str) -> str | None:
    """NVIDIA's per-target folder of the toolkit (<home>/targets/sbsa-linux on Arm64 servers;
    CUDA installation guide); the distribution's toolkit uses the multiarch folders instead."""
    if not version or source != CUDA_REPO:
        return None
    return MACHINES[machine].cuda_target


def toolkit_packages(version: str | None, source: str | None) -> list[str]:
    if not version:
        return []
    if source == CUDA_REPO:
        # NVIDIA's layout: /usr/local/cuda-X.Y side by side; cuda-toolkit-X-Y has no driver.
        return [f"cuda-toolkit-{version.replace('.', '-')}"]
    # The distribution's layout: nvcc in /usr/bin, libraries in the multiarch directory.
    return ["nvidia-cuda-toolkit"]


def cudnn_packages(cudnn: str | None, source: str | None, cuda: str | None) -> list[str]:
    if not cudnn or cudnn == WHEELS:
        return []
    if source == CUDA_REPO:
        # https://docs.nvidia.com/deeplearning/cudnn/installation/latest/linux.html
        major = cuda.split(".")[0] if cuda else "12"
        return [f"cudnn9-cuda-{major}"]
    # Debian's contrib nvidia-cudnn downloads NVIDIA's archive at install time.
    return ["nvidia-cudnn"]


def choose_nccl(ctx: Context, cuda: str | None, cuda_source: str | None,
                wanted: str = AUTO) -> tuple[str | None, str | None]:
    """A system NCCL (cudnn_nccl: auto = on multi-GPU hosts with a toolkit; yes; no).

    It only matters for multi-GPU code compiled on the host; the frameworks' wheels bring their
    own (nvidia-nccl-cu12/13). It comes from where the toolkit does.
    """
    if wanted == "no" or not cuda:
        return None, None
    if wanted == AUTO and len(ctx.models) < 2:
        return None, None
    nccl = ctx.os.distro_nccl if cuda_source == DISTRO else REPO_NCCL
    if nccl is None:
        ctx.notes.append(f"{label(ctx.os)} packages no NCCL; multi-GPU code compiled on the "
                         "host must bring its own")
        return None, None
    return nccl, cuda_source


def nccl_packages(nccl: str | None) -> list[str]:
    return ["libnccl2", "libnccl-dev"] if nccl else []


def nccl_apt_pin(nccl: str | None, source: str | None, cuda: str | None) -> str | None:
    """The version glob that holds NVIDIA's libnccl2 to the planned CUDA: its builds are
    versioned "<nccl>-1+cuda<X.Y>", and apt would otherwise take the newest CUDA's build
    (NVIDIA NCCL installation guide: `libnccl2=<version>+cuda<X.Y>`)."""
    if not nccl or source != CUDA_REPO or not cuda:
        return None
    return f"*+cuda{cuda}"
