"""The containers role's checks run for real on this machine: dockerd's verdict on daemon.json
files; daemon.json and CDI decisions. (The repository key check, shared with NVIDIA's CUDA
repository, is tested with real gpg in tests/roles/nvidia_repo/test_repository_key.py.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from dlws.facts.containers import (
    cdi_gpu_indexes,
    dockerd_config_check,
    dockerd_config_verdict,
    parse_cdi_spec,
)
from dlws.roles.containers import cdi_decision, daemon_json_differs, without_nvidia_runtime

CDI_FIXTURE = Path(__file__).parents[2] / "fixtures" / "readings" / "cdi" / "rtx-4090x2_580.yaml"


@pytest.fixture()
def daemon_json():
    """A daemon.json that an unprivileged dockerd can read (pytest's tmp folders are 0700)."""
    if not shutil.which("dockerd"):
        pytest.skip("no dockerd on this machine (the role's integration test has one)")
    folder = Path(tempfile.mkdtemp(prefix="dlws-daemon-json-"))
    folder.chmod(0o755)
    path = folder / "daemon.json"

    def write(text: str) -> str:
        path.write_text(text)
        path.chmod(0o644)
        return str(path)

    yield write
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(("text", "valid", "words"), [
    ('{"log-driver": "json-file", "log-opts": {"max-size": "100m", "max-file": "3"}}', True,
     "valid"),
    ('{"log-driver": "json-file",', False, "unexpected EOF"),
    ('{"no-such-option": 1}', False, "no-such-option"),
    # What `nvidia-ctk runtime configure` would set, without the runtime it names.
    ('{"default-runtime": "nvidia"}', False, "default runtime 'nvidia' does not exist"),
], ids=["declared-default", "truncated", "unknown-key", "missing-runtime"])
def test_dockerd_gives_its_verdict_on_daemon_json(daemon_json, text, valid, words):
    out = subprocess.run(["sh", "-c", dockerd_config_check(daemon_json(text))],
                         capture_output=True, text=True, timeout=120)
    verdict, said = dockerd_config_verdict(out.stdout, out.returncode)
    assert verdict is valid, said
    assert words in said, said


def test_daemon_json_compare_ignores_only_the_nvidia_runtime():
    wanted = {"log-driver": "json-file"}
    with_runtime = {**wanted, "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-"
                                                                          "runtime"}}}
    assert not daemon_json_differs(with_runtime, wanted)
    assert without_nvidia_runtime({**with_runtime, "runtimes": {
        **with_runtime["runtimes"], "runc2": {"path": "runc"}}}) == {
        **wanted, "runtimes": {"runc2": {"path": "runc"}}}
    assert daemon_json_differs(None, wanted)
    assert daemon_json_differs({"_invalid": "{"}, wanted)
    assert daemon_json_differs({"log-driver": "local"}, wanted)


def test_cdi_spec_reading_and_decision():
    lines = CDI_FIXTURE.read_text().splitlines()
    spec = parse_cdi_spec(["module 580.95.05", "present", *lines])
    assert cdi_gpu_indexes(spec) == ["0", "1"] and "all" in spec["devices"]
    assert spec["driver"] == "580.95.05"
    assert cdi_decision(spec) == (False, "/etc/cdi/nvidia.yaml is current (driver 580.95.05)")
    newer = parse_cdi_spec(["module 590.44.01", "present", *lines])
    assert cdi_decision(newer)[0] and "Regenerate" in cdi_decision(newer)[1]
    assert cdi_decision(parse_cdi_spec(["module 580.95.05"]))[0]
    assert not cdi_decision(parse_cdi_spec(["present", *lines]))[0], "no module: wait"
    assert json.dumps(spec)  # JSON-ready for reports
