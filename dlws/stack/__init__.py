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
from dlws.stack.table import GPU_MODELS, OS_RELEASES, GpuModel

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
