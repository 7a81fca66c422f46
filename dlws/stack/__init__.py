"""The GPU stack: one derivation of a host's driver, CUDA, cuDNN, Python and frameworks.

Stages: ``records`` (facts, request, the nested stack), ``gpus``, ``driver``, ``cuda`` (with
cuDNN and NCCL), ``frameworks``, and ``resolve`` (``derive``: all of them, in order); ``table``
holds the cited facts they read.
"""

from dlws.stack.gpus import find_gpu
from dlws.stack.records import (
    HOST_DATA_KEYS,
    HostFacts,
    Stack,
    StackError,
    StackRequest,
    differences,
    request_from_host_data,
)
from dlws.stack.resolve import derive, resolve
from dlws.stack.table import OS_RELEASES, GpuModel, gpu_table

__all__ = [
    "GPU_MODELS",
    "HOST_DATA_KEYS",
    "OS_RELEASES",
    "GpuModel",
    "HostFacts",
    "Stack",
    "StackError",
    "StackRequest",
    "derive",
    "differences",
    "find_gpu",
    "request_from_host_data",
    "resolve",
]


def __getattr__(name: str):
    """GPU_MODELS: the GPU table's models, read on first use (PEP 562; dlws.stack.table)."""
    if name == "GPU_MODELS":
        return gpu_table()[2]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
