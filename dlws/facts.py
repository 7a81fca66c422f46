"""Small typed pyinfra facts that dlws reads from hosts (each read-only, LANG=C)."""

from __future__ import annotations

import inspect
import re
import secrets
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from pyinfra.api import FactBase, StringCommand
from pyinfra.api.facts import ShortFactBase
from pyinfra.facts.server import Arch, KernelVersion

from dlws.command import Command, sh

# `lspci -nn` line: "01:00.0 VGA compatible controller [0300]: NVIDIA Corporation AD102 [GeForce
# RTX 4090] [10de:2684] (rev a1)". 3D controllers (class 0302) are datacentre cards.
LSPCI_NVIDIA = re.compile(
    r"^(?P<slot>\S+) (?P<klass>[^\[]+) \[(?P<class_id>03[0-9a-f]{2})\]: "
    r"(?P<name>.*) \[10de:(?P<device>[0-9a-f]{4})\]",
    re.I,
)


class Container(FactBase):
    """The container runtime the host runs in, or "" on a machine of its own.

    .. code:: python

        "docker"
    """

    # /.dockerenv and /run/.containerenv are written by docker and podman; cgroup names cover
    # LXC and Kubernetes.
    command = (
        "if [ -f /.dockerenv ]; then echo docker; "
        "elif [ -f /run/.containerenv ]; then echo podman; "
        "elif grep -qaE 'lxc|kubepods|docker' /proc/1/cgroup 2>/dev/null; then echo container; "
        "else echo; fi"
    )
    default = str

    def process(self, output):
        return "".join(output).strip()


class NvidiaPciDevices(FactBase):
    """NVIDIA display/3D controllers on the PCI bus, found without any driver installed.

    Uses ``lspci -nn`` when pciutils is there, else reads sysfs, which a bare host always has.

    .. code:: python

        [{"slot": "01:00.0", "device_id": "10de:2684", "name": "NVIDIA Corporation AD102 ..."}]
    """

    command = (
        "if command -v lspci >/dev/null 2>&1; then LANG=C lspci -nn -d 10de:; else "
        "for d in /sys/bus/pci/devices/*; do [ -r $d/vendor ] || continue; "
        '[ "$(cat $d/vendor)" = 0x10de ] || continue; '
        'echo "${d##*/} sysfs [$(cut -c3-6 $d/class)]: NVIDIA [10de:$(cut -c3- $d/device)]"; '
        "done; fi"
    )
    default = list

    def process(self, output):
        devices = []
        for line in output:
            match = LSPCI_NVIDIA.match(line.strip())
            if match:
                devices.append(
                    {
                        "slot": match["slot"],
                        "device_id": f"10de:{match['device'].lower()}",
                        "name": match["name"].strip(),
                    }
                )
        return devices


# An NVSwitch on the same listing: "05:00.0 Bridge [0680]: NVIDIA Corporation GH100 [H100
# NVSwitch] [10de:22a3] (rev a1)".
LSPCI_NVSWITCH = re.compile(r"^\S+ .*\[0680\]: .*\[10de:[0-9a-f]{4}\]", re.I)


class NvSwitchCount(FactBase):
    """NVSwitch chips on the PCI bus (HGX boards): they need NVIDIA's fabric manager.

    .. code:: python

        4
    """

    command = NvidiaPciDevices.command
    default = int

    def process(self, output):
        return sum(1 for line in output if LSPCI_NVSWITCH.match(line.strip()))


class OsRelease(FactBase):
    """ID and VERSION_ID from /etc/os-release, the keys the version solver needs.

    .. code:: python

        {"id": "debian", "version_id": "12", "codename": "bookworm"}
    """

    command = "cat /etc/os-release"
    default = dict

    def process(self, output):
        values = {}
        for line in output:
            if "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip().strip('"')
        return {
            "id": values.get("ID", ""),
            "version_id": values.get("VERSION_ID", ""),
            "codename": values.get("VERSION_CODENAME", ""),
        }


class DpkgArchitecture(FactBase):
    """dpkg's architecture: what its packages, NVIDIA's repository and the wheels are built for
    (the machine's, `uname -m`, unless a 32-bit userland runs on a 64-bit kernel).

    .. code:: python

        "arm64"
    """

    command = "dpkg --print-architecture"
    requires_command = "dpkg"

    def process(self, output):
        text = "".join(output).strip()
        return text or None


class PythonVersion(FactBase):
    """The major.minor version of the system python3, or None before it is installed.

    .. code:: python

        "3.11"
    """

    command = "python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])' 2>/dev/null || true"

    def process(self, output):
        text = "".join(output).strip()
        return text or None


