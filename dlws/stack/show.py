"""The stack as people read it: one table row per host and its notes (plan, calculator, verify)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dlws.stack.services import containers_line, notebooks_line


def _cell(*values: Any) -> str:
    """"580 / open / distro"; a value repeated by its source ("wheels") is shown once."""
    shown = [str(v) for v in values if v]
    return " / ".join(dict.fromkeys(shown)) if shown else "-"


def _gpus(stack: Mapping[str, Any]) -> str:
    models = stack["gpu"]["models"]
    return f"{len(models)}x {models[0]}" if models else "-"


def _driver(stack: Mapping[str, Any]) -> str:
    driver = stack["driver"]
    if not driver["branch"]:
        return "-"
    text = f"{driver['branch']} {driver['flavour']} / {driver['source']}"
    if driver.get("display"):
        text += f" / {driver['display']}"
    if stack["transition"]["keep_installed_driver"]:
        text += " (adopted)"
    return text


COLUMNS = [
    ("HOST", lambda h, s: h),
    ("OS", lambda h, s: f"{s['os']['id']} {s['os']['release']}"
     + (f" {s['os']['machine']}" if s["os"].get("machine", "x86_64") != "x86_64" else "")
     + (" (container)" if s["os"]["container"] else "")),
    ("GPUS", lambda h, s: _gpus(s)),
    ("DRIVER", lambda h, s: _driver(s)),
    ("CUDA", lambda h, s: _cell(s["cuda"]["version"], s["cuda"]["source"])),
    ("CUDNN", lambda h, s: _cell(s["cudnn"]["version"], s["cudnn"]["source"])),
    ("NCCL", lambda h, s: _cell(s["nccl"]["version"])),
    ("PYTHON", lambda h, s: s["python"]["version"]),
    ("TENSORFLOW", lambda h, s: s["tensorflow"]["package"]
     or (f"NGC {s['tensorflow']['image']}" if s["tensorflow"].get("image") else "-")),
    ("TORCH", lambda h, s: f"{s['torch']['version']}+{s['torch']['variant']}"
     if s["torch"]["version"] else "-"),
]


def table(rows: Iterable[tuple[str, Mapping[str, Any]]]) -> str:
    """Hosts and their stacks (``Stack.as_dict()``) as an aligned table, then every note and
    the packages each role installs."""
    rows = list(rows)
    cells = [[get(host, stack) for _, get in COLUMNS] for host, stack in rows]
    widths = [max([len(title)] + [len(c[i]) for c in cells])
              for i, (title, _) in enumerate(COLUMNS)]
    lines = ["  ".join(t.ljust(w) for (t, _), w in zip(COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in cells]
    for host, stack in rows:
        packages = [("kernel headers", stack["os"]["kernel_headers"]),
                    ("driver", stack["driver"]["packages"]),
                    ("cuda", stack["cuda"]["packages"]),
                    ("cudnn", stack["cudnn"]["packages"]),
                    ("nccl", [*stack["nccl"]["packages"],
                              *([f"(version {stack['nccl']['apt_pin']})"]
                                if stack["nccl"].get("apt_pin") else [])]),
                    ("locks", stack["python"]["locks"])]
        shown = [f"{label}: {' '.join(names)}" for label, names in packages if names]
        if shown:
            lines.append(f"apt/pip {host}: " + "; ".join(shown))
        # The stack's services, a line each where the host has them.
        for name, line in (("containers", containers_line), ("notebooks", notebooks_line)):
            shown_part = line(stack.get(name) or {})
            if shown_part:
                lines.append(f"{name} {host}: {shown_part}")
        lines += [f"note {host}: {note}" for note in stack["notes"]]
    return "\n".join(lines)
