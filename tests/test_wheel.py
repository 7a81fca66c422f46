"""The wheel as a new user installs it: built from this checkout, installed into a fresh virtual
environment outside it, and run from other directories against a bare Debian 12 container."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dlws.sandbox.docker_env import ensure_container, remove_container
from dlws.sandbox.images import ensure_debian_image

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"
CONTAINER = "i24-wheel"  # removed at the end
LAB_HOSTS = f'''"""The test's lab: one bare container, no frameworks (the wheel is tested)."""
sandbox = [("@docker/{CONTAINER}", {{"gpu_count": 0, "hardware_min_memory_gib": 1,
                                    "frameworks_tensorflow": "none",
                                    "frameworks_torch": "none"}})]
'''
# The controller's CA bundle and offline MNIST for containers (dlws.sandbox.data), as a lab
# behind the same proxy would write it.
LAB_GROUP_DATA = '''from dlws.sandbox.data import controller_data

globals().update(controller_data())
'''


def run(command: list[str], cwd: Path, timeout: int = 1800) -> subprocess.CompletedProcess:
    out = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    print(f"$ {' '.join(command)}  (in {cwd}, exit {out.returncode})\n{out.stdout[-3000:]}"
          f"\n{out.stderr[-6000:]}")
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory, docker_engine):
    """dlws from its wheel in a venv of its own (no checkout on its path), and a bare container."""
    where = tmp_path_factory.mktemp("wheel")
    built = run([str(UV), "build", "--wheel", "-o", str(where / "dist"), str(ROOT)], where, 600)
    assert built.returncode == 0
    [wheel] = (where / "dist").glob("dlws-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"dlws", wheel.name.rsplit("-", 3)[0]
                                                      + ".dist-info"}, "only dlws at the top"
    for part in ("dlws/deploy/workstation.py", "dlws/verify/conftest.py",
                 "dlws/roles/frameworks/files/dlws_train_check.py", "dlws/examples/sandbox.py",
                 "dlws/examples/group_data/all.py", "dlws/stack/data/gpus.json",
                 "dlws/pyinfra_config.py"):
        assert part in names, part
    venv = where / "venv"
    assert run([sys.executable, "-m", "venv", str(venv)], where).returncode == 0
    assert run([str(UV), "pip", "install", "--python", str(venv / "bin" / "python"),
                str(wheel)], where, 900).returncode == 0
    remove_container(CONTAINER)
    ensure_container(CONTAINER, ensure_debian_image("bookworm"))
    yield venv / "bin" / "dlws", where
    remove_container(CONTAINER)


def test_the_installed_wheel_plans_deploys_and_verifies_from_other_directories(installed):
    dlws, where = installed
    home, elsewhere, third = where / "home", where / "elsewhere", where / "third"
    for folder in (home, elsewhere, third):
        folder.mkdir()
    version = run([str(dlws), "--version"], home)
    assert version.returncode == 0 and version.stdout.startswith("dlws ")
    stack = run([str(dlws), "stack", "--os", "ubuntu-24.04", "--gpu",
                 "NVIDIA GeForce RTX 4090"], home)
    assert stack.returncode == 0 and "580" in stack.stdout
    assert run([str(dlws), "init", "lab/"], home).returncode == 0
    lab = home / "lab"
    assert (lab / "hosts.py").is_file() and (lab / "hosts.yml").is_file()
    (lab / "hosts.py").write_text(LAB_HOSTS)
    (lab / "group_data" / "sandbox.py").write_text(LAB_GROUP_DATA)

    plan = run([str(dlws), "plan", "lab/hosts.py"], home)
    assert plan.returncode == 0 and f"@docker/{CONTAINER}" in plan.stdout
    lock = run([str(dlws), "lock", "lab/hosts.py"], home)
    assert lock.returncode == 0
    assert list((lab / "locks").glob("*.txt")), "the lab's locks live beside its inventory"
    # From another directory, by a relative path: the deploy and its log under this directory.
    deploy = run([str(dlws), "deploy", "../home/lab/hosts.py", "-y"], elsewhere)
    assert deploy.returncode == 0
    [run_dir] = (elsewhere / "reports" / "hosts").iterdir()
    assert {"deploy.json", "deploy.txt", "deploy.log"} <= {p.name for p in run_dir.iterdir()}
    assert f"@docker/{CONTAINER}:" in (run_dir / "deploy.txt").read_text()
    assert "--> " in deploy.stderr and f"[@docker/{CONTAINER}] " in deploy.stderr
    # From a third directory, reports into --reports.
    verify = run([str(dlws), "verify", str(lab / "hosts.py"), "--reports", "out", "-x"], third)
    assert verify.returncode == 0
    [verify_dir] = (third / "out" / "hosts").iterdir()
    assert (verify_dir / "report.html").is_file() and (verify_dir / "junit.xml").is_file()
    assert not list((where / "venv").rglob("reports")), "nothing written into site-packages"
