"""NVIDIA's apt repositories, written once: CUDA's and the container toolkit's (URLs, keys)."""

from __future__ import annotations

import re
from io import StringIO
from weakref import WeakSet

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.context import ctx_host
from pyinfra.operations import files, server

from dlws.command import Command, sh
from dlws.roles.base import _apt, with_proxy
from dlws.roles.cache.defaults import apt_proxy
from dlws.stack.table import MACHINE_ALIASES, MACHINES, OS_RELEASES, repo_key, repo_path

# https://docs.nvidia.com/cuda/cuda-installation-guide-linux/ "Network Repository Installation":
# repos/<distro>/<arch>/, the path with its machine's folder as the stack gives it
# ("ubuntu2404/x86_64", "ubuntu2404/sbsa"; dlws.stack.table.MACHINES).
REPO_URL = "https://developer.download.nvidia.com/compute/cuda/repos/{path}/"
# The key that signs each repository path is in the OS table (dlws.stack.table OsRelease
# .repo_key: 3bf863cc.pub for ubuntu2204/ubuntu2404/debian12, 8793F200.pub for debian13). The
# key file is fetched from the repository and installed only when its fingerprint is that one:
# a swapped key fails the deploy instead of being trusted.
KEYRING = "/usr/share/keyrings/cuda-archive-keyring.gpg"
SOURCES = "/etc/apt/sources.list.d/dlws-cuda.sources"
PREFERENCES = "/etc/apt/preferences.d/dlws-cuda-repository"


def repo_url(os_id: str, release: str, machine: str) -> str:
    return REPO_URL.format(path=repo_path(OS_RELEASES[(os_id, release)],
                                          MACHINE_ALIASES[machine]))


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


# A primary key and its fingerprint in `gpg --with-colons` output (doc/DETAILS in GnuPG's source:
# a "pub" record, then its "fpr" record with the fingerprint in field 10).
_PUB = re.compile(r"^pub:")
_FPR = re.compile(r"^fpr:(?:[^:]*:){8}([0-9A-F]{40}):")


def primary_fingerprints(colons: str) -> list[str]:
    """The fingerprint of each primary key in `gpg --show-keys --with-colons` output."""
    found, after_pub = [], False
    for line in colons.splitlines():
        if _PUB.match(line):
            after_pub = True
        elif after_pub and (match := _FPR.match(line)):
            found.append(match[1])
            after_pub = False
        elif line.startswith(("sub:", "ssb:", "sec:")):
            after_pub = line.startswith("sec:")
    return found


class KeyringPrimaryKeys(FactBase):
    """Fingerprints of the primary keys in an apt keyring file ([] when it is missing or empty).

    .. code:: python

        ["EB693B3035CD5710E231E123A4B469963BF863CC"]
    """

    requires_command = "gpg"

    def command(self, path: str) -> Command:
        return sh('[ -f {} ] || exit 0; d=$(mktemp -d) && GNUPGHOME="$d" LANG=C gpg --batch '
                  '--show-keys --with-colons -- {} 2>/dev/null; rm -rf "$d"', path, path)

    default = list

    def process(self, output):
        return primary_fingerprints("\n".join(output))


def key_install_script(key_url: str, fingerprint: str, keyring: str) -> Command:
    """Fetch a repository key into a private folder and install it only if it is exactly one
    primary key with `fingerprint`; else refuse and leave the installed keyring as it was.

    + key_url: where the repository publishes its key (fetched with curl, through the proxy
      the caller sets up)
    + fingerprint: the 40 hex digits the key must have (from the publisher's documentation)
    + keyring: the keyring file apt's sources name in Signed-By
    """
    if not re.fullmatch(r"[0-9A-F]{40}", fingerprint):
        raise ValueError(f"{fingerprint!r} is not a 40-digit upper-case key fingerprint")
    tmp = keyring + ".dlws-new"
    # mktemp -d: a new folder only root can enter (0700), never a fixed /tmp path another
    # local user could create or swap first. The refusal names the URL, the fingerprint and
    # the keyring as quoted words between the message's double-quoted parts. The key is
    # imported into the private keyring and that one key exported: nothing else reaches apt.
    return sh(
        'set -e; d=$(mktemp -d); trap \'rm -rf "$d"\' EXIT; mkdir -m 700 "$d/gnupg"; '
        'curl -fsSL --max-time 60 -o "$d/key" -- {}; '
        'GNUPGHOME="$d/gnupg" LANG=C gpg --batch --show-keys --with-colons "$d/key" > "$d/keys"; '
        'n=$(grep -c "^pub:" "$d/keys" || true); '
        'f=$(awk -F: \'/^pub:/{{p=1; next}} p && /^fpr:/{{print $10; exit}}\' "$d/keys"); '
        'if [ "$n" != 1 ] || [ "$f" != {} ]; then echo "dlws: refused the repository key "'
        '{}": it holds $n primary key(s), first $f; expected exactly one, "{}" (the '
        'keyring "{}" was left as it was)" >&2; exit 1; fi; '
        'GNUPGHOME="$d/gnupg" gpg --batch --quiet --import "$d/key"; '
        'GNUPGHOME="$d/gnupg" gpg --batch --export {} > "$d/keyring"; '
        'install -m 644 -o root -g root "$d/keyring" {}; '
        "mv -f -- {} {}",
        key_url, fingerprint, key_url, fingerprint, keyring, fingerprint, tmp, tmp, keyring,
    )


