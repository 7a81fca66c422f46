"""Base role: apt sources with the stack's components, essential packages, CAs and proxies."""

from __future__ import annotations

import re
import shlex
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import DeployError, deploy
from pyinfra.facts.apt import AptSources
from pyinfra.facts.files import FileContents, FindFiles
from pyinfra.facts.server import Groups, Users
from pyinfra.operations import files, server

from dlws.command import Command, cmd, sh
from dlws.facts.batch import stable_fact
from dlws.facts.system import OsRelease, UidMin
from dlws.plan import host_plan
from dlws.roles.base import _apt
from dlws.roles.base.defaults import DEFAULTS, KEYS  # noqa: F401
from dlws.roles.cache.defaults import apt_proxy
from dlws.roles.storage.defaults import tools as storage_tools
from dlws.secrets import APT_PROXY_FILE, LAB_GROUP, PROXY_ENV_FILE, SECRETS_DIR, secret_file
from dlws.stack.locks import credentialed_index_urls
from dlws.validate.domains import ca_file_name

# The system Python that roles/python_env builds its environment on, installed in the same apt
# run as the rest (one apt-get install fewer: 4 to 5 s on a fresh host, measured).
PYTHON_PACKAGES = ["python3", "python3-venv", "python3-dev"]
ESSENTIAL_PACKAGES = [
    "build-essential",
    "ca-certificates",
    "curl",
    "git",
    "iproute2",
    "pciutils",
    "procps",
    *PYTHON_PACKAGES,
]
# The burn-in's CPU, memory and disk load (roles/frameworks' dlws-burn-in; Debian main and
# Ubuntu universe: stress-ng), in the same apt run as the rest: a second apt-get install cost
# 4.3 s of a first deploy (docs/benchmarks.md, first provisioning).
BURN_IN_PACKAGES = ["stress-ng"]
# Everything the deploy installs from the distribution's archive before NVIDIA's repository is
# added, in one apt-get install (bench/overhead.py's by-hand reference installs the same list).
ARCHIVE_PACKAGES = [*ESSENTIAL_PACKAGES, *BURN_IN_PACKAGES]

# Components that carry NVIDIA's driver, the CUDA toolkit and firmware: Debian puts them in
# contrib/non-free (https://wiki.debian.org/NvidiaGraphicsDrivers), Ubuntu in restricted and
# multiverse (https://help.ubuntu.com/community/Repositories/Ubuntu).
COMPONENTS = {
    "debian": ["main", "contrib", "non-free", "non-free-firmware"],
    "ubuntu": ["main", "restricted", "universe", "multiverse"],
}
KEYRINGS = {
    "debian": "/usr/share/keyrings/debian-archive-keyring.gpg",
    "ubuntu": "/usr/share/keyrings/ubuntu-archive-keyring.gpg",
}
SOURCES_FILE = "/etc/apt/sources.list.d/dlws-components.sources"
PROFILE_PROXY_FILE = "/etc/profile.d/dlws-proxy.sh"
# Proxy settings with any credentials they carry: root and the lab group read them, nobody else
# (0640). Login shells (PROFILE_PROXY_FILE) and the deploy's own pip/uv runs source this file,
# so no password is ever on a command line or in a world-readable file.
# Paths, owners and modes of every secret file: dlws/secrets.py (verify checks the same list).
APT_STAMP = _apt.APT_STAMP


def _host_repos() -> list:
    """The host's own deb entries that carry `main` (dlws's own components file carries none)."""
    return [
        repo
        for repo in host.get_fact(AptSources) or []
        if repo.type == "deb" and "main" in repo.components
    ]


