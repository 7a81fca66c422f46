"""dlws report on a recorded fleet run: the sandbox, a stopped container, a GPU-less 'GPU' host."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dlws import report

RECORDED = Path(__file__).parent / "fixtures" / "report"  # inventory/fleet_sandbox.py, -n auto
SANDBOX, STOPPED, GPU = "@docker/dlws-sandbox", "@docker/dlws-stopped", "@docker/dlws-gpu-declared"


@pytest.fixture
def run_dir(tmp_path):
    shutil.copyfile(RECORDED / "hosts.json", tmp_path / "hosts.json")
    built = report.write(tmp_path, RECORDED / "junit.xml")
    return tmp_path, built


def test_each_host_gets_its_verdict(run_dir):
    _, built = run_dir
    status = {h.name: h.status for h in built.hosts}
    assert status == {SANDBOX: report.FAIL, STOPPED: report.UNREACHABLE, GPU: report.FAIL}
    assert not built.ok


def test_unreachable_host_is_one_reason_not_a_pile_of_failures(run_dir):
    _, built = run_dir
    stopped = next(h for h in built.hosts if h.name == STOPPED)
    assert stopped.counts[report.FAIL] == 0 and stopped.counts[report.UNREACHABLE] > 0
    assert "is not running" in stopped.reason
    assert all(f.host != STOPPED for f in built.failures())


def test_gpu_host_fails_for_the_missing_gpu(run_dir):
    _, built = run_dir
    count = built.results[GPU, "hardware::test_gpu_count"]
    assert count.status == report.FAIL and "nvidia-smi: not found" in count.message
    assert built.results[SANDBOX, "hardware::test_gpu_count"].status == report.SKIP
    assert built.results[GPU, "hardware::test_gpu_health[pcie_link]"].status == report.FAIL


def test_facts_from_the_side_file(run_dir):
    _, built = run_dir
    facts = next(h for h in built.hosts if h.name == SANDBOX).facts
    assert facts["torch.version"].endswith("+cpu")
    assert facts["torch.training.samples_per_second"] > 0
    assert facts["data_disk.read_mib_s"] > 0


def test_json_and_junit_written(run_dir):
    path, _ = run_dir
    document = json.loads((path / report.JSON_OUT).read_text())
    assert [h["name"] for h in document["hosts"]] == [SANDBOX, STOPPED, GPU]
    check = next(c for c in document["checks"] if c["check"] == "hardware::test_cpu_cores")
    assert {h: r["status"] for h, r in check["results"].items()} == {
        SANDBOX: "pass", STOPPED: "unreachable", GPU: "pass"}
    assert (path / report.JUNIT).read_bytes() == (RECORDED / "junit.xml").read_bytes()


def test_terminal_table(run_dir):
    _, built = run_dir
    text = report.table(built)
    assert text.splitlines()[0].split() == ["check", SANDBOX, STOPPED, GPU]
    assert f"{STOPPED}: UNREACHABLE" in text
    assert "torch on cpu:" in text and "samples/s" in text


def test_html_is_static_and_shows_evidence(run_dir):
    path, _ = run_dir
    page = (path / report.HTML_OUT).read_text()
    # Self-contained: nothing loaded from anywhere (evidence may quote URLs as text).
    for tag in ("<script", "<link", "src=", "href=", "@import", "url("):
        assert tag not in page, f"{tag} in the report page"
    assert page.count('class="unreachable"') >= 40
    assert "nvidia-smi: not found" in page and "NVIDIA L4" in page


def test_report_without_properties_or_side_file_still_finds_hosts(tmp_path):
    # A JUnit XML from a plain `pytest verify --junitxml` of an older verify: IDs only.
    xml = (RECORDED / "junit.xml").read_text()
    import re

    (tmp_path / "junit.xml").write_text(re.sub(r"<properties>.*?</properties>", "", xml,
                                               flags=re.S))
    built = report.write(tmp_path)
    assert {h.name for h in built.hosts} == {SANDBOX, STOPPED, GPU}
    assert built.results[GPU, "hardware::test_gpu_count"].status == report.FAIL


def test_missing_junit_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="--junitxml"):
        report.write(tmp_path)


@pytest.mark.integration
def test_html_renders_in_chromium(run_dir, tmp_path_factory):
    # A developer check of the page's look, not a product check: skipped where no chromium.
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium to render the report)")
    path, _ = run_dir
    shot = path / "shot.png"
    profile = tmp_path_factory.mktemp("chromium-profile")
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                          f"--screenshot={shot}", "--window-size=1400,900",
                          (path / report.HTML_OUT).as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


PENDING = ("the loaded NVIDIA kernel module is 535.216.01 but the installed user space "
           "(libnvidia-ml) is 535.230.02: ... fix: reboot it")


@pytest.fixture
def pending_run(tmp_path):
    """The recorded run, with verify's reboot_pending reading recorded for the sandbox host."""
    hosts = json.loads((RECORDED / "hosts.json").read_text())
    hosts["hosts"][SANDBOX]["facts"]["reboot_pending"] = PENDING
    (tmp_path / "hosts.json").write_text(json.dumps(hosts))
    return tmp_path, report.write(tmp_path, RECORDED / "junit.xml")


def test_reboot_pending_shown_per_host(pending_run):
    path, built = pending_run
    assert [h.name for h in built.hosts if h.reboot_pending] == [SANDBOX]
    text = report.table(built)
    assert f"{SANDBOX}: FAIL (reboot pending)" in text and f"reboot pending: {PENDING}" in text
    assert f"{GPU}: FAIL (" in text and f"{GPU}: FAIL (reboot" not in text
    document = json.loads((path / report.JSON_OUT).read_text())
    assert {h["name"]: h["reboot_pending"] for h in document["hosts"]}[SANDBOX] == PENDING


@pytest.mark.integration
def test_reboot_pending_renders_in_chromium(pending_run, tmp_path_factory):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium to render the report)")
    path, _ = pending_run
    profile = tmp_path_factory.mktemp("chromium-profile")
    out = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-background-networking", "--disable-component-update",
                          "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                          "--dump-dom", (path / report.HTML_OUT).as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    # One badge, on the sandbox's card only.
    assert out.stdout.count('class="badge reboot"') == 1, out.stdout[-3000:]
    card = out.stdout.split(f"<h3>{SANDBOX} ")[1].split("</h3>")[0]
    assert "reboot pending" in card, card
