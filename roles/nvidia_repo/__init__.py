"""NVIDIA's apt repository: written once, used by the driver, CUDA and cuDNN roles."""
