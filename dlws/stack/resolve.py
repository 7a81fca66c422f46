"""A host's whole stack from its data and facts: the one derivation of deploy, plan and verify."""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import re
from collections.abc import Mapping
from typing import Any

from dlws.stack import cuda as cuda_stage
from dlws.stack import driver as driver_stage
from dlws.stack import frameworks as frameworks_stage
from dlws.stack import kernel, services
from dlws.stack.gpus import Context
from dlws.stack.locks import lock_specs
from dlws.stack.records import (
    AUTO,
    CUDA_REPO,
    DISTRO,
    DRIVER_DISPLAYS,
    DRIVER_FLAVOURS,
    DRIVER_SOURCES,
    VERSION_WORDS,
    CudaStack,
    CudnnStack,
    DriverStack,
    GpuStack,
    HostFacts,
    NcclStack,
    OsStack,
    PythonStack,
    Stack,
    StackError,
    StackRequest,
    TensorFlowStack,
    TorchStack,
    Transition,
    key_of,
    request_from_host_data,
)
from dlws.stack.table import (
    DRIVER_BRANCHES,
    MACHINE_ALIASES,
    MACHINES,
    OS_RELEASES,
    TORCH_INDEX_URL,
    repo_path,
)


def resolve(facts: HostFacts, request: StackRequest) -> Stack:
    """Resolve a request on a host into one consistent stack, or raise StackError saying why not.

    + facts: the host's OS, GPUs, kernel and installed driver
    + request: the inventory's pins; "auto" fields are chosen from the table

    .. code:: python

        resolve(HostFacts("ubuntu", "24.04", ("10de:2684",)), StackRequest()).driver.branch
        # "580"
    """
    return derive({}, facts, request)


def derive(data: Mapping[str, Any], facts: HostFacts,
           request: StackRequest | None = None) -> Stack:
    """The host's whole stack: every decision any role acts on, from its data and its facts.

    + data: the host's data with every key's default (roles.all_defaults()); keys missing here
      take the defaults the roles declare
    + facts: what the host is (dlws.facts.readers.host_facts), or a recorded copy
    """
    os_release = OS_RELEASES.get((facts.os_id, facts.os_release))
    if os_release is None:
        supported = ", ".join(f"{o}-{r}" for o, r in OS_RELEASES)
        raise StackError("os_release", "unsupported_os",
                         f"{facts.os_id} {facts.os_release} is not supported; supported: "
                         f"{supported}. Provision one of those releases")
    request = request_from_host_data(data) if request is None else request
    _validate(request)
    facts = _machine(facts)
    ctx = Context(facts, request, os_release)
    ctx.check_machine()

    python = frameworks_stage.choose_python(ctx)
    cuda_request = cuda_stage.requested_cuda(ctx)
    branch, flavour, source = driver_stage.choose_driver(ctx, cuda_request)
    keep = driver_stage.keep_installed(ctx, branch)
    effective_branch = branch or driver_stage.installed_branch(ctx)
    cuda, cuda_source = cuda_stage.choose_cuda(ctx, cuda_request, branch, source,
                                               effective_branch)
    tensorflow, tf_package = frameworks_stage.choose_tensorflow(ctx, python)
    tf_image = frameworks_stage.choose_tensorflow_image(ctx, effective_branch)
    torch, variant = frameworks_stage.choose_torch(ctx, python, effective_branch,
                                                   tf_package=tf_package)
    tensorflow, tf_package = frameworks_stage.one_cuda_major(ctx, tensorflow, tf_package,
                                                            variant)
    cudnn, cudnn_source = cuda_stage.choose_cudnn(ctx, cuda, cuda_source, tf_package, variant)
    nccl, nccl_source = cuda_stage.choose_nccl(ctx, cuda, cuda_source,
                                               str(data.get("cudnn_nccl", AUTO)))

    driver = _driver(ctx, data, branch, flavour, source)
    purge = (driver_stage.replacement(ctx, data, driver.branch, list(driver.packages))
             if driver.branch and not keep else ())
    # nvlsm comes from NVIDIA's repository on every install path (NVLink 5 boards).
    repo_used = (CUDA_REPO in (source, cuda_source, cudnn_source, nccl_source)
                 or "nvlsm" in driver.packages)
    archs = sorted({m.arch for m in ctx.models})
    stack = Stack(
        os=OsStack(id=os_release.os_id, release=os_release.release, machine=facts.machine,
                   dpkg_arch=MACHINES[facts.machine].dpkg_arch, container=facts.in_container,
                   kernel_headers=_kernel_headers(ctx, facts, data, driver)),
        gpu=GpuStack(models=tuple(m.name for m in ctx.models),
                     arch="+".join(archs) if archs else None,
                     compute_capability="+".join(ctx.ccs) if ctx.ccs else None,
                     nvswitches=0 if facts.in_container else facts.nvswitches),
        driver=driver,
        cuda=CudaStack(version=cuda, source=cuda_source, home=cuda_stage.home(cuda, cuda_source),
                       packages=tuple(cuda_stage.toolkit_packages(cuda, cuda_source)),
                       target=cuda_stage.target(cuda, cuda_source, facts.machine)),
        cudnn=CudnnStack(version=cudnn, source=cudnn_source,
                         packages=tuple(cuda_stage.cudnn_packages(cudnn, cudnn_source, cuda))),
        nccl=NcclStack(version=nccl, source=nccl_source,
                       packages=tuple(cuda_stage.nccl_packages(nccl)),
                       apt_pin=cuda_stage.nccl_apt_pin(nccl, nccl_source, cuda)),
        python=PythonStack(version=python,
                           cuda_major=frameworks_stage.wheels_cuda_major(tf_package, variant)),
        tensorflow=TensorFlowStack(version=tensorflow, package=tf_package, image=tf_image),
        torch=TorchStack(version=torch, variant=variant,
                         index_url=(TORCH_INDEX_URL.format(variant=variant)
                                    if variant and not frameworks_stage.torch_from_pypi(ctx)
                                    else None)),
        repo_path=repo_path(os_release, facts.machine) if repo_used else None,
        transition=Transition(installed_driver=facts.installed_driver,
                              keep_installed_driver=keep, purge=purge,
                              reboot_pending=_reboot_pending(facts, branch)),
    )
    if data.get("python_env_require_hashes"):
        stack = stack.replace(python=PythonStack(
            version=python, locks=tuple(spec.name for spec in lock_specs(stack, data)),
            cuda_major=stack.python.cuda_major))
    stack = stack.replace(containers=services.containers(data, stack),
                          notebooks=services.notebooks(data))
    return stack.replace(notes=tuple(ctx.notes + _notes(stack, facts)))


