"""Containers role: Docker and/or rootless Podman, daemon.json, the docker group, GPU access."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from io import StringIO
from typing import Any

from pyinfra import host
from pyinfra.api import DeployError, deploy
from pyinfra.operations import apt, files, server

from dlws.command import all_of, cmd
from dlws.facts.batch import stable_fact
from dlws.facts.containers import (
    CDI_SPEC,
    DOCKER_DAEMON_JSON,
    DOCKERD_CONFIG_CHECK,
    DockerDaemonJson,
    NvidiaCdiSpec,
)
from dlws.facts.system import OsRelease, SystemdRunning
from dlws.plan import host_plan
from dlws.roles import nvidia_repo
from dlws.roles.base.defaults import declared_lab_users
from dlws.roles.containers import _docker_repo, _gpu, _podman
from dlws.roles.containers.defaults import DEFAULTS, KEYS  # noqa: F401

# The engine's packages per source: Debian's and Ubuntu's docker.io, or Docker's own.
ENGINE_PACKAGES = {"distro": ["docker.io"], "docker_repo": _docker_repo.PACKAGES}
ORIGINAL_SUFFIX = ".dlws-orig"
DOCKER_GROUP = "docker"
# What `nvidia-ctk runtime configure --runtime=docker` adds to daemon.json (the toolkit's
# install guide, "Configuring Docker"); with --cdi.enabled it also sets "features": {"cdi": true}
# (NVIDIA/nvidia-container-toolkit pkg/config/engine/docker/docker.go EnableCDI).
NVIDIA_RUNTIME = "nvidia"
CDI_FEATURE = "cdi"
# What Docker's packages conflict with, so one source is removed before the other is installed.
# Docker's install pages ("Uninstall old versions") list what docker-ce replaces; Debian's
# docker.io Conflicts: docker-ce, docker-ce-cli, docker-ce-rootless-extras (its control file,
# 20.10.24+dfsg1-1+deb12u1). `apt-get remove`, never purge: docker.io's postrm on purge runs
# /var/lib/docker/nuke-graph-directory.sh, which deletes every image, container and volume.
# Images, containers and volumes live in /var/lib/docker (daemon.json's data-root, if set);
# no package removal touches them, and daemon.json belongs to neither package.
REMOVE_FOR = {
    "docker_repo": ["docker.io", "docker-doc", "docker-compose", "podman-docker", "containerd",
                    "runc"],
    "distro": [*_docker_repo.PACKAGES, "docker-ce-rootless-extras"],
}
# Docker's CDI support: opt-in with "features": {"cdi": true} from Docker 25 (cncf-tags/
# container-device-interface#84: "CDI is available as an opt-in feature in Docker as of Docker
# 25"), on by default from 28.2.0 (Docker Engine 28.2.0 release notes: "CDI is now enabled by
# default", moby/moby#49963). The engine each source gives, and so whether Docker can take
# GPUs through CDI; where it cannot, Docker keeps the nvidia runtime and the /dev/char links.
DOCKER_ENGINES = {
    ("debian", "12", "distro"): ("20.10.24", False),  # measured on this Debian 12 machine
    ("debian", "13", "distro"): ("26.1.5", True),  # apt-cache policy docker.io, trixie
    # Ubuntu's archive is not reachable here: the release versions from Ubuntu's package
    # pages, unverified; treated as without CDI, which only keeps Docker on the runtime.
    ("ubuntu", "22.04", "distro"): ("24.0.7 (unverified)", False),
    ("ubuntu", "24.04", "distro"): ("24.0.7 (unverified)", False),
}
DOCKER_REPO_ENGINE = ("current docker-ce (28.2+: CDI on by default)", True)


def daemon_json_text(settings: Mapping[str, Any]) -> str:
    return json.dumps(settings, indent=2, sort_keys=True) + "\n"


def without_nvidia_runtime(current: Mapping[str, Any],
                           wanted: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """daemon.json less what nvidia-ctk adds (the nvidia runtime; "features": {"cdi": true}
    unless the inventory declares it), to compare with what the inventory declares."""
    data = copy.deepcopy(dict(current))
    runtimes = data.get("runtimes")
    if isinstance(runtimes, dict) and NVIDIA_RUNTIME in runtimes:
        runtimes.pop(NVIDIA_RUNTIME)
        if not runtimes:
            data.pop("runtimes")
    declared = (wanted or {}).get("features")
    features = data.get("features")
    if (isinstance(features, dict) and features.get(CDI_FEATURE) is True
            and not (isinstance(declared, dict) and CDI_FEATURE in declared)):
        features.pop(CDI_FEATURE)
        if not features:
            data.pop("features")
    return data


def daemon_json_differs(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether daemon.json must be written: missing, not JSON, or other settings than declared."""
    if current is None or "_invalid" in current:
        return True
    return without_nvidia_runtime(current, wanted) != dict(wanted)


