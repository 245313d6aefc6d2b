"""The optional C extensions (the validator's ``obskit/schema/_scan.c``, the sidecar sinks'
``sidecar/sinks/_accel.c``): ``pip install`` builds them where a C compiler is available.
Each has a pure Python reference with the same results, which runs where the extension was
not built or with ``OBSKIT_PURE_PYTHON=1``."""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def optional_extension(name: str) -> ModuleType | None:
    """The extension module ``name``, or ``None`` for the pure Python path."""
    if os.environ.get("OBSKIT_PURE_PYTHON"):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:  # not built here (no C compiler): same results, slower
        return None
