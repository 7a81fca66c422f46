"""The closed domains every host-data key is declared with: names, numbers, paths, URLs, lists.

A key's check is one of the few ``Domain`` types below (dlws.validate.schema.Key refuses any
other): each one closes its values by construction. Strings are ASCII, matched in full
(``re.fullmatch`` with ``re.ASCII``, never ``$``, which matches before a final newline) and
bounded in length; numbers are finite, with a lower and an upper bound; paths are normalised and
held to one list of system folders; URLs have one script, one ``@`` at most and credentials only
where the key takes them. A domain may be narrowed (``also=``), never widened. Values are hostile
data (a hurried edit, a malicious hosts.yml): a check refuses what a shell, a configuration file
or an option parser could read as anything but the value itself, and says how to fix it.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import json
import math
import os
import posixpath
import re
import ssl
import stat
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from dlws.validate.secrets import redact

Check = Callable[[Any], "str | None"]

# C0 and C1 control characters, DEL: a newline in a value starts a new line of a config file.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The longest value of each kind: a name (useradd: 32, an image reference: 255), a host path
# (PATH_MAX is 4096, but dlws's own folders are short), a URL (browsers: 2,048).
NAME_MAX = 64
PATH_MAX = 255
URL_MAX = 2048
LIST_MAX = 256


class Domain:
    """A closed set of values: ``domain(value)`` is None when the value is in it, else the reason
    and the fix.

    + also: further checks that only refuse more (a list's items listed twice, a cross-field rule)
    """

    kind = "value"
    types: tuple[type, ...] = (str,)

    def __init__(self, *, also: Iterable[Check] = ()) -> None:
        self.also = tuple(also)

    def __call__(self, value: Any) -> str | None:
        reason = self.check(value)
        if reason:
            return reason
        for extra in self.also:
            reason = extra(value)
            if reason:
                return reason
        return None

    def check(self, value: Any) -> str | None:  # pragma: no cover - every domain has its own
        raise NotImplementedError


def no_control(value: str) -> str | None:
    if _CONTROL.search(value):
        return f"{value!r} holds a control character (newline, tab, escape); remove it"
    return None


def _items(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value)


def _text(value: Any, max_len: int) -> str | None:
    """A string: ASCII, no control characters, at most `max_len` characters."""
    if not isinstance(value, str):
        return f"got {value!r} ({type(value).__name__}); expected a string"
    if len(value) > max_len:
        return f"{value[:40]!r}... is {len(value)} characters long; at most {max_len}"
    if _CONTROL.search(value):
        return f"{value!r} holds a control character (newline, tab, escape); remove it"
    if not value.isascii():
        odd = "".join(sorted({c for c in value if not c.isascii()}))
        return (f"{value!r} holds {odd!r}, which is not ASCII (a look-alike letter or a digit "
                "of another script); write it in ASCII letters and digits")
    return None


class Name(Domain):
    """An ASCII word matched in full by `pattern`, at most `max_len` characters.

    + pattern: a regular expression in ASCII classes ([a-z0-9], never \\d or \\w)
    + what: what the value must be, with an example (the message's fix)
    + refuse: names refused even though they match, with the reason
    """

    kind = "name"

    def __init__(self, pattern: str, what: str, *, example: str, max_len: int = NAME_MAX,
                 words: Iterable[str] = (), refuse: Mapping[str, str] | None = None,
                 noun: str = "", also: Iterable[Check] = ()) -> None:
        super().__init__(also=also)
        self.noun = noun
        self.regex = re.compile(pattern, re.ASCII)
        self.what = what
        self.example = example
        self.max_len = max_len
        self.words = tuple(words)
        self.refuse = dict(refuse or {})

    def check(self, value: Any) -> str | None:
        reason = _text(value, self.max_len)
        if reason:
            return reason
        if value in self.words:
            return None
        if value.startswith("-"):
            return f"{value!r} is an option (it starts with '-'), not a value; use {self.what}"
        if not self.regex.fullmatch(value):
            return f"{value!r} is not {self.noun}; use {self.what}" if self.noun else \
                f"{value!r}: use {self.what}"
        if value in self.refuse:
            return f"{value!r} {self.refuse[value]}"
        return None


def version(words: Iterable[str], pattern: str, example: str, max_len: int = 32) -> Name:
    """A release number (ASCII digits and dots in `pattern`) or one of `words`."""
    words = tuple(words)
    choices = ", ".join(repr(w) for w in words)
    what = f"{choices} or a version like {example!r}" if words else \
        f"a version like {example!r}"
    return Name(pattern, what, example=example, words=words, max_len=max_len)


class Choice(Domain):
    """One of a few strings (a record's field; a key gives ``choices=`` instead)."""

    kind = "choice"

    def __init__(self, *values: str, also: Iterable[Check] = ()) -> None:
        super().__init__(also=also)
        self.values = values
        self.example = values[0]

    def check(self, value: Any) -> str | None:
        if value in self.values and isinstance(value, str):
            return None
        hint = difflib.get_close_matches(str(value), self.values, n=1)
        did = f"; did you mean {hint[0]!r}?" if hint else ""
        return f"got {value!r}; allowed: {', '.join(map(repr, self.values))}{did}"


class Flag(Domain):
    """true or false (a record's field; a key of type bool needs no domain)."""

    kind = "flag"
    types = (bool,)

    def check(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else f"got {value!r}; expected true or false"


class Number(Domain):
    """A finite number in [low, high] ((low, high] with low_open); an int unless floats are
    allowed."""

    kind = "number"

    def __init__(self, low: float, high: float, *, low_open: bool = False, unit: str = "",
                 integer: bool = True, what: str = "", also: Iterable[Check] = ()) -> None:
        super().__init__(also=also)
        self.what = what
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"a number's bounds must be finite, low < high: {low}, {high}")
        self.low, self.high, self.low_open, self.unit = low, high, low_open, unit
        self.integer = integer
        self.types = (int,) if integer else (int, float)
        self.example = max(low, 1) if integer else float(high)

    def check(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, self.types):
            return f"got {value!r} ({type(value).__name__}); expected " + \
                " or ".join(t.__name__ for t in self.types)
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value!r} is not a finite number"
        unit = f" {self.unit}" if self.unit else ""
        if self.low == 0 and self.high == 1 and self.low_open:
            if not 0 < value <= 1:
                return f"{value!r} must be in (0, 1], e.g. 0.95"
            return None
        if (value <= self.low if self.low_open else value < self.low) or value > self.high:
            if self.what:
                return f"{value!r} is not {self.what}"
            lower = f"more than {self.low}" if self.low_open else f"{self.low} or more"
            return f"{value!r} is out of range: must be {lower} and at most {self.high}{unit}"
        return None


def fraction() -> Number:
    """A share in (0, 1]."""
    return Number(0, 1, low_open=True, integer=False)


def port() -> Number:
    return Number(1, 65535, what="a TCP port from 1 to 65535")


# Paths on the host ---------------------------------------------------------------------------

# A host path dlws writes, reads or puts in a command: a conservative portable subset (POSIX
# "portable filename character set" plus "/"), so no quoting context can misread it.
_PATH = re.compile(r"/[A-Za-z0-9._+-]+(/[A-Za-z0-9._+-]+)*|/", re.ASCII)
# THE list of folders the OS owns (the FHS, https://refspecs.linuxfoundation.org/FHS_3.0/, and
# what Debian and Ubuntu keep there). A path at or under one of them is refused for every key,
# except where a key names the subfolder it manages (HostPath(under=...)).
SYSTEM_TREES = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
    "/run", "/sbin", "/sys", "/usr", "/snap", "/lost+found", "/tmp", "/home",
    "/var/lib", "/var/cache", "/var/log", "/var/spool", "/var/mail", "/var/run", "/var/lock",
    "/var/backups", "/var/tmp", "/var/crash", "/var/opt", "/var/local", "/var/www",
)
# Folders the OS owns whose own subfolders are free to use: refused themselves, not below.
SYSTEM_ROOTS = ("/", "/opt", "/srv", "/mnt", "/media", "/var")
# Folders any local user may write into (sticky or not): a folder dlws manages below one can be
# pre-created or swapped by another user before root writes into it.
WORLD_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/var/crash")
# Folders dpkg owns binaries in: a link dlws makes there could replace a packaged command.
PACKAGE_BIN_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/games", "/usr/lib")


def is_within(path: str, folder: str) -> bool:
    """`path` is `folder` or lies below it (both normalised)."""
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def system_tree(path: str) -> str | None:
    """The system folder `path` is, or lies under (None: free to use)."""
    if path in SYSTEM_ROOTS:
        return path
    return next((tree for tree in SYSTEM_TREES if is_within(path, tree)), None)


class HostPath(Domain):
    """An absolute, normalised path on the host in a shell-safe character set, never a system
    folder nor below one.

    + managed: a folder dlws creates, owns, or writes into (another key's managed folder may not
      be inside it, dlws.validate.inventory)
    + under: system folders below which this key's path may lie (named exceptions: the CA
      folder, the hub's configuration)
    + exactly: system paths this key may name exactly (a read-only file such as the CA bundle)
    """

    kind = "path"

    def __init__(self, *, managed: bool = False, kind: str = "path",
                 under: Iterable[str] = (), exactly: Iterable[str] = (),
                 example: str = "/opt/dlws/data", also: Iterable[Check] = ()) -> None:
        super().__init__(also=also)
        self.managed = managed
        self.what = kind
        self.under = tuple(under)
        self.exactly = tuple(exactly)
        self.example = example

    def check(self, value: Any) -> str | None:
        reason = _text(value, PATH_MAX)
        if reason:
            return reason
        if not value.startswith("/"):
            return f"{value!r} must be an absolute path (starting with /)"
        normal = "/" + posixpath.normpath(value).lstrip("/")
        if normal != value or "//" in value or "/./" in value or value.endswith("/."):
            tree = system_tree(normal) if normal not in self.exactly else None
            system = f", which is a system folder (inside {tree})" if tree else ""
            return f"{value!r} is not normalised; write it as {normal!r}{system}"
        if not _PATH.fullmatch(value):
            bad = sorted({c for c in value if not re.fullmatch(r"[A-Za-z0-9._+/-]", c, re.ASCII)})
            return (f"{value!r} holds {''.join(bad)!r}; a {self.what} may hold only letters, "
                    "digits and . _ + - /")
        if any(part.startswith("-") for part in value.split("/")):
            return f"{value!r} has a part starting with '-', which a command reads as an option"
        if value in self.exactly or any(is_within(value, u) and value != u for u in self.under):
            return None
        tree = system_tree(value)
        if tree is None:
            return None
        for unsafe in WORLD_WRITABLE_DIRS:
            if is_within(value, unsafe) and value != unsafe:
                return (f"{value!r} is inside {unsafe}, which every local user can write: "
                        "another user could create or swap it before root uses it; use a "
                        "folder only root can write, e.g. under /opt or /srv")
        inside = "" if tree == value else f" (it is inside {tree})"
        allowed = "".join(f", or below {u}" for u in self.under)
        return (f"{value!r} is a system folder{inside}; dlws would take it over or read what the "
                f"OS keeps there: use a folder of its own, e.g. {self.example}{allowed}")


class LinkPath(HostPath):
    """A command dlws links for every user: in /usr/local/bin or a folder of its own, never over
    a packaged command."""

    def __init__(self, example: str) -> None:
        super().__init__(under=("/usr/local/bin",), example=example)

    def check(self, value: Any) -> str | None:
        if isinstance(value, str) and posixpath.dirname(value) in PACKAGE_BIN_DIRS:
            return (f"{value!r} is in {posixpath.dirname(value)}, where dpkg installs commands: "
                    f"the link could replace a packaged one; use {self.example} or a folder of "
                    "your own")
        return super().check(value)


# Names ---------------------------------------------------------------------------------------

# POSIX portable user names (IEEE Std 1003.1, 3.437) as Debian's adduser accepts them by default
# (NAME_REGEX in adduser.conf(5)): lower case, a letter or _ first, at most 32 characters.
USER_PATTERN = r"[a-z_][a-z0-9_-]{0,31}"
# Accounts and groups the OS and its packages own (Debian's base-passwd, /usr/share/base-passwd
# /passwd.master and group.master, and what Debian/Ubuntu packages create). A lab member is a
# person (uid >= 1000); the controller cannot read the host's /etc/passwd, so these are refused
# by name.
SYSTEM_ACCOUNTS = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
    "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup", "_apt",
    "messagebus", "sshd", "syslog", "uuidd", "tcpdump", "tss", "landscape", "pollinate", "lxd",
    "dnsmasq", "avahi", "avahi-autoipd", "polkitd", "statd", "ntp", "ntpsec", "postfix",
    "usbmux", "rtkit", "colord", "saned", "pulse", "geoclue", "gdm", "sddm", "kernoops",
    "whoopsie", "sssd", "fwupd-refresh", "dhcpcd", "speech-dispatcher", "cups-pk-helper",
    "hplip", "lightdm", "nvidia-persistenced", "apt-cacher-ng", "docker", "sudo", "adm",
    "wheel", "staff", "video", "render", "audio", "disk", "kmem", "tty", "dialout", "shadow",
    "utmp", "operator", "input", "kvm", "plugdev", "netdev", "users", "cdrom", "floppy", "tape",
    "voice", "fax", "src", "sasl", "crontab", "ssl-cert", "lpadmin", "sambashare", "systemd",
    "dip", "sgx", "admin", "libvirt", "libvirt-qemu", "libvirt-dnsmasq", "incus",
    "incus-admin", "podman", "systemd-journal", "bluetooth", "scanner", "wireshark",
})
_SYSTEM_ACCOUNT_PREFIXES = ("systemd-", "debian-", "Debian-", "_")
# Groups whose members get root, or root's data, by membership alone: sudo/admin/wheel (sudoers
# on Debian, Ubuntu < 12.04 and RHEL), root, adm (every log), shadow (password hashes), disk
# (raw block devices), lxd/incus/libvirt/kvm/docker (a VM or container that mounts /), ssl-cert
# (private keys), staff (writes /usr/local), kmem/tty (memory and terminals), systemd-journal.
# docker is given only through containers_docker_users, whose doc says what it grants.
PRIVILEGED_GROUPS = frozenset({
    "sudo", "admin", "wheel", "root", "adm", "shadow", "disk", "lxd", "incus", "incus-admin",
    "libvirt", "libvirt-qemu", "kvm", "ssl-cert", "docker", "podman", "staff", "kmem", "tty",
    "systemd-journal", "sudoers", "operator",
})


