"""Real file-system faults for the fault tests: a sidecar process that permissions apply to
(even when the tests run as root), descriptor exhaustion, ENOSPC through the writers' OS seam,
and a real small tmpfs where the machine allows mounting one."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from obskit.schema import check_line
from sidecar.segments import SegmentIO
from sidecar.sinks.base import Batch
from tests.sidecar.engine.enginehelp import Sidecar, line

REPO = Path(__file__).resolve().parents[2]
CHAOS_LAUNCHER = [sys.executable, str(REPO / "tests" / "chaos" / "run_sidecar.py")]

_PR_CAPBSET_DROP = 24
# CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER: what lets root ignore file modes.
_DAC_CAPS = (1, 2, 3)


def drop_root_file_powers() -> None:
    """``preexec_fn``: the child (and what it execs) is refused by file modes as anyone else
    is, even as root (the capabilities that bypass them leave the bounding set)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    for cap in _DAC_CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def modes_apply_to_children(scratch: Path) -> bool:
    """Whether a chmod 0o500 folder refuses a child started with
    :func:`drop_root_file_powers` (False where capabilities cannot be dropped)."""
    if sys.platform == "win32":
        return False
    probe = scratch / "mode-probe"
    probe.mkdir()
    probe.chmod(0o500)
    try:
        res = subprocess.run(
            [sys.executable, "-c", f"open({str(probe / 'x')!r}, 'w')"],
            preexec_fn=drop_root_file_powers,
            capture_output=True,
            check=False,
        )
    finally:
        probe.chmod(0o700)
    return res.returncode != 0 and b"PermissionError" in res.stderr


def skip_unless_modes_apply(scratch: Path) -> None:
    """Skip the test where file modes cannot be made to apply to a child process."""
    import pytest

    if not modes_apply_to_children(scratch):
        pytest.skip("file modes cannot be made to apply to a child process here")


def numbered_batch(seq: int, start: int, n: int, key: str = "k") -> Batch:
    """Lines ``start`` to ``start + n`` (``seq`` fields), 100 bytes apart in file ``key``."""
    lines = [line(i) for i in range(start, start + n)]
    recs = []
    for ln in lines:
        rec, _ = check_line(ln)
        assert rec is not None
        recs.append(rec)
    return Batch(
        seq,
        lines,
        recs,
        offsets=[i * 100 for i in range(start, start + n)],
        runs=[(0, key)],
        static={"host": "h1"},
        extents={key: (start * 100, (start + n) * 100)},
    )


def attempt(sink: Any, batch: Batch) -> None:
    """One try of the whole batch, as the delivery loop makes it (raises what it raises)."""
    sink.attempt(batch, list(range(len(batch.lines))))


def problems(side: Sidecar) -> list[dict[str, Any]]:
    """A sidecar's WARN and ERROR lines (and any line that is not JSON)."""
    return [x for x in side.logs() if x.get("level") in ("WARN", "ERROR") or "raw" in x]


class FullDisk(SegmentIO):
    """The writers' OS seam with a disk that can be made full: while :attr:`full` names
    operations (``write``, ``fsync``, ``open``), they fail with ``ENOSPC`` as on a full
    volume; ``partial`` first lets a write through half-way (a short write), as a file
    system does when it runs out mid-write."""

    def __init__(self) -> None:
        self.full: set[str] = set()
        self.partial = False
        self.failures = 0

    def _fail(self, op: str) -> None:
        if op in self.full:
            self.failures += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def open_append(self, path: Path) -> int:
        self._fail("open")
        return super().open_append(path)

    def write(self, fd: int, data: memoryview) -> int:
        if "write" in self.full and self.partial and len(data) > 1:
            self.partial = False
            return super().write(fd, data[: len(data) // 2])
        self._fail("write")
        return super().write(fd, data)

    def fsync(self, fd: int) -> None:
        self._fail("fsync")
        super().fsync(fd)


@contextlib.contextmanager
def small_tmpfs(root: Path, size: str = "1m") -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``root`` (root on Linux only: skips otherwise)."""
    import pytest

    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux; the ENOSPC seam covers CI")
    root.mkdir(parents=True, exist_ok=True)
    rc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(root)],
        capture_output=True,
        check=False,
    )
    if rc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {rc.stderr.decode().strip()}")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` with a ballast file; returns it."""
    ballast = folder / "ballast"
    with open(ballast, "wb", buffering=0) as f:
        for size in (65536, 4096, 512, 1):  # down to the last byte
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)
    return ballast


def exhaust_descriptors() -> list[int]:
    """Open descriptors until the process has none left (EMFILE); returns them."""
    held = []
    try:
        while True:
            held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    return held


def run_python(code: str, *, nofile: int | None = None, unprivileged: bool = False) -> Any:
    """Run ``code`` in a fresh interpreter (descriptor limit ``nofile``, file modes applying
    to it even as root) and return the JSON it prints last."""

    def setup() -> None:
        if nofile is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        if unprivileged:
            drop_root_file_powers()

    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=setup,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return orjson.loads(res.stdout.strip().splitlines()[-1])
