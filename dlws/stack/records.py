"""The solver's records: host facts and the inventory's request in, a host's nested stack out."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

AUTO = "auto"
NONE = "none"
WHEELS = "wheels"
NGC = "ngc"  # frameworks_tensorflow: NVIDIA's NGC TensorFlow container instead of pip
DISTRO = "distro"
CUDA_REPO = "cuda_repo"
OPEN = "open"
PROPRIETARY = "proprietary"


@dataclass(frozen=True)
class HostFacts:
    """What the plan needs to know about a host, read from it (dlws.facts) or recorded.

    + gpus: one entry per GPU, a PCI ID ("10de:2684") or an nvidia-smi name
    + installed_driver: the driver in use (loaded module, else installed user space)
    + kernel_release: ``uname -r``; machine: ``uname -m`` ("x86_64", "aarch64"; "arm64" and
      "amd64" are read as those); dpkg_arch: ``dpkg --print-architecture`` where read (None:
      the machine's own)
    + nvswitches: NVSwitch chips on the PCI bus (HGX boards)
    + secure_boot: True/False, None where it cannot be told
    + display: what shows the host runs a desktop (a display manager such as "gdm3", or
      "graphical.target"), None on a server (dlws.facts.Display)
    """

    os_id: str  # "debian" | "ubuntu"
    os_release: str  # "12", "13", "22.04", "24.04"
    gpus: tuple[str, ...] = ()
    installed_driver: str | None = None  # e.g. "535.183.01"
    in_container: bool = False
    secure_boot: bool | None = None
    kernel_release: str | None = None  # e.g. "6.8.0-45-generic"
    machine: str = "x86_64"
    nvswitches: int = 0
    dpkg_arch: str | None = None  # e.g. "amd64", "arm64"
    # Installed dpkg packages named *nvidia*/*cuda* with versions: what a branch change purges.
    nvidia_packages: tuple[tuple[str, str], ...] = ()
    display: str | None = None
    # Installed linux-image-* packages: the running flavour's metapackage among them tells which
    # headers metapackage follows new kernels (dlws.stack.kernel.headers_for).
    kernel_images: tuple[str, ...] = ()

DESKTOP = "desktop"
HEADLESS = "headless"
# The allowed values of the request's fields: the roles' Keys name these (declared once).
DRIVER_FLAVOURS = (AUTO, OPEN, PROPRIETARY)
DRIVER_SOURCES = (AUTO, DISTRO, CUDA_REPO)
DRIVER_DISPLAYS = (AUTO, DESKTOP, HEADLESS)
# The words a versioned field takes besides a version number.
VERSION_WORDS = {
    "cudnn": (AUTO, NONE, WHEELS),
    "tensorflow": (AUTO, NONE, NGC),
    "torch": (AUTO, NONE),
    "python": (AUTO,),
}


@dataclass(frozen=True)
class StackRequest:
    """What the inventory asks for; every field is "auto" unless pinned."""

    driver_branch: str = AUTO  # auto | none | "535" | "550" | ... (a branch in the table)
    driver_flavour: str = AUTO  # auto | open | proprietary
    driver_source: str = AUTO  # auto | distro | cuda_repo
    driver_display: str = AUTO  # auto | desktop | headless
    cuda: str = AUTO  # auto | none | "11.8" | "12.4" | "12.8" | "13.0" | ...
    cudnn: str = AUTO  # auto | none | wheels | a version ("9.0", "8.5", "9")
    tensorflow: str = AUTO  # auto | none | ngc | a version ("2.21.0")
    torch: str = AUTO  # auto | none | a version ("2.14.0")
    python: str = AUTO  # auto | the OS's Python ("3.12"): dlws builds its venv from it


# Each request field and the host-data key the deploy reads it from.
HOST_DATA_KEYS: dict[str, str] = {
    "driver_branch": "nvidia_driver_branch",
    "driver_flavour": "nvidia_driver_flavour",
    "driver_source": "nvidia_driver_source",
    "driver_display": "nvidia_driver_display",
    "cuda": "cuda_version",
    "cudnn": "cudnn_version",
    "tensorflow": "frameworks_tensorflow",
    "torch": "frameworks_torch",
    "python": "python_env_python",
}


def key_of(name: str) -> str:
    """The host-data key a request field comes from: "driver_branch" -> "nvidia_driver_branch"."""
    return HOST_DATA_KEYS[name]


def request_from_host_data(data: Mapping[str, Any]) -> StackRequest:
    """The request in a host's data; missing or None keys mean "auto"."""
    values = {}
    for name, key in HOST_DATA_KEYS.items():
        value = data.get(key)
        values[name] = AUTO if value is None else str(value).strip()
    return StackRequest(**values)


class StackError(ValueError):
    """A request the solver refuses: the key at fault, the rule broken, and the fix."""

    def __init__(self, key: str, constraint: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.constraint = constraint
        self.message = message


# --- the stack: one small record per stage, each read by its own role ----------------------------


@dataclass(frozen=True)
class OsStack:
    id: str
    release: str
    machine: str = "x86_64"
    # dpkg's architecture, the packages' and NVIDIA's repository's ("amd64", "arm64").
    dpkg_arch: str = "amd64"
    container: bool = False
    # linux-headers packages DKMS needs (roles/base); () where no module is built here.
    kernel_headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class GpuStack:
    models: tuple[str, ...] = ()
    arch: str | None = None
    compute_capability: str | None = None
    nvswitches: int = 0

    @property
    def count(self) -> int:
        return len(self.models)


@dataclass(frozen=True)
class DriverStack:
    branch: str | None = None
    flavour: str | None = None
    source: str | None = None
    # Everything apt installs for it: modules or user space, pinning, fabric manager, NVLSM.
    packages: tuple[str, ...] = ()
    fabric_manager: bool = False
    kernel_module: bool = False  # the module is loaded here (not a container's host's)
    # DKMS-built modules on a Secure Boot host load only once DKMS's key is enrolled (MOK).
    secure_boot_mok: bool = False
    # "desktop": the full driver and nvidia-drm modeset (a display manager runs here);
    # "headless": compute user space only (servers).
    display: str | None = None


@dataclass(frozen=True)
class CudaStack:
    version: str | None = None
    source: str | None = None
    home: str | None = None  # CUDA_HOME: /usr (distro) or /usr/local/cuda-X.Y (repository)
    packages: tuple[str, ...] = ()
    # NVIDIA's layout keeps headers and libraries per target: <home>/targets/<target>
    # ("x86_64-linux", "sbsa-linux" on Arm64 servers); None for the distribution's layout.
    target: str | None = None


@dataclass(frozen=True)
class CudnnStack:
    version: str | None = None  # a version, "wheels", or None
    source: str | None = None
    packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class NcclStack:
    version: str | None = None
    source: str | None = None
    packages: tuple[str, ...] = ()
    # apt version glob that ties NVIDIA's libnccl2 to the planned CUDA ("*+cuda13.0").
    apt_pin: str | None = None


@dataclass(frozen=True)
class TensorFlowStack:
    version: str | None = None
    package: str | None = None  # "tensorflow-cpu==2.21.0" | "tensorflow[and-cuda]==2.21.0"
    # frameworks_tensorflow = "ngc": the NGC image the host's driver runs, instead of pip
    image: str | None = None


@dataclass(frozen=True)
class TorchStack:
    version: str | None = None
    variant: str | None = None  # "cpu", "cu126", ...
    # PyTorch's index for the variant; None: PyPI's own wheel (Linux aarch64), whose version
    # carries no "+variant" local part.
    index_url: str | None = None

    @property
    def installed_version(self) -> str | None:
        """The version pip reports for the planned wheel: "2.14.1+cu126", or PyPI's "2.10.0"."""
        if not self.version:
            return None
        return f"{self.version}+{self.variant}" if self.index_url else self.version


@dataclass(frozen=True)
class PythonStack:
    version: str
    # The hash locks the host installs from (locks/<name>), uv's first; () without locks.
    locks: tuple[str, ...] = ()
    # The one CUDA major of the environment's CUDA wheels (nvidia-*-cu12 or -cu13): never
    # both, their NCCL and cuBLAS clash in one process. None = no CUDA wheels.
    cuda_major: int | None = None


@dataclass(frozen=True)
class ContainersStack:
    """The container engines (containers_engine) and, on a machine of its own with GPUs,
    NVIDIA's container toolkit, its CDI spec and how each engine takes GPUs; empty where no
    engine is planned (dlws.stack.services)."""

    engine: str | None = None  # "docker" | "podman" | "both"; None = no engine
    engine_source: str | None = None  # Docker's: "distro" | "docker_repo"
    engine_packages: tuple[str, ...] = ()
    engine_removes: tuple[str, ...] = ()  # the other source's packages (apt-get remove)
    docker_version: str | None = None
    podman_packages: tuple[str, ...] = ()
    rootless_users: tuple[str, ...] = ()  # each gets rootless Podman (base_lab_users)
    toolkit_packages: tuple[str, ...] = ()  # "nvidia-container-toolkit=1.18.0-1", ...
    cdi_spec: str | None = None  # /etc/cdi/nvidia.yaml where the toolkit goes
    gpu_mode: str | None = None  # "cdi" | "legacy" (containers_gpu_mode), GPU machines only
    docker_gpu_mode: str | None = None  # what Docker's engine allows: "cdi" | "legacy"
    dev_char_links: bool = False  # the legacy hook's /dev/char links
    cdi_refresh: str | None = None  # who regenerates the spec: "toolkit" | "dlws" units
    docker_users: tuple[str, ...] = ()  # the docker group (root-equivalent)


@dataclass(frozen=True)
class NotebooksStack:
    """JupyterHub for the lab (notebooks_enabled), in its own hash-locked environment, with the
    managed environment as its kernel (ipykernel there); empty where no hub is planned."""

    jupyterhub: str | None = None  # the release; None = no hub
    jupyterlab: str | None = None
    ipykernel: str | None = None


@dataclass(frozen=True)
class Transition:
    """How this host gets from what it has to the stack: shown by the plan, never recorded as
    the stack itself (after a deploy it describes a host that no longer exists)."""

    installed_driver: str | None = None
    keep_installed_driver: bool = False
    # Packages of another driver branch purged in the same apt transaction as the new branch.
    purge: tuple[str, ...] = ()
    reboot_pending: bool = False


@dataclass(frozen=True)
class Stack:
    """A host's whole stack: what every role carries out and every check expects."""

    os: OsStack
    gpu: GpuStack
    driver: DriverStack
    cuda: CudaStack
    cudnn: CudnnStack
    nccl: NcclStack
    python: PythonStack
    tensorflow: TensorFlowStack
    torch: TorchStack
    containers: ContainersStack = field(default_factory=ContainersStack)
    notebooks: NotebooksStack = field(default_factory=NotebooksStack)
    # NVIDIA's repository path with the machine's folder ("ubuntu2404/x86_64",
    # "ubuntu2404/sbsa") where it is used
    repo_path: str | None = None
    transition: Transition = field(default_factory=Transition)
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The stack as JSON-ready nested data (tuples become lists)."""
        return _jsonable(dataclasses.asdict(self))

    def recorded(self) -> dict[str, Any]:
        """What the deploy records and verify compares: the stack less its transition/notes."""
        data = self.as_dict()
        data.pop("transition")
        data.pop("notes")
        return data

    def replace(self, **changes: Any) -> Stack:
        return dataclasses.replace(self, **changes)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"driver": {"branch": "580"}} -> {"driver.branch": "580"}: field names for a diff."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def differences(recorded: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """Each field that differs, as "driver.branch: recorded '550', expected '580'"."""
    old, new = flatten(recorded), flatten(expected)
    return [f"{name}: recorded {old.get(name)!r}, expected {new.get(name)!r}"
            for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]
