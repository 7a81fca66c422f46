"""Python environment role: a shared virtual environment, pip/uv set up for the host's network."""