def _person(value: str) -> str | None:
    if value in SYSTEM_ACCOUNTS or value.startswith(_SYSTEM_ACCOUNT_PREFIXES):
        return (f"{value!r} is root or a system account/group, not a lab member: list only the "
                "lab's people (uid 1000 and up)")
    return None


def user_name() -> Name:
    """A lab member's account: a portable name, never root or a system account."""

    def portable(value: str) -> str | None:
        if len(value) > 32:
            return f"{value!r} is too long for an account: at most 32 characters"
        return None

    return Name(USER_PATTERN, "a portable user name: lower-case letters, digits, _ and -, a "
                "letter or _ first, at most 32 characters (e.g. 'alice')", example="alice",
                max_len=NAME_MAX, also=(portable, _person))


def _unprivileged(value: str) -> str | None:
    if value in PRIVILEGED_GROUPS:
        return (f"{value!r} is a group that grants root or root's data (sudoers, raw disks, "
                "logs, a VM or container engine): every lab user would get it; use the lab's "
                "own group, e.g. 'lab'")
    if value in SYSTEM_ACCOUNTS or value.startswith(_SYSTEM_ACCOUNT_PREFIXES):
        return (f"{value!r} is a system group with its own meaning; choose the lab's own group, "
                "e.g. 'lab'")
    return None


