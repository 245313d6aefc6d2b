"""copy+truncate rotation under writing, then ``kill -9`` of the real sidecar while the
archive is ahead of the checkpoint: after the restart the copy is read again from the
checkpoint, and its lines must be recognised by the file sink as the original's (same id
key), so the archive holds every line exactly once."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from pathlib import Path

from enginehelp import Sidecar, archived, line, run_once, wait_for, write_config


class _Writer:
    """Appends numbered lines to a file (O_APPEND) until stopped; ``lock`` pauses it so a
    rotation can copy and truncate without losing a line in between (logrotate's own
    copytruncate window is outside what a shipper can fix)."""

    def __init__(self, path: Path, start: int) -> None:
        self.path = path
        self.n = start
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with open(self.path, "ab") as fh:
            while not self.stop.is_set():
                with self.lock:
                    fh.write(b"".join(line(i) + b"\n" for i in range(self.n, self.n + 50)))
                    fh.flush()
                    self.n += 50
                time.sleep(0.005)

    def finish(self) -> int:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.n


def test_copytruncate_then_kill9_reads_copy_again_without_duplicates(
    tmp_path: Path, sidecars: list[Sidecar]
) -> None:
    cfg = write_config(
        tmp_path,
        checkpoint={"interval": "1h"},  # only the clean exit of the first run saves
        batch={"max_lines": 97, "max_wait": "10ms"},
    )
    log = tmp_path / "logs" / "app.log"
    log.write_bytes(b"".join(line(i) + b"\n" for i in range(2000)))
    res = run_once(cfg)  # checkpoint of app.log saved at 2,000 lines (with its head)
    assert res.returncode == 0, res.stdout + res.stderr

    w = _Writer(log, 2000)
    s = Sidecar(cfg, tmp_path)
    sidecars.append(s)
    # The sidecar archives lines the checkpoint does not cover (it is saved only at exit).
    wait_for(lambda: len(archived(tmp_path)) > 6000, what="lines archived past the checkpoint")
    with w.lock:  # logrotate copytruncate, the writer paused so no line falls in between
        shutil.copyfile(log, log.with_name("app.log.1"))
        with open(log, "r+b") as fh:
            fh.truncate(0)
        copied = w.n
    # Kill while the sidecar is on the copy and the new app.log (archive ahead of checkpoint).
    wait_for(lambda: len(archived(tmp_path)) > copied, what="lines of the new app.log archived")
    s.kill()
    before = Counter(r["seq"] for r in archived(tmp_path))
    assert max(before.values()) == 1
    total = w.finish()

    res = run_once(cfg)
    assert res.returncode == 0, res.stdout + res.stderr
    seqs = Counter(r["seq"] for r in archived(tmp_path))
    dups = sorted(k for k, c in seqs.items() if c > 1)
    assert not dups, f"{len(dups)} lines archived twice, e.g. {dups[:5]}"
    assert sorted(seqs) == list(range(total)), "lines lost"
