"""roles/containers per OS, engine source and GPU: the exact operations it plans, offline.

Each case is a pyinfra @fake host answering recorded facts (tests/fake_hosts.py); the real
deploy file is loaded and every operation's commands generated. Docker's and NVIDIA's
repositories and a GPU are not reachable here: this is the plan, not a run.
"""

from __future__ import annotations

import json

import pytest

from dlws.facts.containers import CDI_SPEC, DOCKER_DAEMON_JSON, DOCKERD_CONFIG_CHECK
from dlws.roles import nvidia_repo
from dlws.roles.containers import DEFAULTS, _docker_repo, _gpu
from dlws.stack.services import DOCKER_REPO_PACKAGES, TOOLKIT_PACKAGES
from tests.fake_hosts import Run, facts, plan

OSES = {"ubuntu-22.04": ("ubuntu", "jammy"), "ubuntu-24.04": ("ubuntu", "noble"),
        "debian-12": ("debian", "bookworm"), "debian-13": ("debian", "trixie")}
SOURCES = ("distro", "docker_repo")
GPUS = {"no-gpu": (None, 0, None), "rtx-4090": ("rtx-4090", 1, "NVIDIA GeForce RTX 4090")}
# Debian's archive has no Blackwell driver: NVIDIA's repository carries the GPU cases there.
DRIVER_SOURCE = {"ubuntu": "auto", "debian": "cuda_repo"}
CASES = [(os, source, gpu) for os in OSES for source in SOURCES for gpu in GPUS]
TOOLKIT = [f"{name}=1.18.0-1" for name in TOOLKIT_PACKAGES]


def run_case(os: str, source: str, gpu: str, **more) -> Run:
    lspci, count, model = GPUS[gpu]
    data = {"gpu_count": count, "python_env_require_hashes": False,
            "containers_engine": "docker", "containers_engine_source": source,
            "nvidia_driver_source": DRIVER_SOURCE[OSES[os][0]],
            "fake_responses": facts(os, lspci, **more.pop("facts", {}))}
    if model:
        data["gpu_model"] = model
    name = f"@fake/{os}_{source}_{gpu}"
    return plan({name: {**data, **more}})[name]


def bare(name: str) -> str:
    """An operation's name without its deploy's ("Containers | Write ...")."""
    return name.split(" | ")[-1]


def containers_ops(run: Run) -> list:
    """The containers role's own operations (the role runs last)."""
    first = next(i for i, op in enumerate(run.ops) if op.name.startswith("Containers | "))
    return run.ops[first:]


def installs(ops) -> list[list[str]]:
    return [[w for w in c.split(" install ", 1)[1].split() if not w.startswith("-")]
            for op in ops for c in op.commands if "apt-get" in c and " install " in c]