class GroupName(Name):
    """A group dlws puts lab users in (at plan time also held to the host's own sudoers,
    dlws.validate.host)."""


def group_name() -> GroupName:
    """The lab's own group: a portable name, never a system group or one that grants
    privileges."""
    return GroupName(r"[a-z][a-z0-9_-]{0,31}", "a group name like 'lab' (lower-case letter first, "
                "then a-z 0-9 _ -, at most 32)", example="lab", also=(_unprivileged,))


# Debian Policy 5.6.1: package names are lower case letters, digits, + - . ; two characters at
# least, starting with a letter or digit. An optional :arch, and an optional =version (5.6.12).
DEB_PACKAGE = r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[0-9][A-Za-z0-9.+~:-]*)?"


def deb_package() -> Name:
    return Name(DEB_PACKAGE, "a Debian package name (Debian Policy 5.6.1: lower-case letters, "
                "digits, + - ., e.g. 'htop' or 'htop=3.2.2-2')", example="htop", max_len=128)


def _requirement(value: str) -> str | None:
    """A PEP 508 requirement by name and version only: no option, URL, path or marker."""
    try:
        requirement = Requirement(value)
    except InvalidRequirement as error:
        return (f"{value!r} is not a pip requirement ({str(error).splitlines()[0]}); write "
                "NAME, NAME==VERSION or NAME>=VERSION, e.g. 'scikit-learn==1.6.1'")
    if requirement.url:
        return (f"{value!r} names a URL or path; hash locks pin index files only: publish it "
                "on the lab's index or put its wheel in python_env_wheelhouse")
    if requirement.marker is not None:
        return f"{value!r} has an environment marker; list it without '; ...'"
    return None


