"""Frameworks stage: the Python, and the TensorFlow and PyTorch builds that fit GPU and driver."""

from __future__ import annotations

from dlws.stack.gpus import Context, cc_runs, label, mm
from dlws.stack.records import AUTO, NONE, StackError, key_of
from dlws.stack.table import (
    MINOR_COMPAT_MIN_BRANCH,
    TENSORFLOW_BUILDS,
    TENSORFLOW_UNSUPPORTED_CC_MAJORS,
    TORCH_BUILDS,
    GpuModel,
    TensorFlowBuild,
    TorchBuild,
    torch_arch_list,
    variant_cuda,
    version_key,
)


def in_range(python: str, low: str | None, high: str | None) -> bool:
    if low is None or high is None:
        return False
    return version_key(low) <= version_key(python) <= version_key(high)


def choose_python(ctx: Context) -> str:
    wanted = ctx.request.python
    if wanted != AUTO and mm(wanted) != ctx.os.python:
        raise StackError(key_of("python"), "python_not_os_python",
                         f"{label(ctx.os)}'s Python is {ctx.os.python}, not {wanted}; "
                         "dlws builds its environment from the OS's Python: set "
                         f"python_env_python to 'auto' or {ctx.os.python!r}")
    return ctx.os.python


def _tf_gpu_blocked(ctx: Context) -> list[GpuModel]:
    return [m for m in ctx.models
            if version_key(m.compute_capability)[0] in TENSORFLOW_UNSUPPORTED_CC_MAJORS]


def choose_tensorflow(ctx: Context, python: str) -> tuple[str | None, str | None]:
    wanted = ctx.request.tensorflow
    if wanted == NONE:
        return None, None
    blocked = _tf_gpu_blocked(ctx)
    if wanted == AUTO:
        if blocked:
            ctx.notes.append(f"TensorFlow skipped: its pip build does not support "
                              f"{blocked[0].name} (sm_120; tensorflow#89272); use NVIDIA's "
                              "NGC TensorFlow container")
            return None, None
        fits = [b for b in TENSORFLOW_BUILDS if in_range(python, b.python_min, b.python_max)]
        if not fits:
            ctx.notes.append(f"TensorFlow skipped: no build in the table for Python {python}")
            return None, None
        build = max(fits, key=lambda b: version_key(b.version))
    else:
        build = _tf_build(wanted)
        if blocked:
            raise StackError(key_of("tensorflow"), "tensorflow_gpu_unsupported",
                             f"TensorFlow's pip build does not support {blocked[0].name} "
                             "(sm_120; tensorflow#89272): set frameworks_tensorflow = "
                             "\"none\" to skip TensorFlow, or use NVIDIA's NGC TensorFlow "
                             "container")
        if not in_range(python, build.python_min, build.python_max):
            newest = max((b for b in TENSORFLOW_BUILDS
                          if in_range(python, b.python_min, b.python_max)),
                         key=lambda b: version_key(b.version), default=None)
            fix = f"set frameworks_tensorflow to {newest.version} or 'auto'" if newest else (
                "set frameworks_tensorflow to 'none'")
            raise StackError(key_of("tensorflow"), "tensorflow_python",
                             f"TensorFlow {build.version} supports Python {build.python_min}"
                             f"-{build.python_max}; {label(ctx.os)} has {python}: {fix}")
    version = build.version if wanted == AUTO else full_version(wanted, build.version)
    package = (f"tensorflow[and-cuda]=={version}" if ctx.models
               else f"tensorflow-cpu=={version}")
    return version, package


def _tf_build(wanted: str) -> TensorFlowBuild:
    for build in TENSORFLOW_BUILDS:
        if mm(build.version) == mm(wanted):
            return build
    known = ", ".join(b.version for b in TENSORFLOW_BUILDS)
    raise StackError(key_of("tensorflow"), "unknown_tensorflow_version",
                     f"TensorFlow {wanted} is not in the table; known: {known}, or 'auto'")


def choose_torch(ctx: Context, python: str, branch: int | None) -> tuple[str | None, str | None]:
    wanted = ctx.request.torch
    if wanted == NONE:
        return None, None
    if branch is None and ctx.models:
        ctx.notes.append("no driver planned or known: torch's CUDA build is chosen for the "
                          "GPU alone; cu13x builds need driver R580 or newer")
    if wanted == AUTO:
        for build in sorted(TORCH_BUILDS, key=lambda b: version_key(b.version), reverse=True):
            if not in_range(python, build.python_min, build.python_max):
                continue
            variant = _torch_variant(ctx, build, branch)
            if variant:
                return f"{build.version}.0", variant
        ctx.notes.append(f"PyTorch skipped: no build in the table fits Python {python}, "
                          "the GPU and the driver")
        return None, None
    build = _torch_build(wanted)
    if build.python_min is None:
        ctx.notes.append(f"torch {build.version}'s Python range is not confirmed; check "
                          "that it ships wheels for Python " + python)
    elif not in_range(python, build.python_min, build.python_max):
        raise StackError(key_of("torch"), "torch_python",
                         f"torch {build.version} supports Python {build.python_min}-"
                         f"{build.python_max}; {label(ctx.os)} has {python}: set "
                         "frameworks_torch to 'auto' or a release for that Python")
    variant = _torch_variant(ctx, build, branch)
    if variant is None:
        if _torch_variant(ctx, build, None) is None:
            raise StackError(key_of("torch"), "torch_gpu_unsupported",
                             f"torch {build.version} has no CUDA build for "
                             f"{ctx.gpu_names()}; set frameworks_torch to 'auto' or an "
                             "older release")
        raise StackError(key_of("torch"), "driver_too_old_for_torch",
                         f"torch {build.version}'s CUDA builds need a newer driver than "
                         f"R{branch} (cu13x needs R580); set nvidia_driver_branch to 580 or "
                         "newer, or frameworks_torch to 'auto' or an older release")
    return full_version(wanted, f"{build.version}.0"), variant


def _torch_build(wanted: str) -> TorchBuild:
    for build in TORCH_BUILDS:
        if build.version == mm(wanted):
            return build
    known = ", ".join(b.version for b in TORCH_BUILDS)
    raise StackError(key_of("torch"), "unknown_torch_version",
                     f"torch {wanted} is not in the table; known: {known}, or 'auto'")


def _torch_variant(ctx: Context, build: TorchBuild, branch: int | None) -> str | None:
    """The newest stable CUDA variant of a build that runs the GPUs on the branch (then the
    experimental ones); "cpu" on a host without GPUs."""
    if not ctx.models:
        return "cpu"
    for variants in (build.stable, build.experimental):
        for variant in sorted(variants, key=lambda v: version_key(variant_cuda(v)),
                              reverse=True):
            archs = torch_arch_list(variant, build.version)
            if not all(cc_runs(cc, archs) for cc in ctx.ccs):
                continue
            major = version_key(variant_cuda(variant))[0]
            if branch is not None and branch < MINOR_COMPAT_MIN_BRANCH[major]:
                continue
            return variant
    return None

# cuDNN --------------------------------------------------------------------------------------


def full_version(wanted: str, default: str) -> str:
    """A pinned version as asked ("2.13.1"), or the table's with ".0" when only x.y was given."""
    return wanted if wanted.count(".") >= 2 else default
