"""The sinks' optional C extension (``_accel.c``: the per-line loops of the timestamps, of the
Loki push encoding and of the file sink's enrichment). ``pip install`` builds it where a C
compiler is available; each of its functions has a pure Python reference beside its caller,
which runs instead where it was not built or with ``OBSKIT_PURE_PYTHON=1``, with the same
results (``tests/sinks/test_accel.py``)."""

from __future__ import annotations

from typing import Any

from obskit._native import optional_extension

#: The C extension when it was built and allowed, else ``None``.
ACCEL: Any | None = optional_extension("sidecar.sinks._accel")