class PipRequirement(Name):
    """A PEP 508 requirement by name and version only, without spaces, markers or URLs (parsed
    by `packaging` first, so a URL or a marker is refused by name)."""

    def __init__(self) -> None:
        super().__init__(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?"
                         r"([<>=!~]=?=?[A-Za-z0-9.*+!_-]+(,[<>=!~]=?=?[A-Za-z0-9.*+!_-]+)*)?",
                         "NAME, NAME==VERSION or NAME>=VERSION without spaces, e.g. "
                         "'scikit-learn==1.6.1'", noun="a pip requirement",
                         example="numpy==2.2.6", max_len=200)

    def check(self, value: Any) -> str | None:
        reason = _text(value, self.max_len)
        if reason:
            return reason
        if value.lstrip().startswith("-"):
            return f"{value!r} is an option, not a requirement; list requirements only"
        return _requirement(value) or super().check(value)


def gpu_model() -> Name:
    return Name(r"[A-Za-z0-9][A-Za-z0-9 ._()/+:-]{1,99}",
                "the name nvidia-smi prints (letters, digits, spaces and ._()/+-) or a PCI ID "
                "like '10de:2684'", noun="a GPU name", example="NVIDIA L4", max_len=100,
                also=(lambda v: "ends with a space; remove it" if v != v.strip() else None,))


# A DNS name (RFC 1123 labels): what a host name key or a URL's host may be.
HOST_NAME = r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?" \
            r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"


