"""A verify run's report: hosts x checks as a terminal table, JSON and a static HTML page."""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import statistics
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlws.report import charts, drift
from dlws.validate.secrets import redact

PASS, FAIL, SKIP, UNREACHABLE = "pass", "FAIL", "skip", "unreachable"
# What verify/conftest.py's host fixture says when it cannot reach a host.
UNREACHABLE_MARK = " is unreachable ("
# Properties verify/conftest.py records on every check (see HOST_PROPERTY, CHECK_PROPERTY).
HOST_PROPERTY, CHECK_PROPERTY = "dlws.host", "dlws.check"
JUNIT, FACTS, JSON_OUT, HTML_OUT = "junit.xml", "hosts.json", "report.json", "report.html"


@dataclass
class Result:
    """One check on one host."""

    host: str
    check: str
    status: str
    message: str = ""
    seconds: float = 0.0


@dataclass
class HostSummary:
    """One host's verdict, counts and what it was found to have."""

    name: str
    status: str
    counts: dict[str, int]
    seconds: float
    facts: dict[str, Any] = field(default_factory=dict)
    spec: str = ""
    gpu_count: int | None = None
    gpu_model: str | None = None
    reason: str = ""
    # Why the host must reboot (the loaded NVIDIA module is not the installed user space, or
    # the deploy left /var/run/reboot-required), as verify recorded it; None when it need not.
    reboot_pending: str | None = None


@dataclass
class Report:
    hosts: list[HostSummary]
    checks: list[str]
    results: dict[tuple[str, str], Result]
    inventory: str | None = None
    # What changed on each host since its last passing run (dlws.report.drift), where one is known.
    drift: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return all(h.status == PASS for h in self.hosts)

    def failures(self) -> list[Result]:
        return [r for r in self.results.values() if r.status == FAIL]


def _bracket(name: str) -> str:
    return name[name.index("[") + 1:-1] if name.endswith("]") and "[" in name else ""


def _split_host(name: str, hosts: set[str]) -> tuple[str, str]:
    """A test name without dlws's properties: its host and the check, by the target's ID."""
    base, params = name.split("[", 1)[0], _bracket(name)
    for host in sorted(hosts, key=len, reverse=True):
        if params == host:
            return host, base
        if params.startswith(host + "-"):
            return host, f"{base}[{params[len(host) + 1:]}]"
    return params or "?", base


def _status(case: ET.Element) -> tuple[str, str]:
    for tag in ("failure", "error"):
        node = case.find(tag)
        if node is not None:
            # pytest's message attribute is the assertion's own message; the text is the
            # traceback, whose "E" lines say the same where the message is empty.
            message = node.get("message") or ""
            text = (node.text or "").strip()
            e_lines = "\n".join(ln[1:].strip() for ln in text.splitlines() if ln.startswith("E "))
            evidence = message or e_lines or text
            if UNREACHABLE_MARK in message or UNREACHABLE_MARK in text:
                line = next(ln for ln in (message + "\n" + text).splitlines()
                            if UNREACHABLE_MARK in ln)
                return UNREACHABLE, line.split("Failed: ", 1)[-1].strip()
            return FAIL, evidence
    skipped = case.find("skipped")
    if skipped is not None:
        return SKIP, skipped.get("message") or ""
    return PASS, ""


def read_junit(path: Path) -> list[Result]:
    """Every testcase of a pytest JUnit XML as (host, check, status, evidence)."""
    root = ET.parse(path).getroot()
    cases = list(root.iter("testcase"))
    names = [c.get("name", "") for c in cases]
    # Without dlws's properties (an older run), hosts are the IDs no other ID extends.
    params = {_bracket(n) for n in names} - {""}
    known = {p for p in params if not any(p.startswith(o + "-") for o in params if o != p)}
    results = []
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        module = (case.get("classname") or "").rsplit(".", 1)[-1].removeprefix("test_")
        if HOST_PROPERTY in props:
            host, check = props[HOST_PROPERTY], props.get(CHECK_PROPERTY) or case.get("name")
        else:
            host, check = _split_host(case.get("name", ""), known)
        status, message = _status(case)
        results.append(Result(host, f"{module}::{check}", status, message,
                              float(case.get("time") or 0)))
    return results