@pytest.mark.parametrize(("os", "source", "gpu"), CASES, ids=[f"{o}_{s}_{g}" for o, s, g in CASES])
def test_containers_plan(os, source, gpu):
    run = run_case(os, source, gpu)
    assert run.error is None, run.error
    ops = containers_ops(run)
    text = Run(ops=ops).describe()
    os_id, codename = OSES[os]
    uploads = Run(ops=ops).uploads()

    # The engine, from where the inventory said.
    engine = [op for op in ops if bare(op.name).startswith("Install the Docker engine")]
    assert len(engine) == 1, text
    want = ["docker.io"] if source == "distro" else list(DOCKER_REPO_PACKAGES)
    assert installs(engine) == [want], text
    docker_sources = uploads.get(_docker_repo.SOURCES)
    if source == "docker_repo":
        assert docker_sources == (
            "# Managed by dlws (roles/containers): Docker's repository.\n"
            f"Types: deb\nURIs: https://download.docker.com/linux/{os_id}\nSuites: {codename}\n"
            f"Components: stable\nArchitectures: amd64\nSigned-By: {_docker_repo.KEYRING}\n")
        [key] = [op for op in ops if bare(op.name).startswith("Install Docker's repository key")]
        assert key.conditional, "fetched only while the keyring is not exactly that key"
        [script] = key.commands
        assert f"-- https://download.docker.com/linux/{os_id}/gpg;" in script, script
        assert f'[ "$f" != {_docker_repo.KEY_FINGERPRINT} ]' in script, script
        assert script.endswith(f"mv -f -- {_docker_repo.KEYRING}.dlws-new {_docker_repo.KEYRING}")
        order = [op.name for op in ops]
        assert order.index(key.name) < order.index(engine[0].name)
    else:
        assert docker_sources is None and "download.docker.com" not in text, text

    # daemon.json as declared; systemd restarts Docker only after dockerd accepted the file.
    assert json.loads(uploads[DOCKER_DAEMON_JSON]) == DEFAULTS["containers_daemon_json"]
    [restart] = [op for op in ops if "restart Docker" in op.name]
    assert restart.commands == [DOCKERD_CONFIG_CHECK, "systemctl restart docker"], text
    assert restart.conditional
    assert [op for op in ops if bare(op.name) == "Start Docker and start it at boot"], text
    assert not any("usermod" in c or "useradd" in c for op in ops for c in op.commands), (
        "nobody joins the docker group unless declared")

    # The toolkit: NVIDIA's libnvidia-container repository, key checked, versions pinned.
    toolkit_sources = uploads.get(nvidia_repo.TOOLKIT_SOURCES)
    if gpu == "no-gpu":
        assert toolkit_sources is None and "nvidia-ctk" not in text, text
        assert "nvidia.github.io" not in text, text
        return
    assert toolkit_sources == (
        "# Managed by dlws (roles/nvidia_repo): NVIDIA's container toolkit repository.\n"
        "Types: deb\nURIs: https://nvidia.github.io/libnvidia-container/stable/deb/amd64\n"
        f"Suites: /\nSigned-By: {nvidia_repo.TOOLKIT_KEYRING}\n")
    [key] = [op for op in ops if bare(op.name).startswith("Install NVIDIA's container toolkit key")]
    assert key.conditional
    [script] = key.commands
    assert "-- https://nvidia.github.io/libnvidia-container/gpgkey;" in script, script
    assert f'[ "$f" != {nvidia_repo.TOOLKIT_KEY_FINGERPRINT} ]' in script, script
    assert script.endswith(f"mv -f -- {nvidia_repo.TOOLKIT_KEYRING}.dlws-new "
                           f"{nvidia_repo.TOOLKIT_KEYRING}"), script
    [toolkit] = [op for op in ops
                 if bare(op.name).startswith("Install the NVIDIA container toolkit")]
    assert installs([toolkit]) == [TOOLKIT], text
    order = [op.name for op in ops]
    assert order.index(key.name) < order.index(toolkit.name)
    sources_at = next(i for i, op in enumerate(ops)
                      if nvidia_repo.TOOLKIT_SOURCES in op.uploads)
    assert sources_at < order.index(toolkit.name)
    [runtime] = [op for op in ops if "nvidia-ctk runtime configure" in op.name]
    # CDI by default where the engine has it (Docker's repository; Debian 13's docker.io 26.1);
    # elsewhere Docker stays on the nvidia runtime, with /dev/char links.
    cdi = source == "docker_repo" or os == "debian-13"
    assert runtime.commands == ["nvidia-ctk runtime configure --runtime=docker"
                                + (" --cdi.enabled" if cdi else "")], text
    assert order.index(runtime.name) < order.index(restart.name)
    assert (_gpu.DEV_CHAR_RULE in uploads) is (not cdi), text
    assert uploads[_gpu.REFRESH_DROPIN] == _gpu.REFRESH_DROPIN_CONTENT, text
    # No driver loaded on this fresh host yet: the spec waits for the reboot (see below).
    assert "cdi generate" not in text, text


def test_case_count():
    assert len(CASES) == 16  # 4 releases x 2 engine sources x GPU / no GPU


def _cdi_ops(run: Run) -> list:
    return [op for op in run.ops if any("nvidia-ctk cdi generate" in c for c in op.commands)]


