"""Run a test through one fast path: the C kernel or the pure Python windows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from obskit.schema import batch

#: The kernel when this machine built it; the pure Python path always.
KERNEL_BUILT = batch._kernel is not None
FAST_PATHS = ["kernel", "pure"] if KERNEL_BUILT else ["pure"]


@contextmanager
def fast_path(name: str) -> Iterator[None]:
    """Validate through ``name`` ("kernel" or "pure") inside the block."""
    assert name in ("kernel", "pure")
    kernel = batch._kernel if name == "kernel" else None
    with mock.patch.object(batch, "_kernel", kernel):
        yield
