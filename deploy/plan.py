"""Print each host's resolved GPU stack, changing nothing (`pyinfra INVENTORY THIS_FILE`)."""

import json
import os
import sys
from pathlib import Path

# pyinfra runs this file by path: make the project's roles importable from any directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyinfra import inventory, state  # noqa: E402
from pyinfra.api import DeployError  # noqa: E402

from dlws.plan import host_data, host_locks, host_plan  # noqa: E402
from dlws.roles import all_defaults, all_keys  # noqa: E402
from dlws.stack.show import table  # noqa: E402
from dlws.validate.host import check_host  # noqa: E402
from dlws.validate.inventory import check_inventory  # noqa: E402
from dlws.validate.secrets import redact  # noqa: E402

# Same refusals as deploy/workstation.py, before any fact is read.
check_inventory(inventory, all_keys())

# pyinfra runs this file once per host, in parallel; the first run plans every host (facts
# only: dlws.facts.readers.host_facts) so that one table comes
# out, in inventory order. No operation is added: nothing on any host changes.
if not getattr(state, "dlws_plan_printed", False):
    state.dlws_plan_printed = True
    rows = []
    active = inventory.get_active_hosts()
    defaults = all_defaults()
    keys = all_keys()
    for each in [h for h in inventory if h in active]:
        try:
            stack = host_plan(each, defaults)
            check_host(each, host_data(each), keys)
            rows.append({"host": each.name, **stack.as_dict(),
                         "locks": [spec.as_dict() for spec in host_locks(each)]})
        except DeployError as error:
            rows.append({"host": each.name, "error": str(error)})
    planned = [r for r in rows if "error" not in r]
    lines = [table((r["host"], r) for r in planned)] if planned else []
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
