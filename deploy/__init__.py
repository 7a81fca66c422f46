"""Deploy files pyinfra runs by path (in the wheel: dlws.deploy)."""
