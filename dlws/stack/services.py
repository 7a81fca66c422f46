"""The stack's services: a container engine (with NVIDIA's toolkit on GPU machines) and the
lab's JupyterHub. Derived in ``derive`` like the rest of the stack, recorded in
/etc/dlws/stack.json, shown by the plan and the calculator; roles/containers and
roles/notebooks carry them out and decide nothing."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dlws.facts.containers import CDI_SPEC
from dlws.stack.records import ContainersStack, NotebooksStack, Stack, StackError

NONE, DOCKER, PODMAN, BOTH = "none", "docker", "podman", "both"
DISTRO, DOCKER_REPO = "distro", "docker_repo"
CDI, LEGACY = "cdi", "legacy"
# The allowed values of the containers role's keys (its Keys read these: declared once).
ENGINES = (NONE, DOCKER, PODMAN, BOTH)
ENGINE_SOURCES = (DISTRO, DOCKER_REPO)
GPU_MODES = (CDI, LEGACY)

# The defaults of the keys the services read; the owning roles' Keys take them from here.
KEY_DEFAULTS: dict[str, Any] = {
    "containers_engine": NONE,
    "containers_engine_source": DISTRO,
    "containers_gpu_mode": CDI,
    "containers_toolkit_version": "1.18.0-1",
    "containers_docker_users": [],
    "notebooks_enabled": False,
    "notebooks_jupyterhub_version": "6.1.1",
    "notebooks_jupyterlab_version": "4.6.6",
    "notebooks_ipykernel_version": "7.4.0",
}

# Docker's own packages (docs.docker.com/engine/install/debian/, "Install using the apt
# repository").
DOCKER_REPO_PACKAGES = ("docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin",
                        "docker-compose-plugin")
# The engine's packages per source: Debian's and Ubuntu's docker.io, or Docker's own.
ENGINE_PACKAGES = {DISTRO: ("docker.io",), DOCKER_REPO: DOCKER_REPO_PACKAGES}
# What Docker's packages conflict with, so one source is removed before the other is installed.
# Docker's install pages ("Uninstall old versions") list what docker-ce replaces; Debian's
# docker.io Conflicts: docker-ce, docker-ce-cli, docker-ce-rootless-extras (its control file,
# 20.10.24+dfsg1-1+deb12u1). `apt-get remove`, never purge: docker.io's postrm on purge runs
# /var/lib/docker/nuke-graph-directory.sh, which deletes every image, container and volume.
REMOVE_FOR = {
    DOCKER_REPO: ("docker.io", "docker-doc", "docker-compose", "podman-docker", "containerd",
                  "runc"),
    DISTRO: (*DOCKER_REPO_PACKAGES, "docker-ce-rootless-extras"),
}
# Docker's CDI support: opt-in with "features": {"cdi": true} from Docker 25 (cncf-tags/
# container-device-interface#84: "CDI is available as an opt-in feature in Docker as of Docker
# 25"), on by default from 28.2.0 (Docker Engine 28.2.0 release notes: "CDI is now enabled by
# default", moby/moby#49963). The engine each source gives, and so whether Docker can take
# GPUs through CDI; where it cannot, Docker keeps the nvidia runtime and the /dev/char links.
DOCKER_ENGINES = {
    ("debian", "12", DISTRO): ("20.10.24", False),  # measured on this Debian 12 machine
    ("debian", "13", DISTRO): ("26.1.5", True),  # apt-cache policy docker.io, trixie
    # Ubuntu's archive is not reachable here: the release versions from Ubuntu's package
    # pages, unverified; treated as without CDI, which only keeps Docker on the runtime.
    ("ubuntu", "22.04", DISTRO): ("24.0.7 (unverified)", False),
    ("ubuntu", "24.04", DISTRO): ("24.0.7 (unverified)", False),
}
DOCKER_REPO_ENGINE = ("current docker-ce (28.2+: CDI on by default)", True)
# Podman and what it runs rootless with, per release, from each archive's own package
# relations (`apt-cache show podman`):
# - Debian 12: podman 4.3.1+ds1-8+deb12u1 (measured here). It Recommends uidmap (newuidmap and
#   newgidmap, setuid helpers for the subordinate ranges), slirp4netns (rootless networking in
#   Podman 4), fuse-overlayfs and catatonit; crun is the runtime it Depends on first.
# - Debian 13: podman 5.4.2+ds1-2 (measured here, `apt-cache policy` in a trixie container).
#   Podman 5 networks rootless containers with passt (pasta) by default; it Recommends passt,
#   slirp4netns, uidmap, catatonit, no longer fuse-overlayfs (rootless overlay is native).
# - Ubuntu 22.04 (podman 3.4.4, universe) and 24.04 (podman 4.9.3, universe): from Ubuntu's
#   package pages, unverified here (Ubuntu's archive is not reachable from this machine).
# `--no-install-recommends` is this project's rule, so what Podman recommends for rootless use
# is named here.
PODMAN_PACKAGES = {
    ("debian", "12"): ("podman", "crun", "uidmap", "slirp4netns", "fuse-overlayfs", "catatonit"),
    ("debian", "13"): ("podman", "crun", "uidmap", "passt", "catatonit"),
    ("ubuntu", "22.04"): ("podman", "crun", "uidmap", "slirp4netns", "fuse-overlayfs",
                          "catatonit"),
    ("ubuntu", "24.04"): ("podman", "crun", "uidmap", "passt", "slirp4netns", "fuse-overlayfs",
                          "catatonit"),
}
PODMAN_VERSIONS = {("debian", "12"): "4.3.1", ("debian", "13"): "5.4.2",
                   ("ubuntu", "22.04"): "3.4.4 (unverified)",
                   ("ubuntu", "24.04"): "4.9.3 (unverified)"}
# NVIDIA's container toolkit install guide installs these four at one version
# (NVIDIA_CONTAINER_TOOLKIT_VERSION).
TOOLKIT_PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base",
                    "libnvidia-container-tools", "libnvidia-container1")
# nvidia-container-toolkit-base ships nvidia-cdi-refresh.path and .service from 1.18.0
# (NVIDIA/nvidia-container-toolkit, packaging/debian/nvidia-container-toolkit-base.install at
# v1.18.0); an older pinned toolkit gets dlws's own units (roles/containers/_gpu.py).
REFRESH_FROM = (1, 18, 0)
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


def _value(data: Mapping[str, Any], key: str) -> Any:
    value = data.get(key)
    return KEY_DEFAULTS[key] if value is None else value


def _choice(data: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = _value(data, key)
    if value not in allowed:
        raise StackError(key, "invalid_value", f"got {value!r}; allowed: {', '.join(allowed)}")
    return value


def engines(engine: str) -> tuple[bool, bool]:
    """(docker?, podman?) for containers_engine."""
    return engine in (DOCKER, BOTH), engine in (PODMAN, BOTH)


def docker_engine(os_id: str, release: str, source: str) -> tuple[str, bool]:
    """(version, has CDI) of the Docker engine a source gives on a release."""
    if source == DOCKER_REPO:
        return DOCKER_REPO_ENGINE
    return DOCKER_ENGINES[(os_id, release, source)]


def docker_gpu_mode(gpu_mode: str, os_id: str, release: str, source: str) -> str:
    """How Docker takes GPUs: "cdi" where asked and its engine has CDI, else "legacy" (the
    nvidia runtime, with /dev/char links)."""
    return CDI if gpu_mode == CDI and docker_engine(os_id, release, source)[1] else LEGACY


def toolkit_packages(version: str) -> tuple[str, ...]:
    """The toolkit's packages pinned to one version, as the install guide installs them."""
    return tuple(f"{name}={version}" for name in TOOLKIT_PACKAGES)


