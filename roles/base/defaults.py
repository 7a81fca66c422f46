"""Host-data keys of the base role: each with its default, type, check and doc."""

from __future__ import annotations

from dlws.schema import (
    Key,
    absolute_path,
    defaults,
    local_path_exists,
    non_negative,
    str_list,
    url,
)

KEYS = [
    Key("base_apt_manage_sources", True, (bool,),
        "add the components the GPU stack needs to the host's own apt sources"),
    Key("base_apt_mirror", None, (str,),
        "replace the host's Debian/Ubuntu mirror with this URL (originals kept as *.dlws-orig)",
        check=url, nullable=True),
    Key("base_apt_cache_s", 3600, (int,),
        "seconds an apt index stays fresh before the deploy runs apt-get update again",
        check=lambda v: None if v >= 0 else "must be 0 or more"),
    Key("base_extra_packages", [], (list,), "more apt packages for every host", check=str_list),
    Key("base_kernel_headers", "auto", (str,),
        "install linux-headers for the running kernel: auto = only where the host runs its own "
        "kernel (not in a container)", choices=("auto", "yes", "no")),
    Key("base_extra_ca_certs", [], (list,),
        "controller paths of PEM CA certificates (or bundles) the hosts must trust, e.g. an "
        "intercepting proxy's CA", check=local_path_exists("CA certificate file")),
    Key("base_http_proxy", None, (str,), "HTTP proxy for apt, pip and login shells",
        check=url, nullable=True),
    Key("base_https_proxy", None, (str,), "HTTPS proxy for apt, pip and login shells",
        check=url, nullable=True),
    Key("base_no_proxy", None, (str,), "comma-separated hosts that bypass the proxy",
        nullable=True),
    Key("base_ca_dir", "/usr/local/share/ca-certificates/dlws", (str,),
        "where extra CA certificates are installed on the host", check=absolute_path),
    Key("base_apt_lock_timeout_s", 120, (int,),
        "seconds apt and dpkg wait for a lock another process holds (unattended-upgrades), "
        "then the deploy fails naming the lock and its holder", check=non_negative),
    Key("base_lab_users", [], (list,),
        "the lab's people: created if missing and put in the groups the GPU needs "
        "(video, render); never added to docker", check=str_list),
    Key("base_docker_users", [], (list,),
        "lab users allowed in the docker group (root-equivalent); verify fails any other "
        "lab user found there", check=str_list),
]
DEFAULTS = defaults(KEYS)
