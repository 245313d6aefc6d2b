"""Shared fixtures. Servers started by tests bind to 127.0.0.1 only."""
