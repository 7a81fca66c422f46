"""Every verify check can fail: each is run against a host that breaks it, and must fail there.

The hosts are stand-ins that answer the commands a check runs (recorded output), or the
controller itself through testinfra's local backend where the check's own command must run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import testinfra

from dlws.facts.readers import testinfra_reader as fact_reader
from dlws.inventory.targets import Target
from dlws.roles import all_defaults
from dlws.stack import HostFacts, derive, locks
from dlws.stack.records import TensorFlowStack, TorchStack
from dlws.verify import (
    helpers,
    test_base,
    test_frameworks,
    test_python_env,
    test_security,
    test_training,
)

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass
class Out:
    rc: int = 0
    stdout: str = ""
    stderr: str = ""


@dataclass
class File:
    path: str
    content_string: str = ""
    exists: bool = True
    user: str = "root"
    group: str = "root"
    mode: int = 0o644


class SystemInfo:
    distribution = "debian"
    arch = "x86_64"


class StandIn:
    """A host answering each command by the first fragment of `runs` it contains."""

    system_info = SystemInfo()

    def __init__(self, runs: dict[str, Out] | None = None, files: dict[str, str] | None = None):
        self.runs, self.files, self.commands = runs or {}, files or {}, []

    def run(self, command: str) -> Out:
        self.commands.append(command)
        return next((out for fragment, out in self.runs.items() if fragment in command), Out())

    def file(self, path: str) -> File:
        if path in self.files:
            return File(path, self.files[path])
        return File(path, exists=False)


def target(name: str, **data) -> Target:
    return Target(name=name, spec="local://", data={**all_defaults(), **data})


# 1. the hash lock: nothing may be installed beside it ------------------------------------------


@pytest.fixture
def locked_host(tmp_path, monkeypatch):
    """A host whose environment is exactly its two locks (uv's and the environment's)."""
    monkeypatch.setenv("DLWS_LOCK_DIR", str(tmp_path))
    host_target = target("ws-lock", python_env_require_hashes=True)
    plan = derive(host_target.data, HostFacts(os_id="debian", os_release="12", gpus=()))
    env_spec = locks.environment_spec(plan, host_target.data)
    env_spec.path.write_text("numpy==2.4.6 \\\n    --hash=sha256:00\nmlxtend==0.25.0\n")
    locks.uv_spec(host_target.data).path.write_text("uv==0.13.9 \\\n    --hash=sha256:00\n")
    remote = f"{host_target['python_env_lock_dir']}/{env_spec.name}"
    host = StandIn(files={remote: env_spec.path.read_text()})
    installed = {"numpy": "2.4.6", "mlxtend": "0.25.0", "uv": "0.13.9", "pip": "24.0"}
    return host, host_target, plan, installed


def test_hash_lock_check_passes_an_environment_that_is_its_lock(locked_host):
    host, host_target, plan, installed = locked_host
    test_python_env.test_environment_is_its_hash_lock(host, host_target, plan, installed)


def test_hash_lock_check_fails_with_an_unpinned_package_beside_the_lock(locked_host):
    host, host_target, plan, installed = locked_host
    with pytest.raises(AssertionError, match="pinned by no lock.*requests 2.32.3"):
        test_python_env.test_environment_is_its_hash_lock(
            host, host_target, plan, {**installed, "requests": "2.32.3"})


# 2. world-writable files: the check's own command, on the controller ----------------------------


def test_world_writable_check_finds_a_world_writable_file(tmp_path):
    prefix = tmp_path / "venv"
    (prefix / "bin").mkdir(parents=True)
    os.chmod(prefix / "bin", 0o755)
    test_security.test_no_world_writable_files_in_the_stack(
        testinfra.get_host("local://"), target("ws-ww", python_env_prefix=str(prefix)))
    (prefix / "bin" / "python").write_text("#!/bin/sh\n")
    os.chmod(prefix / "bin" / "python", 0o777)
    with pytest.raises(AssertionError, match="world-writable under"):
        test_security.test_no_world_writable_files_in_the_stack(
            testinfra.get_host("local://"), target("ws-ww", python_env_prefix=str(prefix)))


class Unprivileged:
    """The controller as user nobody: a folder only root may read makes find fail there."""

    def __init__(self):
        self.local = testinfra.get_host("local://")

    def run(self, command: str):
        return self.local.run("setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c "
                              + shlex.quote(command))


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to run the check as another user")
def test_world_writable_check_fails_when_find_fails():
    """A folder find cannot read: its error must fail the check (a pipe once hid it)."""
    top = Path(tempfile.mkdtemp(prefix="dlws-ww-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        (top / "venv" / "private").mkdir(parents=True)
        os.chmod(top / "venv", 0o755)
        os.chmod(top / "venv" / "private", 0o700)
        with pytest.raises(AssertionError, match="cannot list .*find exit 1.*Permission denied"):
            test_security.test_no_world_writable_files_in_the_stack(
                Unprivileged(), target("ws-ww", python_env_prefix=str(top / "venv")))
    finally:
        shutil.rmtree(top)


# 3. signed sources: a symlinked source file is read like any other ----------------------------


def test_signed_sources_check_reads_symlinked_source_files(tmp_path):
    elsewhere = tmp_path / "elsewhere.list"
    elsewhere.write_text("deb http://evil.example/debian bookworm main\n")
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    (sources / "linked.list").symlink_to(elsewhere)
    host = testinfra.get_host("local://")
    paths = helpers.apt_source_paths(host, roots=(str(sources),))
    assert paths == [str(sources / "linked.list")], paths
    from dlws.facts.gpu_readings import unsigned_apt_sources

    problems = unsigned_apt_sources({p: host.file(p).content_string for p in paths})
    assert problems and "no signed-by" in problems[0], problems


# 4. apt components: commented-out entries do not count ----------------------------------------

SIGNED = "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"


# verify's `plan` fixture, as far as this check reads it: the OS from the OsRelease fact.
DEBIAN = SimpleNamespace(os=SimpleNamespace(id="debian", release="12"))


def _components_host(sources_list: str) -> StandIn:
    files = {"/etc/apt/sources.list": sources_list,
             test_base.SOURCES_FILE: "# Managed by dlws (roles/base)\n"}
    return StandIn(runs={"find -L": Out(stdout="\n".join(files))}, files=files)


def test_components_check_passes_enabled_components():
    host = _components_host(f"deb {SIGNED} http://deb.debian.org/debian bookworm main contrib "
                            "non-free non-free-firmware\n")
    test_base.test_apt_sources_carry_stack_components(host, target("ws-apt"), DEBIAN)


def test_components_check_fails_on_commented_out_components():
    host = _components_host(f"deb {SIGNED} http://deb.debian.org/debian bookworm main\n"
                            f"# deb {SIGNED} http://deb.debian.org/debian bookworm contrib "
                            "non-free\n")
    with pytest.raises(AssertionError, match=r"lack components \['contrib', 'non-free'\]"):
        test_base.test_apt_sources_carry_stack_components(host, target("ws-apt"), DEBIAN)


# 5. extra CA certificates: a file that is not a certificate is never "trusted" -----------------


def _first_certificate() -> str:
    text = SYSTEM_BUNDLE.read_text()
    end = "-----END CERTIFICATE-----"
    return text[: text.index(end) + len(end)] + "\n"


def _ca_host(src: Path, bundle: str) -> tuple[StandIn, Target]:
    ca_target = target("ws-ca", base_extra_ca_certs=[str(src)])
    installed = f"{ca_target['base_ca_dir']}/{src.stem}.crt"
    return StandIn(files={installed: src.read_text(),
                          "/etc/ssl/certs/ca-certificates.crt": bundle}), ca_target


@pytest.mark.skipif(not SYSTEM_BUNDLE.exists(), reason="the controller has no CA bundle to copy")
def test_ca_check_passes_a_certificate_in_the_bundle(tmp_path):
    src = tmp_path / "lab-ca.pem"
    src.write_text(_first_certificate())
    test_base.test_extra_ca_certificates_trusted(*_ca_host(src, SYSTEM_BUNDLE.read_text()))


def test_ca_check_fails_a_file_that_is_not_a_certificate(tmp_path):
    src = tmp_path / "lab-ca.pem"
    src.write_text("BEGIN\n")  # a fragment found in any bundle's text
    host, ca_target = _ca_host(src, "BEGIN\n-----BEGIN CERTIFICATE-----\nAAAA\n"
                                    "-----END CERTIFICATE-----\n")
    with pytest.raises(AssertionError, match="holds no PEM certificate"):
        test_base.test_extra_ca_certificates_trusted(host, ca_target)


@pytest.mark.skipif(not SYSTEM_BUNDLE.exists(), reason="the controller has no CA bundle to copy")
def test_ca_check_fails_a_certificate_missing_from_the_bundle(tmp_path):
    src = tmp_path / "lab-ca.pem"
    src.write_text(_first_certificate())
    host, ca_target = _ca_host(src, "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                    "-----END CERTIFICATE-----\n")
    with pytest.raises(AssertionError, match="not in the host's CA bundle"):
        test_base.test_extra_ca_certificates_trusted(host, ca_target)


# 6. the accuracy bar: the inventory's, never the one the host reports -------------------------


@dataclass
class Plan:
    torch: TorchStack = TorchStack(version="2.14.0", variant="cpu")
    tensorflow: TensorFlowStack = TensorFlowStack()
    notes: tuple = ()


def _trained(name: str, accuracy: float, host_bar: float, sample: bool = False,
             script_sha256: str | None = None, record_problems: tuple = ()) -> StandIn:
    """A host whose environment's record check finds `record_problems` and whose run of the
    controller's training check (dlws/controller_code.py's runner) reports `result`."""
    from dlws.verify import integrity

    result = {"status": "passed", "device": "cpu", "test_accuracy": accuracy,
              "min_accuracy": host_bar, "dataset_is_sample": sample}
    helpers._RUNS.pop((name, "torch"), None)
    integrity._RESULTS.pop((name, "record"), None)
    report = {"results": [result], "script_sha256": script_sha256 or helpers.TRAIN_CHECK.sha256}
    record = {"mode": "full", "files": 10, "bytes_hashed": 100, "seconds": 0.1, "workers": 2,
              "problem_count": len(record_problems), "problems": list(record_problems)}
    return StandIn(runs={
        "dlws_record_check.py": Out(stdout=json.dumps({"sha256": "x", "runs": {
            "record": [0, json.dumps(record), ""]}})),
        "dlws_train_check.py": Out(stdout=json.dumps({
            "sha256": helpers.TRAIN_CHECK.sha256,
            "runs": {"torch": [0, json.dumps(report), ""]}}))})


def _mnist(host, name: str) -> None:
    """verify's training check on a stand-in host, as pytest would run it."""
    chosen, plan = target(name), Plan()
    test_training.test_mnist_trains(host, chosen, plan, "torch", lambda *a: None,
                                    lambda framework: helpers.train(host, chosen, plan, framework))


