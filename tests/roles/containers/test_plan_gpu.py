"""roles/containers' GPU paths, rootless Podman and the Docker source switch, planned offline.

CDI mode and legacy mode (with /dev/char links) on all four releases, the CDI spec's refresh
units, the packages one Docker source removes before the other's go in, and the subordinate id
ranges each lab user gets. @fake hosts answer recorded facts (tests/fake_hosts.py).
"""

from __future__ import annotations

import pytest

from dlws.facts.containers import CDI_SPEC
from dlws.roles.containers import _docker_repo, _gpu, _podman
from dlws.stack.services import PODMAN_PACKAGES, PODMAN_VERSIONS, REMOVE_FOR, docker_gpu_mode
from tests.fake_hosts import Run, facts, plan

OSES = {"ubuntu-22.04": ("ubuntu", "22.04"), "ubuntu-24.04": ("ubuntu", "24.04"),
        "debian-12": ("debian", "12"), "debian-13": ("debian", "13")}
# What the base role's lab users and pyinfra's user operations read.
USERS = {"uname -s": "Linux", "command -v useradd": "/usr/sbin/useradd",
         "command -v usermod": "/usr/sbin/usermod"}
DRIVER = "580.95.05"


def passwd(*names: str) -> list[str]:
    """pyinfra's Users fact output for accounts uid 1000, 1001, ..."""
    return [f"{n}:x:{1000 + i}:{1000 + i}::/home/{n}:/bin/bash|{n}|{n}||"
            for i, n in enumerate(names)]


def run_case(os: str, gpu: bool = True, extra: dict | None = None, container: str = "",
             **data) -> Run:
    """The containers role's operations for a host; `extra` answers come before the recorded
    facts (the first matching fragment answers)."""
    responses = {**(extra or {}),
                 **facts(os, "rtx-4090" if gpu else None, driver=DRIVER if gpu else None,
                         cdi_spec="rtx-4090x2_580.yaml" if gpu else None, container=container),
                 **USERS}
    host = {"gpu_count": 1 if gpu else 0, "python_env_require_hashes": False,
            "containers_engine": "docker", "nvidia_driver_source": "cuda_repo",
            "fake_responses": responses, **data}
    if gpu:
        host["gpu_model"] = "NVIDIA GeForce RTX 4090"
    name = f"@fake/{os}"
    result = plan({name: host})[name]
    assert result.error is None, result.error
    first = next(i for i, op in enumerate(result.ops) if op.name.startswith("Containers | "))
    return Run(ops=result.ops[first:], stack=result.stack)


def names(run: Run) -> list[str]:
    return [op.name.split(" | ")[-1] for op in run.ops]


def index(run: Run, fragment: str) -> int:
    return next(i for i, name in enumerate(names(run)) if fragment in name)


# --- CDI and legacy on every release ------------------------------------------------------------


@pytest.mark.parametrize("os", OSES)
def test_cdi_mode(os):
    """Podman takes GPUs through CDI; Docker too where its engine has CDI (else the runtime and
    the links); the spec is kept current by the toolkit's refresh units."""
    run = run_case(os, containers_engine="both", base_lab_users=["alice"])
    text, uploads = run.describe(), run.uploads()
    os_id, release = OSES[os]
    docker_mode = docker_gpu_mode("cdi", os_id, release, "distro")
    assert docker_mode == ("cdi" if os == "debian-13" else "legacy")
    [runtime] = [op for op in run.ops if "nvidia-ctk runtime configure" in op.name]
    assert runtime.commands == ["nvidia-ctk runtime configure --runtime=docker"
                                + (" --cdi.enabled" if docker_mode == "cdi" else "")]
    assert (_gpu.DEV_CHAR_RULE in uploads) is (docker_mode == "legacy"), text
    assert run.named("Install Podman"), text
    assert uploads[_gpu.REFRESH_DROPIN] == _gpu.REFRESH_DROPIN_CONTENT
    assert f"NVIDIA_CTK_CDI_OUTPUT_FILE_PATH={CDI_SPEC}" in _gpu.REFRESH_DROPIN_CONTENT
    [path_unit] = run.named(f"({_gpu.REFRESH_PATH_UNIT})")
    assert any("systemctl enable nvidia-cdi-refresh.path" in c for c in path_unit.commands), text
    # With Docker on its repository, Docker takes CDI on every release.
    repo = run_case(os, containers_engine="docker", containers_engine_source="docker_repo")
    assert "--cdi.enabled" in repo.describe() and _gpu.DEV_CHAR_RULE not in repo.uploads()


