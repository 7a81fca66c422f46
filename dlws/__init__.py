"""dlws: deep learning workstations, provisioned and proven."""

__version__ = "0.2.0"