def sources_content(os_id: str, repos: list, mirror: str | None) -> str:
    """deb822 stanzas adding the stack's components to each of the host's suites."""
    wanted = COMPONENTS.get(os_id, ["main"])
    stanzas = []
    seen = set()
    for repo in repos:
        is_security = "security" in repo.url
        uri = mirror if (mirror and not is_security) else repo.url
        if mirror:
            components = sorted(set(wanted) | set(repo.components), key=_component_order(wanted))
        else:
            components = [c for c in wanted if c not in repo.components]
            if "non-free-firmware" in components and "bookworm" not in repo.distribution and (
                not repo.distribution.startswith(("trixie", "forky", "sid"))
            ):
                components.remove("non-free-firmware")  # only exists from Debian 12
        if not components or (uri, repo.distribution) in seen:
            continue
        seen.add((uri, repo.distribution))
        signed_by = repo.options.get("signed-by") or repo.options.get("Signed-By")
        if isinstance(signed_by, list):
            signed_by = " ".join(signed_by)
        stanzas.append(
            "\n".join(
                [
                    "Types: deb",
                    f"URIs: {deb822_value(uri)}",
                    f"Suites: {deb822_value(repo.distribution)}",
                    f"Components: {deb822_value(' '.join(components))}",
                    f"Signed-By: {deb822_value(signed_by or KEYRINGS[os_id])}",
                ]
            )
        )
    header = "# Managed by dlws (roles/base): the components the GPU stack needs.\n"
    return header + "\n\n".join(stanzas) + "\n"


def _component_order(wanted: list[str]):
    return lambda c: (wanted.index(c) if c in wanted else len(wanted), c)


def apt_conf_string(value: str) -> str:
    """`value` as an apt.conf string literal; apt.conf(5) has no escape for a quote or newline."""
    if re.search(r'["\\\x00-\x1f\x7f]', value):
        raise DeployError(f"{value!r} cannot be written into apt's configuration (a quote, "
                          "backslash or control character); fix the host data")
    return f'"{value}"'


def deb822_value(value: str) -> str:
    """A deb822 field value on one line (sources.list(5)): no newline, which would add fields."""
    if re.search(r"[\x00-\x1f\x7f]", value) or not value.strip():
        raise DeployError(f"{value!r} cannot be written into an apt sources file; fix the data")
    return value


def proxy_env() -> dict[str, str]:
    """Proxy variables (with any credentials) for the proxy file the deploy's commands source."""
    env = {}
    for var, key in (("http_proxy", "base_http_proxy"), ("https_proxy", "base_https_proxy"),
                     ("no_proxy", "base_no_proxy")):
        if host.data.get(key):
            env[var] = env[var.upper()] = host.data.get(key)
    return env