@pytest.mark.parametrize("os", OSES)
def test_legacy_mode_creates_and_keeps_dev_char_links(os):
    run = run_case(os, containers_gpu_mode="legacy",
                   extra={"/dev/nvidia-caps/*": ["/dev/nvidia0 195:0 -",
                                                 "/dev/nvidiactl 195:255 /dev/nvidiactl"]})
    text, uploads = run.describe(), run.uploads()
    [runtime] = [op for op in run.ops if "nvidia-ctk runtime configure" in op.name]
    assert runtime.commands == ["nvidia-ctk runtime configure --runtime=docker"], text
    assert uploads[_gpu.DEV_CHAR_RULE].endswith(
        'ACTION=="add", DEVPATH=="/bus/pci/drivers/nvidia", '
        'RUN+="/usr/bin/nvidia-ctk system create-dev-char-symlinks --create-all"\n')
    [links] = run.named("Create /dev/char links")
    assert "missing: /dev/nvidia0 (195:0)" in links.name, links.name
    assert links.commands == ["nvidia-ctk system create-dev-char-symlinks --create-all"]
    # The links come before anything reloads systemd (a reload detaches unlinked devices).
    assert index(run, "Create /dev/char links") < index(run, "Reload systemd")


def test_legacy_mode_with_every_link_in_place_changes_nothing():
    run = run_case("debian-12", containers_gpu_mode="legacy",
                   extra={"/dev/nvidia-caps/*": ["/dev/nvidia0 195:0 /dev/nvidia0"]})
    assert not run.named("Create /dev/char links"), run.describe()
    assert _gpu.DEV_CHAR_RULE in run.uploads(), "the rule is still kept in place"


# --- the spec's refresh ---------------------------------------------------------------------------


def test_spec_refresh_uses_the_toolkits_units_from_1_18():
    # The package's postinst already wrote its own spec there (toolkit 1.18.0).
    stat = (f"user=root group=root mode=-rw-r--r-- atime=0 mtime=0 ctime=0 size=900 "
            f"'{_gpu.RUNTIME_SPEC}'")
    run = run_case("ubuntu-24.04", containers_toolkit_version="1.18.0-1",
                   extra={_gpu.RUNTIME_SPEC: stat})
    uploads = run.uploads()
    assert _gpu.REFRESH_DROPIN in uploads and "/etc/systemd/system/dlws-cdi-refresh.path" \
        not in uploads
    [removed] = run.named(f"Remove the toolkit's first spec {_gpu.RUNTIME_SPEC}")
    assert removed.commands == [f"rm -f {_gpu.RUNTIME_SPEC}"], removed.commands
    [now] = run.named("through nvidia-cdi-refresh.service")
    assert now.commands == ["systemctl start nvidia-cdi-refresh.service"] and now.conditional
    assert index(run, "Point nvidia-cdi-refresh.service") < index(run, "Reload systemd") \
        < index(run, "through nvidia-cdi-refresh.service")


def test_spec_refresh_installs_dlws_units_before_1_18():
    run = run_case("ubuntu-24.04", containers_toolkit_version="1.17.8-1")
    uploads = run.uploads()
    assert _gpu.REFRESH_DROPIN not in uploads
    service = uploads["/etc/systemd/system/dlws-cdi-refresh.service"]
    assert f"ExecStart=/usr/bin/nvidia-ctk cdi generate --output={CDI_SPEC}" in service
    path = uploads["/etc/systemd/system/dlws-cdi-refresh.path"]
    assert "PathChanged=/lib/modules/%v/modules.dep\n" in path
    assert run.named(f"({_gpu.DLWS_REFRESH_PATH_UNIT})"), run.describe()


def test_no_refresh_units_without_systemd_and_no_toolkit_in_a_container():
    run = run_case("debian-12", container="docker")
    text = run.describe()
    assert "nvidia-cdi-refresh" not in text and _gpu.DEV_CHAR_RULE not in run.uploads(), text


# --- switching Docker's source ----------------------------------------------------------------


def dpkg(*packages: str) -> dict:
    return {"dpkg -l": [f"ii  {p}  1.0  amd64  x" for p in packages]}


def test_switch_to_docker_repo_removes_docker_io_first_and_keeps_var_lib_docker():
    run = run_case("debian-12", gpu=False, containers_engine_source="docker_repo",
                   extra=dpkg("docker.io", "containerd", "runc"))
    [remove] = run.named("Remove the other Docker source's packages before docker_repo's")
    [command] = remove.commands
    assert " remove " in command and "purge" not in command, command
    assert command.split(" remove ")[1].split() == ["docker.io", "containerd", "runc"], command
    assert index(run, "Remove the other Docker source") < index(run, "Install the Docker engine")
    text = run.describe()
    assert "/var/lib/docker" not in text.replace(remove.name, "") and "purge" not in text, text
    assert REMOVE_FOR["docker_repo"][0] == "docker.io"


