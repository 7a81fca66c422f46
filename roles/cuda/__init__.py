"""CUDA toolkit role: the planned toolkit from the distro or NVIDIA's repository, nvcc on PATH."""
