"""Python environment role: a shared virtual environment, pip/uv set up for the host's network."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from datetime import timezone
from io import StringIO
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from pyinfra import host
from pyinfra.api import DeployError, OperationError, deploy, operation
from pyinfra.api.command import FileUploadCommand
from pyinfra.facts.files import File
from pyinfra.operations import files, server

from dlws.command import Command, all_of, any_of, cmd
from dlws.facts import batch as fact_cache
from dlws.facts.python import VenvPackages, canonical
from dlws.locks import index_options, pins
from dlws.plan import host_data, missing_lock
from dlws.roles import base
from dlws.roles.base import LAB_GROUP, SECRETS_DIR, _apt, with_proxy
from dlws.roles.cache.defaults import pip_cache_dir
from dlws.roles.python_env.defaults import DEFAULTS, KEYS  # noqa: F401
from dlws.secrets import NETRC, secret_file
from dlws.stack.locks import LockSpec, credentialed_index_urls, uv_spec, wheels_in
from dlws.validate.domains import netrc_text, split_credentials
from dlws.verify.integrity import BYTECODE_RECORD, RECORD_CHECK

PIP_CONF = "/etc/pip.conf"
UV_CONF = "/etc/uv/uv.toml"
PROFILE = "/etc/profile.d/dlws.sh"
# Index credentials (python_env_index_url = https://USER:TOKEN@...): root and the lab group read
# them in NETRC (netrc(5), which pip and uv read from the path NETRC names), nobody else; its
# owner and mode are declared in dlws/secrets.py.


def wheelhouse_files() -> list[Path]:
    """Wheels of the current host's controller-side wheelhouse, if one is declared."""
    return wheels_in(host.data.get("python_env_wheelhouse"))


def installer_env() -> dict[str, str]:
    """Environment for pip/uv on the host: its CA bundle (uv ignores pip.conf) and proxies."""
    env = {
        "SSL_CERT_FILE": host.data.python_env_ca_bundle,
        "PIP_CERT": host.data.python_env_ca_bundle,
        "UV_LINK_MODE": "copy",
    }
    # A path, not a secret: the proxy and index credentials stay in root-only files.
    if credentialed_index_urls(host.data):
        env["NETRC"] = NETRC
    # roles/cache: a download cache the fleet shares, so each wheel crosses the uplink once.
    cache = pip_cache_dir(host.data)
    if cache:
        env["PIP_CACHE_DIR"] = f"{cache}/pip"
        env["UV_CACHE_DIR"] = f"{cache}/uv"
    return env


def _satisfied(requirement: str, installed: dict[str, str]) -> bool:
    """Whether an installed version meets a PEP 508 requirement (NAME[extra]<specifiers>)."""
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement as error:
        raise OperationError(f"requirement {requirement!r}: {error}") from None
    version = installed.get(canonical(parsed.name))
    return version is not None and parsed.specifier.contains(version, prereleases=True)


@operation()
def venv_packages(
    prefix: str,
    requirements: list[str],
    installer: str = "uv",
    index_url: str | None = None,
    extra_index_urls: list[str] | tuple[str, ...] = (),
    find_links: str | None = None,
    no_deps: bool = False,
    shared_cache: str | None = None,
    lock: str | None = None,
    uv: str | None = None,
    proxy: bool = False,
):
    """
    Install pinned requirements into a virtual environment, only those not yet satisfied.

    + prefix: the virtual environment
    + requirements: ``NAME==VERSION`` pins (extras allowed: ``tensorflow[and-cuda]==2.21.0``)
    + installer: ``uv`` (the environment's bin/uv) or ``pip``
    + index_url / extra_index_urls / find_links: where packages come from
    + no_deps: install without dependencies (a package whose extras are not needed)
    + shared_cache: the fleet's shared download cache (roles/cache): installs take turns on its
      lock, so the first host downloads a wheel and the others find it in the cache
    + lock: a hash lock on the host (dlws/locks.py) that pins `requirements` and
      every dependency: installed whole, each file checked against its sha256
    + uv: the uv to run (default: the environment's own bin/uv)
    + proxy: source the proxy settings file first (roles/base; credentials never inlined)
    """
    installed = host.get_fact(VenvPackages, prefix=prefix)
    missing = [req for req in requirements if not _satisfied(req, installed)]
    if not missing:
        if host.get_fact(File, path=f"{prefix}/{BYTECODE_RECORD}") is None:
            # An environment compiled before dlws kept this record: each compiled file is
            # recorded only when its source compiles to it.
            yield record_bytecode(prefix, "checked")
            return
        host.noop(f"already in {prefix}: {', '.join(requirements)}")
        return
    line = install_command(prefix, missing, installer=installer, index_url=index_url,
                           extra_index_urls=extra_index_urls, find_links=find_links,
                           no_deps=no_deps, shared_cache=shared_cache, lock=lock, uv=uv,
                           beside=_apt.running_beside())
    yield with_proxy(line) if proxy else line
    yield record_bytecode(prefix, "installed")