def has_nvidia_runtime(current: Mapping[str, Any] | None, cdi: bool = False) -> bool:
    """The nvidia runtime registered (and, for Docker's CDI mode, the cdi feature on)."""
    runtimes = (current or {}).get("runtimes")
    features = (current or {}).get("features")
    return (isinstance(runtimes, dict) and NVIDIA_RUNTIME in runtimes
            and (not cdi or (isinstance(features, dict) and features.get(CDI_FEATURE) is True)))


def engines(engine: str) -> tuple[bool, bool]:
    """(docker?, podman?) for containers_engine."""
    return engine in ("docker", "both"), engine in ("podman", "both")


def docker_engine(os_id: str, release: str, source: str) -> tuple[str, bool]:
    """(version, has CDI) of the Docker engine a source gives on a release."""
    if source == "docker_repo":
        return DOCKER_REPO_ENGINE
    return DOCKER_ENGINES[(os_id, release, source)]


def docker_gpu_mode(gpu_mode: str, os_id: str, release: str, source: str) -> str:
    """How Docker takes GPUs: "cdi" where asked and its engine has CDI, else "legacy" (the
    nvidia runtime, with /dev/char links)."""
    return "cdi" if gpu_mode == "cdi" and docker_engine(os_id, release, source)[1] else "legacy"


def cdi_decision(spec: Mapping[str, Any]) -> tuple[bool, str]:
    """(generate?, why) for /etc/cdi/nvidia.yaml from NvidiaCdiSpec: made for the loaded driver.

    nvidia-ctk reads the running driver through NVML, so a spec can only be made once the module
    is loaded: after a driver install, that is the deploy after the reboot.
    """
    module = spec.get("module")
    if not module:
        return False, ("no NVIDIA kernel module is loaded (a new driver waits for its reboot): "
                       f"{CDI_SPEC} is generated by the first deploy after it loads")
    if not spec.get("present"):
        return True, f"Generate the CDI spec {CDI_SPEC} for driver {module}"
    if spec.get("driver") != module:
        return True, (f"Regenerate the CDI spec {CDI_SPEC}: made for driver "
                      f"{spec.get('driver') or 'unknown'}, the loaded driver is {module}")
    return False, f"{CDI_SPEC} is current (driver {module})"


def toolkit_wanted(stack) -> bool:
    """The toolkit goes where an engine runs on a machine of its own that has GPUs."""
    return bool(stack.gpu.models) and not stack.os.container


def plan_summary(data: Mapping[str, Any], stack) -> dict[str, Any]:
    """What the role will install on a host, for deploy/plan.py (and its JSON)."""
    merged = {**DEFAULTS, **{k: v for k, v in data.items() if k.startswith("containers_")}}
    if merged["containers_engine"] == "none":
        return {"engine": None, "tensorflow_image": stack.tensorflow.image}
    toolkit = toolkit_wanted(stack)
    docker, podman = engines(merged["containers_engine"])
    source = merged["containers_engine_source"]
    gpu_mode = merged["containers_gpu_mode"]
    docker_mode = (docker_gpu_mode(gpu_mode, stack.os.id, stack.os.release, source)
                   if docker and toolkit else None)
    return {
        "engine": merged["containers_engine"],
        "engine_source": source,
        "engine_packages": ENGINE_PACKAGES[source] if docker else [],
        "engine_removes": REMOVE_FOR[source] if docker else [],
        "docker_version": (docker_engine(stack.os.id, stack.os.release, source)[0]
                           if docker else None),
        "podman_packages": (_podman.PODMAN_PACKAGES[(stack.os.id, stack.os.release)]
                            if podman else []),
        "rootless_users": declared_lab_users(data) if podman else [],
        "toolkit_packages": (nvidia_repo.toolkit_packages(merged["containers_toolkit_version"])
                             if toolkit else []),
        "cdi_spec": CDI_SPEC if toolkit else None,
        "gpu_mode": gpu_mode if toolkit else None,
        "docker_gpu_mode": docker_mode,
        "dev_char_links": bool(toolkit and docker_mode == "legacy"),
        "cdi_refresh": (_gpu.refresh_units(merged["containers_toolkit_version"])
                        if toolkit and not stack.os.container else None),
        "docker_users": list(merged["containers_docker_users"]) if docker else [],
        "tensorflow_image": stack.tensorflow.image,
    }


