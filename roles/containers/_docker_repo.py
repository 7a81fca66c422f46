"""Docker's own apt repository (download.docker.com): URL, signing key, packages."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
from pyinfra.operations import files

from dlws.roles.base import _apt
from dlws.roles.nvidia_repo import DPKG_ARCHES, install_key

# https://docs.docker.com/engine/install/debian/ and .../ubuntu/ "Install using the apt
# repository": one tree per distribution, the release's codename as suite, component stable.
# The key's fingerprint is the one Docker's install pages printed for it (docker/docs#11990,
# engine/install/debian.md: "9DC8 5822 9FC7 DD38 854A E2D8 8D81 803C 0EBF CD88").
REPO_URL = "https://download.docker.com/linux/{os_id}"
KEY_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"
KEYRING = "/usr/share/keyrings/dlws-docker.gpg"
SOURCES = "/etc/apt/sources.list.d/dlws-docker.sources"


def sources_content(os_id: str, codename: str, machine: str) -> str:
    return ("# Managed by dlws (roles/containers): Docker's repository.\n"
            f"Types: deb\nURIs: {REPO_URL.format(os_id=os_id)}\nSuites: {codename}\n"
            f"Components: stable\nArchitectures: {DPKG_ARCHES[machine]}\nSigned-By: {KEYRING}\n")


def configure(os_id: str, codename: str, machine: str) -> None:
    """Add Docker's repository, its key installed only when the fingerprint matches."""
    url = REPO_URL.format(os_id=os_id)
    _apt.packages(name="Install gnupg to check repository keys", packages=["gnupg"],
                  no_recommends=True, _env={"DEBIAN_FRONTEND": "noninteractive"})
    install_key(f"{url}/gpg", KEY_FINGERPRINT, KEYRING,
                name=f"Install Docker's repository key {KEY_FINGERPRINT[-8:]} (exactly one key, "
                     "fingerprint checked)")
    sources = files.put(name="Add Docker's repository",
                        src=StringIO(sources_content(os_id, codename, machine)),
                        dest=SOURCES, mode="644", create_remote_dir=False)
    _apt.refresh(name="Refresh the apt index after adding Docker's repository",
                 _if=sources.did_change)
    host.noop(f"Docker's packages come from {url} ({codename} stable)")