class VenvPackages(FactBase):
    """Distributions installed in a virtual environment, by canonical name.

    .. code:: python

        {"tensorflow-cpu": "2.21.0", "torch": "2.13.0+cpu"}
    """

    def command(self, prefix: str) -> Command:
        # importlib.metadata needs no pip in the venv, so venvs built by uv are read the same.
        python = f"{prefix}/bin/python"
        return sh("test -x {} && {} -c {} || true", python, python,
                  "import importlib.metadata as m\n"
                  "for d in m.distributions(): print(d.metadata[\"Name\"], d.version)")

    default = dict

    def process(self, output):
        packages = {}
        for line in output:
            name, _, version = line.strip().partition(" ")
            if name and version:
                packages[canonical(name)] = version
        return packages


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


class NvidiaDriverVersion(FactBase):
    """The NVIDIA driver version in use (kernel module first, else the installed user space).

    .. code:: python

        "550.163.01"
    """

    # /proc/driver/nvidia/version exists only with the module loaded; a host with the driver
    # installed but not yet loaded (before its reboot) still has nvidia-smi's package. The raw
    # text comes back and dlws.gpu_readings.loaded_driver_version parses it (both module lines:
    # "Kernel Module  535.183.01" and "Open Kernel Module for x86_64  580.95.05").
    command = (
        "cat /proc/driver/nvidia/version 2>/dev/null; "
        "dpkg-query -W -f='${Version}\\n' nvidia-smi 'nvidia-utils-*' 2>/dev/null || true"
    )

    def process(self, output):
        return driver_version("\n".join(output))


def driver_version(text: str) -> str | None:
    """The loaded module's version in /proc/driver/nvidia/version, else the first installed
    package version ("535.183.01-0ubuntu1" -> "535.183.01")."""
    from dlws.gpu_readings import loaded_driver_version

    loaded = loaded_driver_version(text)
    if loaded:
        return loaded
    for line in text.splitlines():
        match = PACKAGE_VERSION.match(line.strip().split(":")[-1])
        if match:
            return match[1]
    return None


# A driver package's Debian version: "535.183.01-0ubuntu1", "1:550.163.01-2" (epoch dropped).
PACKAGE_VERSION = re.compile(r"^(\d+\.\d+(?:\.\d+)?)")


class SecureBoot(FactBase):
    """True when UEFI Secure Boot is enabled, False when not, None when it cannot be told.

    .. code:: python

        True
    """

    command = (
        "if command -v mokutil >/dev/null 2>&1; then mokutil --sb-state 2>/dev/null; "
        "elif [ -d /sys/firmware/efi ]; then od -An -tu1 "
        "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c "
        "2>/dev/null | awk '{print \"SecureBoot \" ($5 == 1 ? \"enabled\" : \"disabled\")}'; "
        "else echo 'legacy BIOS'; fi"
    )

    def process(self, output):
        text = " ".join(output).lower()
        if "enabled" in text:
            return True
        if "disabled" in text or "legacy" in text:
            return False
        return None


# `loginctl show-session ID -p Type --value` answers "x11", "wayland", "tty" or "unspecified".
GRAPHICAL_SESSIONS = ("x11", "wayland", "mir")


class Display(FactBase):
    """What shows the host drives a monitor: its display manager (Debian and Ubuntu record it in
    /etc/X11/default-display-manager and link display-manager.service to it), else a running
    X11/Wayland login session; None on a server. The default systemd target says nothing here:
    Ubuntu's server images boot graphical.target too.

    .. code:: python

        "gdm3"
    """

    command = (
        'dm=$(cat /etc/X11/default-display-manager 2>/dev/null); '
        '[ -n "$dm" ] && echo "display-manager ${dm##*/}"; '
        'unit=$(readlink /etc/systemd/system/display-manager.service 2>/dev/null); '
        '[ -n "$unit" ] && echo "display-manager-unit ${unit##*/}"; '
        "for s in $(loginctl list-sessions --no-legend 2>/dev/null | awk '{print $1}'); do "
        'echo "session $(loginctl show-session "$s" -p Type --value 2>/dev/null)"; done; true'
    )

    def process(self, output):
        return display_from(output)


def display_from(lines) -> str | None:
    """The display manager ("gdm3") or graphical session ("wayland session") in Display's
    output, or None."""
    sessions = []
    for line in lines:
        kind, _, value = line.strip().partition(" ")
        value = value.strip()
        if kind == "display-manager" and value:
            return value
        if kind == "display-manager-unit" and value:
            return value.removesuffix(".service")
        if kind == "session" and value in GRAPHICAL_SESSIONS:
            sessions.append(f"{value} session")
    return sessions[0] if sessions else None