def summary_line(summary: Mapping[str, Any]) -> str:
    """"docker (distro, 20.10.24): docker.io; toolkit: ...; GPUs through cdi ...": the plan's
    line for the role."""
    parts = []
    if summary["engine_packages"]:
        parts.append(f"docker ({summary['engine_source']}, {summary['docker_version']}): "
                     f"{' '.join(summary['engine_packages'])}")
    if summary["podman_packages"]:
        parts.append(f"rootless podman: {' '.join(summary['podman_packages'])} for "
                     f"{', '.join(summary['rootless_users']) or 'no lab users'}")
    if summary["toolkit_packages"]:
        parts.append(f"toolkit: {' '.join(summary['toolkit_packages'])}; GPUs through "
                     f"{summary['gpu_mode']} (docker: {summary['docker_gpu_mode'] or '-'}"
                     f"{', /dev/char links' if summary['dev_char_links'] else ''}); CDI: "
                     f"{summary['cdi_spec']}, refreshed by {summary['cdi_refresh'] or '-'} "
                     "units")
    line = "; ".join(parts)
    if summary["docker_users"]:
        line += f"; docker group: {', '.join(summary['docker_users'])}"
    return line


def check_plan(target) -> None:
    """Refuse a plan that runs TensorFlow in NGC's container on a host without an engine."""
    stack = host_plan(target)
    engine = target.data.get("containers_engine", DEFAULTS["containers_engine"])
    if stack.tensorflow.image and engine == "none":
        raise DeployError(
            f"host {target.name}: frameworks_tensorflow: 'ngc' runs TensorFlow in "
            f"{stack.tensorflow.image}, which needs a container engine, and containers_engine is "
            "'none'; set containers_engine = 'docker' (or 'podman', 'both'); nothing was "
            "changed on any host")


@deploy("Containers", data_defaults=DEFAULTS)
def install() -> None:
    """Docker from the distribution or Docker's repository (the other source's packages removed
    first, /var/lib/docker kept), its daemon.json, the declared docker users; rootless Podman
    for every lab user; on GPU hosts NVIDIA's container toolkit, the CDI spec kept current, and
    on the legacy path the /dev/char links.

    + containers_engine, containers_engine_source, containers_gpu_mode, containers_daemon_json,
      containers_docker_users, containers_toolkit_version, containers_subid_count
    """
    if host.data.containers_engine == "none":
        host.noop("no container engine: containers_engine = 'none'")
        return
    stack = host_plan()
    docker, podman = engines(host.data.containers_engine)
    changed, current, rewrite = _docker_engine(stack) if docker else ([], None, False)
    if podman:
        _podman.install(stack.os.id, stack.os.release, declared_lab_users(host.data),
                        host.data.containers_subid_count)

    if toolkit_wanted(stack):
        changed += _toolkit(stack, docker, current, rewrite)
    elif stack.gpu.models:
        host.noop("NVIDIA container toolkit skipped: the host is a container; its own host "
                  "runs the toolkit")
    if not docker:
        return

    if stable_fact(SystemdRunning, host):
        if changed:
            server.shell(name="Check daemon.json with dockerd, then restart Docker",
                         commands=[DOCKERD_CONFIG_CHECK, "systemctl restart docker"],
                         _if=lambda: any(op.did_change() for op in changed))
        server.service(name="Start Docker and start it at boot", service="docker", running=True,
                       enabled=True)
    elif changed:
        server.shell(name="Check daemon.json with dockerd (no systemd here: nothing starts "
                          "or restarts Docker)",
                     commands=[DOCKERD_CONFIG_CHECK],
                     _if=lambda: any(op.did_change() for op in changed))
    _docker_users()


