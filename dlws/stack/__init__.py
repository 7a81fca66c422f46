"""The GPU stack solver and its fact table: one place that decides driver, CUDA and frameworks."""

from dlws.stack.solver import (
    HOST_DATA_KEYS,
    HostFacts,
    Stack,
    StackError,
    StackRequest,
    find_gpu,
    request_from_host_data,
    resolve,
)
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
    "find_gpu",
    "request_from_host_data",
    "resolve",
]