class NvidiaPackages(FactBase):
    """Installed dpkg packages whose name carries nvidia or cuda, with versions.

    .. code:: python

        {"nvidia-driver-535": "535.183.01-0ubuntu1", "libnvidia-compute-535": "..."}
    """

    command = (
        "dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\\n' "
        "'*nvidia*' '*cuda*' 2>/dev/null | awk '$1 == \"ii\" {print $2, $3}' || true"
    )
    default = dict

    def process(self, output):
        return dict(line.split(" ", 1) for line in output if " " in line)


class SystemdRunning(FactBase):
    """True when systemd is the host's init (sd_booted(3): /run/systemd/system exists).

    A container without systemd has nothing that starts or restarts a service.

    .. code:: python

        True
    """

    command = "if [ -d /run/systemd/system ]; then echo yes; else echo no; fi"

    def process(self, output):
        return "".join(output).strip() == "yes"


DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"
CDI_SPEC = "/etc/cdi/nvidia.yaml"


class DockerDaemonJson(FactBase):
    """/etc/docker/daemon.json as data: None when missing, {"_invalid": text} when not JSON.

    .. code:: python

        {"log-driver": "json-file", "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}}
    """

    command = sh("if [ -f {} ]; then echo present; cat -- {}; fi", DOCKER_DAEMON_JSON,
                 DOCKER_DAEMON_JSON)

    def process(self, output):
        import json

        if not output or output[0].strip() != "present":
            return None
        text = "\n".join(output[1:])
        try:
            data = json.loads(text) if text.strip() else {}
        except ValueError:
            return {"_invalid": text}
        return data if isinstance(data, dict) else {"_invalid": text}


# dockerd's own verdict on a configuration file, without starting a daemon. Docker 23+ has
# `dockerd --validate` (moby#42393). Older engines (Debian 12's docker.io 20.10) have no such
# flag, but dockerd loads and validates the file before its first side effect, and refuses a
# non-root user only after that ("return human-friendly error before creating files",
# cmd/dockerd/daemon.go): run as nobody, "needs to be started with root" means the file passed,
# "unable to configure the Docker daemon with file" means it did not. Prints one verdict line.
def dockerd_config_check(path: str = DOCKER_DAEMON_JSON) -> Command:
    """The shell command printing dockerd's verdict on a daemon.json; exits 0 only if valid."""
    return sh(
        "f={}; "
        "if ! command -v dockerd >/dev/null 2>&1; then echo 'invalid: no dockerd installed'; "
        "exit 1; fi; "
        "if dockerd --help 2>&1 | grep -q -- '--validate'; then "
        'out=$(timeout 60 dockerd --validate --config-file "$f" 2>&1); rc=$?; '
        'if [ $rc -eq 0 ]; then echo "valid (dockerd --validate): $out"; exit 0; fi; '
        'echo "invalid (dockerd --validate): $out"; exit 1; '
        "else "
        "out=$(timeout 60 setpriv --reuid=65534 --regid=65534 --clear-groups "
        'dockerd --config-file "$f" 2>&1 | tail -n 5); '
        'case "$out" in *"unable to configure the Docker daemon"*) '
        'echo "invalid (dockerd as nobody): $out"; exit 1;; '
        '*"needs to be started with root"*) '
        'echo "valid (dockerd as nobody loaded it, then refused a non-root user)"; exit 0;; '
        '*) echo "invalid (dockerd as nobody gave no verdict): $out"; exit 1;; esac; fi',
        path,
    )


DOCKERD_CONFIG_CHECK = dockerd_config_check()


def dockerd_config_verdict(stdout: str, rc: int) -> tuple[bool, str]:
    """(valid, dockerd's words) from DOCKERD_CONFIG_CHECK's output and exit code."""
    text = stdout.strip()
    return rc == 0 and text.startswith("valid"), text


class NvidiaCdiSpec(FactBase):
    """The loaded NVIDIA kernel module's version and what /etc/cdi/nvidia.yaml was made for.

    .. code:: python

        {"module": "580.95.05", "present": True, "driver": "580.95.05",
         "devices": ["0", "1", "GPU-3f1c...", "all"]}
    """

    command = sh(
        "sed -n 's/.*Kernel Module *\\([0-9.]*\\).*/module \\1/p' /proc/driver/nvidia/version "
        "2>/dev/null; if [ -f {} ]; then echo present; cat -- {}; fi", CDI_SPEC, CDI_SPEC)

    @staticmethod
    def default():
        return parse_cdi_spec([])

    def process(self, output):
        return parse_cdi_spec(output)