def build(junit: Path, facts: Path | None = None) -> Report:
    """The report of one run: its JUnit XML and, where there is one, its hosts.json."""
    results = read_junit(junit)
    side = json.loads(facts.read_text()) if facts and facts.exists() else {}
    declared = side.get("hosts", {})
    order = list(declared) + sorted({r.host for r in results} - set(declared))
    checks = sorted(dict.fromkeys(r.check for r in results))
    table = {(r.host, r.check): r for r in results}
    hosts = []
    for name in order:
        mine = [r for r in results if r.host == name]
        counts = {s: sum(r.status == s for r in mine) for s in (PASS, FAIL, SKIP, UNREACHABLE)}
        unreachable = next((r for r in mine if r.status == UNREACHABLE), None)
        status = (UNREACHABLE if unreachable else FAIL if counts[FAIL] else
                  PASS if mine else "not run")
        info = declared.get(name, {})
        hosts.append(HostSummary(name, status, counts, round(sum(r.seconds for r in mine), 1),
                                 info.get("facts", {}), info.get("spec", ""),
                                 info.get("gpu_count"), info.get("gpu_model"),
                                 unreachable.message if unreachable else "",
                                 info.get("facts", {}).get("reboot_pending")))
    return Report(hosts, checks, table, side.get("inventory"))


def to_json(report: Report) -> dict:
    return {
        "inventory": report.inventory,
        "ok": report.ok,
        "hosts": [asdict(h) for h in report.hosts],
        "checks": [{"check": c, "results": {h.name: _cell(report, h.name, c)
                                            for h in report.hosts}} for c in report.checks],
        "charts": {kind: [asdict(row) for row in rows]
                   for kind, rows in chart_rows(report).items()},
        "drift": report.drift,
    }


def _cell(report: Report, host: str, check: str) -> dict:
    result = report.results.get((host, check))
    if result is None:
        return {"status": "-"}
    return {"status": result.status, "message": result.message, "seconds": result.seconds}


def _training(facts: dict[str, Any]) -> list[str]:
    lines = []
    for framework in ("tensorflow", "torch"):
        speed = facts.get(f"{framework}.training.samples_per_second")
        accuracy = facts.get(f"{framework}.training.test_accuracy")
        if speed is not None or accuracy is not None:
            device = facts.get(f"{framework}.training.device", "?")
            lines.append(f"{framework} on {device}: {float(speed or 0):,.0f} samples/s, "
                         f"accuracy {float(accuracy or 0):.4f}")
    return lines


def _versions(facts: dict[str, Any]) -> list[str]:
    found = [f"{key.removesuffix('.version')} {value}" for key, value in facts.items()
             if key.endswith(".version")]
    if "kernel.release" in facts:
        found.append(f"kernel {facts['kernel.release']}")
    counts = [f"{len(facts[f'packages.{kind}'])} {kind}" for kind in ("dpkg", "venv")
              if isinstance(facts.get(f"packages.{kind}"), dict)]
    if counts:
        found.append(f"packages recorded: {', '.join(counts)}")
    return found


def table(report: Report) -> str:
    """Checks down, hosts across, then each host's verdict and findings."""
    width = max([len(c) for c in report.checks] + [5])
    cols = [max(len(h.name), 11) for h in report.hosts]
    lines = ["check".ljust(width) + "  " + "  ".join(h.name.ljust(w)
                                                       for h, w in zip(report.hosts, cols,
                                                                       strict=True))]
    for check in report.checks:
        cells = [_cell(report, h.name, check)["status"].ljust(w)
                 for h, w in zip(report.hosts, cols, strict=True)]
        lines.append(check.ljust(width) + "  " + "  ".join(cells))
    lines.append("")
    for h in report.hosts:
        counts = ", ".join(f"{n} {s}" for s, n in h.counts.items() if n)
        lines.append(f"{h.name}: {h.status.upper()}"
                     + (" (reboot pending)" if h.reboot_pending else "")
                     + f" ({counts}; {h.seconds:.1f} s)")
        if h.reboot_pending:
            lines.append(f"  reboot pending: {h.reboot_pending}")
        if h.reason:
            lines.append(f"  {h.reason}")
        for finding in _versions(h.facts) + _training(h.facts):
            lines.append(f"  {finding}")
        if "data_disk.read_mib_s" in h.facts:
            lines.append(f"  data disk read {h.facts['data_disk.read_mib_s']} MiB/s")
    units = {"throughput": "samples/s", "matmul": "TFLOP/s", "network": "Gbit/s"}
    for kind, rows in chart_rows(report).items():
        for row in rows:
            if row.low:
                lines.append(f"LOW {kind}: {row.label} {row.value:,.1f} {units[kind]}, under "
                             f"{row.low_under:,.1f}{row.note}")
    for failure in report.failures():
        lines.append(f"\nFAIL {failure.host} {failure.check}:\n  "
                     + "\n  ".join(failure.message.strip().splitlines()[:4])[:600])
    return "\n".join(lines)


