"""What each host is declared to have: the hardware and the bars verify holds it to."""

from __future__ import annotations

import os
import stat

from dlws.schema import Key, absolute_path, defaults, fraction, non_negative, positive, url


def _private_file(value: str) -> str | None:
    path = os.path.expanduser(value)
    if not os.path.isfile(path):
        return f"{value!r} does not exist on the controller; fix the path or unset it"
    if os.stat(path).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{value!r} holds passwords and others can read it; chmod 600 it"
    return None


KEYS = [
    Key("gpu_count", 0, (int,),
        "GPUs the host has; 0 = CPU profile (GPU checks skip, saying so). More than 0: a "
        "missing GPU is a failure, never a skip", check=non_negative),
    Key("gpu_model", None, (str,),
        "the GPU model as nvidia-smi names it (e.g. 'NVIDIA GeForce RTX 4090') or a PCI ID "
        "('10de:2684'); required when gpu_count > 0", nullable=True),
    Key("gpu_min_memory_gib", None, (int, float), "least memory per GPU, GiB",
        check=positive, nullable=True),
    Key("gpu_min_power_limit_fraction", 1.0, (float,),
        "least enforced GPU power limit as a fraction of the card's default; lower it where the "
        "lab caps power on purpose (nvidia-smi -pl)", check=fraction),
    Key("hardware_min_cpu_cores", 1, (int,), "least CPU cores (nproc)", check=positive),
    Key("hardware_min_memory_gib", 1, (int, float), "least RAM, GiB", check=positive),
    Key("hardware_data_dir", "/var/tmp", (str,),
        "the data disk's mount point (the seed's 'fast storage')", check=absolute_path),
    Key("hardware_min_free_gib", 1, (int, float), "least free space on the data disk, GiB",
        check=non_negative),
    Key("hardware_min_read_mib_s", 50, (int, float),
        "least sequential read throughput of the data disk, MiB/s", check=non_negative),
    Key("verify_frameworks", ["tensorflow", "torch"], (list,),
        "frameworks the training check runs (each must also be installed)",
        check=lambda v: None if set(v) <= {"tensorflow", "torch"}
        else "items must be 'tensorflow' or 'torch'"),
    Key("verify_min_accuracy", 0.95, (float,),
        "test accuracy bar of the MNIST training check on the full data set", check=fraction),
    Key("verify_sample_min_accuracy", 0.85, (float,),
        "bar on the 5,000-image offline sample (used when no MNIST copy is reachable)",
        check=fraction),
    Key("verify_mnist_path", None, (str,),
        "a lab mirror's mnist.npz on the host, tried first", check=absolute_path, nullable=True),
    Key("verify_epochs", 5, (int,), "epochs of the training check (the seed's 5)",
        check=positive),
    Key("verify_offline", False, (bool,), "never try to download MNIST on the host"),
    Key("verify_min_tflops_fraction", 0.5, (float,),
        "least share of the GPU model's expected dense bf16 TFLOP/s the matmul probe must "
        "reach on each GPU (below: throttling, a narrow PCIe link, a power cap)",
        check=fraction),
]
KEYS += [
    Key("verify_notebooks_logins", None, (str,),
        "controller path of a file (mode 600) of USER:PASSWORD lines (chpasswd's format) for "
        "roles/notebooks' login checks: each lab member must get in, everyone else must be "
        "refused; None = those checks skip", check=_private_file, nullable=True),
    Key("verify_notebooks_url", None, (str,),
        "where the controller reaches the hub (default: the host's address and "
        "notebooks_port; a container's bridge address)", check=url, nullable=True),
]
DEFAULTS = defaults(KEYS)