# `nvidia-ctk cdi generate` writes the devices as a YAML list under "devices:", each item's keys
# indented two spaces (containerEdits, then name); a device is named by its index ("0"), its UUID
# ("GPU-...") or "all". A versioned host library the spec mounts
# ("/usr/lib/x86_64-linux-gnu/libcuda.so.580.95.05") tells the driver it was made for.
CDI_DEVICE = re.compile(r"^(?:- |  )name:\s*[\"']?([^\"'\s]+)[\"']?\s*$")
CDI_DRIVER = re.compile(r"lib(?:cuda|nvidia-ml)\.so\.(\d+\.\d+(?:\.\d+)?)")


def parse_cdi_spec(lines: list[str]) -> dict:
    """NvidiaCdiSpec's shape from the module line and the spec's text."""
    module = next((line.split()[1] for line in lines if line.startswith("module ")), None)
    stripped = [line.strip() for line in lines]
    present = "present" in stripped
    spec = lines[stripped.index("present") + 1:] if present else []
    devices, in_devices = [], False
    for line in spec:
        if line.startswith("devices:"):
            in_devices = True
            continue
        if in_devices and line[:1] not in ("", " ", "-"):
            in_devices = False  # the next top-level key
        match = CDI_DEVICE.match(line) if in_devices else None
        if match:
            devices.append(match[1])
    drivers = sorted({m[1] for line in spec for m in CDI_DRIVER.finditer(line)})
    return {"module": module, "present": present, "devices": devices,
            "driver": ", ".join(drivers) or None}


def cdi_gpu_indexes(spec: dict) -> list[str]:
    """The GPUs a parsed CDI spec names by index ("0", "1"), not counting "all" or UUIDs."""
    return [name for name in spec["devices"] if name.isdigit()]


# Facts that no operation of a deploy changes (the OS release, the container runtime, the CPU
# architecture): read once per host and pyinfra run. pyinfra 3.10 caches no fact, and each read
# is one round trip (one `docker exec` per read on @docker hosts).
STABLE_FACTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def stable_fact(fact_cls, host=None):
    """`host.get_fact(fact_cls)`, read once per host and run, for facts no deploy changes."""
    from pyinfra import host as current_host

    host = current_host if host is None else host
    cache = STABLE_FACTS.setdefault(host.state, {})
    key = (host.name, fact_cls)
    if key not in cache:
        cache[key] = host.get_fact(fact_cls)
    return cache[key]


# --- many facts in one round trip -----------------------------------------------------------------

# A fact request: the fact's class and its arguments by name (``File, {"path": "/etc/x"}``).
FactRequest = tuple[type, dict]


def batchable(fact_cls) -> bool:
    """A fact whose command can run inside another shell script: an ordinary FactBase of the
    default shell, without preconditions (those pyinfra checks with further reads)."""
    return (inspect.isclass(fact_cls) and issubclass(fact_cls, FactBase)
            and not issubclass(fact_cls, ShortFactBase) and fact_cls is not FactBatch
            and fact_cls.shell_executable is None
            and fact_cls.check_preconditions is FactBase.check_preconditions)


def fact_kwargs(fact_cls, args: Sequence = (), kwargs: Mapping | None = None) -> dict:
    """A fact's arguments by name, as pyinfra binds them (positional ones named)."""
    kwargs = dict(kwargs or {})
    if not args and not kwargs:
        return {}
    bound = inspect.getcallargs(fact_cls().command, *args, **kwargs)
    bound.pop("self", None)
    return bound


def _command_of(fact, kwargs: Mapping) -> tuple[Any, Any]:
    """(command, required binary or None) of a fact instance, as pyinfra's _get_fact builds them."""
    command = fact.command(**kwargs) if callable(fact.command) else fact.command
    requires = fact.requires_command(**kwargs) if callable(fact.requires_command) else None
    return command, requires