# A host whose training throughput is under this share of the fleet's median (same framework,
# same device kind) is drawn as an outlier. MNIST on a host repeats within a few percent
# (docs/benchmarks.md); a third slower is a different machine, not noise.
OUTLIER_SHARE = 0.7
MATMUL_FACT = re.compile(r"^matmul\.(?P<device>.+)\.tflops$")


def chart_rows(report: Report) -> dict[str, list[charts.Bar]]:
    """The bars of each fleet chart: training throughput per host and framework (against the
    fleet median), matmul TFLOP/s per GPU (against its model's bar), all-reduce per host pair."""
    rows: dict[str, list[charts.Bar]] = {"throughput": [], "matmul": [], "network": []}
    speeds: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for h in report.hosts:
        for framework in ("tensorflow", "torch"):
            speed = h.facts.get(f"{framework}.training.samples_per_second")
            if speed is not None:
                device = h.facts.get(f"{framework}.training.device", "?")
                speeds.setdefault((framework, device), []).append((h.name, float(speed)))
    for (framework, device), found in speeds.items():
        median = statistics.median(v for _, v in found)
        for name, value in found:
            rows["throughput"].append(charts.Bar(
                f"{name} {framework} ({device})", value, OUTLIER_SHARE * median,
                f" (fleet median {median:,.0f}; outlier under {OUTLIER_SHARE:.0%} of it)"))
    for h in report.hosts:
        expected, bar = h.facts.get("matmul.expected_tflops"), h.facts.get("matmul.min_tflops")
        for key, value in h.facts.items():
            match = MATMUL_FACT.match(key)
            if match:
                note = (f" (expected {expected} for {h.gpu_model}, bar {bar})"
                        if expected else "")
                rows["matmul"].append(charts.Bar(f"{h.name} {match['device']}", float(value),
                                                 bar, note))
        for pair in h.facts.get("network.allreduce") or []:
            rows["network"].append(charts.Bar(
                f"{pair['pair']} ({pair.get('backend', '?')})", float(pair["gbit"]),
                pair.get("min_gbit"), f" (declared least {pair.get('min_gbit')} Gbit/s)"))
    return rows


def _expected_line(rows: list[charts.Bar], facts_key: str, report: Report) -> float | None:
    """One expected figure drawn across a chart where every host shares it."""
    figures = {h.facts.get(facts_key) for h in report.hosts if h.facts.get(facts_key)}
    return float(figures.pop()) if len(figures) == 1 else None


def fleet_charts(report: Report) -> str:
    """The fleet's bar charts as inline SVG; empty where nothing was measured."""
    rows = chart_rows(report)
    out = []
    if rows["throughput"]:
        out.append(charts.bars("throughput", "MNIST training throughput per host", "samples/s",
                               rows["throughput"]))
    if rows["matmul"]:
        out.append(charts.bars("matmul", "Matmul per GPU against the expected figure",
                               "TFLOP/s", rows["matmul"],
                               _expected_line(rows["matmul"], "matmul.expected_tflops", report)))
    if rows["network"]:
        bars = {r.low_under for r in rows["network"] if r.low_under is not None}
        out.append(charts.bars("network", "All-reduce bus bandwidth per host pair", "Gbit/s",
                               rows["network"], bars.pop() if len(bars) == 1 else None,
                               "declared least"))
    return "".join(out)


