"""Checks of roles/containers: the engines, their configuration, GPUs in containers, the groups."""

from __future__ import annotations

import pytest

from dlws.command import Command, cmd
from dlws.facts.containers import (
    CDI_SPEC,
    DOCKER_DAEMON_JSON,
    DOCKERD_CONFIG_CHECK,
    NvidiaCdiSpec,
    cdi_gpu_indexes,
    dockerd_config_verdict,
)
from dlws.facts.gpu import NvidiaDevCharLinks, missing_dev_char_links
from dlws.facts.readers import testinfra_reader as fact_reader
from dlws.facts.system import SUBGID, SUBUID, SubordinateIds, SystemdRunning, overlapping_ranges
from dlws.stack.services import docker_gpu_mode, engines

from .helpers import require_gpus


def _engine(target) -> None:
    if target["containers_engine"] == "none":
        pytest.skip(f"{target.name} declares no container engine (containers_engine = 'none')")


def _systemd(host) -> bool:
    return SystemdRunning().process(host.run(SystemdRunning.command).stdout.splitlines())


def _toolkit_host(host, target) -> None:
    """Skip, saying why, where the role installs no toolkit: no GPU declared, or a container."""
    _engine(target)
    require_gpus(target)
    if host.run("if [ -f /.dockerenv ] || [ -f /run/.containerenv ]; then exit 1; fi").rc:
        pytest.skip(f"{target.name} is a container: the toolkit runs on its own host")


def test_docker_daemon_config_accepted_by_dockerd(host, target):
    # dockerd's own parser decides (dockerd --validate, or an unprivileged dockerd that loads the
    # file and stops before any side effect on engines without --validate).
    """dockerd's own parser accepts the daemon.json the deploy wrote."""
    _docker_only(target)
    out = host.run(DOCKERD_CONFIG_CHECK)
    valid, words = dockerd_config_verdict(out.stdout, out.rc)
    assert valid, f"dockerd refuses {DOCKER_DAEMON_JSON}: {words or out.stderr.strip()}"


def test_docker_engine_active(host, target):
    """The Docker engine's service is active where systemd runs."""
    _docker_only(target)
    if not _systemd(host):
        # A container without systemd: nothing starts dockerd there, so "active" cannot be
        # asked; test_docker_daemon_config_accepted_by_dockerd checks what can be.
        pytest.skip(f"{target.name} runs no systemd (a container): no service manager starts "
                    "Docker here; its configuration is checked by dockerd instead")
    state = host.run("systemctl is-active docker")
    assert state.stdout.strip() == "active", (
        f"docker.service is {state.stdout.strip() or state.stderr.strip()}: "
        f"{host.run('systemctl status docker --no-pager -n 20').stdout[-1500:]}")
    info = host.run("docker info --format '{{.ServerVersion}}'")
    assert info.rc == 0 and info.stdout.strip(), f"the engine does not answer: {info.stderr}"


def test_nvidia_runtime_or_cdi_registered(host, target):
    """Docker knows NVIDIA's runtime, or a CDI spec is registered."""
    _toolkit_host(host, target)
    _docker_only(target)
    info = host.run("docker info --format '{{json .Runtimes}}'")
    runtimes = info.stdout if info.rc == 0 else ""
    spec = NvidiaCdiSpec().process(host.run(NvidiaCdiSpec.command).stdout.splitlines())
    assert '"nvidia"' in runtimes or spec["present"], (
        f"neither the nvidia runtime (docker info: {runtimes.strip() or info.stderr.strip()}) "
        f"nor a CDI spec ({CDI_SPEC}) is registered")


def test_cdi_spec_lists_every_declared_gpu(host, target):
    """The CDI spec lists one device per declared GPU."""
    _toolkit_host(host, target)
    spec = NvidiaCdiSpec().process(host.run(NvidiaCdiSpec.command).stdout.splitlines())
    assert spec["present"], f"no {CDI_SPEC} (nvidia-ctk cdi generate)"
    found = cdi_gpu_indexes(spec)
    assert len(found) >= target["gpu_count"], (
        f"{CDI_SPEC} names GPUs {found}, {target['gpu_count']} declared ({spec['devices']})")
    assert spec["driver"] == spec["module"], (
        f"{CDI_SPEC} was made for driver {spec['driver']}, the loaded one is {spec['module']}: "
        "run the deploy again (it regenerates the spec)")


def _docker_mode(target, plan) -> str:
    return docker_gpu_mode(target["containers_gpu_mode"], plan.os.id, plan.os.release,
                           target["containers_engine_source"])