def _machine(facts: HostFacts) -> HostFacts:
    """The facts with the machine in its `uname -m` spelling, refused where dlws plans none, or
    where dpkg's architecture is not the machine's own (a 32-bit userland on a 64-bit kernel)."""
    machine = MACHINE_ALIASES.get(facts.machine)
    if machine is None:
        raise StackError("machine", "unsupported_machine",
                         f"the host's machine (uname -m) is {facts.machine!r}; dlws plans "
                         f"{' and '.join(MACHINES)} hosts only (NVIDIA's repository serves "
                         "x86_64 and Arm64 servers, sbsa); provision one of those")
    expected = MACHINES[machine].dpkg_arch
    if facts.dpkg_arch and facts.dpkg_arch != expected:
        raise StackError("machine", "userland_not_machine",
                         f"the kernel is {machine} (uname -m) but dpkg's architecture is "
                         f"{facts.dpkg_arch!r}, not {expected!r}: NVIDIA's packages and the "
                         f"frameworks' wheels need a {expected} userland; reinstall the host "
                         f"with a {expected} OS")
    return dataclasses.replace(facts, machine=machine)


def _driver(ctx: Context, data: Mapping[str, Any], branch: int | None, flavour: str | None,
            source: str | None) -> DriverStack:
    if not branch:
        return DriverStack()
    facts = ctx.facts
    ctx.notes.extend(ctx.unverified_on(branch))
    display = driver_stage.display_mode(ctx)
    packages = driver_stage.packages(ctx, str(branch), flavour, source, display)
    dkms = driver_stage.builds_dkms(facts.os_id, source)
    if display == driver_stage.DESKTOP and not facts.in_container:
        why = (f"a display manager or graphical session was found ({facts.display})"
               if facts.display else "nvidia_driver_display = 'desktop'")
        ctx.notes.append(f"desktop driver: {why}; the full driver with nvidia-drm modeset "
                         "(set nvidia_driver_display = 'headless' for compute only)")
    return DriverStack(
        branch=str(branch), flavour=flavour, source=source, packages=tuple(packages),
        fabric_manager=any(p.startswith("nvidia-fabricmanager") for p in packages),
        kernel_module=not facts.in_container,
        secure_boot_mok=bool(facts.secure_boot) and dkms and not facts.in_container,
        display=None if facts.in_container else display,
    )


