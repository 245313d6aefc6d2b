"""obskit: structured logging and observability kit for containerised services."""

__version__ = "0.1.0"
