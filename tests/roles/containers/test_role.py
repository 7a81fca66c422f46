"""roles/containers for real in a Debian 12 container: Debian's docker.io, a daemon.json that
dockerd accepts, nothing changed on a second run, verify failing on broken inputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dlws.facts.containers import DOCKER_DAEMON_JSON, DOCKERD_CONFIG_CHECK, dockerd_config_verdict
from dlws.sandbox.docker_env import ensure_container, remove_container
from dlws.sandbox.images import ensure_debian_image
from tests.helpers import ROOT, changed_operations, pyinfra_json, run_verify

pytestmark = pytest.mark.integration
NAME = "dlws-i14-containers"
ORIGINAL = '{"debug": true}'


def dexec(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", NAME, "sh", "-c", script],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def docker_host(docker_engine, tmp_path_factory):
    remove_container(NAME)
    ensure_container(NAME, ensure_debian_image("bookworm"))
    # A daemon.json someone wrote before dlws: it must be kept as daemon.json.dlws-orig.
    seeded = dexec(f"mkdir -p /etc/docker && echo '{ORIGINAL}' > {DOCKER_DAEMON_JSON}")
    assert seeded.returncode == 0, seeded.stderr
    inventory = Path(tmp_path_factory.mktemp("inv")) / "containers.py"
    data = {"containers_engine": "docker", "containers_docker_users": ["alice"],
            "base_lab_users": ["bob"]}
    inventory.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from dlws.sandbox.data import controller_data\n"
        f"hosts = [('@docker/{NAME}', {{**controller_data(), **{data!r}}})]\n")
    yield str(inventory)
    remove_container(NAME)


def test_deploy_installs_docker_io_and_a_daemon_json_dockerd_accepts(docker_host):
    rc, document, log = pyinfra_json(docker_host, "deploy/containers.py")
    assert rc == 0, log[-4000:]
    changed = changed_operations(document)
    for name in ("Containers | Install the Docker engine (docker.io)",
                 f"Containers | Write {DOCKER_DAEMON_JSON} (containers_daemon_json)",
                 "Containers | Check daemon.json with dockerd (no systemd here: nothing starts "
                 "or restarts Docker)",
                 "Containers | Let alice use Docker (group docker: root-equivalent)"):
        assert name in changed, f"{name!r} did not run: {changed}"
    assert dexec("dpkg-query -W -f='${Status}' docker.io").stdout == "install ok installed"
    kept = dexec(f"cat {DOCKER_DAEMON_JSON}.dlws-orig").stdout.strip()
    assert kept == ORIGINAL, f"the original daemon.json was not kept: {kept!r}"
    out = dexec(DOCKERD_CONFIG_CHECK)
    valid, words = dockerd_config_verdict(out.stdout, out.returncode)
    assert valid, words
    members = dexec("getent group docker").stdout.strip()
    assert members.endswith(":alice"), f"only alice is declared: {members}"


def test_second_run_changes_nothing(docker_host):
    rc, document, log = pyinfra_json(docker_host, "deploy/containers.py")
    assert rc == 0, log[-3000:]
    assert changed_operations(document) == [], "the second run changed something"


def test_verify_passes_and_says_why_the_engine_is_not_running(docker_host):
    out = run_verify(docker_host, "-k", "test_containers", "-rs")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert "runs no systemd (a container)" in text, text[-3000:]
    assert "2 passed" in text, text[-3000:]  # dockerd's verdict, the docker group


def test_verify_fails_on_a_broken_daemon_json(docker_host):
    good = dexec(f"cat {DOCKER_DAEMON_JSON}").stdout
    try:
        for broken, words in (('{"log-driver": "json-file",', "unexpected EOF"),
                              ('{"log-drivr": "json-file"}', "log-drivr")):
            assert dexec(f"printf '%s' '{broken}' > {DOCKER_DAEMON_JSON}").returncode == 0
            out = run_verify(docker_host, "-k", "test_containers and daemon_config_accepted")
            text = out.stdout + out.stderr
            assert out.returncode == 1, text[-3000:]
            assert "test_docker_daemon_config_accepted_by_dockerd" in text, text[-3000:]
            assert "unable to configure the Docker daemon" in text and words in text, text[-3000:]
            print(next(line for line in text.splitlines() if "dockerd refuses" in line))
    finally:
        subprocess.run(["docker", "exec", "-i", NAME, "sh", "-c", f"cat > {DOCKER_DAEMON_JSON}"],
                       input=good, text=True, check=True)


def test_verify_fails_on_an_undeclared_docker_user(docker_host):
    assert dexec("usermod -aG docker bob").returncode == 0
    try:
        out = run_verify(docker_host, "-k", "test_containers and undeclared")
        text = out.stdout + out.stderr
        assert out.returncode == 1, text[-3000:]
        assert "not in containers_docker_users: ['bob']" in text, text[-3000:]
        print(next(line for line in text.splitlines() if "containers_docker_users" in line))
    finally:
        dexec("gpasswd -d bob docker")