def install_command(prefix: str, missing: list[str], *, installer: str = "uv",
                    index_url: str | None = None,
                    extra_index_urls: list[str] | tuple[str, ...] = (),
                    find_links: str | None = None, no_deps: bool = False,
                    shared_cache: str | None = None, lock: str | None = None,
                    uv: str | None = None, beside: bool = False) -> Command:
    """venv_packages' install of `missing` into the environment at `prefix` (the same
    arguments). `beside`: roles/base's apt-get install may still run beside it, so the
    install takes wheels alone, and only where something must be built waits for that
    install (the build tools, python3-dev) and goes again as it would have."""
    if installer == "uv":
        # --compile-bytecode: as pip does. The environment is root's; a lab member cannot write
        # its bytecode, so without it each of their imports compiles from source (measured:
        # `import tensorflow, torch` as a lab member 9.8 s, 5.1 s once the bytecode was there).
        command = [uv or f"{prefix}/bin/uv", "pip", "install", "--python", f"{prefix}/bin/python",
                   "--compile-bytecode"]
    else:
        command = [f"{prefix}/bin/pip", "install", "--no-input"]
    sources = index_options(index_url, extra_index_urls, find_links, uv=installer == "uv")
    options = ["--no-deps"] if no_deps or lock else []
    if lock:
        options.append("--require-hashes")
        packages = ["-r", lock]
    else:
        # `--` ends the options: a requirement can never be read as one.
        packages = ["--", *missing]

    def install_line(more: list[str]) -> Command:
        if not shared_cache:
            return cmd(*command, *sources, *options, *more, *packages)
        return shared_cache_install(shared_cache, installer, command, sources,
                                    [*options, *more], packages, find_links)

    line = install_line([])
    if beside:
        # The build tools and python3-dev may still be installing (roles/base): install from
        # wheels alone, and only where something must be built, wait for them and go again.
        wheels_only = ["--no-build"] if installer == "uv" else ["--only-binary", ":all:"]
        line = any_of([install_line(wheels_only), all_of([_apt.wait_beside_command(), line])])
    return line


def record_bytecode(prefix: str, how: str) -> Command:
    """The record verify checks the environment's bytecode against (RECORDs list no digest for
    it): each compiled file's size and sha256, written by the controller's RECORD check script
    under the environment's interpreter without its site (-I -S -B), right after pip or uv
    compiled it (`installed`), or checked against its source first (`checked`)."""
    return RECORD_CHECK.command(f"{prefix}/bin/python",
                                {"bytecode": [prefix, "record-bytecode", how]},
                                flags=("-I", "-S", "-B"))


