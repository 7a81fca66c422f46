"""The Molecule scenarios' shape, offline: one Ubuntu scenario whose release is a variable that
molecule.yml and the scenario's inventory read alike, covering every Ubuntu release dlws plans."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest
import yaml

from dlws.stack.table import OS_RELEASES

MOLECULE = Path(__file__).resolve().parent.parent / "molecule"
VARIABLE = re.compile(r"\$\{DLWS_UBUNTU_RELEASE:-(?P<default>[0-9.]+)\}")


def test_one_scenario_for_the_ubuntu_family():
    scenarios = sorted(p.name for p in MOLECULE.iterdir() if (p / "molecule.yml").exists())
    assert [s for s in scenarios if s.startswith("ubuntu")] == ["ubuntu"], scenarios


def test_ubuntu_release_is_one_variable_in_the_scenario_and_its_inventory(monkeypatch):
    text = (MOLECULE / "ubuntu" / "molecule.yml").read_text()
    [platform] = yaml.safe_load(text)["platforms"]
    defaults = {VARIABLE.search(platform[field]).group("default") for field in ("name", "image")}
    assert len(defaults) == 1, platform
    inventory = runpy.run_path(str(MOLECULE / "ubuntu" / "inventory.py"))
    assert inventory["RELEASE"] in defaults
    ubuntu = {release for os_id, release in OS_RELEASES if os_id == "ubuntu"}
    assert set(inventory["RELEASES"]) == ubuntu
    for release in sorted(ubuntu):
        monkeypatch.setenv("DLWS_UBUNTU_RELEASE", release)
        [(name, _)] = runpy.run_path(str(MOLECULE / "ubuntu" / "inventory.py"))["molecule"]
        expanded = VARIABLE.sub(release, platform["name"])
        assert name == f"@docker/{expanded}", (name, expanded)


def test_an_unknown_release_is_refused(monkeypatch):
    monkeypatch.setenv("DLWS_UBUNTU_RELEASE", "20.04")
    with pytest.raises(SystemExit, match="use one of 22.04, 24.04"):
        runpy.run_path(str(MOLECULE / "ubuntu" / "inventory.py"))