def burn_in_charts(h: HostSummary) -> str:
    """A host's burn-in: per GPU temperature, SM clock (against its maximum) and power, with
    throttled seconds shaded; the CPU's busy share; the verdict on each bar."""
    e = html.escape
    burn = h.facts.get("burn_in")
    if not isinstance(burn, dict):
        return ""
    parts = [f"<h3>{e(h.name)}: burn-in of {e(str(burn.get('minutes')))} min, "
             f"{e(str(burn.get('status', '?')))}</h3>"]
    verdicts = burn.get("verdicts") or []
    parts.append("<ul>" + "".join(
        f'<li class="{"pass" if v.get("ok") else "FAIL"}">{e(v.get("bar", "?"))}: '
        f'{e(v.get("detail", ""))}</li>' for v in verdicts) + "</ul>")
    cpu = burn.get("cpu") or {}
    if cpu.get("t"):
        parts.append('<div class="charts">' + charts.series(
            "cpu_busy_percent", f"{h.name} CPU busy", "%", cpu["t"], cpu.get("busy_percent", []),
            ceiling=100.0) + "</div>")
    for gpu in burn.get("gpus") or []:
        samples = gpu.get("samples") or {}
        t = samples.get("t") or []
        flagged = [bool(x) for x in samples.get("brake", [])]
        label = f"{h.name} GPU {gpu.get('index')} {gpu.get('name', '')}"
        parts.append(f'<div class="charts" data-gpu="{e(str(gpu.get("index")))}">'
                     + charts.series("temperature_c", f"{label} temperature", "C", t,
                                     samples.get("temperature_c", []), flagged=flagged)
                     + charts.series("sm_clock_mhz", f"{label} SM clock", "MHz", t,
                                     samples.get("sm_clock_mhz", []),
                                     ceiling=gpu.get("max_sm_clock_mhz"), flagged=flagged)
                     + charts.series("power_w", f"{label} power", "W", t,
                                     samples.get("power_w", []),
                                     ceiling=gpu.get("power_limit_w"), flagged=flagged)
                     + "</div>")
    return "".join(parts)


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
.sub{color:#5b6475;margin-bottom:16px}
table{border-collapse:collapse} th,td{border:1px solid #d5d9e0;padding:3px 8px;text-align:left}
th{background:#f2f4f7;font-weight:600} td.check{font-family:ui-monospace,monospace;font-size:12px}
.pass{background:#dff3e4;color:#17612d} .FAIL{background:#fbdada;color:#9b1c1c;font-weight:600}
.skip{background:#f1f1f1;color:#6b7280} .unreachable{background:#fde9c8;color:#8a4b00}
.not-run{background:#f1f1f1} .reboot{background:#fde9c8;color:#8a4b00;font-weight:600}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #d5d9e0;border-radius:6px;padding:10px 14px;min-width:300px}
.card h3{margin:0 0 6px;font-size:15px} .badge{padding:1px 8px;border-radius:10px}
ul{margin:4px 0;padding-left:18px} pre{white-space:pre-wrap;background:#fafafa;
border:1px solid #e5e7eb;padding:8px;font-size:12px;max-height:240px;overflow:auto;margin:4px 0}
""" + charts.CHART_STYLE


def to_html(report: Report, title: str) -> str:
    """One static page: host cards, the hosts x checks grid and every failure's evidence."""
    e = html.escape
    verdict = "every check passed" if report.ok else "VERIFY FAILED"
    cards = []
    for h in report.hosts:
        counts = ", ".join(f"{n} {s}" for s, n in h.counts.items() if n)
        gpus = f"{h.gpu_count} x {h.gpu_model}" if h.gpu_count else "no GPU declared"
        items = [f"<li>{e(x)}</li>" for x in _versions(h.facts) + _training(h.facts)]
        if "data_disk.read_mib_s" in h.facts:
            items.append(f"<li>data disk read {e(str(h.facts['data_disk.read_mib_s']))} MiB/s"
                         "</li>")
        if "nvidia_driver.version" in h.facts:
            items.append(f"<li>NVIDIA driver {e(str(h.facts['nvidia_driver.version']))}</li>")
        reason = f"<pre>{e(h.reason)}</pre>" if h.reason else ""
        reboot = (f' <span class="badge reboot" title="{e(h.reboot_pending, quote=True)}">'
                  "reboot pending</span>" if h.reboot_pending else "")
        if h.reboot_pending:
            items.insert(0, f"<li><b>reboot pending</b>: {e(h.reboot_pending)}</li>")
        cards.append(
            f'<div class="card"><h3>{e(h.name)} <span class="badge {e(h.status)}">'
            f"{e(h.status)}</span>{reboot}</h3><div class=sub>{e(h.spec)} &middot; "
            f"{e(gpus)} &middot; "
            f"{e(counts)} &middot; {h.seconds:.1f} s</div>{reason}"
            f"<ul>{''.join(items) or '<li>nothing recorded</li>'}</ul></div>")
    head = "".join(f"<th>{e(h.name)}</th>" for h in report.hosts)
    rows = []
    for check in report.checks:
        cells = []
        for h in report.hosts:
            cell = _cell(report, h.name, check)
            tip = e(cell.get("message", "")[:300], quote=True)
            cells.append(f'<td class="{e(cell["status"])}" title="{tip}">{e(cell["status"])}'
                         "</td>")
        rows.append(f'<tr><td class="check">{e(check)}</td>{"".join(cells)}</tr>')
    failures = "".join(
        f"<h3>{e(f.host)} &mdash; {e(f.check)}</h3><pre>{e(f.message.strip()[-3000:])}</pre>"
        for f in report.failures()) or "<p>none</p>"
    fleet = fleet_charts(report) or "<p>no throughput was measured in this run</p>"
    burn_in = "".join(burn_in_charts(h) for h in report.hosts) or (
        "<p>no burn-in in this run (<code>dlws verify --burn-in-minutes N</code>)</p>")
    changes = drift.to_html(report.drift) if report.drift else (
        "<p>no earlier run of this inventory to compare with</p>")
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{e(title)}: {verdict}</h1>"
        f"<div class=sub>inventory {e(report.inventory or '?')} &middot; {len(report.hosts)} "
        f"hosts &middot; {len(report.checks)} checks</div>"
        f"<div class=cards>{''.join(cards)}</div>"
        f"<h2>Throughput against the expected figures</h2>{fleet}"
        f"<h2>Burn-in</h2>{burn_in}"
        f"<h2>Changes since the last passing run</h2>{changes}"
        f"<h2>Checks</h2><table><tr><th>check</th>{head}</tr>{''.join(rows)}</table>"
        f"<h2>Failures and their evidence</h2>{failures}</body></html>\n")


def runs_beside(run_dir: Path) -> list[Path]:
    """The verify runs kept beside RUN_DIR (reports/<inventory>/<run>/), oldest first."""
    parent = run_dir.resolve().parent
    return sorted(p for p in parent.iterdir() if p.is_dir() and (p / JUNIT).exists())


def _inventory_of(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / FACTS).read_text()).get("inventory")
    except (OSError, ValueError):
        return None


def load(run_dir: Path) -> Report:
    if not (run_dir / JUNIT).exists():
        raise FileNotFoundError(f"{run_dir / JUNIT} does not exist: not a verify run folder")
    return build(run_dir / JUNIT, run_dir / FACTS)


def diff_runs(run_a: Path, run_b: Path, noise: float = drift.NOISE) -> dict[str, Any]:
    """What changed on each host of RUN_B since RUN_A."""
    a, b = load(run_a), load(run_b)
    document = drift.diff({h.name: h.facts for h in a.hosts}, {h.name: h.facts for h in b.hosts},
                          {h.name: str(run_a) for h in a.hosts}, noise)
    return {"a": str(run_a), "b": str(run_b), **document}


def since_pass(run_dir: Path, noise: float = drift.NOISE) -> dict[str, Any] | None:
    """What changed on each host of RUN_DIR since the last earlier run in which that host
    passed (runs kept beside it, by name: dlws verify names them by time); None: no earlier."""
    now = load(run_dir)
    # Only runs of the same inventory: a folder of unrelated runs compares nothing.
    earlier = [p for p in runs_beside(run_dir) if p.name < run_dir.resolve().name
               and _inventory_of(p) == now.inventory]
    if not earlier:
        return None
    before, baselines, history = {}, {}, {}
    for past in reversed(earlier):
        for h in load(past).hosts:
            if h.status == PASS:
                if h.name not in before:
                    before[h.name], baselines[h.name] = h.facts, str(past)
                history.setdefault(h.name, []).append(h.facts)
        if all(len(history.get(h.name, [])) >= drift.HISTORY for h in now.hosts):
            break
    document = drift.diff(before, {h.name: h.facts for h in now.hosts}, baselines, noise,
                          history)
    return {"a": "the last passing run of each host", "b": str(run_dir), **document}


def write(run_dir: Path, junit: Path | None = None) -> Report:
    """Build the report of RUN_DIR (its junit.xml, or ``junit`` copied in) and write it there,
    with what changed since each host's last passing run kept beside it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if junit is not None and junit.resolve() != (run_dir / JUNIT).resolve():
        shutil.copyfile(junit, run_dir / JUNIT)
    if not (run_dir / JUNIT).exists():
        raise FileNotFoundError(f"{run_dir / JUNIT} does not exist: run verify with "
                                f"--junitxml {run_dir / JUNIT} (or `dlws verify`)")
    # pytest wrote these with whatever a check printed: no credential leaves this function.
    for name in (JUNIT, FACTS):
        if (run_dir / name).exists():
            text = (run_dir / name).read_text()
            if redact(text) != text:
                (run_dir / name).write_text(redact(text))
    report = build(run_dir / JUNIT, run_dir / FACTS)
    report.drift = since_pass(run_dir)
    (run_dir / JSON_OUT).write_text(json.dumps(to_json(report), indent=2) + "\n")
    (run_dir / HTML_OUT).write_text(to_html(report, f"dlws verify {run_dir.name}"))
    return report


def write_drift(document: dict[str, Any], run_dir: Path) -> tuple[Path, Path]:
    """drift.json and drift.html in RUN_DIR (the later run)."""
    json_path, html_path = run_dir / "drift.json", run_dir / "drift.html"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    title = f"dlws drift: {Path(document['b']).name} against {document['a']}"
    html_path.write_text(
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
        f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"{drift.to_html(document)}</body></html>\n")
    return json_path, html_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `dlws report`: the one parser, used by the `dlws` command and `main`."""
    parser.add_argument("run_dir", type=Path, nargs="?", metavar="RUN_DIR",
                        help="a verify run's folder (reports/<inventory>/<run>)")
    parser.add_argument("--junit", type=Path, metavar="FILE",
                        help="a JUnit XML to copy into RUN_DIR first")
    parser.add_argument("--diff", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"),
                        help="what changed on each host from RUN_A to RUN_B")
    parser.add_argument("--since-pass", action="store_true",
                        help="what changed on each host of RUN_DIR since that host's last "
                             "passing run (RUN_DIR may be reports/<inventory>: its latest run)")
    parser.add_argument("--noise", type=float, default=drift.NOISE, metavar="SHARE",
                        help="share of the earlier figure a throughput must move by to count as "
                             f"changed (default {drift.NOISE})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlws report", description=__doc__)
    add_arguments(parser)
    return handle(parser.parse_args(argv), parser)


def handle(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Carry out `dlws report` with the arguments `add_arguments` declares."""
    if args.diff or args.since_pass:
        if args.diff:
            document = diff_runs(*args.diff, noise=args.noise)
        else:
            if args.run_dir is None:
                parser.error("--since-pass needs RUN_DIR (or reports/<inventory>)")
            run = args.run_dir
            if not (run / JUNIT).exists():
                kept = [p for p in run.iterdir() if p.is_dir() and (p / JUNIT).exists()]
                if not kept:
                    parser.error(f"{run} holds no verify run (no */{JUNIT})")
                run = max(kept)
            document = since_pass(run, args.noise)
            if document is None:
                print(f"dlws report: {run} is the first run kept beside it; nothing to compare")
                return 0
        print(drift.to_text(document))
        paths = write_drift(document, Path(document["b"]))
        print(f"\ndrift: {paths[1]}, {paths[0]}")
        return 0
    if args.run_dir is None:
        parser.error("give RUN_DIR, --diff RUN_A RUN_B or --since-pass RUN_DIR")
    report = write(args.run_dir, args.junit)
    print(table(report))
    if report.drift:
        print("\nsince each host's last passing run:\n" + drift.to_text(report.drift))
    print(f"\nreport: {args.run_dir / HTML_OUT}, {args.run_dir / JSON_OUT}, "
          f"{args.run_dir / JUNIT}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
