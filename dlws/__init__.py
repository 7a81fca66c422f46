"""dlws: deep learning workstations, provisioned and proven."""

__version__ = "0.1.0"