def test_training_refused_where_the_environment_differs_from_its_records():
    # Code appended to numpy must not run as root: the trainings are not started at all.
    host = _trained("ws-tampered", 0.97, 0.95,
                    record_problems=("numpy-2.4.6: numpy/__init__.py: sha256 differs",))
    with pytest.raises(AssertionError, match="not run: the files of /opt/dlws/venv differ"):
        _mnist(host, "ws-tampered")
    assert not any("dlws_train_check.py" in command for command in host.commands)


def test_training_check_that_is_not_the_controllers_fails():
    host = _trained("ws-other-script", 0.97, 0.95, script_sha256="0" * 64)
    with pytest.raises(AssertionError, match="the controller's copy"):
        _mnist(host, "ws-other-script")


def test_accuracy_check_passes_at_the_inventory_bar():
    host = _trained("ws-acc-ok", 0.97, 0.95)
    _mnist(host, "ws-acc-ok")


def test_accuracy_check_holds_the_inventory_bar_not_the_hosts():
    # The host says its bar was 0.10; the inventory says 0.95.
    host = _trained("ws-acc-low", 0.50, 0.10)
    with pytest.raises(AssertionError, match="under the inventory's bar 0.95"):
        _mnist(host, "ws-acc-low")


def test_accuracy_check_holds_the_inventory_sample_bar():
    host = _trained("ws-acc-sample", 0.80, 0.10, sample=True)
    with pytest.raises(AssertionError, match="under the inventory's bar 0.85"):
        _mnist(host, "ws-acc-sample")


