"""Build hook for the optional C extensions; everything else is in pyproject.toml.

obskit/schema/_scan.c fuses three window scans of the validator's fast path into one pass;
sidecar/sinks/_accel.c holds the network sinks' per-line loops (timestamps, Loki
push encoding). Both are optional: where
no C compiler is available (a Windows machine without MSVC) the build goes on and the pure
Python paths run, which give the same verdicts and the same bytes.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("obskit.schema._scan", ["obskit/schema/_scan.c"], optional=True),
        Extension("sidecar.sinks._accel", ["sidecar/sinks/_accel.c"], optional=True),
    ]
)
