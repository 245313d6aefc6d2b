"""The sinks' optional C extension (``_accel.c``: the per-line loops of the timestamps, of the
Loki push encoding and of the file sink's enrichment). ``pip install`` builds it where a C
compiler is available; each of its functions has a pure Python reference beside its caller,
which runs instead where it was not built or with ``OBSKIT_PURE_PYTHON=1``, with the same
results (``tests/sinks/test_accel.py``)."""

from __future__ import annotations

import os
from typing import Any


def load() -> Any | None:
    """The ``_accel`` module, or ``None`` for the pure Python paths."""
    if os.environ.get("OBSKIT_PURE_PYTHON"):
        return None
    try:
        from sidecar.sinks import _accel  # type: ignore[attr-defined, unused-ignore]
    except ImportError:  # not built here (no C compiler): same results, slower
        return None
    return _accel


#: The C extension when it was built and allowed, else ``None``.
ACCEL: Any | None = load()
