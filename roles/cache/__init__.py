"""Package cache role: one apt-cacher-ng for a fleet, and the keys that point hosts at it."""
