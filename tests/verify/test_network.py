"""The multi-node check's commands, offline: addresses, the torchrun line, hostile values."""

from __future__ import annotations

import shlex

from dlws.inventory.targets import Target
from dlws.roles import all_defaults
from dlws.verify.test_network import address, torchrun_command


def target(name: str, spec: str, **data) -> Target:
    return Target(name, spec, {**all_defaults(), **data})


def test_addresses_come_from_the_connection_unless_declared():
    assert address(target("@docker/ws", "docker://ws")) == "ws"
    assert address(target("ws-01", "ssh://admin@ws-01.lab:2222?ssh_identity_file=k")) == (
        "ws-01.lab")
    assert address(target("ws-01", "ssh://ws-01", network_address="10.0.0.7")) == "10.0.0.7"


def test_torchrun_line_per_host():
    leader = target("ws-01", "ssh://ws-01", network_rendezvous_port=29500)
    gpu = target("ws-02", "ssh://ws-02", gpu_count=4, gpu_model="NVIDIA L4",
                 network_timeout_s=90, network_interface="eth1")
    words = shlex.split(torchrun_command(gpu, leader, 2, "dlws-abc"))
    assert words[:8] == ["env", "GLOO_SOCKET_IFNAME=eth1", "NCCL_SOCKET_IFNAME=eth1",
                         "timeout", "-k", "10", "105", "/opt/dlws/venv/bin/torchrun"]
    assert {"--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d",
            "--rdzv-endpoint=ws-01:29500", "--rdzv-id=dlws-abc", "--rdzv-conf=join_timeout=90",
            "--max-restarts=0", "--multinode", "--require-gpu"} <= set(words)
    cpu = shlex.split(torchrun_command(leader, leader, 2, "dlws-abc"))
    assert cpu[0] == "timeout" and "--nproc-per-node=1" in cpu and "--require-gpu" not in cpu


def test_hostile_values_stay_single_words():
    leader = target("ws-01", "ssh://ws-01", network_address="h; rm -rf /")
    evil = target("ws-02", "ssh://ws-02", network_interface="eth0 $(reboot)",
                  verify_mnist_path="/data/m nist.npz")
    command = torchrun_command(evil, leader, 2, "dlws-abc")
    words = shlex.split(command)
    assert "GLOO_SOCKET_IFNAME=eth0 $(reboot)" in words
    assert "--rdzv-endpoint=h; rm -rf /:29400" in words
    assert "/data/m nist.npz" in words
    assert "$(reboot)'" in command and "'--rdzv-endpoint=h; rm -rf /:29400'" in command
