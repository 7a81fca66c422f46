"""Base role: apt sources with the stack's components, essential packages, CAs and proxies."""
