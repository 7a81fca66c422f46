"""Frameworks stage: the Python, and the TensorFlow and PyTorch builds that fit GPU and driver."""

from __future__ import annotations

from dlws.stack.gpus import Context, cc_runs, label, mm
from dlws.stack.records import AUTO, NGC, NONE, StackError, key_of
from dlws.stack.table import (
    MINOR_COMPAT_MIN_BRANCH,
    NGC_TENSORFLOW_IMAGE,
    NGC_TENSORFLOW_RELEASES,
    TENSORFLOW_AARCH64_PACKAGE,
    TENSORFLOW_ARCHS,
    TENSORFLOW_BUILDS,
    TENSORFLOW_CUDA_MAJOR,
    TENSORFLOW_UNSUPPORTED_CC_MAJORS,
    TORCH_AARCH64_CPU_NEWEST,
    TORCH_BUILDS,
    TORCH_PYPI_AARCH64,
    GpuModel,
    TensorFlowBuild,
    TorchBuild,
    native_cuda,
    ngc_runs_gpus,
    ngc_tensorflow_release,
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
    if wanted in (NONE, NGC):
        return None, None  # NGC: TensorFlow comes in its container (choose_tensorflow_image)
    if torch_from_pypi(ctx):
        return _tensorflow_aarch64(ctx, python, wanted)
    blocked = _tf_gpu_blocked(ctx)
    if wanted == AUTO:
        if blocked:
            ctx.notes.append(f"TensorFlow skipped: its pip build does not support "
                             f"{blocked[0].name} (sm_120; tensorflow#89272); set "
                             "frameworks_tensorflow = 'ngc' for NVIDIA's NGC TensorFlow "
                             "container (with containers_engine = 'docker')")
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
                             "\"none\" to skip TensorFlow, or \"ngc\" for NVIDIA's NGC "
                             "TensorFlow container")
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
    no_kernel = [m for m in ctx.models if not cc_runs(m.compute_capability, TENSORFLOW_ARCHS)]
    if no_kernel:
        ctx.notes.append(f"TensorFlow on the CPU (tensorflow-cpu): its wheels carry kernels for "
                         f"sm_60, sm_70, sm_80, sm_89 and compute_90 only (tensorflow "
                         f".bazelrc), none of which runs on {no_kernel[0].name} (sm_"
                         f"{no_kernel[0].compute_capability.replace('.', '')})")
    package = (f"tensorflow[and-cuda]=={version}" if ctx.models and not no_kernel
               else f"tensorflow-cpu=={version}")
    return version, package


def torch_from_pypi(ctx: Context) -> bool:
    """Linux aarch64: the frameworks come from PyPI's own aarch64 wheels (TORCH_PYPI_AARCH64,
    TENSORFLOW_AARCH64_PACKAGE)."""
    return ctx.facts.machine == "aarch64"


def _tensorflow_aarch64(ctx: Context, python: str, wanted: str) -> tuple[str | None, str | None]:
    """TensorFlow on Linux aarch64: PyPI's `tensorflow` wheel, a CPU build (no tensorflow-cpu
    wheel and no GPU build for aarch64 on PyPI)."""
    fits = [b for b in TENSORFLOW_BUILDS if in_range(python, b.python_min, b.python_max)]
    if wanted == AUTO:
        if not fits:
            ctx.notes.append(f"TensorFlow skipped: no build in the table for Python {python}")
            return None, None
        build = max(fits, key=lambda b: version_key(b.version))
    else:
        build = _tf_build(wanted)
        if build not in fits:
            raise StackError(key_of("tensorflow"), "tensorflow_python",
                             f"TensorFlow {build.version} supports Python {build.python_min}"
                             f"-{build.python_max}; {label(ctx.os)} has {python}: set "
                             "frameworks_tensorflow to 'auto'")
    version = build.version if wanted == AUTO else full_version(wanted, build.version)
    if ctx.models:
        ctx.notes.append(
            "TensorFlow on the CPU: PyPI's Linux aarch64 tensorflow wheels are CPU builds (no "
            "tensorflow-cpu and no GPU build for aarch64 on PyPI), so it does not use "
            f"{ctx.models[0].name}; set frameworks_tensorflow = 'ngc' for NVIDIA's NGC "
            "TensorFlow container (with containers_engine = 'docker')")
    else:
        ctx.notes.append("TensorFlow from PyPI's `tensorflow` aarch64 wheel, a CPU build "
                         "(tensorflow-cpu has no aarch64 wheel)")
    return version, f"{TENSORFLOW_AARCH64_PACKAGE}=={version}"