@deploy("Base system", data_defaults=DEFAULTS)
def install() -> None:
    os_release = stable_fact(OsRelease, host)
    os_id = os_release["id"]
    lock_timeout = host.data.base_apt_lock_timeout_s
    # Before any apt command: the lock wait applies to them all, and a dpkg run that was
    # killed (a dropped SSH session, a Ctrl-C) must be finished or apt refuses to work.
    # create_remote_dir=False here and on the other files dlws writes into folders every
    # supported OS has (/etc/apt/*.d, /etc/profile.d, /etc/ld.so.conf.d): pyinfra's default reads
    # the folder on every run, one round trip per file.
    files.put(name="Let apt wait for a lock held by another process",
              src=StringIO(_apt.lock_conf(lock_timeout)), dest=_apt.LOCK_CONF, mode="644",
              create_remote_dir=False)
    _apt.repair_dpkg(name="Finish an interrupted dpkg run (dpkg --configure -a)",
                     timeout_s=lock_timeout)
    _configure_proxy()

    sources_changed = False
    if host.data.base_apt_manage_sources and os_id in COMPONENTS:
        mirror = host.data.base_apt_mirror
        put = files.put(
            name="Add the components the GPU stack needs to the host's apt sources",
            src=StringIO(sources_content(os_id, _host_repos(), mirror)),
            dest=SOURCES_FILE,
            mode="644",
            create_remote_dir=False,
        )
        sources_changed = put.will_change
        if mirror:
            _set_aside_original_sources()
        else:
            sources_changed = _sign_sources_list(os_id) or sources_changed

    plan = host_plan()
    # The data disks' tools too (roles/storage, which runs before the Python environment).
    disk_tools = storage_tools(host.data)
    packages = list(dict.fromkeys([*ARCHIVE_PACKAGES, *host.data.base_extra_packages,
                                   *plan.os.kernel_headers, *disk_tools]))
    if not plan.os.kernel_headers and host.data.base_kernel_headers == "auto":
        host.noop("kernel headers skipped: the host is a container and runs its host's kernel")

    # New components: the index must be fetched now, whatever its age; the stamp keeps the
    # next run's cache_time check true to the last real update.
    _apt.update(
        name="Refresh the apt index" + (" (sources changed)" if sources_changed else ""),
        cache_time=host.data.base_apt_cache_s,
        force=sources_changed,
        timeout_s=lock_timeout,
    )
    first, beside = split_install(packages, [*host.data.base_extra_packages, *disk_tools],
                                  bool(plan.driver.branch))
    _apt.install_first(
        name=("Install essential packages (build tools, pciutils, procps, CA certificates, "
              "stress-ng" + (", the data disks' tools" if disk_tools else "") + ")")
        if not beside else
        "Install the system Python and CA certificates (" + ", ".join(first) + ")",
        packages=first,
        no_recommends=True,
        _env={"DEBIAN_FRONTEND": "noninteractive"},
    )
    if beside:
        _apt.start_beside(
            name="Start installing the other essential packages beside the Python environment ("
                 + ", ".join(beside) + ")",
            packages=beside)
    _install_extra_cas()
    lab_users()


# Installed before anything else: what the Python environment (roles/python_env) and the
# TLS of its downloads need. The rest of the essential packages install beside it.
FIRST_PACKAGES = ["ca-certificates", "python3", "python3-venv"]


def split_install(packages: list[str], first_also: list[str], driver: bool,
                  ) -> tuple[list[str], list[str]]:
    """(installed first, installed beside the Python environment) of the essential packages.

    The by-hand order (one apt-get install, then the environment) leaves a core idle: dpkg
    unpacks on one core while nothing else runs. Beside it, a first deploy behind the fleet
    cache went from 1.13x the same packages by hand to 0.96x (docs/benchmarks.md, the table
    at d63944c).
    Nothing goes beside where a driver is planned (its build needs the whole set at once, so a
    second apt-get run would only add its start). `first_also` install first, in pyinfra's
    apt.packages: the lab's own extra packages (base_extra_packages, which may carry versions
    or architectures), and the data disks' tools (roles/storage runs before the environment:
    its disks would otherwise wait for the install beside).
    """
    if driver:
        return packages, []
    first = [name for name in packages if name in FIRST_PACKAGES or name in first_also]
    return first, [name for name in packages if name not in first]


# /dev/nvidia* and /dev/dri/renderD* belong to these groups on Debian and Ubuntu.
GPU_GROUPS = ["video", "render"]
# The lab's people the deploy manages, kept on the host: a user later removed from the
# inventory is reported from this list (never deleted).
LAB_USERS_RECORD = "/etc/dlws/lab-users"


def settle() -> None:
    """Wait for the essential packages that install() started beside the next roles (at the
    end of a deploy; every role's apt operation waits for them first by itself)."""
    _apt.settle()


def recorded_lab_users(lines: list[str] | None) -> list[str]:
    return [line.strip() for line in lines or [] if line.strip() and not line.startswith("#")]


