"""Checks of roles/containers: the engine, its configuration, the GPUs in a container, the group."""

from __future__ import annotations

import shlex

import pytest

from dlws.facts import (
    CDI_SPEC,
    DOCKER_DAEMON_JSON,
    DOCKERD_CONFIG_CHECK,
    NvidiaCdiSpec,
    SystemdRunning,
    cdi_gpu_indexes,
    dockerd_config_verdict,
)

from .conftest import require_gpus


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
    _engine(target)
    out = host.run(DOCKERD_CONFIG_CHECK)
    valid, words = dockerd_config_verdict(out.stdout, out.rc)
    assert valid, f"dockerd refuses {DOCKER_DAEMON_JSON}: {words or out.stderr.strip()}"


def test_docker_engine_active(host, target):
    _engine(target)
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
    _toolkit_host(host, target)
    info = host.run("docker info --format '{{json .Runtimes}}'")
    runtimes = info.stdout if info.rc == 0 else ""
    spec = NvidiaCdiSpec().process(host.run(NvidiaCdiSpec.command).stdout.splitlines())
    assert '"nvidia"' in runtimes or spec["present"], (
        f"neither the nvidia runtime (docker info: {runtimes.strip() or info.stderr.strip()}) "
        f"nor a CDI spec ({CDI_SPEC}) is registered")


def test_cdi_spec_lists_every_declared_gpu(host, target):
    _toolkit_host(host, target)
    spec = NvidiaCdiSpec().process(host.run(NvidiaCdiSpec.command).stdout.splitlines())
    assert spec["present"], f"no {CDI_SPEC} (nvidia-ctk cdi generate)"
    found = cdi_gpu_indexes(spec)
    assert len(found) >= target["gpu_count"], (
        f"{CDI_SPEC} names GPUs {found}, {target['gpu_count']} declared ({spec['devices']})")
    assert spec["driver"] == spec["module"], (
        f"{CDI_SPEC} was made for driver {spec['driver']}, the loaded one is {spec['module']}: "
        "run the deploy again (it regenerates the spec)")


def test_gpus_visible_in_a_container(host, target):
    _toolkit_host(host, target)
    image = target["containers_gpu_check_image"]
    out = host.run(f"timeout 300 docker run --rm --gpus all {shlex.quote(image)} nvidia-smi -L")
    assert out.rc == 0, f"docker run --gpus all {image} nvidia-smi -L failed: {out.stderr[-1500:]}"
    gpus = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
    assert len(gpus) == target["gpu_count"], (
        f"a container sees {len(gpus)} GPUs, {target['gpu_count']} declared: {out.stdout}")


def test_no_undeclared_docker_users(host, target):
    # Membership of docker is root on the host: only users the inventory declares may have it.
    out = host.run("getent group docker")
    members = set(out.stdout.strip().split(":")[-1].split(",")) - {""} if out.rc == 0 else set()
    undeclared = sorted(members - set(target["containers_docker_users"]))
    assert not undeclared, (
        f"in the docker group but not in containers_docker_users: {undeclared} "
        f"({out.stdout.strip()})")