class Address(Domain):
    """An IP address (and, with names, a DNS host name); a zone id only where `zone` allows it,
    and then only [A-Za-z0-9_.-] (an interface name)."""

    kind = "address"

    def __init__(self, *, names: bool = False, zone: bool = False, example: str = "192.0.2.10",
                 also: Iterable[Check] = ()) -> None:
        super().__init__(also=also)
        self.names, self.zone, self.example = names, zone, example

    def check(self, value: Any) -> str | None:
        reason = _text(value, 253)
        if reason:
            return reason
        what = "an IP address" + (" or a host name" if self.names else "") + \
            f" of the host, e.g. {self.example!r}"
        if "%" in value:
            address, _, zone = value.partition("%")
            if not self.zone:
                return (f"{value!r} carries a zone id (%...), which this key does not take; "
                        f"use {what}")
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", zone, re.ASCII):
                return f"{value!r}: a zone id is an interface name ([A-Za-z0-9_.-], at most 15)"
            value = address
        try:
            ipaddress.ip_address(value)
            return None
        except ValueError:
            pass
        if self.names and re.fullmatch(HOST_NAME, value, re.ASCII) and \
                not re.fullmatch(r"[0-9.]+", value):
            return None
        return f"{value!r} is not {what}"


def is_loopback(value: str) -> bool:
    try:
        return ipaddress.ip_address(value.partition("%")[0]).is_loopback
    except ValueError:
        return value == "localhost"


# URLs ------------------------------------------------------------------------------------------

# An RFC 3986 URL holds none of these unencoded; a quote, backslash, brace, $ or ( could end a
# quoted string or start a substitution in a shell line, apt.conf, deb822, INI or TOML file.
_URL_FORBIDDEN = re.compile(r"[\s\"'`\\<>{}|^$()]")
# Query parameters that carry a secret (tokens in index and proxy URLs).
SECRET_PARAMS = ("token", "access_token", "auth", "key", "api_key", "apikey", "password",
                 "passwd", "secret", "sig", "signature", "x-amz-signature", "x-goog-signature")
# What a user name or password may hold once percent-decoded: it is written into a netrc file
# (no spaces or quotes there) and apt's auth.conf.
_CREDENTIAL = re.compile(r"[A-Za-z0-9._~!&*+,;=:@%#/?-]*", re.ASCII)


def _scripts(label: str) -> set[str]:
    """The Unicode scripts of a label's letters (LATIN, CYRILLIC, GREEK...)."""
    return {unicodedata.name(c, "UNKNOWN").split()[0] for c in label if c.isalpha()}


def _idn_problem(value: str, host: str) -> str:
    """Why a URL whose host is not ASCII is refused: mixed scripts, or its punycode form."""
    for label in host.split("."):
        scripts = _scripts(label)
        if len(scripts) > 1:
            return (f"{redact(value)!r}: the host label {label!r} mixes "
                    f"{' and '.join(sorted(scripts))} letters (a look-alike of an ASCII name); "
                    "write the host in ASCII")
    try:
        puny = host.encode("idna").decode("ascii")
    except UnicodeError:
        return f"{redact(value)!r}: the host {host!r} is not a valid internationalised name"
    return (f"{redact(value)!r}: the host {host!r} is an internationalised name; write it as "
            f"its punycode form {puny!r} so that what is shown is what is reached")


