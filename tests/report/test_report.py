"""dlws report on a recorded fleet run: the sandbox, a stopped container, a GPU-less 'GPU' host."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dlws import report

RECORDED = Path(__file__).parents[1] / "fixtures" / "report"  # inventory/fleet_sandbox.py, -n auto
SANDBOX, STOPPED, GPU = "@docker/dlws-sandbox", "@docker/dlws-stopped", "@docker/dlws-gpu-declared"


BURN_IN = Path(__file__).parents[1] / "fixtures" / "burn_in"
GPU_A, GPU_B = "ws-gpu-01", "ws-gpu-02"


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copyfile(RECORDED / "hosts.json", run / "hosts.json")
    built = report.write(run, RECORDED / "junit.xml")
    return run, built


def fleet_with_charts(run: Path) -> Path:
    """The recorded run, with two GPU hosts and figures for every chart added. Provenance: the
    sandbox's throughput and CPU burn-in are recorded (tests/fixtures/burn_in/cpu-sandbox.json);
    the GPU hosts' figures are CONSTRUCTED (no GPU here): ws-gpu-02 is the planted outlier."""
    side = json.loads((RECORDED / "hosts.json").read_text())
    side["hosts"][SANDBOX]["facts"]["burn_in"] = json.loads(
        (BURN_IN / "cpu-sandbox.json").read_text())
    throttled = json.loads((BURN_IN / "l4-thermal-throttle.json").read_text())
    for name, speed, tflops in ((GPU_A, 61_000.0, 88.0), (GPU_B, 23_000.0, 41.0)):
        side["hosts"][name] = {"spec": f"ssh://{name}", "groups": ["lab"], "gpu_count": 1,
                               "gpu_model": "NVIDIA L4", "facts": {
                                   "torch.training.device": "gpu",
                                   "torch.training.samples_per_second": speed,
                                   "matmul.cuda:0.tflops": tflops,
                                   "matmul.expected_tflops": 121.0,
                                   "matmul.min_tflops": 60.5}}
    side["hosts"][GPU_A]["facts"]["torch.training.samples_per_second"] = 61_000.0
    side["hosts"]["ws-gpu-03"] = {**side["hosts"][GPU_A], "spec": "ssh://ws-gpu-03", "facts": {
        **side["hosts"][GPU_A]["facts"], "torch.training.samples_per_second": 59_500.0}}
    side["hosts"][GPU_A]["facts"]["burn_in"] = throttled
    side["hosts"][GPU_A]["facts"]["network.allreduce"] = [
        {"pair": f"{GPU_A}<->{GPU_B}", "gbit": 9.4, "backend": "nccl", "min_gbit": 5.0},
        {"pair": f"{GPU_A}<->ws-gpu-03", "gbit": 2.1, "backend": "nccl", "min_gbit": 5.0}]
    (run / "hosts.json").write_text(json.dumps(side))
    report.write(run, RECORDED / "junit.xml")
    return run / report.HTML_OUT


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


def test_charts_mark_the_outlier_and_the_slow_pair(run_dir):
    path, _ = run_dir
    fleet_with_charts(path)
    rows = json.loads((path / report.JSON_OUT).read_text())["charts"]
    low = {kind: [r["label"] for r in found if r["value"] < (r["low_under"] or 0)]
           for kind, found in rows.items()}
    # ws-gpu-02 trains at 23,000 samples/s against a GPU median of 59,500: under 70 %.
    assert low["throughput"] == [f"{GPU_B} torch (gpu)"]
    assert low["matmul"] == [f"{GPU_B} cuda:0"]  # 41 TFLOP/s under the bar of 60.5
    assert low["network"] == [f"{GPU_A}<->ws-gpu-03 (nccl)"]
    page = (path / report.HTML_OUT).read_text()
    assert page.count('class="bar low"') == 3
    text = report.table(report.load(path))
    assert f"LOW throughput: {GPU_B} torch (gpu) 23,000.0 samples/s, under 41,650.0" in text
    for tag in ("<script", "<link", "src=", "href=", "@import", "url("):
        assert tag not in page, f"{tag} in the report page"


# Every chart the page must show for fleet_with_charts, and how many: (data-chart, count).
EXPECTED_CHARTS = {"throughput": 1, "matmul": 1, "network": 1, "cpu_busy_percent": 1,
                   "temperature_c": 1, "sm_clock_mhz": 1, "power_w": 1}


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail("chromium is not installed: `apt-get install chromium` (bin/dlws test "
                    "installs it)")
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                           *args], capture_output=True, text=True, timeout=120)


def rendered_charts(page: Path, workdir: Path) -> tuple[dict[str, int], dict[str, int]]:
    """What headless Chromium made of the page: the charts in its DOM (by data-chart) and, in a
    screenshot of the whole page, the pixels of each chart's own colour."""
    import re

    from PIL import Image

    from dlws.report import charts

    dom = chromium("--dump-dom", page.as_uri(), profile=workdir / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    in_dom = {}
    for kind in re.findall(r'<svg class="chart" data-chart="([a-z_]+)"', dom.stdout):
        in_dom[kind] = in_dom.get(kind, 0) + 1
    shot = workdir / "shot.png"
    out = chromium(f"--screenshot={shot}", "--window-size=1400,4000", "--hide-scrollbars",
                   page.as_uri(), profile=workdir / "profile-shot")
    assert out.returncode == 0 and shot.exists(), out.stderr[-2000:]
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20) or []
    counts = dict((rgb, n) for n, rgb in colours)
    painted = {kind: counts.get(tuple(int(hex_[i:i + 2], 16) for i in (1, 3, 5)), 0)
               for kind, hex_ in charts.COLOURS.items()}
    return in_dom, painted


def missing_charts(in_dom: dict[str, int], painted: dict[str, int]) -> list[str]:
    # 150 pixels: the smallest chart here (a bar 2 px wide) paints more than that.
    return [f"{kind}: {in_dom.get(kind, 0)} in the DOM (expected {n}), {painted.get(kind, 0)} "
            "pixels of its colour on screen" for kind, n in EXPECTED_CHARTS.items()
            if in_dom.get(kind, 0) != n or painted.get(kind, 0) < 150]


@pytest.mark.integration
def test_html_charts_render_in_chromium(run_dir, tmp_path):
    path, _ = run_dir
    page = fleet_with_charts(path)
    in_dom, painted = rendered_charts(page, tmp_path)
    assert missing_charts(in_dom, painted) == [], (in_dom, painted)
    # The check can fail: the same page without its matmul chart is caught, by name.
    text = page.read_text()
    start = text.index('<svg class="chart" data-chart="matmul"')
    broken = tmp_path / "broken.html"
    broken.write_text(text[:start] + text[text.index("</svg>", start) + 6:])
    in_dom, painted = rendered_charts(broken, tmp_path / "broken")
    assert [m.split(":")[0] for m in missing_charts(in_dom, painted)] == ["matmul"]


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
    path, _ = pending_run
    out = chromium("--dump-dom", (path / report.HTML_OUT).as_uri(),
                   profile=tmp_path_factory.mktemp("chromium-profile"))
    assert out.returncode == 0, out.stderr[-2000:]
    # One badge, on the sandbox's card only.
    assert out.stdout.count('class="badge reboot"') == 1, out.stdout[-3000:]
    card = out.stdout.split(f"<h3>{SANDBOX} ")[1].split("</h3>")[0]
    assert "reboot pending" in card, card