@deploy("Lab users", data_defaults=DEFAULTS)
def lab_users() -> None:
    """Each of base_lab_users in the GPU groups and base_lab_group; removed ones reported.

    An existing account keeps its home, shell and other groups; an account of the system
    (uid below UID_MIN) stops the deploy before anything changes; none is ever deleted.
    """
    wanted = list(host.data.base_lab_users)
    group = host.data.base_lab_group
    users = host.get_fact(Users)
    recorded = recorded_lab_users(host.get_fact(FileContents, path=LAB_USERS_RECORD))
    # Accounts of the system itself are refused before any change (the inventory check already
    # refuses the names every Debian/Ubuntu system has; this catches the host's own).
    uid_min = host.get_fact(UidMin) or 1000
    system = [f"{user} (uid {users[user]['uid']})" for user in wanted
              if user in users and not uid_min <= int(users[user]["uid"]) < 65534]
    if system:
        raise DeployError(
            f"host {host.name}: base_lab_users: {', '.join(system)} is a system account "
            f"(uid below UID_MIN {uid_min} or nobody): lab users must be people; remove it "
            "from base_lab_users; nothing was changed on any host")
    removed = [user for user in recorded if user not in wanted and user in users]
    if not wanted and not removed:
        return
    for gpu_group in GPU_GROUPS:
        server.group(name=f"Ensure the {gpu_group} group exists", group=gpu_group, system=True)
    # The dlws group reads the lab's proxy settings and index credentials, where there are any.
    groups = [*GPU_GROUPS, group] + ([LAB_GROUP] if lab_secrets() else [])
    if lab_secrets():
        server.group(name=f"Ensure the {LAB_GROUP} group exists", group=LAB_GROUP, system=True)
    if group not in host.get_fact(Groups):
        server.group(name=f"Create the lab group {group}", group=group)
    for user in wanted:
        if user in users:
            # An existing account keeps its home, shell and other groups: groups are appended.
            server.user(name=f"Put {user} in the GPU and lab groups ({', '.join(groups)})",
                        user=user, groups=groups, append=True, ensure_home=False)
        else:
            server.user(name=f"Create the lab user {user} (groups {', '.join(groups)})",
                        user=user, groups=groups, append=True, create_home=True,
                        ensure_home=False, shell="/bin/bash")
    for user in removed:
        home = users[user].get("home")
        host.noop(f"lab user {user} is no longer in base_lab_users: the account and its home "
                  f"{home} are kept (dlws never deletes users); verify reports it until you "
                  f"remove it yourself (userdel {user}) or declare it again")
    # Removed users stay on the record until their account is gone.
    record = [*wanted, *removed]
    files.put(name=f"Record the lab users dlws manages in {LAB_USERS_RECORD}",
              src=StringIO("# Managed by dlws (roles/base): lab users declared now or before.\n"
                           + "".join(f"{user}\n" for user in record)),
              dest=LAB_USERS_RECORD, mode="644", create_remote_dir=True)


def _configure_proxy() -> None:
    lines = []
    # A fleet's package cache (roles/cache) serves plain-HTTP repositories; HTTPS ones keep
    # the site proxy, if any.
    http_proxy = apt_proxy(host.data) or host.data.base_http_proxy
    if http_proxy:
        lines.append(f"Acquire::http::Proxy {apt_conf_string(http_proxy)};")
    if host.data.base_https_proxy:
        lines.append(f"Acquire::https::Proxy {apt_conf_string(host.data.base_https_proxy)};")
    if not lines:
        return
    # apt reads its configuration as root; a proxy password must not be world-readable.
    declared = secret_file(host.data, APT_PROXY_FILE)
    files.put(name="Send apt through the proxy", src=StringIO("\n".join(lines) + "\n"),
              dest=declared.path, mode=declared.mode, user=declared.owner,
              group=declared.group, create_remote_dir=False)
    if not proxy_env():
        return
    server.group(name=f"Ensure the {LAB_GROUP} group exists (reads the lab's proxy settings)",
                 group=LAB_GROUP, system=True)
    files.directory(name=f"Create {SECRETS_DIR}", path=SECRETS_DIR, mode="755", user="root",
                    group="root")
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in proxy_env().items())
    declared = secret_file(host.data, PROXY_ENV_FILE)
    files.put(name="Keep the proxy settings where only root and the lab group read them",
              src=StringIO("# Managed by dlws (roles/base).\n" + exports), dest=declared.path,
              mode=declared.mode, user=declared.owner, group=declared.group,
              create_remote_dir=False)
    files.put(name="Set the proxy for login shells",
              src=StringIO("# Managed by dlws (roles/base): the proxy, for those who may read "
                           f"it.\nif [ -r {PROXY_ENV_FILE} ]; then . {PROXY_ENV_FILE}; fi\n"),
              dest=PROFILE_PROXY_FILE, mode="644", create_remote_dir=False)