def shared_cache_install(shared_cache: str, installer: str, command: list[str],
                         sources: list[str], options: list[str], packages: list[str],
                         find_links: str | None = None) -> Command:
    """
    An install that takes what the fleet's shared cache holds before it goes upstream.

    Hosts that start together must not all miss the cache (measured: 4 x 37 MiB), but they must
    not take turns for the whole install either (measured: 4 fresh hosts 2.14x one host). So
    each host first installs from the cache alone, in parallel; a host that finds it lacking
    takes the cache's lock, and the first one under it fills the cache from upstream and leaves
    a marker for this set of packages; the hosts that waited find the marker, release the lock
    at once and install from the cache side by side. A cache hit must not depend on HTTP caching
    headers either: a proxy that strips them (measured here: no Cache-Control, ETag or
    Last-Modified on PyPI's files) makes pip cache nothing and uv re-fetch every index page. So
    uv installs `--offline` (the shared cache only), and pip from a wheel folder in the cache
    (`--no-index`) that `pip download` fills; either falls back to the network when the cache
    still lacks something.
    """
    if installer == "uv":
        local = cmd(*command, "--offline", *sources, *options, *packages)
        fill = cmd(*command, *sources, *options, *packages)  # installs, and fills the cache
        online = fill
    else:
        wheels = f"{shared_cache}/wheels"
        local = cmd(*command, "--no-index", "--find-links", wheels,
                    *(["--find-links", find_links] if find_links else []), *options, *packages)
        fill = cmd(command[0], "download", "--no-input", "--dest", wheels, *sources, *options,
                   *packages)
        online = all_of([fill, local])
    # One marker per set of packages and sources: "the cache has been filled for these".
    key = hashlib.sha256(shlex.join([*command, *sources, *options, *packages]).encode())
    marker = f"{shared_cache}/.dlws-filled-{key.hexdigest()[:16]}"
    lock = f"{shared_cache}/.dlws-install.lock"
    fill_once = any_of([cmd("test", "-e", marker), all_of([fill, cmd("touch", marker)])])
    waited = all_of([cmd("mkdir", "-p", "--", shared_cache),
                     cmd("flock", lock, "sh", "-c", fill_once), any_of([local, online])])
    # (Grouped, so that a prefix joined with && (roles/base's with_proxy) guards all of it.)
    return all_of([cmd("true"), any_of([local, waited])])


# Reads base's proxy keys too: a nested deploy sees only its own defaults.
@deploy("Python environment", data_defaults={**base.DEFAULTS, **DEFAULTS})
def install() -> None:
    prefix = host.data.python_env_prefix
    # The system Python (python3, -venv, -dev) comes with base's essential packages.
    _configure_pip()
    wheelhouse = _upload_wheelhouse()
    created = server.shell(
        name=f"Create the virtual environment {prefix}",
        commands=[cmd("python3", "-m", "venv", "--", prefix)],
        _if=lambda: host.get_fact(File, path=f"{prefix}/bin/python") is None,
    )
    fact_cache.touches(created, [prefix])
    files.directory(name=f"Let every user read and run {prefix}", path=prefix, mode="755")
    # uv creates its lock file world-writable (0666) when it finds none: create it first.
    files.file(name="Create the environment's lock file, writable by root only",
               path=f"{prefix}/.lock", mode="644")
    if host.data.python_env_installer == "uv":
        # uv itself comes through pip: a pinned wheel from PyPI (or the lab's mirror), no
        # `curl | sh` installer.
        requirements, lock = locked(uv_spec(host_data()))
        installed = venv_packages(
            name=f"Install uv {host.data.python_env_uv_version} into the environment",
            prefix=prefix,
            requirements=requirements,
            installer="pip",
            index_url=host.data.python_env_index_url,
            extra_index_urls=host.data.python_env_extra_index_urls,
            find_links=wheelhouse,
            shared_cache=pip_cache_dir(host.data),
            lock=lock,
            proxy=bool(base.proxy_env()),
            _env=installer_env(),
        )
        fact_cache.touches(installed, installer_paths(prefix))
    if host.data.python_env_login_path:
        files.put(
            name="Put the environment on login shells' PATH",
            src=StringIO(profile_content(prefix, bool(credentialed_index_urls(host.data)))),
            dest=PROFILE,
            mode="644",
            create_remote_dir=False,  # /etc/profile.d: base-files has it
        )