def _gpu_args(mode: str) -> list[str]:
    """How a container asks for every GPU: a CDI device, or the legacy hook's --gpus."""
    return ["--device", "nvidia.com/gpu=all"] if mode == "cdi" else ["--gpus", "all"]


def _docker_only(target) -> None:
    _engine(target)
    if not engines(target["containers_engine"])[0]:
        pytest.skip(f"{target.name} runs no Docker (containers_engine = "
                    f"{target['containers_engine']!r})")


def test_gpus_visible_in_a_container(host, target, plan):
    """A container started with --gpus all sees every declared GPU."""
    _toolkit_host(host, target)
    _docker_only(target)
    image = target["containers_gpu_check_image"]
    args = ["timeout", "300", "docker", "run", "--rm", *_gpu_args(_docker_mode(target, plan)),
            image, "nvidia-smi", "-L"]
    out = host.run(cmd(*args))
    assert out.rc == 0, f"{cmd(*args)} failed: {out.stderr[-1500:]}"
    gpus = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
    assert len(gpus) == target["gpu_count"], (
        f"a container sees {len(gpus)} GPUs, {target['gpu_count']} declared: {out.stdout}")


def test_no_undeclared_docker_users(host, target):
    # Membership of docker is root on the host: only users the inventory declares may have it.
    """Only users in containers_docker_users are in the docker group."""
    out = host.run("getent group docker")
    members = set(out.stdout.strip().split(":")[-1].split(",")) - {""} if out.rc == 0 else set()
    undeclared = sorted(members - set(target["containers_docker_users"]))
    assert not undeclared, (
        f"in the docker group but not in containers_docker_users: {undeclared} "
        f"({out.stdout.strip()})")


# --- rootless Podman for the lab's people --------------------------------------------------------


def _rootless_users(target) -> list[str]:
    _engine(target)
    if not engines(target["containers_engine"])[1]:
        pytest.skip(f"{target.name} runs no Podman (containers_engine = "
                    f"{target['containers_engine']!r})")
    if not target["base_lab_users"]:
        pytest.skip(f"{target.name} declares no lab users (base_lab_users): no rootless Podman")
    return list(target["base_lab_users"])


def _own_range(entries: list[dict], user: str, uid: str | None) -> dict | None:
    return next((e for e in entries if e["owner"] in (user, uid)), None)


def test_lab_users_have_their_own_subordinate_ids(host, target):
    """Each lab user has a subordinate uid and gid range of their own, overlapping no other."""
    # Rootless Podman maps a container's ids onto the user's subordinate range (subuid(5)): each
    # lab user needs one, no two ranges may share an id, and useradd's or other tools' lines
    # count as much as dlws's.
    users = _rootless_users(target)
    read = fact_reader(host)
    problems = []
    for path in (SUBUID, SUBGID):
        entries = read(SubordinateIds, path)
        for user in users:
            account = host.user(user)
            uid = str(account.uid) if account.exists else None
            mine = _own_range(entries, user, uid)
            if mine is None:
                problems.append(f"lab user {user} has no range in {path}")
            elif mine["count"] < target["containers_subid_count"]:
                problems.append(f"lab user {user}'s range in {path} holds {mine['count']} ids, "
                                f"{target['containers_subid_count']} declared")
        problems += [f"{path}: {one} overlaps {other}" for one, other in
                     overlapping_ranges(entries)]
    assert not problems, "; ".join(problems) + " (run the deploy again: it adds missing ranges)"


def _uid_map_rows(text: str) -> list[tuple[int, int, int]]:
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            rows.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return rows


def _as_user(user: str, *argv: str) -> Command:
    """A command run by `user` in a login shell (their HOME, their Podman storage)."""
    return cmd("timeout", "300", "runuser", "-l", user, "-c", cmd(*argv))


def test_rootless_podman_runs_for_each_lab_user(host, target):
    """Each lab user runs a rootless Podman container mapped onto their own subordinate range."""
    # Each lab user runs a container of their own, without any root-equivalent group, and its
    # user namespace is their subordinate range (not Podman's one-id fallback).
    users = _rootless_users(target)
    image = target["containers_rootless_check_image"]
    entries = fact_reader(host)(SubordinateIds, SUBUID)
    failures = []
    for user in users:
        account = host.user(user)
        if not account.exists:
            failures.append(f"{user}: no such account")
            continue
        out = host.run(_as_user(user, "podman", "run", "--rm", "--network", "none", image,
                                "cat", "/proc/self/uid_map"))
        rows = _uid_map_rows(out.stdout)
        mine = _own_range(entries, user, str(account.uid))
        want = (1, mine["start"], mine["count"]) if mine else None
        if out.rc != 0:
            failures.append(f"{user}: podman run {image} exited {out.rc}: {out.stderr[-600:]}")
        elif want not in rows:
            failures.append(f"{user}: the container's uid_map {rows} does not map the user's "
                            f"range {want} from {SUBUID}")
    assert not failures, "; ".join(failures)