# 7. NVIDIA's keyring: a second key in it fails the host ---------------------------------------


def test_nvidia_keyring_check_fails_with_a_second_key():
    from dlws.roles import nvidia_repo
    from dlws.stack.records import OsStack

    class Debian13:
        os = OsStack(id="debian", release="13")

    # debian13's own key (8793F200), not the other paths' 3bf863cc.
    fingerprint = "02182E60104FCDC26EAE1B8597A5D4CB8793F200"
    listing = f"pub:-:4096:1:A:1:::-:::scSC:\nfpr:::::::::{fingerprint}:\n"
    second = "pub:-:255:22:B:1:::-:::scSC:\nfpr:::::::::" + "1" * 40 + ":\n"
    files = {nvidia_repo.SOURCES: "Types: deb\n"}

    def check(listing: str) -> None:
        host = StandIn(runs={"gpg": Out(stdout=listing)}, files=files)
        test_security.test_nvidia_keyring_holds_exactly_its_key(host, Debian13(),
                                                                fact_reader(host))

    check(listing)
    with pytest.raises(AssertionError, match="expected only"):
        check(listing + second)
    # The other paths' key in debian13's keyring is the wrong signer.
    other = "pub:-:4096:1:A:1:::-:::scSC:\nfpr:::::::::EB693B3035CD5710E231E123A4B469963BF863CC:\n"
    with pytest.raises(AssertionError, match="expected only"):
        check(other)