def refresh_units(toolkit_version: str) -> str:
    """"toolkit" where the pinned toolkit ships nvidia-cdi-refresh (1.18.0+), else "dlws"."""
    match = _VERSION.match(toolkit_version)
    numbers = tuple(int(part) for part in match.groups()) if match else (0, 0, 0)
    return "toolkit" if numbers >= REFRESH_FROM else "dlws"


def containers(data: Mapping[str, Any], stack: Stack) -> ContainersStack:
    """The engines a host runs (Docker from its source, rootless Podman for the lab's people)
    and, where it is a machine of its own with GPUs, NVIDIA's toolkit, the CDI spec and how
    each engine takes GPUs. NGC's TensorFlow container needs an engine."""
    engine = _choice(data, "containers_engine", ENGINES)
    if engine == NONE:
        if stack.tensorflow.image:
            raise StackError(
                "frameworks_tensorflow", "ngc_needs_engine",
                f"'ngc' runs TensorFlow in {stack.tensorflow.image}, which needs a container "
                "engine, and containers_engine is 'none'; set containers_engine = 'docker' "
                "(or 'podman', 'both')")
        return ContainersStack()
    docker, podman = engines(engine)
    source = _choice(data, "containers_engine_source", ENGINE_SOURCES)
    gpu_mode = _choice(data, "containers_gpu_mode", GPU_MODES)
    toolkit = bool(stack.gpu.models) and not stack.os.container
    version = str(_value(data, "containers_toolkit_version"))
    docker_mode = (docker_gpu_mode(gpu_mode, stack.os.id, stack.os.release, source)
                   if docker and toolkit else None)
    return ContainersStack(
        engine=engine,
        engine_source=source if docker else None,
        engine_packages=ENGINE_PACKAGES[source] if docker else (),
        engine_removes=REMOVE_FOR[source] if docker else (),
        docker_version=docker_engine(stack.os.id, stack.os.release, source)[0] if docker else None,
        podman_packages=PODMAN_PACKAGES[(stack.os.id, stack.os.release)] if podman else (),
        rootless_users=tuple(data.get("base_lab_users") or ()) if podman else (),
        toolkit_packages=toolkit_packages(version) if toolkit else (),
        cdi_spec=CDI_SPEC if toolkit else None,
        gpu_mode=gpu_mode if toolkit else None,
        docker_gpu_mode=docker_mode,
        dev_char_links=bool(toolkit and docker_mode == LEGACY),
        cdi_refresh=refresh_units(version) if toolkit else None,
        docker_users=tuple(_value(data, "containers_docker_users")) if docker else (),
    )


