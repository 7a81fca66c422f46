"""The domain of every kind of host-data value: paths, URLs, names, requirements, numbers, files.

Each builder returns a check: ``check(value) -> None`` when the value is fine, else one sentence
saying what is wrong and how to fix it. Values are hostile data (a hurried edit, a malicious
hosts.yml): a check refuses what a shell, an apt/pip/uv configuration file or an option parser
could read as anything but the value itself.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
import ssl
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Check = Callable[[Any], "str | None"]

# C0 and C1 control characters, DEL: a newline in a value starts a new line of a config file.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A host path dlws writes, reads or puts in a shell line: a conservative portable subset
# (POSIX "portable filename character set" plus "/"), so no quoting context can misread it.
_PATH = re.compile(r"^/[A-Za-z0-9._+/-]*$")
# Folders the OS owns: dlws never makes one of them (or an ancestor of one) a folder it manages
# (chmod, a venv over it, uploads into it); the FHS (https://refspecs.linuxfoundation.org/FHS_3.0/)
# top levels and the system folders below them that a typo would hit.
SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr",
    "/var", "/snap", "/lost+found",
    "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec",
    "/usr/include", "/usr/share", "/usr/src", "/usr/local", "/usr/local/bin", "/usr/local/sbin",
    "/usr/local/lib", "/usr/local/share", "/usr/local/include", "/usr/local/etc",
    "/usr/local/src", "/usr/share/ca-certificates", "/usr/local/share/ca-certificates",
    "/var/lib", "/var/cache", "/var/log", "/var/tmp", "/var/spool", "/var/mail", "/var/run",
    "/var/lock", "/var/backups", "/var/opt", "/var/local", "/var/www",
    "/etc/apt", "/etc/ssl", "/etc/ssl/certs", "/etc/ssl/private", "/etc/profile.d",
    "/etc/sudoers.d", "/etc/systemd", "/etc/default", "/etc/security", "/etc/pam.d",
    "/etc/cron.d", "/etc/ld.so.conf.d", "/etc/modprobe.d", "/run/lock", "/dev/shm",
})
# Folders any local user may write into (sticky or not): a folder dlws manages below one can be
# pre-created or swapped by another user before root writes into it.
WORLD_WRITABLE_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/var/crash")
# Folders dpkg owns binaries in: a link dlws makes there could replace a packaged command.
PACKAGE_BIN_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/games", "/usr/lib")

# POSIX portable user names (IEEE Std 1003.1, 3.437) as Debian's adduser accepts them by default
# (NAME_REGEX in adduser.conf(5)): lower case, a letter or _ first, at most 32 characters.
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Accounts and groups the OS and its packages own (Debian's base-passwd, /usr/share/base-passwd
# /passwd.master and group.master, and what Debian/Ubuntu packages create). A lab member is a
# person (uid >= 1000); the controller cannot read the host's /etc/passwd, so these are refused
# by name.
SYSTEM_ACCOUNTS = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp",
    "proxy", "www-data", "backup", "list", "irc", "gnats", "nobody", "nogroup", "_apt",
    "messagebus", "sshd", "syslog", "uuidd", "tcpdump", "tss", "landscape", "pollinate", "lxd",
    "dnsmasq", "avahi", "avahi-autoipd", "polkitd", "statd", "ntp", "postfix", "usbmux",
    "rtkit", "colord", "saned", "pulse", "geoclue", "gdm", "kernoops", "whoopsie", "sssd",
    "fwupd-refresh", "dhcpcd", "_chrony", "_rpc", "_laurel", "speech-dispatcher", "cups-pk-helper",
    "hplip", "lightdm", "nvidia-persistenced", "apt-cacher-ng", "docker", "sudo", "adm",
    "wheel", "staff", "video", "render", "audio", "disk", "kmem", "tty", "dialout", "shadow",
    "utmp", "operator", "input", "kvm", "plugdev", "netdev", "users", "cdrom", "floppy", "tape",
    "voice", "fax", "src", "sasl", "crontab", "ssl-cert", "lpadmin", "sambashare", "systemd",
})
_SYSTEM_ACCOUNT_PREFIXES = ("systemd-", "debian-", "Debian-", "_")

# Debian Policy 5.6.1: package names are lower case letters, digits, + - . ; two characters at
# least, starting with a letter or digit. An optional :arch, and an optional =version (5.6.12).
_DEB_NAME = r"[a-z0-9][a-z0-9+.-]+"
_DEB_PACKAGE = re.compile(rf"^{_DEB_NAME}(:[a-z0-9-]+)?(=[0-9][A-Za-z0-9.+~:-]*)?$")
# An RFC 3986 URL holds none of these; a quote, backslash or brace could end a quoted string in a
# shell line, apt.conf, deb822, INI or TOML file.
_URL_FORBIDDEN = re.compile(r"[\s\"'`\\<>{}|^]")
# no_proxy: host names, domains (.lab.org), IPs and CIDRs, comma separated, no spaces.
_NO_PROXY = re.compile(r"^[A-Za-z0-9.*:/_\[\]-]+(,[A-Za-z0-9.*:/_\[\]-]+)*$")
# Query parameters that carry a secret (tokens in index and proxy URLs).
SECRET_PARAMS = ("token", "access_token", "auth", "key", "api_key", "apikey", "password",
                 "passwd", "secret", "sig", "signature", "x-amz-signature", "x-goog-signature")


def _items(value: Any) -> list[Any]:
    return [value] if isinstance(value, str) else list(value)


def each(check: Check) -> Check:
    """A check applied to every item of a list (the list's own type is checked before)."""

    def check_items(value: Any) -> str | None:
        for item in value:
            if not isinstance(item, str):
                return f"item {item!r} ({type(item).__name__}) is not a string"
            reason = check(item)
            if reason:
                return reason
        return None

    return check_items


def unique(value: list) -> str | None:
    seen = set()
    for item in value:
        if item in seen:
            return f"{item!r} is listed twice; list it once"
        seen.add(item)
    return None


def all_of(*checks: Check) -> Check:
    def check(value: Any) -> str | None:
        for one in checks:
            reason = one(value)
            if reason:
                return reason
        return None

    return check


def no_control(value: str) -> str | None:
    if _CONTROL.search(value):
        return f"{value!r} holds a control character (newline, tab, escape); remove it"
    return None


# Paths on the host ---------------------------------------------------------------------------


def host_path(managed: bool = False, kind: str = "path") -> Check:
    """An absolute, normalised path on the host in a shell-safe character set.

    + managed: a folder or file dlws creates, changes the mode of or writes into: never ``/`` or
      a system folder, never below a world-writable folder
    """

    def check(value: str) -> str | None:
        reason = no_control(value)
        if reason:
            return reason
        if not value.startswith("/"):
            return f"{value!r} must be an absolute path (starting with /)"
        normal = posixpath.normpath(value)
        if normal.startswith("//"):
            normal = "/" + normal.lstrip("/")
        if normal != value:
            return f"{value!r} is not normalised; write it as {normal!r}"
        if not _PATH.match(value):
            bad = sorted({c for c in value if not re.match(r"[A-Za-z0-9._+/-]", c)})
            return (f"{value!r} holds {''.join(bad)!r}; a {kind} may hold only letters, digits and "
                    ". _ + - /")
        if managed:
            if value in SYSTEM_DIRS:
                return (f"{value!r} is a system folder; dlws would take it over (chmod, files "
                        "written into it): use a folder of its own, e.g. /opt/dlws/...")
            for unsafe in WORLD_WRITABLE_DIRS:
                if value.startswith(unsafe + "/"):
                    return (f"{value!r} is inside {unsafe}, which every local user can write: "
                            "another user could create or swap it before root writes there; use "
                            "a folder only root can write, e.g. under /opt or /srv")
        return None

    return check


def link_path(value: str) -> str | None:
    """A command dlws links for every user: not a system folder, not over a packaged binary."""
    reason = host_path(managed=True, kind="path")(value)
    if reason:
        return reason
    parent = posixpath.dirname(value)
    if parent in PACKAGE_BIN_DIRS:
        return (f"{value!r} is in {parent}, where dpkg installs commands: the link could replace "
                "a packaged one; use /usr/local/bin/dlws-train-check or a folder of your own")
    return None


# URLs ------------------------------------------------------------------------------------------


def url(schemes: Iterable[str] = ("http", "https"), credentials: bool = False,
        path: bool = True) -> Check:
    """A URL with one of `schemes`, a host, and nothing a config file or shell could misread.

    + credentials: user:password@ or a token in the query may be given (they are secrets: kept
      in root-only files, never on a command line or in a report); else they are refused
    + path: a path may follow the host (proxies take none)
    """
    schemes = tuple(schemes)
    allowed = ("http(s)://" if set(schemes) == {"http", "https"}
               else " or ".join(f"{s}://" for s in schemes))

    def check(value: str) -> str | None:
        reason = no_control(value)
        if reason:
            return reason
        bad = _URL_FORBIDDEN.search(value)
        if bad:
            return (f"{redact_url(value)!r} holds {bad[0]!r}, which no URL may hold unencoded; "
                    "percent-encode it (%20 for a space) or fix the URL")
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as error:
            return f"{redact_url(value)!r} is not a valid URL ({error}); e.g. http://host:3128"
        if parts.scheme not in schemes:
            return f"{redact_url(value)!r} is not an {allowed} URL; write it as {allowed}HOST..."
        if not parts.hostname:
            return f"{redact_url(value)!r} names no host; write it as {schemes[0]}://HOST[:PORT]/"
        if port == 0:
            return f"{redact_url(value)!r}: port 0 is not a port"
        secret_query = [k for k, _ in parse_qsl(parts.query) if k.lower() in SECRET_PARAMS]
        if (parts.username is not None or parts.password is not None or secret_query) and (
                not credentials):
            return (f"{redact_url(value)!r} carries credentials, which this key does not take "
                    "(they would be written where others can read them); remove them, and give "
                    "the host its credentials another way (apt: /etc/apt/auth.conf.d)")
        if credentials and secret_query:
            return (f"{redact_url(value)!r} carries a token in its query; give it as "
                    "https://USER:TOKEN@HOST/... instead (kept in a root-only netrc file)")
        if credentials and parts.username is not None and not parts.password:
            return (f"{redact_url(value)!r} carries a user without a password; write "
                    "USER:PASSWORD@ (a token: __token__:TOKEN@)")
        if credentials and parts.username is not None:
            try:  # the netrc file's own rule, checked before anything connects
                netrc_text([value])
            except ValueError as error:
                return f"{redact_url(value)!r}: its user or password (decoded): {error}"
        if not path and parts.path not in ("", "/"):
            return f"{redact_url(value)!r}: a proxy URL has no path; write {parts.scheme}://" \
                   f"{parts.hostname}{f':{port}' if port else ''}"
        return None

    return check


def no_proxy(value: str) -> str | None:
    reason = no_control(value)
    if reason:
        return reason
    if not _NO_PROXY.match(value):
        return (f"{value!r} is not a comma-separated list of hosts, domains or CIDRs without "
                "spaces, e.g. 'localhost,127.0.0.1,.lab.example.org,10.0.0.0/8'")
    return None


# Names -------------------------------------------------------------------------------------


def user_name(value: str) -> str | None:
    if not _USER.match(value):
        return (f"{value!r} is not a portable user name: lower-case letters, digits, _ and -, a "
                "letter or _ first, at most 32 characters (e.g. 'alice')")
    if value in SYSTEM_ACCOUNTS or value.startswith(_SYSTEM_ACCOUNT_PREFIXES):
        return (f"{value!r} is root or a system account/group, not a lab member: list only the "
                "lab's people (uid 1000 and up)")
    return None


def deb_package(value: str) -> str | None:
    reason = no_control(value)
    if reason:
        return reason
    if value.startswith("-"):
        return f"{value!r} is an option, not a package; list package names only"
    if not _DEB_PACKAGE.match(value):
        return (f"{value!r} is not a Debian package name (Debian Policy 5.6.1: lower-case "
                "letters, digits, + - ., e.g. 'htop' or 'htop=3.2.2-2')")
    return None


def pip_requirement(value: str) -> str | None:
    """A PEP 508 requirement by name and version only: no option, URL, path or marker."""
    from packaging.requirements import InvalidRequirement, Requirement

    reason = no_control(value)
    if reason:
        return reason
    if value.lstrip().startswith("-"):
        return f"{value!r} is an option, not a requirement; list requirements only"
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
    if value != value.strip() or " " in value.strip():
        return f"{value!r} holds spaces; write it without them, e.g. 'numpy>=1.26'"
    return None


def version_choice(words: tuple[str, ...], pattern: str, example: str) -> Check:
    regex = re.compile(pattern)

    def check(value: str) -> str | None:
        if value in words or regex.fullmatch(value):
            return None
        return f"{value!r}: use {', '.join(repr(w) for w in words)} or a version like {example!r}"

    return check


def gpu_model(value: str) -> str | None:
    reason = no_control(value)
    if reason:
        return reason
    if not re.fullmatch(r"[A-Za-z0-9 ._()/+:-]{2,100}", value):
        return (f"{value!r} is not a GPU name nvidia-smi prints (letters, digits, spaces and "
                "._()/+-) nor a PCI ID like '10de:2684'")
    return None


# Numbers -------------------------------------------------------------------------------------


def number_range(low: float, high: float, low_open: bool = False, unit: str = "") -> Check:
    """A finite number in [low, high] ((low, high] with low_open)."""
    unit = f" {unit}" if unit else ""

    def check(value: Any) -> str | None:
        if isinstance(value, float) and not math.isfinite(value):
            return f"{value!r} is not a finite number"
        if (value <= low if low_open else value < low) or value > high:
            lower = f"more than {low}" if low_open else f"{low} or more"
            return f"{value!r} is out of range: must be {lower} and at most {high}{unit}"
        return None

    return check


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
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

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


# Secrets -----------------------------------------------------------------------------------


def redact_url(value: str) -> str:
    from dlws.schema import redact

    return redact(value)


def split_credentials(value: str) -> tuple[str, tuple[str, str, str] | None]:
    """(the URL without user:password@, (host, user, password) or None).

    The credentials go to a netrc file that only root and the lab group read (pip and uv both
    read the file NETRC names); the URL without them may be shown anywhere.
    """
    from urllib.parse import unquote

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
