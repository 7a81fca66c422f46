"""dlws roles: one pyinfra deploy package per concern."""