def choose_tensorflow_image(ctx: Context, branch: int | None) -> str | None:
    """The NGC TensorFlow image for frameworks_tensorflow = "ngc": the newest release whose CUDA
    runs every GPU and whose driver minimum the (planned or installed) branch meets."""
    if ctx.request.tensorflow != NGC:
        return None
    if not ctx.models:
        raise StackError(key_of("tensorflow"), "ngc_needs_gpu",
                         "'ngc' runs NVIDIA's GPU TensorFlow container and the host declares no "
                         "GPU; set frameworks_tensorflow to 'auto' (tensorflow-cpu) or 'none'")
    release = ngc_tensorflow_release(ctx.ccs, branch)
    if release is None:
        runs = [r for r in NGC_TENSORFLOW_RELEASES if ngc_runs_gpus(r, ctx.ccs)]
        if not runs:
            raise StackError(key_of("tensorflow"), "ngc_gpu_unsupported",
                             f"no NGC TensorFlow release in the table runs {ctx.gpu_names()}; "
                             "set frameworks_tensorflow to 'none'")
        needed = min(r.min_driver_branch for r in runs)
        raise StackError(key_of("tensorflow"), "driver_too_old_for_ngc",
                         f"the NGC TensorFlow releases that run {ctx.gpu_names()} "
                         f"({', '.join(r.release for r in runs)}) need driver R{needed} or "
                         f"newer and the host's driver is R{branch}; set nvidia_driver_branch "
                         f"to {needed} or newer")
    if branch is None:
        ctx.notes.append(f"no driver planned or known: NGC TensorFlow {release.release} needs "
                         f"R{release.min_driver_branch} or newer on the host")
    if not release.verified:
        ctx.notes.append(f"NGC TensorFlow {release.release}'s CUDA {release.cuda} and driver "
                         f"minimum R{release.min_driver_branch} are unverified in the table")
    return NGC_TENSORFLOW_IMAGE.format(release=release.release)


def _tf_build(wanted: str) -> TensorFlowBuild:
    for build in TENSORFLOW_BUILDS:
        if mm(build.version) == mm(wanted):
            return build
    known = ", ".join(b.version for b in TENSORFLOW_BUILDS)
    raise StackError(key_of("tensorflow"), "unknown_tensorflow_version",
                     f"TensorFlow {wanted} is not in the table; known: {known}, or 'auto'")


def choose_torch(ctx: Context, python: str, branch: int | None,
                 tf_package: str | None = None) -> tuple[str | None, str | None]:
    """The torch release and CUDA variant. Where TensorFlow's GPU build (CUDA 12 wheels) shares
    the environment, torch takes a CUDA 12 build too: CUDA 12 and 13 wheels in one environment
    clash (two NCCL and cuBLAS builds in one process)."""
    wanted = ctx.request.torch
    if wanted == NONE:
        return None, None
    if branch is None and ctx.models:
        ctx.notes.append("no driver planned or known: torch's CUDA build is chosen for the "
                          "GPU alone; cu13x builds need driver R580 or newer")
    if torch_from_pypi(ctx):
        return _torch_aarch64(ctx, python, branch, wanted)
    major = TENSORFLOW_CUDA_MAJOR if tf_package and "[and-cuda]" in tf_package else None
    if wanted == AUTO:
        builds = [b for b in sorted(TORCH_BUILDS, key=lambda b: version_key(b.version),
                                    reverse=True)
                  if in_range(python, b.python_min, b.python_max)]
        for needed in ((major, None) if major else (None,)):
            for build in builds:
                variant = _torch_variant(ctx, build, branch, needed)
                if variant:
                    if needed is not None:
                        _note_shared_major(ctx, builds, build, variant, branch)
                    return build.newest, variant
        ctx.notes.append(f"PyTorch skipped: no build in the table fits Python {python}, "
                          "the GPU and the driver")
        return None, None
    build = _torch_build(wanted)
    if not in_range(python, build.python_min, build.python_max):
        raise StackError(key_of("torch"), "torch_python",
                         f"torch {build.version} supports Python {build.python_min}-"
                         f"{build.python_max} (its wheels on PyPI); {label(ctx.os)} has "
                         f"{python}: set frameworks_torch to 'auto' or a release for that "
                         "Python")
    variant = (major and _torch_variant(ctx, build, branch, major)) or _torch_variant(
        ctx, build, branch)
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
    return full_version(wanted, build.newest), variant