def profile_content(prefix: str, netrc: bool) -> str:
    """/etc/profile.d/dlws.sh: the environment first on PATH (and the lab's index credentials)."""
    bin_dir = shlex.quote(f"{prefix}/bin")  # a validated path: letters, digits, . _ + - /
    text = ("# Managed by dlws (roles/python_env).\n"
            f'case ":$PATH:" in *:{bin_dir}:*) ;; *) PATH={bin_dir}":$PATH" ;; esac\n'
            "export PATH\n")
    if netrc:
        text += f"if [ -r {NETRC} ]; then NETRC={NETRC}; export NETRC; fi\n"
    return text


def locked(spec: LockSpec) -> tuple[list[str], str | None]:
    """(requirements, lock path on the host): the lock's pins where hashes are required."""
    if not host.data.python_env_require_hashes:
        return list(spec.requirements), None
    problem = missing_lock(host.name, host_data(), spec)
    if problem:
        raise DeployError(problem)
    remote = f"{host.data.python_env_lock_dir}/{spec.name}"
    files.put(name=f"Upload the hash lock {spec.name}", src=str(spec.path), dest=remote,
              mode="644", create_remote_dir=True)
    return pins(spec.path), remote


def install_packages(name: str, requirements: list[str], extra_index_urls: tuple = (),
                     no_deps: bool = False, lock: str | None = None,
                     prefix: str | None = None) -> None:
    """Install requirements (the pins of `lock`, when given) into the shared environment, or
    into the environment at `prefix` (the notebooks' hub): the host's one installer, with its
    indexes, wheelhouse, shared cache, CA bundle and proxy, whoever asks."""
    installer = host.data.python_env_installer
    installed = venv_packages(
        name=name,
        prefix=prefix or host.data.python_env_prefix,
        requirements=requirements,
        installer=installer,
        # The shared environment's uv installs into another environment too.
        uv=f"{host.data.python_env_prefix}/bin/uv" if installer == "uv" and prefix else None,
        index_url=host.data.python_env_index_url,
        extra_index_urls=[*host.data.python_env_extra_index_urls, *extra_index_urls],
        find_links=host.data.python_env_wheelhouse_dir if wheelhouse_files() else None,
        no_deps=no_deps,
        shared_cache=pip_cache_dir(host.data),
        lock=lock,
        proxy=bool(base.proxy_env()),
        _env=installer_env(),
    )
    fact_cache.touches(installed, installer_paths(prefix or host.data.python_env_prefix))


def installer_paths(prefix: str) -> list[str]:
    """What a pip/uv install into `prefix` writes: the environment, its download caches (root's,
    or the fleet's shared one) and temporary files; nothing the other roles manage."""
    paths = [prefix, "/root/.cache", "/tmp", "/var/tmp"]
    if pip_cache_dir(host.data):
        paths.append(pip_cache_dir(host.data))
    return paths


def ini_value(value: str) -> str:
    """A pip.conf (INI) value on one line; configparser has no escape for a newline."""
    if re.search(r"[\x00-\x1f\x7f]", value) or value != value.strip():
        raise DeployError(f"{value!r} cannot be written into {PIP_CONF}; fix the host data")
    return value  # pip reads it with RawConfigParser: no interpolation to escape


def toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's for these characters)."""
    return json.dumps(value)


def pip_conf_content(ca_bundle: str, index_url: str | None, extra: list[str],
                     find_links: str | None) -> tuple[str, str]:
    """(/etc/pip.conf, /etc/uv/uv.toml): world-readable, so the URLs carry no credentials."""
    index = split_credentials(index_url)[0] if index_url else None
    extra = [split_credentials(url)[0] for url in extra]
    lines = ["# Managed by dlws (roles/python_env).", "[global]", f"cert = {ini_value(ca_bundle)}"]
    uv_lines = ["# Managed by dlws (roles/python_env).", "native-tls = true"]
    if index:
        lines.append(f"index-url = {ini_value(index)}")
        uv_lines.append(f"index-url = {toml_string(index)}")
    if extra:
        lines.append("extra-index-url = " + " ".join(ini_value(url) for url in extra))
        uv_lines.append(f"extra-index-url = [{', '.join(toml_string(url) for url in extra)}]")
    if find_links:
        lines.append(f"find-links = {ini_value(find_links)}")
        uv_lines.append(f"find-links = [{toml_string(find_links)}]")
    return "\n".join(lines) + "\n", "\n".join(uv_lines) + "\n"