class Url(Domain):
    """A URL with one of `schemes`, a host, and nothing a config file or shell could misread.

    + credentials: user:password@ may be given (they are secrets: kept in root-only files,
      never on a command line or in a report); else they are refused
    + path: a path may follow the host (proxies take none)
    """

    kind = "url"

    def __init__(self, schemes: Iterable[str] = ("http", "https"), *, credentials: bool = False,
                 path: bool = True, also: Iterable[Check] = ()) -> None:
        super().__init__(also=also)
        self.schemes = tuple(schemes)
        self.credentials = credentials
        self.path = path
        self.example = f"{self.schemes[0]}://mirror.lab.example" + ("/simple" if path else
                                                                     ":3128")

    def check(self, value: Any) -> str | None:
        schemes = self.schemes
        allowed = ("http(s)://" if set(schemes) == {"http", "https"}
                   else " or ".join(f"{s}://" for s in schemes))
        if not isinstance(value, str):
            return f"got {value!r} ({type(value).__name__}); expected a string"
        if len(value) > URL_MAX:
            return f"a URL of {len(value)} characters; at most {URL_MAX}"
        if _CONTROL.search(value):
            return f"{redact(value)!r} holds a control character (newline, tab, escape); " \
                   "remove it"
        if not value.isascii():
            try:
                host = urlsplit(value).hostname or ""
            except ValueError:
                host = ""
            if host and not host.isascii():
                return _idn_problem(value, host)
            return (f"{redact(value)!r} holds characters that are not ASCII; percent-encode "
                    "them")
        bad = _URL_FORBIDDEN.search(value)
        if bad:
            return (f"{redact(value)!r} holds {bad[0]!r}, which no URL may hold unencoded; "
                    "percent-encode it (%20 for a space) or fix the URL")
        if _CONTROL.search(unquote(value)):
            return (f"{redact(value)!r} holds percent-encoded control characters (%0a, %00...); "
                    "remove them")
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as error:
            return f"{redact(value)!r} is not a valid URL ({error}); e.g. {self.example}"
        if parts.scheme not in schemes:
            return f"{redact(value)!r} is not an {allowed} URL; write it as {allowed}HOST..."
        if parts.netloc.count("@") > 1:
            return (f"{redact(value)!r} holds more than one '@' before its path: the host is "
                    "what follows the last one; percent-encode an '@' in a password (%40)")
        if not parts.hostname:
            return f"{redact(value)!r} names no host; write it as {schemes[0]}://HOST[:PORT]/"
        host = parts.hostname
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not re.fullmatch(HOST_NAME, host, re.ASCII):
                return f"{redact(value)!r}: {host!r} is not a host name or an IP address"
        if "%" in parts.netloc.rpartition("@")[2]:
            return f"{redact(value)!r}: a zone id (%) in the host is not taken; use an address"
        if port == 0:
            return f"{redact(value)!r}: port 0 is not a port"
        secret_query = [k for k, _ in parse_qsl(parts.query) if k.lower() in SECRET_PARAMS]
        if (parts.username is not None or parts.password is not None or secret_query) and (
                not self.credentials):
            return (f"{redact(value)!r} carries credentials, which this key does not take "
                    "(they would be written where others can read them); remove them, and give "
                    "the host its credentials another way (apt: /etc/apt/auth.conf.d)")
        if self.credentials and secret_query:
            return (f"{redact(value)!r} carries a token in its query; give it as "
                    "https://USER:TOKEN@HOST/... instead (kept in a root-only netrc file)")
        if self.credentials and parts.username is not None and not parts.password:
            return (f"{redact(value)!r} carries a user without a password; write "
                    "USER:PASSWORD@ (a token: __token__:TOKEN@)")
        for part in (parts.username, parts.password):
            if part is not None and not _CREDENTIAL.fullmatch(unquote(part)):
                return (f"{redact(value)!r}: its user or password holds, once decoded, spaces, "
                        "quotes, backslashes or other characters a netrc file cannot hold; use "
                        "a token without them")
        if not self.path and parts.path not in ("", "/"):
            return f"{redact(value)!r}: a proxy URL has no path; write {parts.scheme}://" \
                   f"{parts.hostname}{f':{port}' if port else ''}"
        return None


# no_proxy: host names, domains (.lab.org), IPs and CIDRs, comma separated, no spaces.
NO_PROXY = r"[A-Za-z0-9.*\[][A-Za-z0-9.*:/_\[\]-]*(,[A-Za-z0-9.*\[][A-Za-z0-9.*:/_\[\]-]*)*"


def no_proxy() -> Name:
    return Name(NO_PROXY, "a comma-separated list of hosts, domains or CIDRs without spaces, e.g. "
                "'localhost,127.0.0.1,.lab.example.org,10.0.0.0/8'",
                example="localhost,127.0.0.1", max_len=1024)


# Lists and records ---------------------------------------------------------------------------


class ListOf(Domain):
    """A list of at most `max_items` values of `item`'s domain, each at most once."""

    kind = "list"
    types = (list,)

    def __init__(self, item: Domain, *, max_items: int = LIST_MAX, unique: bool = True,
                 also: Iterable[Check] = ()) -> None:
        super().__init__(also=also)
        self.item, self.max_items, self.unique = item, max_items, unique

    def check(self, value: Any) -> str | None:
        if not isinstance(value, list):
            return f"got {value!r} ({type(value).__name__}); expected list"
        if len(value) > self.max_items:
            return f"{len(value)} items; at most {self.max_items}"
        for item in value:
            if isinstance(self.item, Record | Mapping_):
                if not isinstance(item, dict):
                    return f"item {item!r} ({type(item).__name__}) is not a dict"
            elif not isinstance(item, self.item.types) or isinstance(item, bool) != (
                    bool in self.item.types):
                kind = "a string" if str in self.item.types else self.item.kind
                return f"item {item!r} ({type(item).__name__}) is not {kind}"
            reason = self.item(item)
            if reason:
                return f"[{value.index(item)}] {reason}" if isinstance(item, dict) else reason
        if self.unique:
            seen = []
            for item in value:
                if item in seen:
                    return f"{item!r} is listed twice; list it once"
                seen.append(item)
        return None


