"""cuDNN and NCCL role: from NVIDIA's repository or the distribution, or left to the wheels."""
