"""What each host is declared to have: the hardware and the bars verify holds it to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlws.stack import StackError, find_gpu
from dlws.validate.domains import (
    Address,
    ControllerPath,
    HostPath,
    ListOf,
    Name,
    Number,
    Url,
    fraction,
    gpu_model,
    port,
    private_file,
)
from dlws.validate.schema import Key, defaults

# A workstation or server holds at most a few dozen GPUs (an HGX board: 8; the largest PCIe
# chassis: 20); 64 leaves room and keeps a typo such as 2**63 from reaching the solver.
MAX_GPUS = 64
# The largest disk figure a key may hold: a petabyte (GiB), a TB/s (MiB/s).
MAX_GIB = 10**6
FRAMEWORKS = ("tensorflow", "torch")


def _memory_fits_model(data: Mapping[str, Any]) -> str | None:
    """gpu_min_memory_gib above what the declared model has: verify could never pass."""
    floor, model = data.get("gpu_min_memory_gib"), data.get("gpu_model")
    if floor is None or not model:
        return None
    try:
        memory = find_gpu(model).memory_gib
    except StackError:  # an unknown model is refused by name (dlws.validate.inventory)
        return None
    if memory is not None and floor > memory:
        return (f"{floor} GiB is more than the {memory} GiB that gpu_model {model!r} has, so "
                "verify could never pass; lower gpu_min_memory_gib or fix gpu_model")
    return None


def _frameworks_installed(data: Mapping[str, Any]) -> str | None:
    """verify_frameworks naming a framework the host does not install. The default (both)
    means "each one the host installs": verify's training check skips a framework the plan
    has none of (verify/test_training.py); a list the data sets is held to what it says."""
    if data.get("verify_frameworks") == list(FRAMEWORKS):
        return None
    for framework in data.get("verify_frameworks") or ():
        if data.get(f"frameworks_{framework}") == "none":
            return (f"{framework!r} is checked but frameworks_{framework} is 'none', so the host "
                    f"never has it; remove {framework!r} from verify_frameworks or install it "
                    f"(frameworks_{framework} = 'auto')")
    return None


KEYS = [
    Key("gpu_count", 0, (int,),
        "GPUs the host has; 0 = CPU profile (GPU checks skip, saying so). More than 0: a "
        "missing GPU is a failure, never a skip (at most 64)", check=Number(0, MAX_GPUS)),
    Key("gpu_model", None, (str,),
        "the GPU model as nvidia-smi names it (e.g. 'NVIDIA GeForce RTX 4090') or a PCI ID "
        "('10de:2684'); required when gpu_count > 0, refused when it is 0", check=gpu_model(),
        nullable=True),
    Key("gpu_min_memory_gib", None, (int, float), "least memory per GPU, GiB (at most 1024)",
        check=Number(0, 1024, low_open=True, unit="GiB", integer=False), nullable=True,
        check_data=_memory_fits_model),
    Key("gpu_min_power_limit_fraction", 1.0, (float,),
        "least enforced GPU power limit as a fraction of the card's default; lower it where the "
        "lab caps power on purpose (nvidia-smi -pl)", check=fraction()),
    Key("hardware_min_cpu_cores", 1, (int,), "least CPU cores (nproc), 1 to 4096",
        check=Number(1, 4096)),
    Key("hardware_min_memory_gib", 1, (int, float), "least RAM, GiB (at most 65536)",
        check=Number(0, 65536, low_open=True, unit="GiB", integer=False)),
    Key("hardware_data_dir", "/var/tmp", (str,),
        "the data disk's mount point (the seed's 'fast storage'); only read by verify",
        # /var/tmp (the default) is where a host without a data disk has room; the burn-in's
        # soak file is made there by stress-ng
        check=HostPath(exactly=("/var/tmp",), example="/data")),
    Key("hardware_min_free_gib", 1, (int, float), "least free space on the data disk, GiB",
        check=Number(0, MAX_GIB, unit="GiB", integer=False)),
    Key("hardware_min_read_mib_s", 50, (int, float),
        "least sequential read throughput of the data disk, MiB/s",
        check=Number(0, MAX_GIB, unit="MiB/s", integer=False)),
    Key("verify_frameworks", list(FRAMEWORKS), (list,),
        "frameworks the training check runs: the default = each one the host installs; a list "
        "set here may name only frameworks the host installs (not frameworks_X = 'none')",
        check=ListOf(Name("tensorflow|torch", "'tensorflow' or 'torch'", example="torch"),
                     max_items=2), check_data=_frameworks_installed),
    Key("verify_min_accuracy", 0.95, (float,),
        "test accuracy bar of the MNIST training check on the full data set", check=fraction()),
    Key("verify_sample_min_accuracy", 0.85, (float,),
        "bar on the 5,000-image offline sample (used when no MNIST copy is reachable)",
        check=fraction()),
    Key("verify_mnist_path", None, (str,),
        "a lab mirror's mnist.npz on the host, tried first",
        check=HostPath(example="/srv/mnist/mnist.npz"),
        nullable=True),
    Key("verify_epochs", 5, (int,), "epochs of the training check (the seed's 5), 1 to 100",
        check=Number(1, 100)),
    Key("verify_offline", False, (bool,), "never try to download MNIST on the host"),
    Key("verify_integrity", "full", (str,),
        "how verify checks the environment's files against their RECORDs before any of its "
        "code runs as root: full = every file's size and sha256 (hashed in parallel on the "
        "host; the sandbox's 2.2 GB in seconds, docs/benchmarks.md); fast = size, and no file "
        "modified after its RECORD was written (a change that keeps the size and resets the "
        "mtime passes: use it only where the full check is too slow)",
        choices=("full", "fast")),
    Key("verify_min_tflops_fraction", 0.5, (float,),
        "least share of the GPU model's expected dense bf16 TFLOP/s the matmul probe must "
        "reach on each GPU (below: throttling, a narrow PCIe link, a power cap)",
        check=fraction()),
    # The burn-in (dlws verify --burn-in-minutes N runs dlws-burn-in on each host).
    Key("verify_burn_in_max_throttle_fraction", 0.02, (float,),
        "burn-in bar: most share of the seconds a GPU may spend thermally or power-brake "
        "throttled (NVML clock event reasons sw/hw thermal, hw slowdown, power brake; the "
        "software power cap is the card at its limit and does not count)", check=fraction()),
    Key("verify_burn_in_min_clock_fraction", 0.75, (float,),
        "burn-in bar: least median SM clock under load as a share of the GPU's maximum SM "
        "clock (NVML); boost cards settle near their power limit below the maximum",
        check=fraction()),
    Key("verify_burn_in_memory_fraction", 0.5, (float,),
        "share of the host's memory the burn-in's memory stressor (stress-ng --vm) holds",
        check=fraction()),
    Key("verify_burn_in_disk_mib", 1024, (int,),
        "size of the burn-in's disk soak file on hardware_data_dir (stress-ng --hdd), MiB (at "
        "most 1 TiB)", check=Number(1, 2**20, unit="MiB")),
    # Across machines: the multi-node training check (verify/test_network.py).
    Key("network_multinode_group", None, (str,),
        "hosts with the same name here train together across machines with torchrun (c10d "
        "rendezvous on the group's first host; NCCL with GPUs, gloo without); none = alone",
        nullable=True, check=Name(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
                                   "letters, digits, '.', '_' or '-', e.g. 'rack-a'",
                                   example="rack-a")),
    Key("network_address", None, (str,),
        "the address the other hosts of the group reach this host at on the lab network "
        "(default: its inventory name)", nullable=True,
        check=Address(names=True, example="10.0.0.11")),
    Key("network_interface", None, (str,),
        "the network interface the group's traffic uses on this host (GLOO_SOCKET_IFNAME and "
        "NCCL_SOCKET_IFNAME, e.g. 'eth1'); default: the one the host's name resolves to",
        nullable=True, check=Name(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}",
                                   "an interface name such as 'eth1' (15 characters at most)",
                                   example="eth1")),
    Key("network_min_gbit", 0.5, (int, float),
        "least all-reduce bus bandwidth between each pair of hosts of the group, Gbit/s "
        "(nccl-tests' busbw; set your fabric's figure, e.g. 80 for 100 GbE)",
        check=Number(0, 10**4, unit="Gbit/s", integer=False)),
    Key("network_rendezvous_port", 29400, (int,),
        "TCP port of the c10d rendezvous on the group's first host", check=port()),
    Key("network_timeout_s", 180, (int,),
        "seconds the multi-node check may take before it is stopped and fails (a host that "
        "never joins the rendezvous; at most a day)", check=Number(1, 86400, unit="s")),
]
KEYS += [
    Key("verify_notebooks_logins", None, (str,),
        "controller path of a file (mode 600) of USER:PASSWORD lines (chpasswd's format) for "
        "roles/notebooks' login checks: each lab member must get in, everyone else must be "
        "refused; None = those checks skip", check=ControllerPath(private_file), nullable=True),
    Key("verify_notebooks_url", None, (str,),
        "where the controller reaches the hub (default: the host's address and "
        "notebooks_port; a container's bridge address)", check=Url(("https", "http")),
        nullable=True),
]
DEFAULTS = defaults(KEYS)
