"""What changed on each host between two verify runs: packages, versions, GPU health, speed."""

from __future__ import annotations

import html
import re
from typing import Any

# The noise rule: a throughput (training samples/s, matmul TFLOP/s, data disk MiB/s, all-reduce
# Gbit/s) counts as changed when it lies outside the band its host's earlier passing runs span
# (the last HISTORY of them, at least the one compared with), widened by NOISE on each side. A
# host whose figures wander between runs widens its own band; a steady one keeps it narrow.
# Measured (docs/benchmarks.md, "Run-to-run noise", bench/train_noise.py): on this project's
# shared 2-core development machine five runs of the same container moved 2-4x (torch 170 to 622
# samples/s), which no fixed share separates from drift: hence the band from the host's own
# history. The 15 % margin is a default, not measured on a dedicated machine (none here).
NOISE = 0.15
HISTORY = 5
SPEED = re.compile(r"(samples_per_second|tflops|read_mib_s|\.gbit)$")
# GPU health counters recorded by verify (verify/test_hardware.py): any change is reported.
HEALTH = re.compile(r"^gpu\.\d+\.")
PACKAGE_SETS = ("dpkg", "venv")


def _speeds(facts: dict[str, Any]) -> dict[str, float]:
    found = {key: float(value) for key, value in facts.items()
             if SPEED.search(key) and isinstance(value, (int, float))}
    for pair in facts.get("network.allreduce") or []:
        found[f"network.{pair['pair']}.gbit"] = float(pair["gbit"])
    return found


def package_changes(before: dict[str, str], after: dict[str, str]) -> dict[str, Any]:
    """Added, removed and changed packages: {"added": {name: version}, "removed": {...},
    "changed": {name: [before, after]}}."""
    return {
        "added": {n: after[n] for n in sorted(set(after) - set(before))},
        "removed": {n: before[n] for n in sorted(set(before) - set(after))},
        "changed": {n: [before[n], after[n]] for n in sorted(set(before) & set(after))
                    if before[n] != after[n]},
    }


def _compared(key: str) -> bool:
    """The facts drift reads: package sets, versions, the kernel, GPU health, throughputs."""
    return (key.startswith("packages.") or key.endswith(".version") or key == "kernel.release"
            or bool(HEALTH.match(key)) or bool(SPEED.search(key)) or key == "network.allreduce")


def not_run(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[str]]:
    """Facts one run recorded and the other did not (its check did not run there, e.g. a -k
    run): {"earlier": keys missing from the earlier run, "later": keys missing from the later}."""
    return {"earlier": sorted(k for k in set(after) - set(before) if _compared(k)),
            "later": sorted(k for k in set(before) - set(after) if _compared(k))}