@pytest.mark.parametrize(("spec", "action"), [
    (None, "Generate"),  # driver loaded, no spec yet
    ("rtx-4090x2_580.yaml", None),  # made for the loaded driver: nothing to do
], ids=["no-spec", "current-spec"])
def test_cdi_spec_follows_the_loaded_driver(spec, action):
    run = run_case("ubuntu-24.04", "distro", "rtx-4090",
                   facts={"driver": "580.95.05", "cdi_spec": spec})
    ops = _cdi_ops(run)
    if action is None:
        assert not ops, run.describe()
        return
    [op] = ops
    assert bare(op.name).startswith(action) and "580.95.05" in op.name, op.name
    assert op.commands == [f"mkdir -p -- /etc/cdi && nvidia-ctk cdi generate --output={CDI_SPEC}"]


def test_cdi_spec_is_regenerated_when_the_driver_changes():
    # The spec was made for 580.95.05; the host now runs 590.44.01 (the same branch installed,
    # so the driver role keeps it).
    run = run_case("ubuntu-24.04", "distro", "rtx-4090", nvidia_driver_branch="590",
                   nvidia_driver_source="cuda_repo",
                   facts={"driver": "590.44.01", "cdi_spec": "rtx-4090x2_580.yaml"})
    assert run.error is None, run.error
    [op] = _cdi_ops(run)
    assert bare(op.name).startswith("Regenerate"), op.name
    assert "580.95.05" in op.name and "590.44.01" in op.name, op.name