# Hosts of this run that have the repository already (each role that needs it calls configure).
_CONFIGURED: WeakSet = WeakSet()


def install_key(key_url: str, fingerprint: str, keyring: str, name: str | None = None) -> None:
    """Install a repository's key unless the keyring already holds exactly that one key.

    The installed keyring is read on every run (KeyringPrimaryKeys): a keyring with another key
    added, or replaced, is fetched and checked again.
    """
    server.shell(
        name=name or (f"Install NVIDIA's repository key {fingerprint[-8:]} (exactly one key, "
                      "fingerprint checked)"),
        commands=[with_proxy(key_install_script(key_url, fingerprint, keyring))],
        _if=lambda: host.get_fact(KeyringPrimaryKeys, path=keyring) != [fingerprint],
    )


def configure(plan) -> None:
    """Add NVIDIA's repository for this host's stack (idempotent; every role that needs it
    calls this)."""
    current = ctx_host.get()
    if current in _CONFIGURED:
        return
    _CONFIGURED.add(current)
    path = plan.repo_path or repo_path(OS_RELEASES[(plan.os.id, plan.os.release)],
                                       MACHINE_ALIASES[plan.os.machine])
    url = REPO_URL.format(path=path)
    key = repo_key(path)
    _apt.packages(name="Install gnupg to check NVIDIA's repository key", packages=["gnupg"],
                  no_recommends=True, _env={"DEBIAN_FRONTEND": "noninteractive"})
    install_key(url + key.file, key.fingerprint, KEYRING)
    through_cache = bool(apt_proxy(host.data))
    sources = files.put(name="Add NVIDIA's CUDA repository"
                        + (" (through the fleet's package cache)" if through_cache else ""),
                        src=StringIO(sources_content(apt_url(url, through_cache))),
                        dest=SOURCES, mode="644", create_remote_dir=False)
    driver_from_repo = plan.driver.source == "cuda_repo"
    files.put(name="Prefer NVIDIA's repository for its own packages"
              + ("" if driver_from_repo else ", never for the driver"),
              src=StringIO(preferences_content(driver_from_repo)), dest=PREFERENCES, mode="644",
              create_remote_dir=False)
    _apt.refresh(name="Refresh the apt index after adding NVIDIA's repository",
                 _if=sources.did_change)


# NVIDIA's container toolkit repository (libnvidia-container), from the install guide
# (docs.nvidia.com/datacenter/cloud-native/container-toolkit/latest/install-guide.html,
# "Installing with Apt"): one repository for every Debian and Ubuntu release; the guide's
# `$(ARCH)` is the dpkg architecture, written out here. The guide prints no fingerprint: the key's
# ID DDCAE044F796ECB0 ("NVIDIA CORPORATION (Open Source Projects)") is NVIDIA's own statement
# (NVIDIA/nvidia-container-runtime#88, NVIDIA/libnvidia-container#171); the full fingerprint
# ending in it is from independent copies of the key (unverified against an NVIDIA page).
TOOLKIT_REPO_URL = "https://nvidia.github.io/libnvidia-container/stable/deb/{arch}"
TOOLKIT_KEY_URL = "https://nvidia.github.io/libnvidia-container/gpgkey"
TOOLKIT_KEY_FINGERPRINT = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
TOOLKIT_KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
TOOLKIT_SOURCES = "/etc/apt/sources.list.d/dlws-nvidia-container-toolkit.sources"
# uname -m -> dpkg architecture (the toolkit repository's folders).
DPKG_ARCHES = {alias: MACHINES[name].dpkg_arch for alias, name in MACHINE_ALIASES.items()}


def toolkit_sources_content(machine: str) -> str:
    url = TOOLKIT_REPO_URL.format(arch=DPKG_ARCHES[machine])
    return ("# Managed by dlws (roles/nvidia_repo): NVIDIA's container toolkit repository.\n"
            f"Types: deb\nURIs: {url}\nSuites: /\nSigned-By: {TOOLKIT_KEYRING}\n")


def configure_container_toolkit(machine: str) -> None:
    """Add NVIDIA's container toolkit repository (the containers role calls this on GPU hosts)."""
    _apt.packages(name="Install gnupg to check repository keys", packages=["gnupg"],
                  no_recommends=True, _env={"DEBIAN_FRONTEND": "noninteractive"})
    install_key(TOOLKIT_KEY_URL, TOOLKIT_KEY_FINGERPRINT, TOOLKIT_KEYRING,
                name=f"Install NVIDIA's container toolkit key {TOOLKIT_KEY_FINGERPRINT[-8:]} "
                     "(exactly one key, fingerprint checked)")
    sources = files.put(name="Add NVIDIA's container toolkit repository",
                        src=StringIO(toolkit_sources_content(machine)),
                        dest=TOOLKIT_SOURCES, mode="644", create_remote_dir=False)
    _apt.refresh(name="Refresh the apt index after adding the container toolkit repository",
                 _if=sources.did_change)
