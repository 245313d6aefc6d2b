"""The obskit Python SDK: schema v1 logs from structlog and the standard library.

The public API is re-exported lazily from :mod:`obskit` (``obskit.configure`` and friends);
the modules here are small and named for what they do.
"""