class FactBatch(FactBase):
    """Several facts read with ONE command (one round trip), each parsed by its own process().

    The command runs each fact's own command in a subshell, in order, and after each prints a
    marker line with its index and exit status (or ``missing`` where the fact's
    ``requires_command`` is absent, as pyinfra's guard does). process() splits the output at the
    markers and hands each part to that fact's own process(), on the instance that built its
    command. Each fact's stderr is discarded, as pyinfra keeps stderr out of a fact's output.

    + requests: ``((fact_cls, kwargs), ...)``; every class must be ``batchable``

    Result, in the order of the requests: ``(state, value)`` with state ``ok`` (exit 0: the
    fact's process() of its lines, or its default without output), ``failed`` (non-zero exit,
    or its parser raised: value None) or ``missing`` (its required binary is absent: default).

    .. code:: python

        [("ok", {"id": "debian", "version_id": "12", "codename": "bookworm"}), ("ok", "docker")]
    """

    default = list

    def command(self, requests):
        # A marker that no fact's output can carry by chance.
        self.marker = f"@@dlws-fact-{secrets.token_hex(6)}@@"
        self.facts = []
        bits: list[Any] = []
        outputs: dict[str, int] = {}  # the same command twice runs once
        for index, (fact_cls, kwargs) in enumerate(requests):
            if not batchable(fact_cls):
                raise TypeError(f"{fact_cls!r} cannot be read in a batch")
            fact = fact_cls()
            command, requires = _command_of(fact, kwargs)
            key = repr((_raw(command), _raw(requires)))
            self.facts.append((fact, outputs.setdefault(key, index)))
            if outputs[key] != index:
                continue
            # The newline before ")" ends a trailing comment in the fact's command.
            run = ["(", command, "\n) 2>/dev/null; echo", f'"{self.marker} {index} $?";']
            if requires:
                bits += ["if command -v", requires, ">/dev/null 2>&1; then", *run,
                         "else echo", f"'{self.marker} {index} missing';", "fi;"]
            else:
                bits += run
        return StringCommand(*bits)

    def process(self, output):
        marker = re.compile(rf"^(.*){re.escape(self.marker)} (\d+) (\d+|missing)$")
        parts: dict[int, tuple[str, list[str]]] = {}
        lines: list[str] = []
        for line in output:
            match = marker.match(line)
            if not match:
                lines.append(line)
                continue
            if match[1]:  # the fact's last line had no newline
                lines.append(match[1])
            parts[int(match[2])] = (match[3], lines)
            lines = []
        results = []
        for fact, source in self.facts:
            status, lines = parts.get(source, ("lost", []))
            if status == "missing":
                results.append(("missing", fact.default()))
            elif status != "0":
                results.append(("failed", None))
            else:
                try:
                    results.append(("ok", fact.process(lines) if lines else fact.default()))
                except Exception:  # noqa: BLE001 - pyinfra reports it on a live read
                    results.append(("failed", None))
        return results


def _raw(command) -> str | None:
    if command is None:
        return None
    return command.get_raw_value() if isinstance(command, StringCommand) else str(command)


def run_facts(run, requests: Sequence[FactRequest]) -> list:
    """Read several facts in one command through `run(command) -> (exit status, stdout)`,
    with run_fact's result for each (its default where the fact failed or is missing)."""
    batch = FactBatch()
    status, stdout = run(_raw(batch.command(requests)))
    results = batch.process(stdout.splitlines()) if status == 0 else []
    if len(results) != len(requests):
        return [run_fact(run, fact_cls, **kwargs) for fact_cls, kwargs in requests]
    return [value if state == "ok" else fact_cls().default()
            for (state, value), (fact_cls, _) in zip(results, requests, strict=True)]


# --- one reader for the deploy (pyinfra) and for verify (testinfra) ------------------------------


def run_fact(run, fact_cls, *args):
    """Read a fact with the same command and parser pyinfra uses, through any `run(command)`
    that returns (exit status, stdout): verify's testinfra host, a recorded transcript.

    As pyinfra's get_fact: the parser sees the output lines only when the command succeeded
    with output, else the fact's default comes back; a missing `requires_command` gives the
    default too (pyinfra raises MissingCommandError, which its callers treat as absent).
    """
    fact = fact_cls()
    command = fact.command(*args) if callable(fact.command) else fact.command
    requires = fact.requires_command(*args) if callable(fact.requires_command) else None
    if requires:
        command = f"command -v {requires} >/dev/null 2>&1 && ( {command} )"
    status, stdout = run(_raw(command))
    lines = stdout.splitlines()
    if status != 0 or not lines:
        return fact.default()
    return fact.process(lines)


class _Reader:
    """`read(fact_cls, *args)` for one fact, `read.many(requests)` for several in one round trip.

    Both sides read through the same commands and parsers (this module's facts, FactBatch)."""

    def __init__(self, one, many) -> None:
        self._one, self.many = one, many

    def __call__(self, fact_cls, *args):
        return self._one(fact_cls, *args)


def testinfra_reader(machine):
    """The reader over a testinfra host (verify's side)."""

    def run(command: str) -> tuple[int, str]:
        out = machine.run(command)
        return out.rc, out.stdout

    return _Reader(lambda fact_cls, *args: run_fact(run, fact_cls, *args),
                   lambda requests: run_facts(run, requests))


