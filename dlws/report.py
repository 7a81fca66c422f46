"""A verify run's report: hosts x checks as a terminal table, JSON and a static HTML page."""

from __future__ import annotations

import argparse
import html
import json
import shutil
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlws.schema import redact

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
    return [f"{key.removesuffix('.version')} {value}" for key, value in facts.items()
            if key.endswith(".version")]


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
    for failure in report.failures():
        lines.append(f"\nFAIL {failure.host} {failure.check}:\n  "
                     + "\n  ".join(failure.message.strip().splitlines()[:4])[:600])
    return "\n".join(lines)


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
"""


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
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{e(title)}: {verdict}</h1>"
        f"<div class=sub>inventory {e(report.inventory or '?')} &middot; {len(report.hosts)} "
        f"hosts &middot; {len(report.checks)} checks</div>"
        f"<div class=cards>{''.join(cards)}</div>"
        f"<h2>Checks</h2><table><tr><th>check</th>{head}</tr>{''.join(rows)}</table>"
        f"<h2>Failures and their evidence</h2>{failures}</body></html>\n")


def write(run_dir: Path, junit: Path | None = None) -> Report:
    """Build the report of RUN_DIR (its junit.xml, or ``junit`` copied in) and write it there."""
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
    (run_dir / JSON_OUT).write_text(json.dumps(to_json(report), indent=2) + "\n")
    (run_dir / HTML_OUT).write_text(to_html(report, f"dlws verify {run_dir.name}"))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlws report", description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--junit", type=Path, help="a JUnit XML to copy into RUN_DIR first")
    args = parser.parse_args(argv)
    report = write(args.run_dir, args.junit)
    print(table(report))
    print(f"\nreport: {args.run_dir / HTML_OUT}, {args.run_dir / JSON_OUT}, "
          f"{args.run_dir / JUNIT}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
