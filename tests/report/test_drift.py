"""Drift between verify runs: what changed per host, the noise rule, --diff and --since-pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dlws import report
from dlws.report import drift

RECORDED = Path(__file__).parents[1] / "fixtures" / "report"
SANDBOX, GPU = "@docker/dlws-sandbox", "@docker/dlws-gpu-declared"
BASE_FACTS = {"packages.dpkg": {"bash": "5.2.15-2+b7", "libc6": "2.36-9+deb12u10"},
              "packages.venv": {"numpy": "2.4.6", "mlxtend": "0.25.0"},
              "kernel.release": "6.1.0-28-amd64", "nvidia_driver.version": "550.163.01",
              "gpu.0.ecc.errors.corrected.volatile.total": 0,
              "torch.training.samples_per_second": 17000.0}


def make_run(folder: Path, name: str, facts: dict[str, dict], junit: str = "junit.xml") -> Path:
    """A run folder reports/<inventory>/<name> from the recorded JUnit XML and these facts."""
    run = folder / name
    run.mkdir(parents=True)
    side = json.loads((RECORDED / "hosts.json").read_text())
    for host, extra in facts.items():
        side["hosts"][host]["facts"] = extra
    (run / report.FACTS).write_text(json.dumps(side))
    shutil.copyfile(RECORDED / junit, run / report.JUNIT)
    return run


def test_one_changed_package_is_all_the_diff_names():
    after = {**BASE_FACTS, "packages.venv": {**BASE_FACTS["packages.venv"], "mlxtend": "0.24.0"},
             "torch.training.samples_per_second": 16000.0}  # -6 %: noise
    changes = drift.host_changes(BASE_FACTS, after)
    assert changes == {"packages.venv": {"added": {}, "removed": {},
                                         "changed": {"mlxtend": ["0.25.0", "0.24.0"]}}}
    assert drift.lines(changes) == ["venv package changed: mlxtend 0.25.0 -> 0.24.0"]


def test_added_and_removed_dpkg_packages_driver_kernel_and_counters():
    after = {**BASE_FACTS, "packages.dpkg": {"bash": "5.2.15-2+b7", "hello": "2.10-3"},
             "kernel.release": "6.1.0-30-amd64", "nvidia_driver.version": "550.144.03",
             "gpu.0.ecc.errors.corrected.volatile.total": 4}
    lines = drift.lines(drift.host_changes(BASE_FACTS, after))
    assert lines == ["dpkg package added: hello 2.10-3",
                     "dpkg package removed: libc6 2.36-9+deb12u10",
                     "kernel.release: 6.1.0-28-amd64 -> 6.1.0-30-amd64",
                     "nvidia_driver.version: 550.163.01 -> 550.144.03",
                     "GPU health gpu.0.ecc.errors.corrected.volatile.total: 0 -> 4"]


def test_a_check_that_ran_in_one_run_only_is_named_not_compared():
    """A verify run with -k records only its checks' facts: no `2.21.0 -> None`."""
    full = {**BASE_FACTS, "tensorflow.version": "2.21.0"}
    partial = {"kernel.release": BASE_FACTS["kernel.release"]}  # e.g. -k test_base
    document = drift.diff({SANDBOX: full}, {SANDBOX: partial}, {SANDBOX: "run-a"})
    host = document["hosts"][SANDBOX]
    assert host["changes"] == {}
    assert host["lines"][0] == "nothing changed"
    assert host["not_run"]["later"] == ["gpu.0.ecc.errors.corrected.volatile.total",
                                        "nvidia_driver.version", "packages.dpkg",
                                        "packages.venv", "tensorflow.version",
                                        "torch.training.samples_per_second"]
    assert host["lines"][1].startswith("not compared (the check did not run in the later run): "
                                       "gpu.0.ecc")
    # The other way round: the earlier run is the partial one.
    back = drift.diff({SANDBOX: partial}, {SANDBOX: full}, {SANDBOX: "run-a"})["hosts"][SANDBOX]
    assert back["changes"] == {} and back["not_run"]["earlier"][-2] == "tensorflow.version"


def test_a_check_that_ran_in_both_runs_and_lost_its_value_is_a_change():
    before = {**BASE_FACTS, "tensorflow.version": "2.21.0"}
    after = {**BASE_FACTS, "tensorflow.version": None}  # ran, found no TensorFlow
    assert drift.lines(drift.host_changes(before, after)) == ["tensorflow.version: 2.21.0 -> None"]


@pytest.mark.parametrize(("after", "reported"), [(14600.0, False), (14400.0, True),
                                                 (19500.0, False), (19600.0, True)])
