"""tools/gpu_sources.py, the online step, on tiny stand-ins of its real inputs: a Debian package
built here with dpkg-deb and a git repository with two release tags."""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not shutil.which("dpkg-deb") or not shutil.which("git"),
                                reason="needs dpkg-deb and git")


@pytest.fixture()
def tool():
    spec = importlib.util.spec_from_file_location("gpu_sources", ROOT / "tools/gpu_sources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_deb(tmp_path: Path, package: str, version: str, files: dict[str, bytes]) -> Path:
    root = tmp_path / f"{package}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: amd64\n"
        "Maintainer: dlws tests <tests@example.invalid>\nDescription: stand-in\n")
    for path, content in files.items():
        target = root / path.lstrip("./")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    deb = tmp_path / f"{package}_{version}_amd64.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)],
                   check=True, capture_output=True)
    return deb


def test_supported_gpus_json_becomes_rows(tool, tmp_path):
    chips = {"chips": [
        {"devid": "0x2335", "subdevid": "0x18BE", "subvendorid": "0x10DE", "name": "NVIDIA H200",
         "features": ["runtimepm", "kernelopen"]},
        {"devid": "0x1004", "name": "GeForce GTX 780", "legacybranch": "470.xx",
         "features": []},
    ]}
    deb = build_deb(tmp_path, "nvidia-driver", "550.163.01-2", {
        tool.SUPPORTED_GPUS: gzip.compress(json.dumps(chips).encode())})
    version, rows = tool.supported_gpus(deb)
    assert version == "550.163.01-2"
    assert rows == ["2335\t10DE\t18BE\t\t1\tNVIDIA H200",
                    "1004\t\t\t470.xx\t0\tGeForce GTX 780"]


def test_nvidia_detect_lists_become_rows(tool, tmp_path):
    deb = build_deb(tmp_path, "nvidia-detect", "535.261.03-1", {
        "./usr/share/nvidia/nvidia.ids": b"10DE2330\n10DE1EB8\n",
        "./usr/share/nvidia/nvidia-tesla-535.ids": b"10DE1EB8\n",
    })
    version, rows = tool.detect_lists(deb)
    assert version == "535.261.03-1"
    assert rows == ["1EB8\ttesla-535,nvidia", "2330\tnvidia"]  # in file name order


def test_readme_tables_give_each_branchs_first_tag(tool, tmp_path):
    repo = tmp_path / "open-gpu-kernel-modules"
    repo.mkdir()

    def git(*args):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    table = "## Compatible GPUs\n\n| Product Name | GPU IDs |\n| --- | --- |\n"
    for tag, rows in (("550.40.07", ["| NVIDIA H100 80GB HBM3 | 2330 10DE 16C0 |"]),
                      ("550.40.65", ["| NVIDIA H100 80GB HBM3 | 2330 10DE 16C0 |",
                                     "| NVIDIA H200 | 2335 10DE 18BE |"]),
                      ("580.65.06", ["| NVIDIA H200 | 2335 10DE 18BE |"])):
        (repo / "README.md").write_text(table + "\n".join(rows) + "\n")
        git("add", "README.md")
        git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", tag)
        git("tag", tag)
    newest, lines = tool.readme_tables(repo)
    assert newest == {"550": "550.40.65", "580": "580.65.06"}
    # H100 is in 550's newest tag but not 580's: listed for 550 only; H200 from 550.40.65.
    assert lines == ["2330\t10DE\t16C0\t550:550.40.07\tNVIDIA H100 80GB HBM3",
                     "2335\t10DE\t18BE\t550:550.40.65,580:580.65.06\tNVIDIA H200"]