class Record(Domain):
    """A dict of known fields, each with its domain (unknown fields refused with a suggestion).

    + fields: name -> domain
    + required: the fields that must be given
    + where: how a problem names the record (``storage_disks[0]``)
    """

    kind = "record"
    types = (dict,)

    def __init__(self, fields: Mapping[str, Domain], *, required: Iterable[str] = (),
                 refused: Mapping[str, str] | None = None, what: str = "",
                 also: Iterable[Check] = ()) -> None:
        super().__init__(also=also)
        self.fields = dict(fields)
        self.required = tuple(required)
        self.refused = dict(refused or {})
        self.what = what

    def check(self, value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"got {value!r} ({type(value).__name__}); expected a dict {self.what}"
        for name, item in value.items():
            if name in self.refused:
                return f"{name!r}: {self.refused[name]}"
            if name not in self.fields:
                hint = difflib.get_close_matches(str(name), self.fields, n=1)
                return f"unknown field {name!r}" + (
                    f"; did you mean {hint[0]!r}?" if hint else
                    f"; known: {', '.join(self.fields)}")
            domain = self.fields[name]
            if not isinstance(item, domain.types) or (isinstance(item, bool) and
                                                     bool not in domain.types):
                expected = " or ".join(t.__name__ for t in domain.types)
                return f"{name}: got {item!r}; expected {expected}"
            reason = domain(item)
            if reason:
                return f"{name}: {reason}"
        for name in self.required:
            if name not in value:
                return f"{name}: required"
        return None


class Mapping_(Domain):
    """A dict whose keys are names of one domain and whose values are of another."""

    kind = "mapping"
    types = (dict,)

    def __init__(self, keys: Name, values: Domain, *, max_items: int = 32,
                 also: Iterable[Check] = ()) -> None:
        super().__init__(also=also)
        self.keys, self.values, self.max_items = keys, values, max_items

    def check(self, value: Any) -> str | None:
        if not isinstance(value, dict):
            return f"got {value!r} ({type(value).__name__}); expected a dict"
        if len(value) > self.max_items:
            return f"{len(value)} entries; at most {self.max_items}"
        for name, item in value.items():
            reason = self.keys(name)
            if reason:
                return f"key {reason}"
            if not isinstance(item, self.values.types) or (isinstance(item, bool) and
                                                          bool not in self.values.types):
                return f"{name}: got {item!r}; expected " + \
                    " or ".join(t.__name__ for t in self.values.types)
            reason = self.values(item)
            if reason:
                return f"{name}: {reason}"
        return None


def managed_paths(domain: Domain, value: Any, label: str) -> list[tuple[str, str]]:
    """(label, path) of every folder a valid `value` of `domain` makes dlws's own."""
    if isinstance(domain, HostPath):
        return [(label, value)] if domain.managed and isinstance(value, str) else []
    if isinstance(domain, ListOf) and isinstance(value, list):
        return [found for i, item in enumerate(value)
                for found in managed_paths(domain.item, item, f"{label}[{i}]")]
    if isinstance(domain, Record) and isinstance(value, dict):
        return [found for field, item in value.items() if field in domain.fields
                for found in managed_paths(domain.fields[field], item, f"{label}.{field}")]
    return []


def json_data(value: Any) -> str | None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        return f"must be JSON data (strings, numbers, booleans, lists, dicts): {error}"
    return None


# Files on the controller ---------------------------------------------------------------------


class ControllerPath(Domain):
    """A file or folder on the controller (read by dlws, never a host path), checked for what
    it must hold.

    + content: the check of what the path holds (a PEM file, a private key, wheels)
    """

    kind = "controller path"

    def __init__(self, content: Check, *, example: str = "~/lab/file",
                 also: Iterable[Check] = ()) -> None:
        super().__init__(also=also)
        self.content, self.example = content, example

    def check(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return f"{value!r} is not a path string"
        if len(value) > 4096:
            return f"a path of {len(value)} characters; at most 4096"
        if _CONTROL.search(value):
            return f"{value!r} holds a control character (newline, tab, escape); remove it"
        return self.content(value)


# Files on the controller -------------------------------------------------------------------


def _controller_file(path: str, kind: str) -> tuple[Path | None, str | None]:
    if not isinstance(path, str):
        return None, f"{path!r} is not a path string"
    reason = no_control(path)
    if reason:
        return None, reason
    local = Path(os.path.expanduser(path))
    try:
        mode = local.stat().st_mode
    except FileNotFoundError:
        return None, f"{kind} {path!r} does not exist on the controller; fix the path or unset it"
    except OSError as error:
        return None, f"{kind} {path!r} cannot be read on the controller ({error.strerror})"
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        return None, f"{kind} {path!r} is {what} on the controller; give the path of the file"
    if not os.access(local, os.R_OK):
        return None, f"{kind} {path!r} is not readable on the controller; fix its permissions"
    if local.stat().st_size > 4 * 2**20:
        return None, f"{kind} {path!r} is over 4 MiB; that is not a {kind}"
    return local, None


_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----\s+([A-Za-z0-9+/=\s]+?)-----END "
                       r"CERTIFICATE-----")


@functools.lru_cache(maxsize=64)
def _pem_text_problem(path: str, text: str) -> str | None:
    """Why a CA file's text (read now) is not PEM CA certificates only; None where it is.
    Kept per path and text: a fleet names one bundle for every host (64 hosts parsed it 64
    times: 2.8 s of a 20 s no-change run, py-spy), and an edited file is a new text."""
    if "PRIVATE KEY" in text:
        return (f"{path!r} holds a private key; a CA file for every host must hold "
                "certificates only")
    blocks = _PEM_CERT.findall(text)
    if not blocks:
        return (f"{path!r} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the "
                "CA's certificate in PEM form")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cadata=text)
    except (ssl.SSLError, ValueError) as error:
        return f"{path!r} is not a valid PEM certificate ({error}); give the CA's certificate"
    distinct = len({re.sub(r"\s", "", block) for block in blocks})
    if context.cert_store_stats()["x509"] != distinct:
        return f"{path!r}: OpenSSL read {context.cert_store_stats()['x509']} of its " \
               f"{distinct} certificates; fix the file"
    return None