def _docker_engine(stack) -> tuple[list, Any, bool]:
    """Docker from its source, the other source's packages removed first; daemon.json."""
    os_release = stable_fact(OsRelease, host)
    source = host.data.containers_engine_source
    # The two sources' packages conflict: the other one's go first, with `apt-get remove`
    # (never purge), so the engine's data in /var/lib/docker and daemon.json stay.
    apt.packages(name=f"Remove the other Docker source's packages before {source}'s (apt-get "
                      "remove: images, containers and volumes in /var/lib/docker are kept)",
                 packages=REMOVE_FOR[source], present=False, purge=False,
                 _env={"DEBIAN_FRONTEND": "noninteractive"})
    if source == "docker_repo":
        _docker_repo.configure(stack.os.id, os_release["codename"], stack.os.machine)
    else:
        dropped = files.file(name=f"Drop Docker's repository ({_docker_repo.SOURCES})",
                             path=_docker_repo.SOURCES, present=False)
        apt.update(name="Refresh the apt index after dropping Docker's repository",
                   _if=dropped.did_change)
    apt.packages(name=f"Install the Docker engine ({' '.join(ENGINE_PACKAGES[source])})",
                 packages=ENGINE_PACKAGES[source], no_recommends=True,
                 _env={"DEBIAN_FRONTEND": "noninteractive"})

    current = host.get_fact(DockerDaemonJson)
    changed = []
    rewrite = daemon_json_differs(current, host.data.containers_daemon_json)
    if rewrite:
        if current is not None:
            server.shell(name=f"Keep the original {DOCKER_DAEMON_JSON} as "
                              f"{DOCKER_DAEMON_JSON}{ORIGINAL_SUFFIX}",
                         commands=[cmd("cp", "-n", "-p", "--", DOCKER_DAEMON_JSON,
                                       DOCKER_DAEMON_JSON + ORIGINAL_SUFFIX)])
        changed.append(files.put(name=f"Write {DOCKER_DAEMON_JSON} (containers_daemon_json)",
                                 src=StringIO(daemon_json_text(host.data.containers_daemon_json)),
                                 dest=DOCKER_DAEMON_JSON, mode="644", create_remote_dir=True))
    else:
        host.noop(f"{DOCKER_DAEMON_JSON} holds the declared settings")
    return changed, current, rewrite


def _toolkit(stack, docker: bool, current, rewrite: bool) -> list:
    """NVIDIA's container toolkit at the pinned version; Docker's nvidia runtime (and its CDI
    feature where it has one); the CDI spec, kept current; /dev/char links on the legacy path."""
    version = host.data.containers_toolkit_version
    nvidia_repo.configure_container_toolkit(stack.os.machine)
    apt.packages(name=f"Install the NVIDIA container toolkit {version}",
                 packages=nvidia_repo.toolkit_packages(version), no_recommends=True,
                 _env={"DEBIAN_FRONTEND": "noninteractive"})
    changed = []
    docker_mode = None
    if docker:
        docker_mode = docker_gpu_mode(host.data.containers_gpu_mode, stack.os.id,
                                      stack.os.release, host.data.containers_engine_source)
        cdi = docker_mode == "cdi"
        if rewrite or not has_nvidia_runtime(current, cdi):
            argv = ["nvidia-ctk", "runtime", "configure", "--runtime=docker",
                    *(["--cdi.enabled"] if cdi else [])]
            changed.append(server.shell(
                name="Register the nvidia runtime with Docker (nvidia-ctk runtime configure"
                     + (", CDI on)" if cdi else ")"), commands=[cmd(*argv)]))
        else:
            host.noop("the nvidia runtime is registered in daemon.json"
                      + (" (CDI on)" if cdi else ""))
    if docker_mode == "legacy":
        # Before anything below reloads systemd: a reload is what detaches running containers.
        _gpu.dev_char_links()
    generate, why = cdi_decision(host.get_fact(NvidiaCdiSpec))
    if generate:
        server.shell(name=why, commands=[all_of([
            cmd("mkdir", "-p", "--", "/etc/cdi"),
            cmd("nvidia-ctk", "cdi", "generate", f"--output={CDI_SPEC}")])])
    else:
        host.noop(why)
    if stable_fact(SystemdRunning, host):
        _gpu.keep_spec_current(version)
    else:
        host.noop(f"no systemd: {CDI_SPEC} is regenerated by the next deploy after a driver "
                  "change")
    return changed


def _docker_users() -> None:
    # Membership of docker is root on the host (docs.docker.com/engine/security/#docker-daemon-
    # attack-surface): only the users the inventory declares are added; verify fails any other.
    for user in host.data.containers_docker_users:
        server.user(name=f"Let {user} use Docker (group {DOCKER_GROUP}: root-equivalent)",
                    user=user, groups=[DOCKER_GROUP], append=True, create_home=True,
                    shell="/bin/bash")
