"""Example inventories pyinfra reads by path (in the wheel: dlws.examples)."""