def pyinfra_reader(host):
    """The reader over a pyinfra host (the deploy's side); facts no deploy changes are read once
    per host and run, and `many` reads the requests together with every other fact this deploy
    read on the host last time, in one round trip (dlws.fact_cache)."""
    from dlws import fact_cache

    stable = (OsRelease, Container, Arch, DpkgArchitecture)

    def one(fact_cls, *args):
        if fact_cls in stable:
            return stable_fact(fact_cls, host)
        return host.get_fact(fact_cls, *args)

    def many(requests):
        fact_cache.prefetch(host, requests)
        return [fact_cache.cached(host, fact_cls, kwargs, UNREAD) for fact_cls, kwargs in requests]

    return _Reader(one, many)


# Every fact host_facts may need, read together: those only a GPU host's plan uses (NVSwitches,
# Secure Boot, NVIDIA's packages) cost no extra round trip this way.
HOST_FACTS: tuple[FactRequest, ...] = tuple(
    (fact_cls, {}) for fact_cls in (OsRelease, NvidiaPciDevices, Container, NvidiaDriverVersion,
                                    KernelVersion, Arch, NvSwitchCount, SecureBoot,
                                    NvidiaPackages, Display, DpkgArchitecture))


# What `many` gives for a fact the batch could not read (the reader reads it alone if needed).
UNREAD = object()


def _from_batch(found: Mapping[type, Any], read):
    def lookup(fact_cls):
        value = found.get(fact_cls, UNREAD)
        return read(fact_cls) if value is UNREAD else value
    return lookup


def host_facts(read, data: Mapping[str, Any]):
    """What the plan needs to know about a host (dlws.stack.HostFacts), through `read`.

    + read: `read(fact_cls, *args)`, from pyinfra_reader (deploy) or testinfra_reader (verify);
      its `read.many(requests)`, where it has one, reads them all in one round trip
    + data: the host's data: where no GPU is visible (a container without device access, a
      recorded host) the declared ``gpu_model`` x ``gpu_count`` is planned, and verify fails
      the host if the GPU is really missing
    """
    from dlws.stack import HostFacts

    many = getattr(read, "many", None)
    if many is not None:  # one round trip; a fact the batch could not read is read on its own
        found = dict(zip((fact_cls for fact_cls, _ in HOST_FACTS), many(HOST_FACTS), strict=True))
        read = _from_batch(found, read)

    os_release = read(OsRelease)
    gpus = tuple(device["device_id"] for device in read(NvidiaPciDevices) or ())
    if not gpus and data.get("gpu_model") and (data.get("gpu_count") or 0) > 0:
        gpus = (data["gpu_model"],) * int(data["gpu_count"])
    in_container = bool(read(Container))
    installed = read(NvidiaDriverVersion) or None
    # Facts that only a GPU host's plan reads: a CPU host is spared their round trips.
    board = bool(gpus) and not in_container
    return HostFacts(
        os_id=os_release["id"],
        os_release=os_release["version_id"],
        gpus=gpus,
        installed_driver=installed,
        in_container=in_container,
        kernel_release=read(KernelVersion) or None,
        machine=read(Arch) or "x86_64",
        dpkg_arch=read(DpkgArchitecture) or None,
        nvswitches=int(read(NvSwitchCount) or 0) if board else 0,
        secure_boot=read(SecureBoot) if board else None,
        nvidia_packages=tuple(sorted((read(NvidiaPackages) or {}).items())) if installed else (),
        # Only a GPU host's driver choice reads it (desktop or headless build).
        display=read(Display) if board else None,
        # The kernel metapackages the headers metapackage follows (dlws.kernel): only where the
        # host runs its own kernel and a GPU is planned.
        kernel_images=tuple(read(KernelImagePackages) or ()) if board else (),
    )


# --- Data disks (roles/storage) and lab accounts (roles/base) ---------------------------------

# `wipefs --no-act --noheadings --output TYPE,OFFSET DEV` line: "ext4 0x438", "gpt 0x200".
WIPEFS_LINE = re.compile(r"^(?P<type>\S+)\s+(?P<offset>0x[0-9a-f]+)$", re.I)


# A sudoers user specification for a group: "%NAME HOSTS = ..." (sudoers(5)); a trailing
# comment or a Defaults line is no grant.
SUDOERS_GROUP = re.compile(r"\s*%(?P<group>[A-Za-z0-9_.\\-]+)\s+[^#=]*=")


