"""Print each host's resolved GPU stack, changing nothing (`pyinfra INVENTORY THIS_FILE`)."""

import json
import os
import sys
from pathlib import Path

# pyinfra runs this file by path: make the project's roles importable from any directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyinfra import inventory, state  # noqa: E402
from pyinfra.api import DeployError  # noqa: E402

from dlws.plan import check_inventory, host_plan  # noqa: E402
from dlws.schema import redact  # noqa: E402
from roles import all_defaults, all_keys  # noqa: E402
from roles.frameworks import lock_specs  # noqa: E402

# Same refusals as deploy/workstation.py, before any fact is read.
check_inventory(inventory, all_keys())

# pyinfra runs this file once per host, in parallel; the first run plans every host (facts
# only: OsRelease, NvidiaPciDevices, Container, NvidiaDriverVersion) so that one table comes
# out, in inventory order. No operation is added: nothing on any host changes.
if not getattr(state, "dlws_plan_printed", False):
    state.dlws_plan_printed = True
    rows = []
    active = inventory.get_active_hosts()
    for each in [h for h in inventory if h in active]:
        try:
            rows.append({"host": each.name, **host_plan(each, all_defaults()).as_dict(),
                         "locks": [spec.as_dict() for spec in lock_specs(each)]})
        except DeployError as error:
            rows.append({"host": each.name, "error": str(error)})

    def _cell(row: dict, *keys: str) -> str:
        """"580 open / distro"; a value repeated by its source ("wheels") is shown once."""
        values = [str(row[key]) for key in keys if row.get(key)]
        return " / ".join(dict.fromkeys(values)) if values else "-"

    def _gpus(row: dict) -> str:
        names = row.get("gpus") or []
        return f"{len(names)}x {names[0]}" if names else "-"

    columns = [
        ("HOST", lambda r: r["host"]),
        ("OS", lambda r: f"{r['os_id']} {r['os_release']}"),
        ("GPUS", _gpus),
        ("DRIVER", lambda r: _cell(r, "driver_branch", "driver_flavour").replace(" / ", " ")
         + (f" / {r['driver_source']}" if r.get("driver_source") else "")
         + (" kept" if r.get("driver_keep_installed") else "")),
        ("CUDA", lambda r: _cell(r, "cuda", "cuda_source")),
        ("CUDNN", lambda r: _cell(r, "cudnn", "cudnn_source")),
        ("NCCL", lambda r: _cell(r, "nccl")),
        ("PYTHON", lambda r: r["python"]),
        ("TENSORFLOW", lambda r: r.get("tensorflow_package") or "-"),
        ("TORCH", lambda r: f"{r['torch']}+{r['torch_variant']}" if r.get("torch") else "-"),
    ]
    planned = [r for r in rows if "error" not in r]
    cells = [[get(r) for _, get in columns] for r in planned]
    widths = [max([len(title)] + [len(c[i]) for c in cells]) for i, (title, _) in
              enumerate(columns)]
    lines = ["  ".join(t.ljust(w) for (t, _), w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in cells]
    lines += [f"note {r['host']}: {note}" for r in planned for note in r["notes"]]
    lines += [f"REFUSED {r['host']}: {r['error']}" for r in rows if "error" in r]
    print("\n".join(lines), flush=True)

    if os.environ.get("DLWS_PLAN_JSON"):
        # Lock specs carry index URLs: a mirror's user:password stays out of the file, except
        # for `bin/dlws lock`'s own private file (0600, deleted after), which needs them.
        text = json.dumps(rows, indent=2)
        if not os.environ.get("DLWS_PLAN_JSON_SECRETS"):
            text = redact(text)
        Path(os.environ["DLWS_PLAN_JSON"]).write_text(text + "\n")

    refused = [r for r in rows if "error" in r]
    if refused:
        raise DeployError(f"{len(refused)} host(s) cannot be planned:\n"
                          + "\n".join(f"  - {r['error']}" for r in refused))