def pem_certificates(value: Any) -> str | None:
    """Controller files holding PEM CA certificates only (each parsed by OpenSSL)."""
    stems = {}
    for path in _items(value):
        local, reason = _controller_file(path, "CA certificate file")
        if reason:
            return reason
        try:
            text = local.read_text("ascii")
        except (UnicodeDecodeError, OSError):
            return f"{path!r} is not a PEM file (not ASCII text); convert it: openssl x509 -in " \
                   "CERT -out CERT.pem"
        reason = _pem_text_problem(path, text)
        if reason:
            return reason
        stem = ca_file_name(path)
        if stem in stems:
            return f"{path!r} and {stems[stem]!r} would both be installed as {stem}; rename one"
        stems[stem] = path
    return None


def ca_file_name(path: str) -> str:
    """The name an extra CA certificate gets on the host: its stem in a safe set, + .crt."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(path).stem).lstrip(".-") or "ca"
    return f"{stem}.crt"


def wheelhouse(value: str) -> str | None:
    """A controller folder holding wheels whose file names are valid (PEP 427)."""
    reason = no_control(value)
    if reason:
        return reason
    local = Path(os.path.expanduser(value))
    if not local.exists():
        return f"wheelhouse {value!r} does not exist on the controller; fix the path or unset it"
    if not local.is_dir():
        return f"wheelhouse {value!r} is not a folder on the controller; give the folder of wheels"
    if not os.access(local, os.R_OK | os.X_OK):
        return f"wheelhouse {value!r} is not readable on the controller; fix its permissions"
    wheels = sorted(local.glob("*.whl"))
    if not wheels:
        return (f"wheelhouse {value!r} holds no *.whl files: the hosts would go to the index "
                "instead; fill it (pip download --only-binary :all: -d FOLDER ...) or unset it")
    for wheel in wheels:
        try:
            parse_wheel_filename(wheel.name)
        except InvalidWheelFilename:
            return f"wheelhouse {value!r}: {wheel.name!r} is not a valid wheel file name"
        if not wheel.is_file() or not os.access(wheel, os.R_OK):
            return f"wheelhouse {value!r}: {wheel.name} is not a readable file"
    return None


def ssh_key(value: str) -> str | None:
    local, reason = _controller_file(value, "SSH private key")
    if reason:
        return reason
    head = local.read_bytes()[:200]
    if b"PRIVATE KEY" not in head and not head.startswith(b"PuTTY-User-Key-File"):
        return (f"SSH private key {value!r} is not a private key file (no '-----BEGIN ... "
                "PRIVATE KEY-----'); give the private key, not the .pub")
    return None


def controller_file(kind: str) -> Check:
    def check(value: str) -> str | None:
        return _controller_file(value, kind)[1]

    return check


def private_file(value: str) -> str | None:
    """A controller file of secrets that only its owner may read."""
    local, reason = _controller_file(value, "file")
    if reason:
        return reason
    if local.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{value!r} holds passwords and others can read it; chmod 600 it"
    return None


# Secrets -----------------------------------------------------------------------------------


def redact_url(value: str) -> str:
    return redact(value)


def split_credentials(value: str) -> tuple[str, tuple[str, str, str] | None]:
    """(the URL without user:password@, (host, user, password) or None).

    The credentials go to a netrc file that only root and the lab group read (pip and uv both
    read the file NETRC names); the URL without them may be shown anywhere.
    """
    parts = urlsplit(value)
    if parts.username is None and parts.password is None:
        return value, None
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    bare = parts._replace(netloc=netloc).geturl()
    return bare, (parts.hostname or "", unquote(parts.username or ""),
                  unquote(parts.password or ""))


def netrc_text(urls: Iterable[str]) -> str:
    """netrc(5) entries for the URLs that carry credentials (one per host)."""
    entries = {}
    for value in urls:
        _, secret = split_credentials(value)
        if secret:
            host, user, password = secret
            if re.search(r"[\s\"'\x00-\x1f\x7f]", user + password + host):
                raise ValueError("a netrc entry cannot hold spaces, quotes or control "
                                 "characters (a percent-encoded newline too); use a token "
                                 "without them")
            entries.setdefault(host, f"machine {host} login {user} password {password}\n")
    return "".join(entries.values())


def pem_bodies(text: str) -> set[str]:
    """The base64 bodies of the PEM certificates in `text`, whitespace removed (comparable)."""
    return {re.sub(r"\s", "", body) for body in _PEM_CERT.findall(text)}