def notebooks(data: Mapping[str, Any]) -> NotebooksStack:
    """JupyterHub, JupyterLab and the kernel's ipykernel where notebooks_enabled (the hub in its
    own hash-locked environment)."""
    if not _value(data, "notebooks_enabled"):
        return NotebooksStack()
    return NotebooksStack(jupyterhub=str(_value(data, "notebooks_jupyterhub_version")),
                          jupyterlab=str(_value(data, "notebooks_jupyterlab_version")),
                          ipykernel=str(_value(data, "notebooks_ipykernel_version")))


def containers_line(part: Mapping[str, Any]) -> str | None:
    """The plan's line for the containers part (``Stack.as_dict()["containers"]``):
    "docker (distro, 20.10.24): docker.io; ..."; None where no engine is planned."""
    if not part.get("engine"):
        return None
    parts = []
    if part["engine_packages"]:
        parts.append(f"docker ({part['engine_source']}, {part['docker_version']}): "
                     f"{' '.join(part['engine_packages'])}")
    if part["podman_packages"]:
        parts.append(f"rootless podman: {' '.join(part['podman_packages'])} for "
                     f"{', '.join(part['rootless_users']) or 'no lab users'}")
    if part["toolkit_packages"]:
        parts.append(f"toolkit: {' '.join(part['toolkit_packages'])}; GPUs through "
                     f"{part['gpu_mode']} (docker: {part['docker_gpu_mode'] or '-'}"
                     f"{', /dev/char links' if part['dev_char_links'] else ''}); CDI: "
                     f"{part['cdi_spec']}, refreshed by {part['cdi_refresh'] or '-'} units")
    line = "; ".join(parts)
    if part["docker_users"]:
        line += f"; docker group: {', '.join(part['docker_users'])}"
    return line


def notebooks_line(part: Mapping[str, Any]) -> str | None:
    """The plan's line for the notebooks part, None where no hub is planned."""
    if not part.get("jupyterhub"):
        return None
    return (f"JupyterHub {part['jupyterhub']}, JupyterLab {part['jupyterlab']}; ipykernel "
            f"{part['ipykernel']} in the managed environment")