def test_switch_back_to_docker_io_removes_docker_ce_and_drops_the_repository():
    run = run_case("debian-13", gpu=False, containers_engine_source="distro",
                   extra={**dpkg("docker-ce", "docker-ce-cli", "containerd.io"),
                          _docker_repo.SOURCES: "user=root group=root mode=-rw-r--r-- atime=0 "
                          f"mtime=0 ctime=0 size=200 '{_docker_repo.SOURCES}'"})
    [remove] = run.named("Remove the other Docker source's packages before distro's")
    [command] = remove.commands
    assert command.split(" remove ")[1].split() == ["docker-ce", "docker-ce-cli",
                                                    "containerd.io"], command
    assert run.named("Drop Docker's repository"), run.describe()
    order = names(run)
    assert index(run, "Remove the other") < index(run, "Install the Docker engine (docker.io)")
    assert "Write /etc/docker/daemon.json (containers_daemon_json)" in order


def test_nothing_to_remove_when_the_source_is_unchanged():
    run = run_case("debian-12", gpu=False, extra=dpkg("docker.io", "containerd", "runc"))
    [remove] = run.named("Remove the other Docker source's packages")
    assert remove.commands == [], remove.commands


# --- rootless Podman: packages and subordinate ranges ----------------------------------------


@pytest.mark.parametrize("os", OSES)
def test_podman_packages_per_release(os):
    run = run_case(os, gpu=False, containers_engine="podman", base_lab_users=["alice"])
    [install] = run.named("Install Podman")
    assert PODMAN_VERSIONS[OSES[os]] in install.name
    assert install.commands[-1].endswith(" ".join(PODMAN_PACKAGES[OSES[os]])), install
    assert not run.named("Install the Docker engine") and not run.named("use Docker")


def test_each_lab_user_gets_a_free_range_and_existing_ones_are_kept():
    subuid = ["svc:100000:65536", "alice:165536:65536", "1002:300000:65536"]
    run = run_case("debian-12", gpu=False, containers_engine="podman",
                   base_lab_users=["alice", "bob", "carol"],
                   extra={"/etc/subuid": subuid, "/etc/subgid": [],
                          "lastlog -u": passwd("alice", "bob", "carol")})
    [op] = run.named("subordinate uid/gid ranges")
    assert op.commands == [
        # bob: the gap between alice's and uid 1002's (carol's) range; carol keeps hers
        "usermod --add-subuids 231072-296607 -- bob",
        "usermod --add-subgids 100000-165535 -- alice",
        "usermod --add-subgids 165536-231071 -- bob",
        "usermod --add-subgids 231072-296607 -- carol",
        "runuser -l bob -c 'podman system migrate'",
        "runuser -l alice -c 'podman system migrate'",
        "runuser -l carol -c 'podman system migrate'",
    ], op.commands


def test_second_run_adds_no_range():
    lines = ["alice:100000:65536", "bob:165536:65536"]
    run = run_case("debian-12", gpu=False, containers_engine="podman",
                   base_lab_users=["alice", "bob"],
                   extra={"/etc/subuid": lines, "/etc/subgid": lines,
                          "lastlog -u": passwd("alice", "bob")})
    [op] = run.named("subordinate uid/gid ranges")
    assert op.commands == [], op.commands


@pytest.mark.parametrize(("taken", "start"), [
    ([], 100_000),
    ([(100_000, 65536)], 165_536),
    ([(200_000, 65536), (100_000, 10)], 100_010),  # unsorted; the gap before 200000 fits
    ([(100_000, 50_000), (120_000, 200_000)], 320_000),  # nested and overlapping ranges
    ([(0, 150_000)], 150_000),  # a range below SUB_UID_MIN reaching into it
    ([(100_000, 300_000), (150_000, 10)], 400_000),  # one range inside another
], ids=["empty", "after-one", "gap", "overlapping", "from-below", "nested"])
def test_free_start(taken, start):
    assert _podman.free_start(taken, 65536) == start


def test_free_start_refuses_past_sub_uid_max():
    from pyinfra.api import OperationError

    with pytest.raises(OperationError, match="containers_subid_count"):
        _podman.free_start([(100_000, _podman.SUBID_MAX)], 65536)


@pytest.mark.parametrize(("lines", "pairs"), [
    (["a:100000:65536", "b:165536:65536"], []),  # adjacent, not overlapping
    (["a:100000:65536", "b:165535:10"], [("a 100000+65536", "b 165535+10")]),
    (["b:150000:65536", "a:100000:65536"], [("b 150000+65536", "a 100000+65536")]),
    (["a:100000:65536", "b:120000:5"], [("a 100000+65536", "b 120000+5")]),  # inside
], ids=["adjacent", "last-id", "listed-backwards", "inside"])
def test_overlapping_ranges(lines, pairs):
    from dlws.facts.system import overlapping_ranges, parse_subordinate_ids

    assert overlapping_ranges(parse_subordinate_ids(lines)) == pairs
