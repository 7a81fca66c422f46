"""NVIDIA's CUDA repository, written once: URL, signing key, architecture mapping, priority."""

from __future__ import annotations

from io import StringIO
from weakref import WeakSet

from pyinfra import host
from pyinfra.context import ctx_host
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server

from dlws.stack.table import OS_RELEASES, repo_key

# https://docs.nvidia.com/cuda/cuda-installation-guide-linux/ "Network Repository Installation"
REPO_URL = "https://developer.download.nvidia.com/compute/cuda/repos/{path}/{arch}/"
# The key that signs each repository path is in the OS table (dlws.stack.table OsRelease
# .repo_key: 3bf863cc.pub for ubuntu2204/ubuntu2404/debian12, 8793F200.pub for debian13). The
# key file is fetched from the repository and installed only when its fingerprint is that one:
# a swapped key fails the deploy instead of being trusted.
KEYRING = "/usr/share/keyrings/cuda-archive-keyring.gpg"
SOURCES = "/etc/apt/sources.list.d/dlws-cuda.sources"
PREFERENCES = "/etc/apt/preferences.d/dlws-cuda-repository"
# uname -m -> the repository's architecture folder (arm64 servers use the sbsa tree).
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "sbsa", "arm64": "sbsa"}


def repo_url(os_id: str, release: str, machine: str) -> str:
    return REPO_URL.format(path=OS_RELEASES[(os_id, release)].cuda_repo_path,
                           arch=ARCHES[machine])


def apt_url(url: str, through_cache: bool) -> str:
    """The URI apt fetches the repository from: through the fleet's apt-cacher-ng (roles/cache)
    the same URL over plain http, which the cache maps to NVIDIA's https server (its
    CUDA_REMAP) and caches, so each package crosses the uplink once for the fleet. The host
    name stays NVIDIA's, so the preferences' `Pin: origin` still matches, and apt still checks
    every package against NVIDIA's key (Signed-By): the http hop to the cache changes nothing
    of what is trusted."""
    return "http://" + url.removeprefix("https://") if through_cache else url


def sources_content(url: str) -> str:
    return (
        "# Managed by dlws (roles/nvidia_repo): NVIDIA's CUDA repository.\n"
        f"Types: deb\nURIs: {url}\nSuites: /\nSigned-By: {KEYRING}\n"
    )


# The repository's packages win over the distribution's same-named ones, as NVIDIA's own
# cuda-<distro>.pin file sets.
PREFERENCES_CONTENT = (
    "# Managed by dlws (roles/nvidia_repo).\n"
    "Package: *\nPin: origin developer.download.nvidia.com\nPin-Priority: 600\n"
)
# Where the driver comes from the distribution (Ubuntu's signed modules, Debian's DKMS), the
# repository's same-named driver user space (libnvidia-compute-580, nvidia-utils-580, libcuda1)
# must never replace it: a newer user space than the module is NVML's "Driver/library version
# mismatch". The first matching stanza decides (apt_preferences(5)), so this one comes first.
DISTRO_DRIVER_PREFERENCES = (
    "Package: nvidia-* libnvidia-* libcuda* linux-modules-nvidia-* linux-objects-nvidia-* "
    "xserver-xorg-video-nvidia-* cuda-drivers* firmware-nvidia-*\n"
    "Pin: origin developer.download.nvidia.com\nPin-Priority: -1\n"
)


def preferences_content(driver_from_repo: bool) -> str:
    if driver_from_repo:
        return PREFERENCES_CONTENT
    header, _, rest = PREFERENCES_CONTENT.partition("\n")
    return f"{header}\n{DISTRO_DRIVER_PREFERENCES}\n{rest}"


# Hosts of this run that have the repository already (each role that needs it calls configure).
_CONFIGURED: WeakSet = WeakSet()


def configure(plan) -> None:
    """Add NVIDIA's repository for this host's stack (idempotent; every role that needs it
    calls this)."""
    current = ctx_host.get()
    if current in _CONFIGURED:
        return
    _CONFIGURED.add(current)
    url = repo_url(plan.os.id, plan.os.release, plan.os.machine)
    key = repo_key(OS_RELEASES[(plan.os.id, plan.os.release)].cuda_repo_path)
    apt.packages(name="Install gnupg to check NVIDIA's repository key", packages=["gnupg"],
                 no_recommends=True, _env={"DEBIAN_FRONTEND": "noninteractive"})
    server.shell(
        name=f"Install NVIDIA's repository key {key.fingerprint[-8:]} (fingerprint checked)",
        commands=[
            f"curl -fsSL {url}{key.file} -o /tmp/dlws-cuda-key.pub",
            "gpg --show-keys --with-colons /tmp/dlws-cuda-key.pub | grep -q "
            f"'^fpr:::::::::{key.fingerprint}:' || {{ echo 'NVIDIA repository key fingerprint "
            f"mismatch: expected {key.fingerprint}' >&2; exit 1; }}",
            f"gpg --dearmor < /tmp/dlws-cuda-key.pub > {KEYRING}.tmp && mv {KEYRING}.tmp {KEYRING}",
            "rm -f /tmp/dlws-cuda-key.pub",
        ],
        _if=lambda: host.get_fact(File, path=KEYRING) is None,
    )
    through_cache = bool(host.data.get("cache_apt_proxy"))
    sources = files.put(name="Add NVIDIA's CUDA repository"
                        + (" (through the fleet's package cache)" if through_cache else ""),
                        src=StringIO(sources_content(apt_url(url, through_cache))),
                        dest=SOURCES, mode="644", create_remote_dir=False)
    driver_from_repo = plan.driver.source == "cuda_repo"
    files.put(name="Prefer NVIDIA's repository for its own packages"
              + ("" if driver_from_repo else ", never for the driver"),
              src=StringIO(preferences_content(driver_from_repo)), dest=PREFERENCES, mode="644",
              create_remote_dir=False)
    apt.update(name="Refresh the apt index after adding NVIDIA's repository",
               _if=sources.did_change)
