"""Across machines: the training check on every host of a group at once (torchrun, c10d
rendezvous over the lab network; NCCL with GPUs, gloo without) and the all-reduce bus bandwidth
between each pair of hosts against network_min_gbit."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from urllib.parse import urlparse

import pytest

from dlws import shell_session
from dlws.command import Command, cmd

from .helpers import targets, train_check_data_args

# Seconds beyond network_timeout_s that `timeout` gives torchrun to stop its ranks (SIGTERM),
# before it kills them.
GRACE_S = 15


def address(target) -> str:
    """Where the group's other hosts reach this one: network_address, else the host part of
    its connection (docker://NAME is NAME on a Docker network; ssh://user@HOST:port is HOST)."""
    if target["network_address"]:
        return target["network_address"]
    parsed = urlparse(target.spec)
    return parsed.hostname or parsed.netloc or "localhost"


def torchrun_command(target, leader, nodes: int, run_id: str) -> Command:
    """The command each host of the group runs: torchrun, bounded by `timeout`."""
    limit = target["network_timeout_s"]
    per_node = max(1, target["gpu_count"])
    check = [f"{target['python_env_prefix']}/bin/torchrun", f"--nnodes={nodes}",
             f"--nproc-per-node={per_node}", "--rdzv-backend=c10d",
             f"--rdzv-endpoint={address(leader)}:{leader['network_rendezvous_port']}",
             f"--rdzv-id={run_id}", f"--rdzv-conf=join_timeout={limit}", "--max-restarts=0",
             target["frameworks_train_check_path"], "--multinode", "--json", "-",
             "--timeout", str(limit), *train_check_data_args(target)]
    if target["gpu_count"] > 0:
        check.append("--require-gpu")
    env = []
    if target["network_interface"]:
        # gloo and NCCL pick the interface the host's name resolves to unless told.
        env = ["env", f"GLOO_SOCKET_IFNAME={target['network_interface']}",
               f"NCCL_SOCKET_IFNAME={target['network_interface']}"]
    return cmd(*env, "timeout", "-k", "10", str(limit + GRACE_S), *check)


def plain_host(member):
    """The member's testinfra host, a process per command (the torchrun and the pkill that
    stops it run side by side), logged in as verify logs in (its password, host keys)."""
    return shell_session.get_host(member.spec, sessions=False, **member.options)


def run_on(member, command: Command) -> dict:
    """One host's part: its exit code, output and the document its first rank printed."""
    started = time.monotonic()
    try:
        out = plain_host(member).run(command)
    except Exception as error:  # the backend could not start the command: unreachable
        return {"host": member.name, "rc": None, "seconds": 0.0, "document": {},
                "error": f"unreachable ({member.spec}): {error}"}
    # Only each host's first rank prints, and only the JSON, on stdout (torchrun logs on stderr).
    try:
        document = json.loads(out.stdout) if out.stdout.strip() else {}
    except json.JSONDecodeError:
        document = {}
    return {"host": member.name, "rc": out.rc, "seconds": round(time.monotonic() - started, 1),
            "document": document,
            "error": "" if out.rc == 0 else (out.stderr.strip() or out.stdout.strip())[-1200:]}


def stop_run(member, run_id: str) -> None:
    """Stop this run's torchrun on a host (found by its unique rendezvous ID, nothing else)."""
    with contextlib.suppress(Exception):  # unreachable: nothing of ours runs there
        plain_host(member).run(cmd("pkill", "-TERM", "-f", "--", f"--rdzv-id={run_id}"))


def run_group(members, leader, run_id: str) -> list[dict]:
    """torchrun on every host at once. The first host that fails stops the others' run: a
    host that cannot start (stopped, unreachable) fails the check now, not after the
    rendezvous timeout (which still bounds a host that starts but never joins)."""
    with ThreadPoolExecutor(len(members)) as pool:
        futures = {pool.submit(run_on, m, torchrun_command(m, leader, len(members), run_id)): m
                   for m in members}
        stopped = False
        for future in as_completed(futures):
            if future.result()["rc"] != 0 and not stopped:
                stopped = True
                for member in members:
                    if member is not futures[future]:
                        stop_run(member, run_id)
        return [next(f.result() for f, m in futures.items() if m is member) for member in members]


def test_multinode_training(host, target, plan, request, record_fact):
    """The hosts of network_multinode_group train one model together (torchrun)."""
    group = target["network_multinode_group"]
    if not group:
        pytest.skip("network_multinode_group is not set: this host trains alone")
    members = [t for t in targets(request.config) if t["network_multinode_group"] == group]
    leader = members[0]
    if target.name != leader.name:
        pytest.skip(f"the multi-node check of group {group!r} runs from its first host, "
                    f"{leader.name}, and covers this host there")
    assert len(members) > 1, (f"group {group!r} has only {target.name}: give "
                              "network_multinode_group to the other hosts that train with it")
    if not plan.torch.version:
        pytest.fail("the multi-node check needs PyTorch, and the plan installs none")
    run_id = f"dlws-{uuid.uuid4().hex[:12]}"
    parts = run_group(members, leader, run_id)
    document = next((p["document"] for p in parts if p["document"]), {})
    evidence = "; ".join(f"{p['host']}: exit {p['rc']} after {p['seconds']} s"
                         + (f" ({p['error']})" if p["error"] else "") for p in parts)
    pairs = [{**pair, "min_gbit": target["network_min_gbit"]}
             for pair in document.get("allreduce", [])]
    if pairs:
        record_fact("network.allreduce", pairs)
    for key in ("samples_per_second", "test_accuracy", "world_size", "backend"):
        if key in document:
            record_fact(f"network.multinode.{key}", document[key])
    failed = [p for p in parts if p["rc"] != 0]
    assert not failed, (f"the multi-node check of group {group!r} ({len(members)} hosts, "
                        f"limit {target['network_timeout_s']} s) failed: {evidence}")
    assert document.get("status") == "passed", f"{document.get('reason')}; {evidence}"
    assert len(document["nodes"]) == len(members), (
        f"{len(document['nodes'])} hosts joined ({document['nodes']}), {len(members)} in the "
        f"group: {evidence}")
    slow = [f"{p['pair']}: {p['gbit']} Gbit/s" for p in pairs
            if p["gbit"] < target["network_min_gbit"]]
    assert not slow, (f"all-reduce bus bandwidth under network_min_gbit = "
                      f"{target['network_min_gbit']}: {slow}")