def _aarch64_variant(ctx: Context, build: TorchBuild, branch: int | None) -> str | None:
    """The build of PyPI's aarch64 wheel of a release where it runs here: a CPU build on a host
    without GPUs; a CUDA build that compiles for every GPU on a branch that runs its CUDA."""
    variant = TORCH_PYPI_AARCH64.get(build.version)
    if variant is None:
        return None
    if not ctx.models:
        return variant if variant == "cpu" else None
    if variant == "cpu":
        return None
    cuda = variant_cuda(variant)
    # The sbsa builds' arch lists are taken to be the x86_64 ones (unverified for aarch64).
    if not all(cc_runs(cc, torch_arch_list(variant, build.version)) for cc in ctx.ccs):
        return None
    if branch is not None and branch < MINOR_COMPAT_MIN_BRANCH[version_key(cuda)[0]]:
        return None
    return variant


def _torch_aarch64(ctx: Context, python: str, branch: int | None,
                   wanted: str) -> tuple[str | None, str | None]:
    """torch on Linux aarch64, from PyPI's own wheels (TORCH_PYPI_AARCH64): the newest release
    whose wheel fits, preferring one whose CUDA the branch runs natively (cu130 on R580)."""
    builds = sorted((b for b in TORCH_BUILDS if in_range(python, b.python_min, b.python_max)),
                    key=lambda b: version_key(b.version), reverse=True)
    if wanted != AUTO:
        build = _torch_build(wanted)
        if build not in builds:
            raise StackError(key_of("torch"), "torch_python",
                             f"torch {build.version} supports Python {build.python_min}-"
                             f"{build.python_max} (its wheels on PyPI); {label(ctx.os)} has "
                             f"{python}: set frameworks_torch to 'auto' or a release for that "
                             "Python")
        variant = _aarch64_variant(ctx, build, branch)
        if variant is None:
            what = (f"a {TORCH_PYPI_AARCH64.get(build.version, 'unknown')} build"
                    if build.version in TORCH_PYPI_AARCH64 else "not in the table")
            need = ("a CUDA build that runs " + ctx.gpu_names() if ctx.models
                    else "a CPU build")
            raise StackError(key_of("torch"), "torch_aarch64_build",
                             f"PyPI's Linux aarch64 wheel of torch {build.version} is {what}, "
                             f"and this host needs {need}; set frameworks_torch to 'auto' "
                             f"(newest CPU build on aarch64: {TORCH_AARCH64_CPU_NEWEST})")
        return full_version(wanted, build.newest), variant
    native = native_cuda(branch) if branch is not None else None
    fits = [(b, v) for b in builds if (v := _aarch64_variant(ctx, b, branch))]
    preferred = [(b, v) for b, v in fits if v == "cpu" or native is None
                 or version_key(variant_cuda(v)) <= version_key(native)]
    if not (preferred or fits):
        ctx.notes.append(f"PyTorch skipped: no PyPI aarch64 wheel in the table fits Python "
                         f"{python}, the GPU and the driver")
        return None, None
    build, variant = (preferred or fits)[0]
    if variant == "cpu":
        ctx.notes.append(f"torch {build.newest} from PyPI: the newest release whose Linux "
                         "aarch64 wheel is a CPU build (from 2.11 PyPI's aarch64 wheels are "
                         "CUDA 13 builds of several GB)")
    else:
        ctx.notes.append(f"torch {build.newest} from PyPI: its Linux aarch64 wheel is a "
                         f"{variant} build (wheel METADATA); PyTorch's own aarch64 variants "
                         "(download.pytorch.org) are not read here (unverified)")
    return build.newest, variant