def test_second_run_keeps_daemon_json_and_runtime():
    """daemon.json as declared plus the nvidia runtime nvidia-ctk added: nothing to write."""
    written = {**DEFAULTS["containers_daemon_json"],
               "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}
    run = run_case("ubuntu-24.04", "distro", "rtx-4090",
                   facts={"daemon_json": json.dumps(written, indent=4)})
    names = [bare(op.name) for op in run.ops]
    assert not any(DOCKER_DAEMON_JSON in n and n.startswith(("Write", "Keep")) for n in names)
    assert not any("nvidia-ctk runtime configure" in n for n in names)
    assert not any("restart Docker" in n for n in names), names


def test_changed_daemon_json_keeps_the_original_first():
    run = run_case("debian-12", "distro", "no-gpu", facts={"daemon_json": '{"debug": true}'})
    names = [bare(op.name) for op in run.ops]
    keep = names.index(f"Keep the original {DOCKER_DAEMON_JSON} as "
                       f"{DOCKER_DAEMON_JSON}.dlws-orig")
    write = next(i for i, n in enumerate(names) if n.startswith(f"Write {DOCKER_DAEMON_JSON}"))
    assert keep < write
    assert run.ops[keep].commands == [
        f"cp -n -p -- {DOCKER_DAEMON_JSON} {DOCKER_DAEMON_JSON}.dlws-orig"]


def test_declared_docker_users_only():
    run = run_case("debian-12", "distro", "no-gpu", containers_docker_users=["alice"])
    users = [op for op in run.ops if "use Docker" in op.name]
    assert [bare(op.name) for op in users] == [
        "Let alice use Docker (group docker: root-equivalent)"]
    assert any("docker" in c and "alice" in c for c in users[0].commands), users[0].commands


def test_container_host_gets_no_toolkit_and_no_restart():
    run = run_case("debian-12", "distro", "rtx-4090", nvidia_driver_source="cuda_repo",
                   facts={"container": "docker"})
    text = run.describe()
    assert "nvidia-ctk" not in text and "nvidia.github.io" not in text, text
    [check] = [op for op in run.ops if bare(op.name).startswith("Check daemon.json with dockerd")]
    assert check.commands == [DOCKERD_CONFIG_CHECK] and "systemctl" not in text


def test_engine_none_plans_nothing():
    run = run_case("debian-12", "distro", "rtx-4090", containers_engine="none",
                   nvidia_driver_source="cuda_repo")
    assert run.error is None, run.error
    assert not [op for op in run.ops if op.name.startswith("Containers | ")], run.describe()


# --- the NGC route ---------------------------------------------------------------------------


def test_ngc_image_for_an_rtx_5090_host():
    lspci, count, model = "rtx-5090", 1, "NVIDIA GeForce RTX 5090"
    data = {"gpu_count": count, "gpu_model": model, "python_env_require_hashes": False,
            "frameworks_tensorflow": "ngc", "containers_engine": "docker",
            "fake_responses": facts("ubuntu-24.04", lspci)}
    run = plan({"@fake/ws-5090": data})["@fake/ws-5090"]
    assert run.error is None, run.error
    assert run.stack.tensorflow.image == "nvcr.io/nvidia/tensorflow:25.02-tf2-py3"
    assert run.stack.tensorflow.package is None
    assert not any("tensorflow" in c for op in run.named("Install the frameworks")
                   for c in op.commands), "no pip TensorFlow beside NGC's"


@pytest.mark.parametrize(("driver", "image"), [
    ("575.64.05", "nvcr.io/nvidia/tensorflow:25.02-tf2-py3"),  # R575 >= R570: runs
    ("565.57.01", None),  # R565 < R570: refused, naming the key and the branch
], ids=["driver-575", "driver-565"])
def test_ngc_driver_minimum_both_ways(driver, image):
    """A container host keeps its host's driver (no driver planned): that driver decides."""
    data = {"gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 5090",
            "python_env_require_hashes": False, "frameworks_tensorflow": "ngc",
            "containers_engine": "docker", "frameworks_torch": "none",
            "fake_responses": facts("ubuntu-24.04", "rtx-5090", container="docker",
                                    driver=driver)}
    run = plan({"@fake/ws-5090": data})["@fake/ws-5090"]
    if image:
        assert run.error is None and run.stack.tensorflow.image == image, run.describe()
        return
    assert run.ops == [], "refused before any operation"
    assert "host @fake/ws-5090: frameworks_tensorflow:" in run.error, run.error
    assert "R570" in run.error and "R565" in run.error, run.error
    assert "nvidia_driver_branch to 570" in run.error, run.error


def test_ngc_without_an_engine_is_refused():
    data = {"gpu_count": 1, "gpu_model": "NVIDIA GeForce RTX 5090",
            "python_env_require_hashes": False, "frameworks_tensorflow": "ngc",
            "fake_responses": facts("ubuntu-24.04", "rtx-5090")}
    run = plan({"@fake/ws-5090": data})["@fake/ws-5090"]
    assert run.ops == [] and "host @fake/ws-5090: frameworks_tensorflow:" in run.error
    assert "containers_engine = 'docker'" in run.error, run.error


def test_gpu_runner_with_a_bare_engine_gets_the_toolkit(monkeypatch):
    """molecule/gpu's create step: deploy/containers.py on the runner (molecule/gpu/runner.py)."""
    import runpy

    from tests.fake_hosts import ROOT

    monkeypatch.setenv("DLWS_GPU_MODEL", "Tesla T4")
    [(_, data)] = runpy.run_path(str(ROOT / "molecule" / "gpu" / "runner.py"))["hosts"]
    data = {**data, "fake_responses": facts("ubuntu-24.04", "t4", driver="580.95.05")}
    run = plan({"@fake/runner": data}, deploy=str(ROOT / "deploy" / "containers.py"))[
        "@fake/runner"]
    assert run.error is None, run.error
    text = run.describe()
    assert installs([op for op in run.ops if "container toolkit 1.18.0-1" in op.name]) == [
        TOOLKIT], text
    assert "nvidia-ctk runtime configure --runtime=docker" in text, text
    assert f"nvidia-ctk cdi generate --output={CDI_SPEC}" in text, "the runner's driver is loaded"
    assert not run.named("NVIDIA driver") and not run.named("CUDA"), "the runner keeps its own"
    assert "dlws-components.sources" not in text, "the runner's apt sources are left alone"