class BlockDevice(FactBase):
    """What a declared disk holds, read without changing it (blkid -p, wipefs -n, lsblk).

    ``device`` is a stable path (/dev/disk/by-id/...) or ``serial:<SERIAL>``. None when no
    block device answers to it.

    .. code:: python

        {"path": "/dev/sdb", "blkid": {"TYPE": "ext4", "UUID": "0f3c..."},
         "signatures": [{"type": "ext4", "offset": "0x438"}], "children": ["sdb1"],
         "holders": ["dm-0"], "mounts": [{"target": "/data", "fstype": "ext4"}]}
    """

    def command(self, device: str) -> Command:
        if device.startswith("serial:"):
            # lsblk's SERIAL column (udev's ID_SERIAL_SHORT, or sysfs); values are validated
            # (letters, digits, _ . -) before anything connects, and quoted all the same.
            find = sh("dev=$(lsblk -dnrpo NAME,SERIAL | awk -v s={} '$2 == s {{print $1; exit}}')",
                      device.split(":", 1)[1])
        else:
            find = sh("dev=$(readlink -f -- {})", device)
        return sh(
            # Without one of these tools a signature could go unseen: say so, read nothing.
            "LANG=C; m=; for t in blkid wipefs lsblk findmnt; do "
            'command -v $t >/dev/null 2>&1 || m="$m $t"; done; '
            '[ -z "$m" ] || {{ echo "tools-missing$m"; exit 0; }}; '
            "{}; "
            '[ -n "$dev" ] && [ -b "$dev" ] || {{ echo missing; exit 0; }}; '
            'echo "path=$dev"; echo "--blkid"; blkid -p -o export -- "$dev" 2>/dev/null; '
            'echo "--wipefs"; wipefs --no-act --noheadings --output TYPE,OFFSET -- "$dev" '
            "2>/dev/null; "
            'echo "--children"; lsblk -nro NAME -- "$dev" 2>/dev/null | tail -n +2; '
            'echo "--holders"; ls -A "/sys/class/block/${{dev##*/}}/holders" 2>/dev/null; '
            'echo "--mounts"; findmnt -rno TARGET,FSTYPE --source "$dev" 2>/dev/null; true',
            find,
        )

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if not lines or lines[0] == "missing":
            return None
        if lines[0].startswith("tools-missing"):
            return {"path": None, "missing_tools": lines[0].split()[1:]}
        found: dict = {"path": lines[0].removeprefix("path="), "blkid": {}, "signatures": [],
                       "children": [], "holders": [], "mounts": []}
        section = None
        for line in lines[1:]:
            if line.startswith("--"):
                section = line[2:]
            elif section == "blkid" and "=" in line:
                key, _, value = line.partition("=")
                found["blkid"][key] = value
            elif section == "wipefs":
                match = WIPEFS_LINE.match(line)
                if match:
                    found["signatures"].append({"type": match["type"],
                                                "offset": match["offset"]})
            elif section in ("children", "holders"):
                found[section].append(line)
            elif section == "mounts":
                target, _, fstype = line.partition(" ")
                found["mounts"].append({"target": target.replace("\\x20", " "),
                                        "fstype": fstype})
        return found


class SharedFolder(FactBase):
    """Owner, group, octal mode and ACL entries of a folder (getfacl -cp), or None; a symbolic
    link in its place is reported as the link it is (never followed), with its target.

    .. code:: python

        {"user": "root", "group": "lab", "mode": "2775",
         "acl": ["user::rwx", "group::rwx", "default:group:lab:rwx", ...]}
        {"link": "/etc"}
    """

    def command(self, path: str) -> Command:
        return sh("LANG=C; if [ -L {} ]; then printf 'link %s\\n' \"$(readlink -- {})\"; exit 0; "
                  "fi; [ -d {} ] || exit 0; stat -c 'stat %U %G %a' -- {}; "
                  "getfacl -cp -- {} 2>/dev/null || true", path, path, path, path, path)

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if lines and lines[0].startswith("link "):
            return {"link": lines[0][len("link "):]}
        if not lines or not lines[0].startswith("stat "):
            return None
        _, user, group, mode = lines[0].split()
        acl = [line for line in lines[1:] if not line.startswith("#")]
        return {"user": user, "group": group, "mode": mode.zfill(4), "acl": acl}


class SudoersGroups(FactBase):
    """Groups the host's own sudoers (/etc/sudoers and /etc/sudoers.d/*) lets run commands as
    another user (``%admin ALL=(ALL) ALL``): membership is root.

    .. code:: python

        ["admin", "sudo"]
    """

    # Read as root (sudoers is 0440); a file that cannot be read adds nothing.
    command = "LANG=C; cat /etc/sudoers /etc/sudoers.d/* 2>/dev/null; true"

    def process(self, output):
        groups = set()
        for line in output:
            match = SUDOERS_GROUP.match(line)
            if match:
                groups.add(match["group"].replace("\\", ""))
        return sorted(groups)


