"""NVIDIA driver role: the planned branch and flavour, from the distro or NVIDIA's repository."""