def _note_shared_major(ctx: Context, builds: list[TorchBuild], build: TorchBuild,
                       variant: str, branch: int | None) -> None:
    free = next(((b, v) for b in builds if (v := _torch_variant(ctx, b, branch))), None)
    if free and (free[0], free[1]) != (build, variant):
        ctx.notes.append(
            f"torch {build.newest}+{variant}: the newest CUDA {TENSORFLOW_CUDA_MAJOR} build "
            f"for this GPU, so that it shares one CUDA major with TensorFlow's CUDA "
            f"{TENSORFLOW_CUDA_MAJOR} wheels in the environment; torch {free[0].newest}+"
            f"{free[1]} needs its own: set frameworks_tensorflow = 'none' to get it")


def one_cuda_major(ctx: Context, tensorflow: str | None, tf_package: str | None,
                   variant: str | None) -> tuple[str | None, str | None]:
    """TensorFlow's package once torch is chosen: where torch could only be a CUDA 13 build,
    TensorFlow goes on the CPU so the environment holds one CUDA major."""
    if not tf_package or "[and-cuda]" not in tf_package or not variant or variant == "cpu":
        return tensorflow, tf_package
    if version_key(variant_cuda(variant))[0] == TENSORFLOW_CUDA_MAJOR:
        return tensorflow, tf_package
    ctx.notes.append(f"TensorFlow on the CPU (tensorflow-cpu): torch's {variant} brings CUDA "
                     f"{variant_cuda(variant).split('.')[0]} wheels and TensorFlow's GPU build "
                     f"CUDA {TENSORFLOW_CUDA_MAJOR} ones, which must not share one environment")
    return tensorflow, f"tensorflow-cpu=={tensorflow}"


def wheels_cuda_major(tf_package: str | None, variant: str | None) -> int | None:
    """The CUDA major of the environment's CUDA wheels (one, by construction)."""
    majors = set()
    if tf_package and "[and-cuda]" in tf_package:
        majors.add(TENSORFLOW_CUDA_MAJOR)
    if variant and variant.startswith("cu"):
        majors.add(version_key(variant_cuda(variant))[0])
    assert len(majors) <= 1, f"CUDA majors mixed in one environment: {majors}"
    return majors.pop() if majors else None


def _torch_build(wanted: str) -> TorchBuild:
    for build in TORCH_BUILDS:
        if build.version == mm(wanted):
            return build
    known = ", ".join(b.version for b in TORCH_BUILDS)
    raise StackError(key_of("torch"), "unknown_torch_version",
                     f"torch {wanted} is not in the table; known: {known}, or 'auto'")


def _torch_variant(ctx: Context, build: TorchBuild, branch: int | None,
                   major: int | None = None) -> str | None:
    """The CUDA variant of a build that runs the GPUs on the branch: stable before
    experimental; within each, the newest whose CUDA the branch runs natively (cu130 on R580),
    then newer ones in minor-version compatibility; "cpu" on a host without GPUs."""
    if not ctx.models:
        return "cpu"
    native = native_cuda(branch) if branch is not None else None
    for variants in (build.stable, build.experimental):
        fits = []
        for variant in variants:
            cuda = variant_cuda(variant)
            archs = torch_arch_list(variant, build.version)
            if not all(cc_runs(cc, archs) for cc in ctx.ccs):
                continue
            if major is not None and version_key(cuda)[0] != major:
                continue
            if branch is not None and branch < MINOR_COMPAT_MIN_BRANCH[version_key(cuda)[0]]:
                continue
            fits.append(variant)
        if fits:
            natives = [v for v in fits if native is None
                       or version_key(variant_cuda(v)) <= version_key(native)]
            return max(natives or fits, key=lambda v: version_key(variant_cuda(v)))
    return None

# cuDNN --------------------------------------------------------------------------------------


def full_version(wanted: str, default: str) -> str:
    """A pinned version as asked ("2.13.1"), or the table's with ".0" when only x.y was given."""
    return wanted if wanted.count(".") >= 2 else default
