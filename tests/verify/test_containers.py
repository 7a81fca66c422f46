"""verify/test_containers.py's GPU checks against recorded answers: each passes on a good host
and fails, with its evidence, on a broken one (no GPU host here to run them for real)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from dlws.inventory.targets import Target
from dlws.roles import all_defaults
from dlws.verify import test_containers as checks

CDI = (Path(__file__).parents[1] / "fixtures" / "readings" / "cdi"
       / "rtx-4090x2_580.yaml").read_text()
# verify's `plan` fixture, as far as these checks read it: Debian 12's docker.io has no CDI.
PLAN = SimpleNamespace(os=SimpleNamespace(id="debian", release="12"))
TWO_GPUS = ("GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-4cf8db2d-06c0-7d70-1a51-e59b25b2c16c)\n"
            "GPU 1: NVIDIA GeForce RTX 4090 (UUID: GPU-9a1b2c3d-0000-1111-2222-333344445555)\n")


@dataclass
class Out:
    stdout: str = ""
    rc: int = 0
    stderr: str = ""


class Host:
    """A testinfra host that answers from a table of command fragments (first match wins)."""

    def __init__(self, answers: dict[str, Out]):
        self.answers = answers

    def run(self, command: str) -> Out:
        return next((out for fragment, out in self.answers.items() if fragment in command), Out())


def target(gpus: int) -> Target:
    data = {**all_defaults(), "containers_engine": "docker", "gpu_count": gpus,
            "gpu_model": "NVIDIA GeForce RTX 4090"}
    return Target("ws-01", "local://", data)


def host(module: str = "580.95.05", spec: str | None = CDI, smi: str = TWO_GPUS,
         runtimes: str = '{"nvidia":{"path":"nvidia-container-runtime"},"runc":{}}') -> Host:
    cdi = (f"module {module}\n" if module else "") + (f"present\n{spec}" if spec else "")
    return Host({"/.dockerenv": Out(rc=0), "/etc/cdi/nvidia.yaml": Out(cdi),
                 "docker info": Out(runtimes), "nvidia-smi -L": Out(smi)})


def test_good_gpu_host_passes():
    for check in (checks.test_nvidia_runtime_or_cdi_registered,
                  checks.test_cdi_spec_lists_every_declared_gpu):
        check(host(), target(2))
    checks.test_gpus_visible_in_a_container(host(), target(2), PLAN)


@pytest.mark.parametrize(("check", "broken", "words"), [
    (checks.test_cdi_spec_lists_every_declared_gpu, {"spec": None}, "no /etc/cdi/nvidia.yaml"),
    (checks.test_cdi_spec_lists_every_declared_gpu, {"module": "590.44.01"},
     "made for driver 580.95.05, the loaded one is 590.44.01"),
    (checks.test_nvidia_runtime_or_cdi_registered, {"spec": None, "runtimes": '{"runc":{}}'},
     "neither the nvidia runtime"),
], ids=["no-spec", "stale-spec", "nothing-registered"])
def test_broken_gpu_host_fails(check, broken, words):
    with pytest.raises(AssertionError, match=words):
        check(host(**broken), target(2))


def test_a_gpu_missing_in_a_container_fails():
    with pytest.raises(AssertionError, match="a container sees 1 GPUs, 2 declared"):
        checks.test_gpus_visible_in_a_container(host(smi=TWO_GPUS.splitlines()[0]), target(2),
                                                PLAN)


def test_more_gpus_declared_than_the_spec_names_fails():
    with pytest.raises(AssertionError, match=r"names GPUs \['0', '1'\], 4 declared"):
        checks.test_cdi_spec_lists_every_declared_gpu(host(), target(4))


def test_gpu_checks_skip_only_without_a_declared_gpu():
    with pytest.raises(pytest.skip.Exception, match="declared without GPUs"):
        checks.test_gpus_visible_in_a_container(host(), target(0), PLAN)


# --- rootless Podman, the CDI spec's mode, /dev/char links, daemon-reload -----------------------

SUBIDS = "alice:100000:65536\nbob:165536:65536\n"
ALICE_MAP = "         0       1000          1\n         1     100000      65536\n"
BOB_MAP = "         0       1001          1\n         1     165536      65536\n"


@dataclass
class Account:
    uid: int
    exists: bool = True


@dataclass
class File:
    mode: int
    exists: bool = True


class LabHost(Host):
    """Host with accounts alice (1000) and bob (1001) and files by path."""

    def __init__(self, answers: dict[str, Out], files: dict[str, File] | None = None):
        super().__init__(answers)
        self.files = files or {}

    def user(self, name: str) -> Account:
        return {"alice": Account(1000), "bob": Account(1001)}.get(name, Account(0, False))

    def file(self, path: str) -> File:
        return self.files.get(path, File(0, False))


def lab_target(gpus: int = 0, **data) -> Target:
    return Target("ws-01", "local://", {**all_defaults(), "containers_engine": "podman",
                                        "base_lab_users": ["alice", "bob"], "gpu_count": gpus,
                                        "gpu_model": "NVIDIA GeForce RTX 4090", **data})


def lab_host(subuid: str = SUBIDS, subgid: str = SUBIDS, maps: dict | None = None) -> LabHost:
    maps = maps or {"alice": ALICE_MAP, "bob": BOB_MAP}
    answers = {"/etc/subuid": Out(subuid), "/etc/subgid": Out(subgid)}
    answers.update({f"runuser -l {user} ": Out(text) for user, text in maps.items()})
    return LabHost(answers)


def test_rootless_checks_pass_on_a_good_host():
    checks.test_lab_users_have_their_own_subordinate_ids(lab_host(), lab_target())
    checks.test_rootless_podman_runs_for_each_lab_user(lab_host(), lab_target())


@pytest.mark.parametrize(("broken", "words"), [
    ({"subuid": "alice:100000:65536\n"}, "lab user bob has no range in /etc/subuid"),
    ({"subgid": "alice:100000:65536\nbob:150000:65536\n"},
     "/etc/subgid: alice 100000\\+65536 overlaps bob 150000\\+65536"),
    ({"subuid": "alice:100000:65536\nbob:165536:1000\n"},
     "lab user bob's range in /etc/subuid holds 1000 ids, 65536 declared"),
    ({"subuid": "alice:100000:65536\n1001:165536:65536\n"}, None),  # bob's line by uid counts
], ids=["line-removed", "overlap", "too-small", "owner-by-uid"])
def test_subordinate_ids_check(broken, words):
    if words is None:
        checks.test_lab_users_have_their_own_subordinate_ids(lab_host(**broken), lab_target())
        return
    with pytest.raises(AssertionError, match=words):
        checks.test_lab_users_have_their_own_subordinate_ids(lab_host(**broken), lab_target())


def test_podmans_one_id_fallback_fails_naming_the_user():
    # Podman without a subuid line runs with a single mapping (a warning, exit 0): the check
    # reads the container's uid_map, not the exit status.
    single = {"alice": ALICE_MAP, "bob": "         0       1001          1\n"}
    with pytest.raises(AssertionError, match=r"bob: the container's uid_map \[\(0, 1001, 1\)\] "
                                             r"does not map the user's range \(1, 165536"):
        checks.test_rootless_podman_runs_for_each_lab_user(lab_host(maps=single), lab_target())


def test_rootless_checks_skip_without_podman_or_lab_users():
    with pytest.raises(pytest.skip.Exception, match="runs no Podman"):
        checks.test_rootless_podman_runs_for_each_lab_user(
            lab_host(), lab_target(containers_engine="docker"))
    with pytest.raises(pytest.skip.Exception, match="declares no lab users"):
        checks.test_lab_users_have_their_own_subordinate_ids(lab_host(),
                                                              lab_target(base_lab_users=[]))


def test_rootless_gpus_per_user():
    smi = {"alice": TWO_GPUS, "bob": TWO_GPUS.splitlines()[0]}
    gpu_host = lab_host(maps=smi)
    gpu_host.answers = {"/.dockerenv": Out(rc=0), **gpu_host.answers}
    with pytest.raises(AssertionError, match="bob: 1 GPUs, 2 declared") as failure:
        checks.test_rootless_podman_sees_the_declared_gpus(gpu_host, lab_target(gpus=2))
    assert "alice" not in str(failure.value)


def test_cdi_spec_must_be_readable_by_lab_users():
    answers = {"/.dockerenv": Out(rc=0)}
    good = LabHost(answers, {"/etc/cdi/nvidia.yaml": File(0o644), "/etc/cdi": File(0o755)})
    checks.test_cdi_spec_readable_by_lab_users(good, lab_target(gpus=1))
    bad = LabHost(answers, {"/etc/cdi/nvidia.yaml": File(0o600), "/etc/cdi": File(0o755)})
    with pytest.raises(AssertionError, match="0o600 in /etc/cdi 0o755: lab users cannot read"):
        checks.test_cdi_spec_readable_by_lab_users(bad, lab_target(gpus=1))


def test_dev_char_links_checked_on_the_legacy_path():
    links = "/dev/nvidia0 195:0 /dev/nvidia0\n/dev/nvidia-uvm 511:0 -\n"
    legacy = Host({"/.dockerenv": Out(rc=0), "/dev/nvidia-caps": Out(links)})
    with pytest.raises(AssertionError, match=r"no /dev/char link for \['/dev/nvidia-uvm "
                                             r"\(511:0\)'\]"):
        checks.test_dev_char_links_for_every_nvidia_node(legacy, target(1), PLAN)
    good = Host({"/.dockerenv": Out(rc=0),
                 "/dev/nvidia-caps": Out("/dev/nvidia0 195:0 /dev/nvidia0\n")})
    checks.test_dev_char_links_for_every_nvidia_node(good, target(1), PLAN)
    trixie = SimpleNamespace(os=SimpleNamespace(id="debian", release="13"))
    with pytest.raises(pytest.skip.Exception, match="through CDI"):
        checks.test_dev_char_links_for_every_nvidia_node(legacy, target(1), trixie)


class ReloadHost(Host):
    """Answers nvidia-smi in the container with `before` until daemon-reload, then `after`."""

    def __init__(self, before: Out, after: Out):
        super().__init__({"/.dockerenv": Out(rc=0), "/run/systemd/system": Out("yes\n")})
        self.before, self.after, self.reloaded, self.commands = before, after, False, []

    def run(self, command: str) -> Out:
        self.commands.append(command)
        if command == "systemctl daemon-reload":
            self.reloaded = True
            return Out()
        if "docker exec" in command:
            return self.after if self.reloaded else self.before
        return super().run(command)


def test_daemon_reload_check():
    kept = ReloadHost(Out(TWO_GPUS), Out(TWO_GPUS))
    checks.test_gpu_container_keeps_its_gpus_across_daemon_reload(kept, target(2), PLAN)
    assert kept.commands[-1] == "docker rm -f dlws-verify-daemon-reload", "removed after"
    assert any("--gpus all" in c for c in kept.commands), "Debian 12's Docker: legacy hook"
    lost = ReloadHost(Out(TWO_GPUS), Out("", rc=255, stderr="Failed to initialize NVML: Unknown "
                                                           "Error"))
    with pytest.raises(AssertionError, match="lost its GPUs.*Failed to initialize NVML"):
        checks.test_gpu_container_keeps_its_gpus_across_daemon_reload(lost, target(2), PLAN)


# --- the NGC route in each engine -------------------------------------------------------------

NGC_IMAGE = "nvcr.io/nvidia/tensorflow:25.02-tf2-py3"


def ngc_plan(release: str = "12") -> SimpleNamespace:
    return SimpleNamespace(os=SimpleNamespace(id="debian", release=release),
                           tensorflow=SimpleNamespace(image=NGC_IMAGE, package=None),
                           torch=SimpleNamespace(variant=None))


class TrainHost:
    """Answers dlws-train-check with a passed GPU run in whichever engine it was asked for."""

    def __init__(self):
        self.commands = []

    def run(self, command: str) -> Out:
        import json

        self.commands.append(command)
        report = json.dumps({"results": [{"status": "passed", "device": "gpu",
                                          "container": NGC_IMAGE}]})
        # The runner's document (dlws/controller_code.py RUNNER): one run per name.
        return Out(json.dumps({"sha256": "0" * 64, "together": False,
                               "runs": {"ngc": [0, report, ""]}}))


@pytest.mark.parametrize(("engine", "release", "access"), [
    ("podman", "12", "cdi"),  # Podman: always CDI
    ("docker", "12", "gpus"),  # Debian 12's docker.io 20.10: the legacy hook
    ("docker", "13", "cdi"),  # Debian 13's docker.io 26.1: CDI
], ids=["podman", "docker-debian-12", "docker-debian-13"])
def test_ngc_trains_in_each_declared_engine(engine, release, access):
    from dlws.verify import test_training

    trained = TrainHost()
    test_training.test_ngc_tensorflow_trains_in_its_container(
        trained, lab_target(gpus=1, containers_engine="both"), ngc_plan(release),
        lambda *a: None, engine)
    [command] = trained.commands
    # The arguments travel as the runner's JSON list, inside one quoted word.
    assert (f'"--container", "{NGC_IMAGE}", "--engine", "{engine}", "--gpu-access", '
            f'"{access}"') in command, command


def test_ngc_skips_an_engine_the_host_does_not_run():
    from dlws.verify import test_training

    with pytest.raises(pytest.skip.Exception, match="runs no podman"):
        test_training.test_ngc_tensorflow_trains_in_its_container(
            TrainHost(), lab_target(gpus=1, containers_engine="docker"), ngc_plan(),
            lambda *a: None, "podman")