def test_training_is_skipped_where_the_plan_installs_no_framework():
    """frameworks_torch = 'none': the record exists but names no version, so nothing to train."""
    host = _trained("ws-acc-none", 0.0, 0.0)
    with pytest.raises(pytest.skip.Exception, match="the plan installs no torch"):
        chosen, plan = target("ws-acc-none"), Plan(torch=TorchStack())
        test_training.test_mnist_trains(
            host, chosen, plan, "torch", lambda *a: None,
            lambda framework: helpers.train(host, chosen, plan, framework))


@pytest.mark.parametrize(("also", "passes"), [
    ({"framework": "torch", "version": "2.13.0+cpu"}, True),
    ({"framework": "torch", "error": "ImportError: libtorch_cpu.so: undefined symbol"}, False),
    (None, False)], ids=["imported", "clash", "not-asked"])
def test_one_process_check_on_a_cpu_host_reads_the_tensorflow_training(also, passes):
    """On a CPU host training both side by side, the one-process check holds the TensorFlow
    training's report: torch imported beside it passes; an import error, or a report without
    the import (a refused or broken training), fails."""
    target = {"gpu_count": 0, "verify_frameworks": ["tensorflow", "torch"]}
    plan = SimpleNamespace(tensorflow=SimpleNamespace(package="tensorflow-cpu==2.21.0",
                                                      version="2.21.0"),
                           torch=SimpleNamespace(version="2.13.0"))
    report = {"framework_version": "2.21.0", **({"also_imported": also} if also else {})}
    recorded = {}
    check = test_frameworks.test_frameworks_import_together_in_one_process

    def run():
        check(None, target, plan, "/opt/dlws/venv/bin/python",
              lambda framework: (0, report, "refused: files differ"), recorded.__setitem__)

    if passes:
        run()
        assert recorded["frameworks.one_process"]["torch"] == "2.13.0+cpu"
    else:
        with pytest.raises(AssertionError, match="torch was not imported"):
            run()


def test_the_record_check_starts_early_runs_once_and_still_gates_the_trainings():
    # verify starts the RECORD check at the host's first check (conftest's `host`); the
    # trainings then wait for that run, and refuse on what it found.
    import threading

    from dlws.verify import integrity

    host = _trained("ws-early", 0.97, 0.95,
                    record_problems=("numpy-2.4.6: numpy/__init__.py: sha256 differs",))
    integrity._STARTED.pop(("ws-early", "record"), None)
    release, threads = threading.Event(), []
    answer = host.run

    def run(command: str) -> Out:
        if "dlws_record_check.py" in command:
            threads.append(threading.current_thread().name)
            assert release.wait(10)
        return answer(command)

    host.run = run
    integrity.start_record_check(host, target("ws-early"))
    integrity.start_record_check(host, target("ws-early"))  # once per host and run
    threading.Timer(0.2, release.set).start()
    with pytest.raises(AssertionError, match="not run: the files of /opt/dlws/venv differ"):
        _mnist(host, "ws-early")
    assert threads == ["record check ws-early"]
    assert not any("dlws_train_check.py" in command for command in host.commands)


@pytest.mark.parametrize("check", ["imports", "one-process"])
def test_checks_that_import_the_frameworks_as_root_wait_for_the_record_check(check):
    """Where a framework is imported outside the trainings (a framework verify does not train,
    a GPU host's one-process check), it is the environment's code run as root too: refused
    on the record check's finding, the import never started."""
    host = _trained("ws-gate", 0.97, 0.95,
                    record_problems=("numpy-2.4.6: numpy/__init__.py: sha256 differs",))
    plan = SimpleNamespace(tensorflow=SimpleNamespace(package="tensorflow==2.21.0",
                                                      version="2.21.0"),
                           torch=SimpleNamespace(version="2.13.0"))
    with pytest.raises(AssertionError, match="not run: the files of /opt/dlws/venv differ"):
        if check == "imports":
            test_frameworks.test_framework_imports(
                host, target("ws-gate", verify_frameworks=["torch"]), plan,
                "/opt/dlws/venv/bin/python", "tensorflow", lambda *a: None, None)
        else:
            test_frameworks.test_frameworks_import_together_in_one_process(
                host, target("ws-gate", gpu_count=2), plan, "/opt/dlws/venv/bin/python",
                None, lambda *a: None)
    assert [c for c in host.commands if "import" in c and "dlws_record_check" not in c] == []
