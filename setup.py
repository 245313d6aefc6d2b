"""Build hook for the one optional C kernel; everything else is in pyproject.toml.

obskit/schema/_scan.c fuses three window scans of the validator's fast path into one pass.
It is optional: where no C compiler is available (a Windows machine without MSVC) the build
goes on and obskit uses the pure Python path, which gives the same verdicts.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("obskit.schema._scan", ["obskit/schema/_scan.c"], optional=True),
    ]
)