def host_changes(before: dict[str, Any], after: dict[str, Any], noise: float = NOISE,
                 history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything that differs between two runs' facts of one host (empty parts left out).

    Only facts both runs recorded are compared: a check that ran in one run alone (a verify run
    with -k) is no change; `not_run` names those facts.

    + history: facts of the host's earlier passing runs (newest first; `before` when none given):
      the band a throughput may move in without counting as a change
    """
    changes: dict[str, Any] = {}
    both = sorted(set(before) & set(after))
    for kind in PACKAGE_SETS:
        key = f"packages.{kind}"
        if isinstance(before.get(key), dict) and isinstance(after.get(key), dict):
            found = package_changes(before[key], after[key])
            if any(found.values()):
                changes[key] = found
    versions = {key: [before[key], after[key]] for key in both
                if (key.endswith(".version") or key == "kernel.release")
                and before[key] != after[key]}
    if versions:
        changes["versions"] = versions
    health = {key: [before[key], after[key]] for key in both
              if HEALTH.match(key) and before[key] != after[key]}
    if health:
        changes["gpu_health"] = health
    seen = [_speeds(facts) for facts in (history or [before])[:HISTORY]]
    old, new = _speeds(before), _speeds(after)
    speed = {}
    for key in sorted(set(old) & set(new)):
        values = [figures[key] for figures in seen if key in figures] or [old[key]]
        low, high = min(values) * (1 - noise), max(values) * (1 + noise)
        if not low <= new[key] <= high:
            share = (new[key] - old[key]) / old[key] if old[key] else 0.0
            speed[key] = {"before": old[key], "after": new[key], "change": round(share, 3),
                          "band": [round(low, 2), round(high, 2)], "runs": len(values)}
    if speed:
        changes["throughput"] = speed
    return changes


def lines(changes: dict[str, Any]) -> list[str]:
    """One line per change, for the terminal and the page."""
    out = []
    for kind in PACKAGE_SETS:
        found = changes.get(f"packages.{kind}")
        if not found:
            continue
        out += [f"{kind} package added: {n} {v}" for n, v in found["added"].items()]
        out += [f"{kind} package removed: {n} {v}" for n, v in found["removed"].items()]
        out += [f"{kind} package changed: {n} {a} -> {b}"
                for n, (a, b) in found["changed"].items()]
    out += [f"{key}: {a} -> {b}" for key, (a, b) in changes.get("versions", {}).items()]
    out += [f"GPU health {key}: {a} -> {b}"
            for key, (a, b) in changes.get("gpu_health", {}).items()]
    out += [f"throughput {key}: {v['before']:,.1f} -> {v['after']:,.1f} ({v['change']:+.0%}; "
            f"outside {v['band'][0]:,.1f} to {v['band'][1]:,.1f}, the range of {v['runs']} "
            "earlier run(s) widened by the noise rule)"
            for key, v in changes.get("throughput", {}).items()]
    return out


def not_run_lines(skipped: dict[str, list[str]]) -> list[str]:
    """One line per run that lacks facts the other has: not compared, not a change."""
    return [f"not compared (the check did not run in the {run} run): {', '.join(keys)}"
            for run, keys in skipped.items() if keys]


def diff(before: dict[str, dict], after: dict[str, dict], baselines: dict[str, str],
         noise: float = NOISE, history: dict[str, list[dict]] | None = None) -> dict[str, Any]:
    """Per host of `after`: what changed since its facts in `before` (hosts absent there say so).

    + before/after: host name -> facts; baselines: host name -> the run it is compared with;
      history: host name -> facts of its earlier passing runs, newest first (the noise band)
    """
    hosts = {}
    for name, facts in after.items():
        if name not in before:
            hosts[name] = {"baseline": None, "changes": {}, "lines": ["no earlier run to compare"]}
            continue
        changes = host_changes(before[name], facts, noise, (history or {}).get(name))
        skipped = not_run(before[name], facts)
        hosts[name] = {"baseline": baselines.get(name), "changes": changes,
                       "not_run": skipped,
                       "lines": (lines(changes) or ["nothing changed"]) + not_run_lines(skipped)}
    return {"noise": noise, "hosts": hosts}


def to_text(document: dict[str, Any]) -> str:
    out = []
    for name, host in document["hosts"].items():
        out.append(f"{name} (against {host['baseline'] or 'nothing'}):")
        out += [f"  {line}" for line in host["lines"]]
    return "\n".join(out)


def to_html(document: dict[str, Any]) -> str:
    e = html.escape
    parts = [f"<p class=sub>a throughput counts as changed outside the range of the host's last "
             f"{HISTORY} passing runs widened by {document['noise']:.0%}; packages, versions and "
             "GPU health counters on any change</p>"]
    for name, host in document["hosts"].items():
        changed = host["changes"]
        parts.append(f'<div class="drift" data-host="{e(name)}"><h3>{e(name)} '
                     f'<span class=sub>against {e(host["baseline"] or "nothing")}</span></h3>'
                     f'<ul>{"".join(f"<li>{e(line)}</li>" for line in host["lines"])}</ul>'
                     + ("" if changed else "") + "</div>")
    return "".join(parts)