class UidMin(FactBase):
    """The first UID of a person's account (UID_MIN in /etc/login.defs; 1000 when unset).

    .. code:: python

        1000
    """

    command = "awk '$1 == \"UID_MIN\" {print $2}' /etc/login.defs 2>/dev/null || true"

    def process(self, output):
        text = "".join(output).strip()
        return int(text) if text.isdigit() else 1000


class KernelImagePackages(FactBase):
    """Installed linux-image packages (metapackages and versioned kernels), for kernel headers.

    .. code:: python

        ["linux-image-6.1.0-28-amd64", "linux-image-amd64"]
    """

    command = ("dpkg-query -W -f='${Status}|${Package}\\n' 'linux-image-*' 2>/dev/null "
               "| awk -F'|' '$1 == \"install ok installed\" {print $2}' || true")
    default = list

    def process(self, output):
        return sorted(line.strip() for line in output if line.strip())


class HeldPackages(FactBase):
    """Packages apt-mark holds (no upgrade touches them).

    .. code:: python

        ["nvidia-driver", "nvidia-kernel-dkms"]
    """

    command = "apt-mark showhold 2>/dev/null || true"
    default = list

    def process(self, output):
        return sorted(line.strip() for line in output if line.strip())


# --- Rootless containers and GPU device links (roles/containers) -----------------------------

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
# subuid(5): "login:start:count" per line; the owner may be a name or a numeric uid.
SUBID_LINE = re.compile(r"^(?P<owner>[^:\s]+):(?P<start>\d{1,10}):(?P<count>\d{1,10})$")


class SubordinateIds(FactBase):
    """The ranges /etc/subuid or /etc/subgid hands out, in file order ([] when missing).

    .. code:: python

        [{"owner": "alice", "start": 100000, "count": 65536}]
    """

    default = list

    def command(self, path: str) -> Command:
        return sh("if [ -f {} ]; then cat {}; fi", path, path)

    def process(self, output):
        return parse_subordinate_ids(output)


def parse_subordinate_ids(lines) -> list[dict]:
    found = []
    for line in lines:
        match = SUBID_LINE.match(line.strip())
        if match:
            found.append({"owner": match["owner"], "start": int(match["start"]),
                          "count": int(match["count"])})
    return found


def overlapping_ranges(entries: list[dict]) -> list[tuple[str, str]]:
    """Pairs of owners whose ranges share an id ("alice 100000+65536", ...), in file order."""
    pairs = []
    for i, one in enumerate(entries):
        for other in entries[i + 1:]:
            if (one["start"] < other["start"] + other["count"]
                    and other["start"] < one["start"] + one["count"]):
                pairs.append((f"{one['owner']} {one['start']}+{one['count']}",
                              f"{other['owner']} {other['start']}+{other['count']}"))
    return pairs


# /dev/char/MAJOR:MINOR links for every NVIDIA character device node: runc finds device nodes
# through them when systemd re-applies a container's device rules (NVIDIA/nvidia-docker#1730).
# One line a node: "<node> <major>:<minor> <where /dev/char/MAJOR:MINOR points, or ->".
NVIDIA_NODE_LINE = re.compile(r"^(?P<node>/dev/\S+) (?P<devno>\d+:\d+) (?P<link>\S+)$")


class NvidiaDevCharLinks(FactBase):
    """Each NVIDIA character device node and where its /dev/char link points ("-": none).

    .. code:: python

        [{"node": "/dev/nvidia0", "devno": "195:0", "link": "/dev/nvidia0"}]
    """

    command = (
        "for d in /dev/nvidia* /dev/nvidia-caps/*; do [ -c \"$d\" ] || continue; "
        "n=$(printf '%d:%d' 0x$(stat -c %t \"$d\") 0x$(stat -c %T \"$d\")); "
        "l=$(readlink -f \"/dev/char/$n\" 2>/dev/null || true); "
        "[ -e \"/dev/char/$n\" ] || l=-; echo \"$d $n ${l:--}\"; done"
    )
    default = list

    def process(self, output):
        return [m.groupdict() for line in output if (m := NVIDIA_NODE_LINE.match(line.strip()))]


def missing_dev_char_links(nodes: list[dict]) -> list[str]:
    """The NVIDIA device nodes whose /dev/char link is missing or points elsewhere."""
    return [f"{n['node']} ({n['devno']})" for n in nodes if n["link"] != n["node"]]