def _configure_pip() -> None:
    pip_conf, uv_toml = pip_conf_content(
        host.data.python_env_ca_bundle, host.data.python_env_index_url,
        list(host.data.python_env_extra_index_urls),
        host.data.python_env_wheelhouse_dir if wheelhouse_files() else None)
    files.put(name="Configure pip for the host's CA bundle and indexes",
              src=StringIO(pip_conf), dest=PIP_CONF, mode="644", create_remote_dir=False)
    files.put(name="Configure uv for the host's CA bundle and indexes",
              src=StringIO(uv_toml), dest=UV_CONF, mode="644", create_remote_dir=True)
    secret_urls = credentialed_index_urls(host.data)
    try:
        netrc = netrc_text(secret_urls)
    except ValueError as error:
        raise DeployError(f"host {host.name}: python_env_index_url / "
                          f"python_env_extra_index_urls: {error}") from None
    if secret_urls:
        server.group(name=f"Ensure the {LAB_GROUP} group exists (reads the index credentials)",
                     group=LAB_GROUP, system=True)
        files.directory(name=f"Create {SECRETS_DIR}", path=SECRETS_DIR, mode="755",
                        user="root", group="root")
        declared = secret_file(host.data, NETRC)
        files.put(name="Keep the index credentials where only root and the lab group read them",
                  src=StringIO(netrc), dest=declared.path,
                  mode=declared.mode, user=declared.owner, group=declared.group,
                  create_remote_dir=False)


def _upload_wheelhouse() -> str | None:
    wheels = wheelhouse_files()
    if not wheels:
        return None
    target = host.data.python_env_wheelhouse_dir
    files.directory(name=f"Create the wheelhouse {target}", path=target, mode="755")
    for wheel in wheels:
        put_wheel(name=f"Upload {wheel.name} to the wheelhouse", src=str(wheel),
                  dest=f"{target}/{wheel.name}")
    return target


def wheel_is_current(local: os.stat_result, remote: dict | None) -> bool:
    """rsync's quick check: the host's copy has the controller's size and modification time
    (whole seconds), which put_wheel gives it on upload."""
    if not remote or remote.get("size") is None or remote.get("mtime") is None:
        return False
    mtime = int(remote["mtime"].replace(tzinfo=timezone.utc).timestamp())
    return remote["size"] == local.st_size and mtime == int(local.st_mtime)


@operation()
def put_wheel(src: str, dest: str):
    """
    Upload a wheel unless the host's copy passes rsync's quick check (same size and mtime).

    pyinfra's files.put compares sha1 sums: a no-change rerun hashed every wheel on the
    controller and on the host (183 MiB for the torch CPU wheel), a cost that grew with the
    wheelhouse. A wheel's content is checked where it counts, when it is installed: every
    install is hash-locked (`--require-hashes`, dlws/locks.py), so a wheel altered on the host
    is refused by its sha256, whatever its size and date.

    + src: the wheel on the controller
    + dest: its path on the host
    """
    local = os.stat(src)
    remote = host.get_fact(File, path=dest)
    if wheel_is_current(local, remote):
        if remote.get("mode") != 644:
            yield cmd("chmod", "644", "--", dest)
        else:
            host.noop(f"{dest} is current (size and mtime)")
        return
    yield FileUploadCommand(src, dest)
    yield all_of([cmd("chmod", "644", "--", dest),
                  cmd("touch", "-m", "-d", f"@{int(local.st_mtime)}", "--", dest)])
