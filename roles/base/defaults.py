"""Host-data keys of the base role: each with its default, type, check and doc."""

from __future__ import annotations

from dlws.domains import (
    all_of,
    deb_package,
    each,
    host_path,
    no_proxy,
    number_range,
    pem_certificates,
    unique,
    url,
    user_name,
)
from dlws.schema import Key, defaults

# An apt/dpkg lock wait of a day is already more than any unattended-upgrades run; the shell's
# arithmetic (64-bit) must never overflow.
MAX_LOCK_WAIT_S = 86400
KEYS = [
    Key("base_apt_manage_sources", True, (bool,),
        "add the components the GPU stack needs to the host's own apt sources"),
    Key("base_apt_mirror", None, (str,),
        "replace the host's Debian/Ubuntu mirror with this http(s) URL (originals kept as "
        "*.dlws-orig); no credentials (use the host's /etc/apt/auth.conf.d)",
        check=url(("http", "https"), credentials=False), nullable=True),
    Key("base_apt_cache_s", 3600, (int,),
        "seconds an apt index stays fresh before the deploy runs apt-get update again",
        check=number_range(0, 30 * 86400, unit="s")),
    Key("base_extra_packages", [], (list,),
        "more apt packages for every host: Debian package names (NAME, NAME:ARCH, NAME=VERSION)",
        check=all_of(each(deb_package), unique)),
    Key("base_kernel_headers", "auto", (str,),
        "install linux-headers for the running kernel: auto = only where the host runs its own "
        "kernel (not in a container)", choices=("auto", "yes", "no")),
    Key("base_extra_ca_certs", [], (list,),
        "controller paths of PEM CA certificates (or bundles) the hosts must trust, e.g. an "
        "intercepting proxy's CA", check=all_of(each(lambda v: None), pem_certificates)),
    Key("base_http_proxy", None, (str,),
        "HTTP proxy for apt, pip and login shells: http(s)://[USER:PASSWORD@]HOST:PORT "
        "(credentials are kept in root-only files)",
        check=url(("http", "https"), credentials=True, path=False), nullable=True),
    Key("base_https_proxy", None, (str,),
        "HTTPS proxy for apt, pip and login shells: http(s)://[USER:PASSWORD@]HOST:PORT",
        check=url(("http", "https"), credentials=True, path=False), nullable=True),
    Key("base_no_proxy", None, (str,),
        "comma-separated hosts that bypass the proxy (no spaces)", check=no_proxy,
        nullable=True),
    Key("base_ca_dir", "/usr/local/share/ca-certificates/dlws", (str,),
        "where extra CA certificates are installed on the host",
        check=host_path(managed=True)),
    Key("base_apt_lock_timeout_s", 120, (int,),
        "seconds apt and dpkg wait for a lock another process holds (unattended-upgrades), "
        "then the deploy fails naming the lock and its holder (at most a day)",
        check=number_range(0, MAX_LOCK_WAIT_S, unit="s")),
    Key("base_lab_users", [], (list,),
        "the lab's people: created if missing and put in the groups the GPU needs "
        "(video, render); never added to docker (containers_docker_users does that). Portable "
        "names, never root or a system account",
        check=all_of(each(user_name), unique)),
]
DEFAULTS = defaults(KEYS)
