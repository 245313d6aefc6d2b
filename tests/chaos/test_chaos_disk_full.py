"""Disk full under the sidecar's state (checkpoints, dead letters) and its file-sink archive,
with a kill -9 while full: a clear error naming the file and the cause, the checkpoint file
never corrupt, and recovery when space returns with every line archived exactly once.

Two ways to fill the disk: a real 8 MiB tmpfs filled with a ballast file (needs root and
``mount``: skipped elsewhere), and ``ENOSPC`` injected into the real sidecar process by
``run_sidecar.py`` (portable, no privileges: opening a file for writing or fsync-ing one under
the folder fails while a flag file exists)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from chaoshelp import (
    COPYTRUNCATE_SERVICE,
    Chaos,
    file_order,
    outcome_of_records,
    quarantine_entries,
    read_ndjson,
)

from sidecar.checkpoint import CheckpointStore

pytestmark = pytest.mark.chaos


class Disk:
    """A folder that can be made full and freed again."""

    def __init__(self, root: Path, mode: str, chaos: Chaos) -> None:
        self.root = root
        self.mode = mode
        self.flag = root.parent / "disk-full.flag"
        if mode == "inject":
            chaos.env = {
                "OBSKIT_CHAOS_ENOSPC_FLAG": str(self.flag),
                "OBSKIT_CHAOS_ENOSPC_DIR": str(root),
            }

    def fill(self) -> None:
        if self.mode == "inject":
            self.flag.touch()
            return
        with open(self.root / "ballast", "wb") as f:
            block = b"\0" * (64 * 1024)
            with contextlib.suppress(OSError):
                while True:
                    f.write(block)
                    f.flush()
        free = shutil.disk_usage(self.root).free
        assert free < 64 * 1024, f"{free} bytes still free"

    def free(self) -> None:
        if self.mode == "inject":
            self.flag.unlink()
        else:
            (self.root / "ballast").unlink()


@pytest.fixture(params=["inject", "tmpfs"])
def disk(request: pytest.FixtureRequest, chaos: Chaos) -> Iterator[Disk]:
    root = chaos.tmp / "disk"
    root.mkdir()
    mode = request.param
    if mode == "tmpfs":
        if sys.platform != "linux" or os.geteuid() != 0:
            pytest.skip("a real tmpfs needs root on Linux; the injected ENOSPC covers CI")
        rc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(root)],
            capture_output=True,
            check=False,
        )
        if rc.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {rc.stderr.decode().strip()}")
    try:
        yield Disk(root, mode, chaos)
    finally:
        chaos.close()  # no process may keep the mount busy
        if mode == "tmpfs":
            subprocess.run(["umount", "-l", str(root)], check=False)


def checkpoint_is_sound(path: Path, scratch: Path) -> int:
    """Load a copy of the checkpoint file (load() would move a corrupt one aside)."""
    scratch.mkdir(exist_ok=True)
    copy = scratch / "checkpoints.json"
    shutil.copyfile(path, copy)
    store = CheckpointStore(copy)
    warnings = store.load()
    assert not warnings, warnings
    return len(store)


def test_disk_full_then_space_returns(chaos: Chaos, disk: Disk) -> None:
    state, archive = disk.root / "state", disk.root / "archive"
    chaos.state = state
    chaos.write_config(
        [{"name": "archive", "type": "file", "dir": str(archive)}],
        checkpoint={"dir": str(state), "interval": "200ms"},
    )
    chaos.start_writer(rate=1000, seconds=12, invalid_every=200)
    side = chaos.start_sidecar()
    cp = state / "checkpoints.json"
    deadline = time.monotonic() + 30
    while not (cp.exists() and list(archive.glob("archive-*.ndjson"))):
        assert time.monotonic() < deadline, "sidecar never saved a checkpoint"
        time.sleep(0.05)
    time.sleep(1.0)
    disk.fill()
    full_since = time.monotonic()
    # While full: the errors are reported, the old checkpoint stays readable.
    deadline = time.monotonic() + 20
    while True:
        text = side.out_path.read_text(errors="replace")
        # The sink's write fails first (so no checkpoint moves and none needs saving); a
        # checkpoint save that fails says so too. Either way: the cause and the place.
        errors = [x for x in side.logs() if x.get("level") == "ERROR"]
        if any(os.strerror(errno.ENOSPC) in str(x) and str(disk.root) in str(x) for x in errors):
            break
        assert time.monotonic() < deadline, f"no clear disk-full error:\n{text[-3000:]}"
        time.sleep(0.1)
    assert side.alive(), text[-3000:]
    checkpoint_is_sound(cp, chaos.tmp / "scratch1")
    time.sleep(max(0.0, 2.0 - (time.monotonic() - full_since)))
    side.kill9()  # a crash while the disk is full
    chaos.report.kills += 1
    checkpoint_is_sound(cp, chaos.tmp / "scratch2")
    # Starting on a full disk: a clear error naming the file and the cause, a non-zero exit
    # (the orchestrator restarts it), nothing corrupted.
    side = chaos.start_sidecar()
    rc = side.wait(timeout=60)
    text = side.out_path.read_text(errors="replace")
    assert rc != 0 and "cannot start" in text and os.strerror(errno.ENOSPC) in text, text[-3000:]
    assert str(disk.root) in text, text[-3000:]
    checkpoint_is_sound(cp, chaos.tmp / "scratch3")
    chaos.report.extra["refused_start_rc"] = rc
    disk.free()
    chaos.report.faults["enospc"] += 1
    side = chaos.start_sidecar()
    assert chaos.writer is not None
    chaos.writer.wait(timeout=60)
    assert side.term(timeout=30) == 0
    chaos.report.terms += 1
    chaos.drain()
    assert checkpoint_is_sound(cp, chaos.tmp / "scratch4") > 0
    assert not list(state.glob("checkpoints.json.corrupt-*"))
    records = read_ndjson(sorted(archive.glob("archive-*.ndjson")))
    got = outcome_of_records(records, file_order)
    torn: list[bytes] = []
    r = chaos.account(got, quarantine_entries(state, torn), check_order=True)
    r.extra["torn_dead_letters"] = len(torn)
    r.extra["disk"] = disk.mode
    # Residual: copy+truncate copies made while the disk was full can still be archived twice
    # (observed: 25 lines in 1 run of 8); counted and reported as copytruncate_dups.
    chaos.assert_clean(r, max_duplicates=0, known_dup_services=(COPYTRUNCATE_SERVICE,))
