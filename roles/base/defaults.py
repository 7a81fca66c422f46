"""Host-data keys of the base role: each with its default, type, check and doc."""

from __future__ import annotations

import re
from typing import Any

from dlws.validate.domains import (
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
from dlws.validate.schema import Key, defaults

# An apt/dpkg lock wait of a day is already more than any unattended-upgrades run; the shell's
# arithmetic (64-bit) must never overflow.
MAX_LOCK_WAIT_S = 86400
# Debian's and Ubuntu's own accounts and groups (base-passwd's passwd.master and group.master,
# /usr/share/base-passwd/ on Debian 12), and those packages commonly add: never lab people.
SYSTEM_ACCOUNTS = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
    "proxy", "www-data", "backup", "list", "irc", "gnats", "_apt", "nobody", "messagebus",
    "sshd", "syslog", "uuidd", "tss", "polkitd", "dnsmasq", "avahi", "ntp", "ntpsec", "postfix",
    "statd", "nvidia-persistenced", "pollinate", "landscape", "lxd", "usbmux", "colord", "gdm",
    "sddm", "lightdm", "pulse", "rtkit", "saned", "geoclue", "kernoops", "whoopsie",
    "speech-dispatcher", "apt-cacher-ng",
})
SYSTEM_GROUPS = frozenset({
    "root", "daemon", "bin", "sys", "adm", "tty", "disk", "lp", "mail", "news", "uucp", "man",
    "proxy", "kmem", "dialout", "fax", "voice", "cdrom", "floppy", "tape", "sudo", "audio",
    "dip", "www-data", "backup", "operator", "list", "irc", "src", "shadow", "utmp", "video",
    "sasl", "plugdev", "staff", "games", "nogroup", "render", "docker", "wheel", "lpadmin",
    "systemd-journal", "input", "kvm", "sgx",
})
# useradd's default NAME_REGEX (adduser.conf(5)), at most 32 characters (useradd(8)).
ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def lab_users_problem(value: Any) -> str | None:
    if any(not isinstance(user, str) for user in value):
        return "items must be strings"
    for user in value:
        if not ACCOUNT_NAME.match(user):
            return (f"{user!r} is not an account name (lowercase letter first, then a-z 0-9 _ "
                    "-, at most 32)")
        if user in SYSTEM_ACCOUNTS or user.startswith(("systemd-", "_")):
            return (f"{user!r} is a system account: lab users must be people; remove it "
                    "(root and system accounts are never managed)")
    twice = sorted({u for u in value if value.count(u) > 1})
    return f"{twice[0]!r} is listed twice" if twice else None


def lab_group_problem(value: Any) -> str | None:
    if not ACCOUNT_NAME.match(value):
        return f"{value!r} is not a group name (lowercase letter first, then a-z 0-9 _ -)"
    if value in SYSTEM_GROUPS:
        return (f"{value!r} is a system group with its own meaning; choose the lab's own "
                "group, e.g. 'lab'")
    return None


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
        "kernel headers: auto = where the host runs its own kernel (not a container) the "
        "running kernel's, and where DKMS builds the NVIDIA module (Debian's driver, NVIDIA's "
        "repository) also the headers metapackage of its flavour (linux-headers-amd64, "
        "-cloud-amd64, -generic-hwe-24.04...) so every new kernel gets its module; yes = both "
        "on every host; no = none", choices=("auto", "yes", "no")),
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
        "the lab's people: created if missing (an existing account keeps its home, shell and "
        "groups) and put in the GPU groups (video, render) and base_lab_group; never added to "
        "docker (containers_docker_users does that); root and system accounts are refused; one "
        "removed from this list is reported, never deleted",
        check=all_of(each(user_name), unique, lab_users_problem)),
    Key("base_lab_group", "lab", (str,),
        "the lab's group: every lab user is in it, and it owns the shared datasets folders "
        "(storage_disks)", check=lab_group_problem),
]
DEFAULTS = defaults(KEYS)