def test_rootless_podman_sees_the_declared_gpus(host, target):
    """Each lab user's rootless Podman container sees every declared GPU through CDI."""
    users = _rootless_users(target)
    _toolkit_host(host, target)
    image = target["containers_gpu_check_image"]
    if "/" not in image.split(":")[0]:
        image = f"docker.io/library/{image}"  # Podman resolves no short names by default
    failures = []
    for user in users:
        out = host.run(_as_user(user, "podman", "run", "--rm", "--device", "nvidia.com/gpu=all",
                                image, "nvidia-smi", "-L"))
        gpus = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
        if out.rc != 0 or len(gpus) != target["gpu_count"]:
            failures.append(f"{user}: {len(gpus)} GPUs, {target['gpu_count']} declared (exit "
                            f"{out.rc}): {(out.stdout + out.stderr)[-600:]}")
    assert not failures, "; ".join(failures)


def test_cdi_spec_readable_by_lab_users(host, target):
    """The NVIDIA CDI specification and its folder are readable by every lab user."""
    _rootless_users(target)
    _toolkit_host(host, target)
    spec, folder = host.file(CDI_SPEC), host.file("/etc/cdi")
    assert spec.exists, f"no {CDI_SPEC}"
    assert spec.mode & 0o004 and folder.mode & 0o005 == 0o005, (
        f"{CDI_SPEC} is {oct(spec.mode)} in /etc/cdi {oct(folder.mode)}: lab users cannot read "
        "it, so rootless Podman finds no nvidia.com/gpu devices")


# --- the legacy hook's /dev/char links, and GPUs across a systemd reload ------------------------


def test_dev_char_links_for_every_nvidia_node(host, target, plan):
    """Under the legacy hook, every NVIDIA device node has its /dev/char link."""
    _toolkit_host(host, target)
    _docker_only(target)
    if _docker_mode(target, plan) != "legacy":
        pytest.skip(f"{target.name}: Docker takes GPUs through CDI: no /dev/char links needed")
    nodes = fact_reader(host)(NvidiaDevCharLinks)
    assert nodes, "no NVIDIA device node in /dev on a host declared with GPUs"
    missing = missing_dev_char_links(nodes)
    assert not missing, (f"no /dev/char link for {missing}: a systemctl daemon-reload takes "
                         "these devices from running containers (nvidia-ctk system "
                         "create-dev-char-symlinks --create-all; run the deploy again)")


RELOAD_CONTAINER = "dlws-verify-daemon-reload"


def test_gpu_container_keeps_its_gpus_across_daemon_reload(host, target, plan):
    """A GPU container still sees its GPUs after a systemctl daemon-reload."""
    # NVIDIA/nvidia-container-toolkit#48: with systemd managing a container's cgroup, a
    # daemon-reload re-applies its device rules; without CDI or /dev/char links the container
    # loses its GPUs ("Failed to initialize NVML: Unknown Error").
    _toolkit_host(host, target)
    _docker_only(target)
    if not _systemd(host):
        pytest.skip(f"{target.name} runs no systemd: no daemon-reload to survive")
    image = target["containers_gpu_check_image"]
    host.run(cmd("docker", "rm", "-f", RELOAD_CONTAINER))
    start = host.run(cmd("docker", "run", "-d", "--name", RELOAD_CONTAINER,
                         *_gpu_args(_docker_mode(target, plan)), image, "sleep", "600"))
    try:
        assert start.rc == 0, f"cannot start a GPU container: {start.stderr[-1000:]}"
        listing = cmd("docker", "exec", RELOAD_CONTAINER, "nvidia-smi", "-L")
        before = host.run(listing)
        reload = host.run("systemctl daemon-reload")
        after = host.run(listing)
    finally:
        host.run(cmd("docker", "rm", "-f", RELOAD_CONTAINER))
    assert before.rc == 0, f"the container saw no GPUs at start: {before.stdout}{before.stderr}"
    assert reload.rc == 0, f"systemctl daemon-reload failed: {reload.stderr}"
    assert after.rc == 0 and after.stdout == before.stdout, (
        f"after systemctl daemon-reload the container lost its GPUs: before {before.stdout!r}, "
        f"after {after.stdout!r} {after.stderr[-500:]}")
