"""Sandbox containers on the local Docker engine."""

from __future__ import annotations

import subprocess

# Containers get what a workstation's services need, never --privileged (refused here and
# too broad anywhere): the default capability set covers apt, dpkg and pip.
RUN_ARGS = ("--init", "--tmpfs", "/run", "--tmpfs", "/tmp:exec")


def container_state(name: str) -> str | None:
    """"running", "exited", ... or None when no such container exists."""
    out = subprocess.run(["docker", "container", "inspect", "-f", "{{.State.Status}}", name],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_container(name: str, image: str, extra: tuple[str, ...] = ()) -> str:
    """Start (or restart) a long-running container `name` from `image`; return its state."""
    state = container_state(name)
    if state == "running":
        return "running"
    if state is not None:
        subprocess.run(["docker", "start", name], check=True, capture_output=True)
        return "started"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--hostname", name, *RUN_ARGS, *extra, image,
         "sleep", "infinity"],
        check=True,
        capture_output=True,
    )
    return "created"


def remove_container(name: str) -> None:
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def container_ip(name: str) -> str:
    """The container's address on its network (Docker's bridge by default)."""
    return subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}"
                           "{{.IPAddress}}{{end}}", name],
                          check=True, capture_output=True, text=True).stdout.strip()
