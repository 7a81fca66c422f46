"""Shared steps of the tests that drive real containers: start one (or an sshd), deploy with
--json, verify."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from dlws.sandbox.docker_env import container_ip

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# A password with what a shell, ssh's option parser or a printf format would read.
PASSWORD = "pa's \"word\" $(id) %h %s \\ `x`;"


def checked(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command here; with `check`, fail the test with its output unless it exits 0."""
    out = subprocess.run(list(args), capture_output=True, text=True)
    if check:
        assert out.returncode == 0, f"{args}: {out.stderr}{out.stdout}"
    return out


@contextlib.contextmanager
def disk_container(name: str, image: Path, *run_args: str) -> Iterator[str]:
    """A Debian 12 container `name` that sleeps until the block ends, with the disk image file
    `image` as a loop device (`--device`, `--cap-add SYS_ADMIN`: mounting inside works, no
    --privileged); yields the loop device, removed with the container."""
    loop = checked("losetup", "-f", "--show", str(image)).stdout.strip()
    try:
        checked("docker", "rm", "-f", name, check=False)
        checked("docker", "run", "-d", "--name", name, "--cap-add", "SYS_ADMIN", "--device", loop,
                "--tmpfs", "/run", "--tmpfs", "/tmp:exec", *run_args, "dlws/debian:bookworm",
                "sleep", "infinity")
        checked("docker", "exec", name, "mkdir", "-p", "/dev/disk/by-id")
        yield loop
    finally:
        checked("docker", "rm", "-f", name, check=False)
        checked("losetup", "-d", loop, check=False)


def pyinfra_json(inventory: str, deploy: str = "deploy/workstation.py",
                 env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    """Run a deploy; return its exit code, pyinfra's --json document and stderr."""
    out = subprocess.run(
        [str(BIN / "pyinfra"), "-y", "--json", inventory, deploy],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})},
    )
    try:
        document = json.loads(out.stdout)
    except json.JSONDecodeError:
        document = {}
    return out.returncode, document, out.stderr + out.stdout[-3000:]


def changed_operations(document: dict) -> list[str]:
    """Names of the operations that changed something on some host."""
    return [op["name"] for op in document["results"]["operations"] if op["success"]]


def run_verify(inventory: str, *args: str, env: dict[str, str] | None = None,
               ) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "pytest"), "verify", "--inventory", inventory, "-p", "no:cacheprovider",
         "-q", "-rfE", "--no-header", *args],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})},
    )


@contextlib.contextmanager
def container(image: str, prefix: str, *run_args: str) -> Iterator[str]:
    """A container of `image` that sleeps until the block ends, then is removed: its name
    (`prefix` and a random suffix). `run_args` go to `docker run` (e.g. --network none)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "run", "-d", "--rm", *run_args, "--name", name, image, "sleep",
                    "infinity"], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


@contextlib.contextmanager
def sshd_container(folder: Path, setup: str, stdin: str) -> Iterator[tuple[str, Path]]:
    """An sshd container (Debian 12, openssh-server) that `setup` (a shell line, fed `stdin`)
    prepares before sshd starts: its address, and a known_hosts file in `folder` that trusts
    this container's host key alone."""
    from dlws.sandbox.images import ensure_sshd_image

    with container(ensure_sshd_image("bookworm"), "dlws-sshd") as name:
        subprocess.run(["docker", "exec", "-i", name, "sh", "-c",
                        f"mkdir -p /run/sshd && ssh-keygen -A && {setup} && /usr/sbin/sshd"],
                       input=stdin, text=True, check=True, capture_output=True)
        ip = container_ip(name)
        host_key = subprocess.run(["docker", "exec", name, "cat",
                                   "/etc/ssh/ssh_host_ed25519_key.pub"], check=True,
                                  capture_output=True, text=True).stdout.split()[:2]
        known = folder / "known_hosts"
        known.write_text(" ".join([ip, *host_key]) + "\n")
        yield ip, known


def processes_holding(secret: str, files: tuple[str, ...] = ("cmdline",)) -> list[str]:
    """Which of `files` (cmdline, environ) of this machine's processes hold `secret` (a
    container's processes are this kernel's, so theirs are read too)."""
    found = []
    for process in Path("/proc").glob("[0-9]*"):
        for name in files:
            try:
                if secret.encode() in (process / name).read_bytes():
                    found.append(str(process / name))
            except OSError:
                continue
    return found


def watch_processes(run: Callable[[], object], secret: str,
                    files: tuple[str, ...] = ("cmdline",),
                    every: float = 0.0) -> tuple[object, list[str]]:
    """Call `run` (in this thread: pyinfra's gevent starts processes from the main one) while
    another thread reads this machine's processes' `files` again and again (`every` seconds:
    a pause that leaves a long run a core): its result, and every file that held `secret`
    meanwhile."""
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(every):
            seen.update(processes_holding(secret, files))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run()
    finally:
        done.set()
        watcher.join()
    return result, sorted(seen)