def _kernel_headers(ctx: Context, facts: HostFacts, data: Mapping[str, Any],
                    driver: DriverStack) -> tuple[str, ...]:
    """linux-headers for the running kernel and, where DKMS builds the NVIDIA module, the
    headers metapackage of its flavour, so each new kernel gets its module (dlws.stack.kernel).

    base_kernel_headers: auto = where the host runs its own kernel; yes = also the metapackage
    wherever; no = none.
    """
    wanted = data.get("base_kernel_headers", AUTO)
    if wanted == "no" or not facts.kernel_release:
        return ()
    if wanted == AUTO and facts.in_container:
        return ()
    headers = kernel.headers_for(facts.os_id, facts.os_release, facts.kernel_release,
                                 list(facts.kernel_images))
    dkms = bool(driver.branch) and driver.kernel_module and driver_stage.builds_dkms(
        facts.os_id, driver.source)
    if not (dkms or wanted == "yes") or not headers.metapackage:
        return headers.packages[:1]
    ctx.notes.append(f"kernel headers: {headers.metapackage} follows new kernels so DKMS builds "
                     f"the NVIDIA module for each ({headers.basis}"
                     + ("" if headers.verified else "; package name unverified") + ")")
    return headers.packages


def _reboot_pending(facts: HostFacts, branch: int | None) -> bool:
    """A module of another branch is in use: the planned one loads at the next boot."""
    if not branch or facts.in_container or not facts.installed_driver:
        return False
    return facts.installed_driver.split(".")[0] != str(branch)


def _notes(stack: Stack, facts: HostFacts) -> list[str]:
    notes = []
    if stack.repo_path and facts.machine == "aarch64":
        notes.append(f"NVIDIA's repository path {stack.repo_path}: its sbsa folder and key are "
                     "taken from public configs that agree; NVIDIA's repository was not read "
                     "here (unverified)")
    if (stack.driver.branch and facts.machine == "aarch64" and stack.driver.source == DISTRO
            and stack.os.id == "ubuntu"):
        # Debian's arm64 index was read (the same driver packages and versions as amd64);
        # Ubuntu's archive is not reachable from this project.
        notes.append(f"R{stack.driver.branch} from Ubuntu's archive on arm64: the same package "
                     "names as on amd64 (unverified for arm64)")
    if stack.driver.secure_boot_mok:
        notes.append("Secure Boot is on and this driver's modules are built by DKMS: they load "
                     "only once DKMS's signing key is enrolled: run `mokutil --import "
                     "/var/lib/dkms/mok.pub`, set a one-time password, reboot and confirm "
                     "'Enroll MOK' at the console")
    if stack.transition.keep_installed_driver and stack.driver.branch:
        notes.append(f"the installed driver {facts.installed_driver} is adopted: it is the "
                     f"planned R{stack.driver.branch}")
    elif stack.transition.keep_installed_driver:
        notes.append(f"the installed driver {facts.installed_driver} stays (no driver planned)")
    if stack.transition.reboot_pending:
        notes.append(f"driver {facts.installed_driver} is in use; R{stack.driver.branch} loads "
                     "at the next boot (reboot pending)")
    if stack.driver.branch:
        eol = DRIVER_BRANCHES[int(stack.driver.branch)].eol
        if eol and eol < datetime.date.today().strftime("%Y-%m"):
            patched = ("Debian still patches it (bookworm-security)" if stack.os.id == "debian"
                       and stack.driver.source == DISTRO else "the distribution may still "
                       "patch it")
            notes.append(f"R{stack.driver.branch} is past NVIDIA's end of life ({eol}); "
                         f"{patched}; nvidia_driver_source = 'cuda_repo' plans the long-term "
                         "R580 from NVIDIA's repository")
    return notes


def _validate(request: StackRequest) -> None:
    """Refuse values that are not of any allowed form, before any rule runs."""
    choices = {
        "driver_flavour": DRIVER_FLAVOURS,
        "driver_source": DRIVER_SOURCES,
        "driver_display": DRIVER_DISPLAYS,
    }
    for name, allowed in choices.items():
        value = getattr(request, name)
        if value not in allowed:
            hint = difflib.get_close_matches(value, allowed, n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise StackError(key_of(name), "invalid_value",
                             f"got {value!r}{did}; allowed: {', '.join(allowed)}")
    for name, words in VERSION_WORDS.items():
        value = getattr(request, name)
        if value not in words and not re.fullmatch(r"\d+(\.\d+){0,2}", value):
            raise StackError(key_of(name), "invalid_value",
                             f"got {value!r}; use {', '.join(repr(w) for w in words)} or a "
                             "version like '3.12'")
