"""Model-based test (as Vector's file_watcher model tests): random appends (with and without
a trailing newline), rename+create, copy+truncate, deletes and polls against a simple model
of which lines must have been read. Invariants after every poll: nothing read that was not
written, nothing read twice, and every complete line that was in a readable file at a poll
(on disk, or deleted/renamed away after the tailer had seen its file) has been read."""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from sidecar.checkpoint import CheckpointStore
from sidecar.source.settings import SourceSettings
from sidecar.source.tailer import Tailer
from tests.sidecar.source.tailhelp import FakeClock, lines_of

CHAINS = ("a", "b")


@dataclass
class Inode:
    lines: list[bytes] = field(default_factory=list)
    partial: bytes | None = None  # the whole line; only its first half is on disk
    known: bool = False  # had a complete line on disk at a poll: the tailer holds it


class TailerModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="tailmodel-"))
        self.logs = self.dir / "logs"
        self.logs.mkdir()
        self.clock = FakeClock()  # never advances: no timeouts, handles kept
        st_ = SourceSettings(
            path=str(self.logs),
            fs_events=False,
            read_chunk_bytes=128,
            max_line_bytes=100,
            partial_line_timeout=None,
        )
        self.store = CheckpointStore(self.dir / "cp.json")
        self.tailer = Tailer(st_, self.store, clock=self.clock)
        self.names: dict[str, Inode] = {}
        self.unlinked: list[Inode] = []
        self.counter = 0
        self.written: set[bytes] = set()
        self.read: collections.Counter[bytes] = collections.Counter()

    def teardown(self) -> None:
        self.tailer.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _line(self, chain: str) -> bytes:
        self.counter += 1
        ln = b"%s%06d-%s" % (chain.encode(), self.counter, b"x" * (self.counter * 7 % 40))
        self.written.add(ln)
        return ln

    def _drop(self, name: str) -> None:
        ino = self.names.pop(name, None)
        if ino is not None:
            self.unlinked.append(ino)

    @rule(chain=st.sampled_from(CHAINS), n=st.integers(0, 4), partial=st.booleans())
    def append(self, chain: str, n: int, partial: bool) -> None:
        name = f"{chain}.log"
        ino = self.names.setdefault(name, Inode())
        data = b""
        if ino.partial is not None:
            half = len(ino.partial) // 2
            data += ino.partial[half:] + b"\n"
            ino.lines.append(ino.partial)
            ino.partial = None
        for _ in range(n):
            ln = self._line(chain)
            data += ln + b"\n"
            ino.lines.append(ln)
        if partial:
            ln = self._line(chain)
            data += ln[: len(ln) // 2]
            ino.partial = ln
        with open(self.logs / name, "ab") as f:
            f.write(data)

    def _active(self, chain: str) -> Inode | None:
        ino = self.names.get(f"{chain}.log")
        return ino if ino is not None and ino.partial is None else None

    def _shift(self, chain: str) -> None:
        one, two = f"{chain}.log.1", f"{chain}.log.2"
        if one in self.names:
            self._drop(two)
            os.replace(self.logs / one, self.logs / two)
            self.names[two] = self.names.pop(one)

    @precondition(lambda self: any(self._active(c) for c in CHAINS))
    @rule(chain=st.sampled_from(CHAINS))
    def rename_create(self, chain: str) -> None:
        if self._active(chain) is None:
            return
        self._shift(chain)
        os.replace(self.logs / f"{chain}.log", self.logs / f"{chain}.log.1")
        self.names[f"{chain}.log.1"] = self.names.pop(f"{chain}.log")

    @precondition(lambda self: any(self._active(c) for c in CHAINS))
    @rule(chain=st.sampled_from(CHAINS))
    def copy_truncate(self, chain: str) -> None:
        ino = self._active(chain)
        if ino is None:
            return
        self._shift(chain)
        shutil.copyfile(self.logs / f"{chain}.log", self.logs / f"{chain}.log.1")
        self.names[f"{chain}.log.1"] = Inode(lines=list(ino.lines))
        os.truncate(self.logs / f"{chain}.log", 0)
        ino.lines = []
        ino.known = False  # its old content is gone; what comes next is a new file

    @precondition(lambda self: bool(self.names))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.names)))
        os.unlink(self.logs / name)
        self._drop(name)

    @rule()
    def poll(self) -> None:
        for ln in lines_of(self.tailer.poll(1 << 30)):
            self.read[ln] += 1
        for ino in self.names.values():
            if ino.lines:
                ino.known = True
        readable = [i for i in self.names.values()] + [i for i in self.unlinked if i.known]
        required = {ln for ino in readable for ln in ino.lines}
        unknown = set(self.read) - self.written
        assert not unknown, f"read lines never written: {sorted(unknown)[:3]}"
        dups = [ln for ln, c in self.read.items() if c > 1]
        assert not dups, f"lines read twice: {dups[:3]}"
        missing = required - set(self.read)
        assert not missing, f"lines not read: {sorted(missing)[:3]}"


TailerModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("TAILMODEL_EXAMPLES", "50")),
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_tailer_model = TailerModel.TestCase