def test_throughput_counts_only_beyond_the_noise_rule(after, reported):
    # 15 % of 17,000 = 2,550: 14,600 and 19,500 are within it; 14,400 and 19,600 are not.
    changes = drift.host_changes(BASE_FACTS, {**BASE_FACTS,
                                              "torch.training.samples_per_second": after})
    assert ("throughput" in changes) is reported, changes


def test_a_host_that_wanders_between_runs_widens_its_own_band():
    # Earlier passing runs at 9,000 and 17,000 samples/s: 8,000 is inside 7,650..19,550.
    history = [{**BASE_FACTS, "torch.training.samples_per_second": v} for v in (17000, 9000)]
    after = {**BASE_FACTS, "torch.training.samples_per_second": 8000.0}
    assert drift.host_changes(BASE_FACTS, after, history=history) == {}
    # A steady host (two runs at 17,000): the same 8,000 is a change, with its band named.
    steady = [BASE_FACTS, BASE_FACTS]
    [line] = drift.lines(drift.host_changes(BASE_FACTS, after, history=steady))
    assert line == ("throughput torch.training.samples_per_second: 17,000.0 -> 8,000.0 (-53%; "
                    "outside 14,450.0 to 19,550.0, the range of 2 earlier run(s) widened by "
                    "the noise rule)")


def test_diff_runs_in_the_terminal_json_and_html(tmp_path, capsys):
    folder = tmp_path / "reports" / "fleet_sandbox"
    a = make_run(folder, "20261129-100000", {SANDBOX: BASE_FACTS})
    b = make_run(folder, "20261129-110000", {SANDBOX: {
        **BASE_FACTS, "packages.dpkg": {**BASE_FACTS["packages.dpkg"], "hello": "2.10-3"}}})
    assert report.main(["--diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert f"{SANDBOX} (against {a}):\n  dpkg package added: hello 2.10-3\n" in out
    document = json.loads((b / "drift.json").read_text())
    assert document["hosts"][SANDBOX]["changes"] == {
        "packages.dpkg": {"added": {"hello": "2.10-3"}, "removed": {}, "changed": {}}}
    assert document["hosts"][GPU]["lines"] == ["nothing changed"]
    assert "dpkg package added: hello 2.10-3" in (b / "drift.html").read_text()


def test_since_pass_skips_failing_runs_per_host(tmp_path, capsys):
    # The recorded run fails on the sandbox host; a copy with its failures removed passes.
    xml = (RECORDED / "junit.xml").read_text()
    import re

    passing = re.sub(r"<failure.*?</failure>", "", xml, flags=re.S)
    (tmp_path / "passing.xml").write_text(passing)
    folder = tmp_path / "reports" / "fleet_sandbox"
    old = make_run(folder, "20261129-090000", {SANDBOX: BASE_FACTS})
    shutil.copyfile(tmp_path / "passing.xml", old / report.JUNIT)
    make_run(folder, "20261129-100000", {SANDBOX: {**BASE_FACTS, "kernel.release": "x"}})
    latest = make_run(folder, "20261129-110000", {SANDBOX: {
        **BASE_FACTS, "packages.venv": {**BASE_FACTS["packages.venv"], "numpy": "2.4.7"}}})
    assert report.main(["--since-pass", str(folder)]) == 0
    out = capsys.readouterr().out
    # Compared with 09:00 (the sandbox's last pass), not with the failing 10:00 run.
    assert f"{SANDBOX} (against {old}):\n  venv package changed: numpy 2.4.6 -> 2.4.7\n" in out
    assert "kernel.release" not in out
    # A verify run's own report carries the same comparison (report.json and report.html).
    report.write(latest)
    document = json.loads((latest / report.JSON_OUT).read_text())
    assert document["drift"]["hosts"][SANDBOX]["lines"] == [
        "venv package changed: numpy 2.4.6 -> 2.4.7"]
    assert "venv package changed: numpy 2.4.6 -&gt; 2.4.7" in (
        latest / report.HTML_OUT).read_text()


def test_runs_of_another_inventory_are_not_compared(tmp_path):
    folder = tmp_path / "reports" / "mixed"
    other = make_run(folder, "20261129-090000", {SANDBOX: BASE_FACTS})
    side = json.loads((other / report.FACTS).read_text())
    (other / report.FACTS).write_text(json.dumps({**side, "inventory": "inventory/other.py"}))
    latest = make_run(folder, "20261129-100000", {SANDBOX: BASE_FACTS})
    assert report.since_pass(latest) is None


def test_since_pass_on_the_first_run_says_so(tmp_path, capsys):
    run = make_run(tmp_path / "reports" / "x", "20261129-090000", {SANDBOX: BASE_FACTS})
    assert report.main(["--since-pass", str(run)]) == 0
    assert "first run kept beside it" in capsys.readouterr().out
