"""Host-data keys of the base role: each with its default, type, check and doc."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlws.validate.domains import (
    ControllerPath,
    HostPath,
    ListOf,
    Number,
    Url,
    deb_package,
    group_name,
    no_proxy,
    pem_certificates,
    user_name,
)
from dlws.validate.schema import Key, defaults

# An apt/dpkg lock wait of a day is already more than any unattended-upgrades run; the shell's
# arithmetic (64-bit) must never overflow.
MAX_LOCK_WAIT_S = 86400


def _mirror_needs_sources(data: Mapping[str, Any]) -> str | None:
    if data.get("base_apt_mirror") and not data.get("base_apt_manage_sources"):
        return ("base_apt_mirror is set but base_apt_manage_sources is False, so the mirror would "
                "be silently ignored; set base_apt_manage_sources = True or unset base_apt_mirror")
    return None


KEYS = [
    Key("base_apt_manage_sources", True, (bool,),
        "add the components the GPU stack needs to the host's own apt sources"),
    Key("base_apt_mirror", None, (str,),
        "replace the host's Debian/Ubuntu mirror with this http(s) URL (originals kept as "
        "*.dlws-orig); no credentials (use the host's /etc/apt/auth.conf.d)",
        check=Url(("http", "https"), credentials=False), nullable=True,
        check_data=_mirror_needs_sources),
    Key("base_apt_cache_s", 3600, (int,),
        "seconds an apt index stays fresh before the deploy runs apt-get update again",
        check=Number(0, 30 * 86400, unit="s")),
    Key("base_extra_packages", [], (list,),
        "more apt packages for every host: Debian package names (NAME, NAME:ARCH, NAME=VERSION)",
        check=ListOf(deb_package())),
    Key("base_kernel_headers", "auto", (str,),
        "kernel headers: auto = where the host runs its own kernel (not a container) the "
        "running kernel's, and where DKMS builds the NVIDIA module (Debian's driver, NVIDIA's "
        "repository) also the headers metapackage of its flavour (linux-headers-amd64, "
        "-cloud-amd64, -generic-hwe-24.04...) so every new kernel gets its module; yes = both "
        "on every host; no = none", choices=("auto", "yes", "no")),
    Key("base_extra_ca_certs", [], (list,),
        "controller paths of PEM CA certificates (or bundles) the hosts must trust, e.g. an "
        "intercepting proxy's CA", check=ListOf(ControllerPath(pem_certificates), max_items=64)),
    Key("base_http_proxy", None, (str,),
        "HTTP proxy for apt, pip and login shells: http(s)://[USER:PASSWORD@]HOST:PORT "
        "(credentials are kept in root-only files)",
        check=Url(("http", "https"), credentials=True, path=False), nullable=True),
    Key("base_https_proxy", None, (str,),
        "HTTPS proxy for apt, pip and login shells: http(s)://[USER:PASSWORD@]HOST:PORT",
        check=Url(("http", "https"), credentials=True, path=False), nullable=True),
    Key("base_no_proxy", None, (str,),
        "comma-separated hosts that bypass the proxy (no spaces)", check=no_proxy(),
        nullable=True),
    Key("base_ca_dir", "/usr/local/share/ca-certificates/dlws", (str,),
        "where extra CA certificates are installed on the host",
        check=HostPath(managed=True, under=("/usr/local/share/ca-certificates",),
                       example="/usr/local/share/ca-certificates/dlws")),
    Key("base_apt_lock_timeout_s", 120, (int,),
        "seconds apt and dpkg wait for a lock another process holds (unattended-upgrades), "
        "then the deploy fails naming the lock and its holder (at most a day)",
        check=Number(0, MAX_LOCK_WAIT_S, unit="s")),
    Key("base_lab_users", [], (list,),
        "the lab's people: created if missing (an existing account keeps its home, shell and "
        "groups) and put in the GPU groups (video, render) and base_lab_group; never added to "
        "docker (containers_docker_users does that); root and system accounts are refused; one "
        "removed from this list is reported, never deleted",
        check=ListOf(user_name(), max_items=1000)),
    Key("base_lab_group", "lab", (str,),
        "the lab's group: every lab user is in it, and it owns the shared datasets folders "
        "(storage_disks)", check=group_name()),
]
DEFAULTS = defaults(KEYS)


def declared_lab_users(data: Mapping[str, Any]) -> list[str]:
    """The lab's people (base_lab_users), for the roles that serve them (containers, notebooks):
    they ask this role, never its key."""
    return list(data.get("base_lab_users") or DEFAULTS["base_lab_users"])


def lab_group(data: Mapping[str, Any]) -> str:
    """The group the lab's people share (base_lab_group), for the folders they share (storage)."""
    return data.get("base_lab_group") or DEFAULTS["base_lab_group"]