def lab_secrets() -> bool:
    """Whether the host gets credentials that lab users read through the lab group."""
    return bool(proxy_env()) or bool(credentialed_index_urls(host.data))


def with_proxy(command: Command) -> Command:
    """`command` run with the proxy settings (sourced from a root-only file, never inlined)."""
    if not proxy_env():
        return command
    return sh("set -a && . {} && set +a && {}", PROXY_ENV_FILE, command)


# A one-line source without options: "deb http://deb.debian.org/debian bookworm main".
_UNSIGNED = re.compile(r"^(deb(?:-src)?)\s+(?!\[)(\S+)\s+(\S+)(\s.*)?$")


def signed_sources_list(text: str, os_id: str, codename: str) -> str:
    """/etc/apt/sources.list with the distribution's keyring named on its own suites' lines.

    Without `signed-by`, any key in apt's trusted keyrings may sign any repository; the
    archive's own suites (codename, -updates, -security, -backports) are signed by its keyring.
    """
    lines = []
    for line in text.splitlines():
        match = _UNSIGNED.match(line.strip())
        if match and match[3].split("-")[0] == codename:
            line = (f"{match[1]} [signed-by={KEYRINGS[os_id]}] {match[2]} {match[3]}"
                    f"{match[4] or ''}")
        lines.append(line)
    return "\n".join(lines) + "\n"


def _sign_sources_list(os_id: str) -> bool:
    """Name the archive keyring in the host's sources.list (the original kept as .dlws-orig)."""
    path = "/etc/apt/sources.list"
    current = host.get_fact(FileContents, path=path)
    codename = stable_fact(OsRelease, host)["codename"]
    if current is None or not codename:
        return False
    text = "\n".join(current) + "\n"
    wanted = signed_sources_list(text, os_id, codename)
    if wanted == text:
        return False
    server.shell(name=f"Keep the original {path} as {path}.dlws-orig",
                 commands=[cmd("cp", "-n", "-p", "--", path, f"{path}.dlws-orig")])
    files.put(name="Name the archive's keyring (signed-by) in the host's own apt sources",
              src=StringIO(wanted), dest=path, mode="644", create_remote_dir=False)
    return True


def _set_aside_original_sources() -> None:
    originals = ["/etc/apt/sources.list"] + [
        path
        for path in host.get_fact(FindFiles, path="/etc/apt/sources.list.d", quote_path=True) or []
        if path.endswith((".list", ".sources")) and not Path(path).name.startswith("dlws-")
    ]
    for path in originals:
        server.shell(
            name=f"Keep {path} as {path}.dlws-orig (replaced by the mirror)",
            commands=[cmd("mv", "-n", "--", path, f"{path}.dlws-orig")],
            _if=lambda path=path: host.get_fact(FindFiles, path=path) is not None,
        )


def _install_extra_cas() -> None:
    changed = []
    for src in host.data.base_extra_ca_certs:
        name = ca_file_name(src)
        put = files.put(
            name=f"Install the extra CA certificate {name}",
            src=str(Path(src).expanduser()),
            dest=f"{host.data.base_ca_dir}/{name}",
            mode="644",
            create_remote_dir=True,
        )
        changed.append(put)
    if changed:
        server.shell(
            name="Rebuild the system CA bundle",
            commands=["update-ca-certificates"],
            _if=lambda: any(op.did_change() for op in changed),
        )

