"""roles/python_env's install while roles/base's apt-get install still runs beside it, run for
real here: the controller's uv and a real venv's pip, a stand-in apt-get (tests/roles/conftest.py)
and two local packages, nothing from the network (UV_OFFLINE, PIP_NO_INDEX, --find-links).

A package with a wheel installs at once, while apt-get still runs; a package that must be built
(an sdist alone) waits for the install beside, as the build tools come from it, then builds."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from dlws.roles.base import _apt
from dlws.roles.python_env import install_command

# The stand-in apt-get's run: long enough for a local install to end well inside it.
APT_SECONDS = 8

# The sdist's build backend, in the sdist itself (backend-path): its build needs nothing from an
# index. It writes the wheel by hand; the test builds the probe's wheel with it too.
BACKEND = '''
import base64, hashlib, os, zipfile

NAME, VERSION = open(os.path.join(os.path.dirname(__file__), "NAME")).read().split()


def _digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    info = f"{NAME}-{VERSION}.dist-info"
    files = {
        f"{NAME}/__init__.py": f"BUILT = {VERSION!r}\\n".encode(),
        f"{info}/METADATA": (f"Metadata-Version: 2.1\\nName: {NAME}\\n"
                             f"Version: {VERSION}\\n").encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: dlws-test\\nRoot-Is-Purelib: true\\n"
                         b"Tag: py3-none-any\\n",
    }
    record = "".join(f"{path},{_digest(data)},{len(data)}\\n" for path, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\\n").encode()
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as wheel:
        for path, data in files.items():
            wheel.writestr(path, data)
    return name
'''

PYPROJECT = """[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "{name}"
version = "{version}"
"""


def _source_tree(folder: Path, name: str, version: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "backend.py").write_text(BACKEND)
    (folder / "NAME").write_text(f"{name} {version}\n")
    (folder / "pyproject.toml").write_text(PYPROJECT.format(name=name, version=version))
    (folder / "PKG-INFO").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return folder


def _links(tmp_path: Path) -> Path:
    """A find-links folder: dlws_wheel_probe as a wheel, dlws_sdist_probe as an sdist alone."""
    links = tmp_path / "links"
    links.mkdir()
    wheel_tree = _source_tree(tmp_path / "src" / "wheel", "dlws_wheel_probe", "1.0")
    subprocess.run([sys.executable, "-c", "import sys, backend; backend.build_wheel(sys.argv[1])",
                    str(links)], cwd=wheel_tree, check=True)
    sdist_tree = _source_tree(tmp_path / "src" / "sdist", "dlws_sdist_probe", "1.0")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as sdist:
        sdist.add(sdist_tree, arcname="dlws_sdist_probe-1.0")
    (links / "dlws_sdist_probe-1.0.tar.gz").write_bytes(buffer.getvalue())
    return links


def _venv(tmp_path: Path, installer: str) -> Path:
    prefix = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", *(["--without-pip"] if installer == "uv" else []),
                    str(prefix)], check=True, timeout=120)
    return prefix


def _install(prefix: Path, requirement: str, installer: str, links: Path, env: dict
             ) -> subprocess.CompletedProcess:
    line = install_command(str(prefix), [requirement], installer=installer,
                           find_links=str(links), uv=str(Path(sys.executable).parent / "uv"),
                           beside=True)
    return subprocess.run(["sh", "-c", line], env=env, capture_output=True, text=True,
                          timeout=120)


def _imports(prefix: Path, module: str) -> str:
    out = subprocess.run([str(prefix / "bin" / "python"), "-c",
                          f"import {module}; print({module}.BUILT)"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip() if out.returncode == 0 else f"not importable: {out.stderr[-300:]}"


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_wheel_installs_at_once_and_a_build_waits_for_the_install_beside(
        fake_apt, tmp_path, installer):
    folder, env = fake_apt
    env = {**env, "FAKE_APT_SLEEP": str(APT_SECONDS), "UV_OFFLINE": "1", "UV_NO_INDEX": "1",
           "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "PIP_NO_INDEX": "1",
           "PIP_CACHE_DIR": str(tmp_path / "pip-cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    links, prefix = _links(tmp_path), _venv(tmp_path, installer)
    status = folder / "status"
    subprocess.run(["sh", "-c", _apt.beside_command(["build-essential", "python3-dev"])],
                   env=env, check=True, timeout=10)
    assert status.read_text().strip() == "running"

    wheel = _install(prefix, "dlws_wheel_probe==1.0", installer, links, env)
    assert wheel.returncode == 0, wheel.stderr[-2000:]
    # It did not wait: the install beside had not ended when it was done.
    assert status.read_text().strip() == "running", "the wheel's install waited for apt-get"
    assert _imports(prefix, "dlws_wheel_probe") == "1.0"

    built = _install(prefix, "dlws_sdist_probe==1.0", installer, links, env)
    assert built.returncode == 0, built.stderr[-2000:]
    # The wheels-only install refused to build; the second one went after the install beside.
    assert status.read_text().strip() == "0", "the build did not wait for apt-get"
    assert _imports(prefix, "dlws_sdist_probe") == "1.0"


def test_a_build_after_a_failed_install_beside_is_not_tried(fake_apt, tmp_path):
    """The build tools failed to install: the build is not tried without them, and the
    install fails with apt-get's own words."""
    folder, env = fake_apt
    env = {**env, "FAKE_APT_RC": "100", "UV_OFFLINE": "1", "UV_NO_INDEX": "1",
           "UV_CACHE_DIR": str(tmp_path / "uv-cache")}
    links, prefix = _links(tmp_path), _venv(tmp_path, "uv")
    subprocess.run(["sh", "-c", _apt.beside_command(["build-essential"])], env=env, check=True,
                   timeout=10)
    built = _install(prefix, "dlws_sdist_probe==1.0", "uv", links, env)
    assert built.returncode != 0
    assert "Unable to locate package nope" in built.stdout + built.stderr, built
    assert _imports(prefix, "dlws_sdist_probe").startswith("not importable")
