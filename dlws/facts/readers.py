"""One reader of host facts for the deploy (pyinfra) and verify (testinfra); what a plan reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyinfra.facts.server import Arch, KernelVersion

from dlws.facts import batch
from dlws.facts.batch import FactRequest, run_fact, run_facts, stable_fact
from dlws.facts.gpu import (
    NvidiaModuleVersion,
    NvidiaPackages,
    NvidiaPciDevices,
    NvSwitchCount,
    installed_user_space_version,
)
from dlws.facts.system import (
    Container,
    Display,
    DpkgArchitecture,
    KernelImagePackages,
    OsRelease,
    SecureBoot,
)
from dlws.stack.records import HostFacts


class _Reader:
    """`read(fact_cls, *args)` for one fact, `read.many(requests)` for several in one round trip.

    Both sides read through the same commands and parsers (this module's facts, FactBatch)."""

    def __init__(self, one, many) -> None:
        self._one, self.many = one, many

    def __call__(self, fact_cls, *args):
        return self._one(fact_cls, *args)


def testinfra_reader(machine):
    """The reader over a testinfra host (verify's side)."""

    def run(command: str) -> tuple[int, str]:
        out = machine.run(command)
        return out.rc, out.stdout

    return _Reader(lambda fact_cls, *args: run_fact(run, fact_cls, *args),
                   lambda requests: run_facts(run, requests))


def pyinfra_reader(host):
    """The reader over a pyinfra host (the deploy's side); facts no deploy changes are read once
    per host and run, and `many` reads the requests together with every other fact this deploy
    read on the host last time, in one round trip (dlws.facts.batch)."""
    stable = (OsRelease, Container, Arch, DpkgArchitecture)

    def one(fact_cls, *args):
        if fact_cls in stable:
            return stable_fact(fact_cls, host)
        return host.get_fact(fact_cls, *args)

    def many(requests):
        batch.prefetch(host, requests)
        return [batch.cached(host, fact_cls, kwargs, UNREAD) for fact_cls, kwargs in requests]

    return _Reader(one, many)


# Every fact host_facts may need, read together: those only a GPU host's plan uses (NVSwitches,
# Secure Boot, NVIDIA's packages) cost no extra round trip this way.
HOST_FACTS: tuple[FactRequest, ...] = tuple(
    (fact_cls, {}) for fact_cls in (OsRelease, NvidiaPciDevices, Container, NvidiaModuleVersion,
                                    KernelVersion, Arch, NvSwitchCount, SecureBoot,
                                    NvidiaPackages, Display, DpkgArchitecture))


# What `many` gives for a fact the batch could not read (the reader reads it alone if needed).
UNREAD = object()


def _from_batch(found: Mapping[type, Any], read):
    def lookup(fact_cls):
        value = found.get(fact_cls, UNREAD)
        return read(fact_cls) if value is UNREAD else value
    return lookup


def host_facts(read, data: Mapping[str, Any]):
    """What the plan needs to know about a host (dlws.stack.HostFacts), through `read`.

    + read: `read(fact_cls, *args)`, from pyinfra_reader (deploy) or testinfra_reader (verify);
      its `read.many(requests)`, where it has one, reads them all in one round trip
    + data: the host's data: where no GPU is visible (a container without device access, a
      recorded host) the declared ``gpu_model`` x ``gpu_count`` is planned, and verify fails
      the host if the GPU is really missing
    """
    many = getattr(read, "many", None)
    if many is not None:  # one round trip; a fact the batch could not read is read on its own
        found = dict(zip((fact_cls for fact_cls, _ in HOST_FACTS), many(HOST_FACTS), strict=True))
        read = _from_batch(found, read)

    os_release = read(OsRelease)
    gpus = tuple(device["device_id"] for device in read(NvidiaPciDevices) or ())
    if not gpus and data.get("gpu_model") and (data.get("gpu_count") or 0) > 0:
        gpus = (data["gpu_model"],) * int(data["gpu_count"])
    in_container = bool(read(Container))
    # The loaded module first (a driver upgraded before its reboot runs the old one), else the
    # installed user space, from dpkg's list (a stamped reading: a rerun starts no dpkg-query).
    packages = read(NvidiaPackages) or {}
    installed = read(NvidiaModuleVersion) or installed_user_space_version(packages) or None
    # Facts that only a GPU host's plan reads: a CPU host is spared their round trips.
    board = bool(gpus) and not in_container
    return HostFacts(
        os_id=os_release["id"],
        os_release=os_release["version_id"],
        gpus=gpus,
        installed_driver=installed,
        in_container=in_container,
        kernel_release=read(KernelVersion) or None,
        machine=read(Arch) or "x86_64",
        dpkg_arch=read(DpkgArchitecture) or None,
        nvswitches=int(read(NvSwitchCount) or 0) if board else 0,
        secure_boot=read(SecureBoot) if board else None,
        nvidia_packages=tuple(sorted(packages.items())) if installed else (),
        # Only a GPU host's driver choice reads it (desktop or headless build).
        display=read(Display) if board else None,
        # The kernel metapackages the headers metapackage follows (dlws.stack.kernel): only
        # where the host runs its own kernel and a GPU is planned.
        kernel_images=tuple(read(KernelImagePackages) or ()) if board else (),
    )
