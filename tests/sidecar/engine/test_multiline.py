"""Multi-line crash output through the real tailer and the schema stage: one record per crash,
nothing lost, checkpoints held at an open crash's first line."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from enginehelp import line

from obskit._durations import dec_hook
from sidecar.checkpoint import CheckpointStore
from sidecar.config import SchemaConfig
from sidecar.metrics import Metrics
from sidecar.source.chunk import Chunk
from sidecar.source.settings import SourceSettings
from sidecar.source.tailer import Tailer
from sidecar.transform.quarantine import DeadLetter
from sidecar.transform.stage import Prepared, SchemaStage

CRASH = Path(__file__).resolve().parents[2] / "data" / "crash"
GO = (CRASH / "go-panic-system.txt").read_bytes()  # several goroutine blocks
GO_SMALL = (CRASH / "go-panic.txt").read_bytes()  # what a default Go build prints
PY = (CRASH / "python-traceback.txt").read_bytes()


class Run:
    """A schema stage over prepared chunks, keeping what it hands on."""

    def __init__(self, tmp: Path, **schema: Any) -> None:
        self.dead = DeadLetter(tmp / "q", 1 << 30, 2)
        self.metrics = Metrics()
        cfg = msgspec.convert(schema, SchemaConfig, dec_hook=dec_hook)
        self.stage = SchemaStage(cfg, self.dead, self.metrics)
        self.out: list[Prepared] = []

    def feed(self, *chunks: Chunk) -> list[Prepared]:
        got = [self.stage.process(c) for c in chunks]
        self.out += got
        return got

    def flush(self, files: Any, final: bool = False) -> list[Prepared]:
        got = self.stage.flush_due(time.monotonic() + 3600, lambda: files, final)
        self.out += got
        return got

    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(ln) for p in self.out for ln in p.lines]

    def quarantined(self) -> list[dict[str, Any]]:
        self.dead.flush(durable=False)
        q = self.dead.path
        return [orjson.loads(x) for x in q.read_bytes().splitlines()] if q.exists() else []


def _chunk(data: bytes, start: int = 0, key: str = "k", path: str = "/logs/app.log") -> Chunk:
    return Chunk(key, path, start, start + len(data), data)


def test_checkpoint_held_at_the_open_crash_then_one_record(tmp_path: Path) -> None:
    run = Run(tmp_path)
    before = line(1, service="orders") + b"\n"
    first, rest = GO.split(b"\n\n", 1)  # the panic line, then the goroutine dump
    a = before + first + b"\n\n"
    (p1,) = run.feed(_chunk(a))
    assert p1.end == len(before)  # the checkpoint stays at the panic's first line
    assert p1.offsets == [0]
    (p2,) = run.feed(_chunk(rest, len(a)))
    assert p2.lines == [] and p2.end == len(before)  # still open: nothing, still held
    after = line(2, service="orders") + b"\n"
    (p3,) = run.feed(_chunk(after, len(a) + len(rest)))
    crash, nxt = (orjson.loads(x) for x in p3.lines)
    assert p3.offsets == [len(before), len(a) + len(rest)]  # the crash is named by its 1st line
    assert p3.end == len(a) + len(rest) + len(after)
    assert crash["message"] == "panic: runtime error: index out of range [5] with length 2"
    assert crash["error.stack"] == GO.decode().rstrip("\n")
    assert crash["level"] == "ERROR" and crash["service"] == "orders"
    assert crash["crash"] == "go-panic" and "trace_id" not in crash
    assert nxt["seq"] == 2
    t = run.metrics.totals
    assert t.repaired["multiline"] == 1 and t.grouped_lines == GO.count(b"\n")
    assert run.quarantined() == []


def test_python_traceback_message_is_its_exception_line(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.feed(_chunk(line(1, service="api") + b"\n" + PY))
    assert run.flush([]) and run.quarantined() == []
    crash = run.records()[1]
    assert crash["message"] == "RuntimeError: cannot start: invalid port setting"
    assert crash["error.stack"] == PY.decode().rstrip("\n")  # both chained tracebacks


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "dotnet-unhandled.txt",
            "Unhandled exception. System.InvalidOperationException: Order 17 has no items",
        ),
        (
            "java-exception.txt",
            'Exception in thread "main" java.lang.IllegalStateException: order 17 has no items',
        ),
    ],
)
def test_dotnet_and_java(tmp_path: Path, name: str, message: str) -> None:
    text = (CRASH / name).read_bytes()
    run = Run(tmp_path, service_default="billing")
    run.feed(_chunk(text + line(1, service="orders") + b"\n"))
    crash, nxt = run.records()
    assert crash["message"] == message
    # CRLF (Windows) lines lose their CR, nothing else.
    assert crash["error.stack"] == text.decode().replace("\r\n", "\n").rstrip("\n")
    assert crash["service"] == "orders"  # the record right after it: the file's own service
    assert nxt["seq"] == 1 and run.quarantined() == []


def test_unconfirmed_shape_and_plain_text_are_quarantined_as_before(tmp_path: Path) -> None:
    run = Run(tmp_path)
    text = b"panic: not really\nstill no goroutine\nplain text\n"
    run.feed(_chunk(line(1) + b"\n" + text + line(2) + b"\n"))
    assert [r["seq"] for r in run.records()] == [1, 2]
    q = run.quarantined()
    assert [e["raw"] for e in q] == text.decode().splitlines()
    assert all(e["reasons"][0]["rule"] == "OBS001" for e in q)


def test_turned_off_per_file(tmp_path: Path) -> None:
    run = Run(tmp_path, multiline={"exclude": ["legacy-*.log"]})
    run.feed(_chunk(GO, path="/logs/legacy-1.log"))
    assert run.records() == []
    assert len(run.quarantined()) == GO.count(b"\n")
    run2 = Run(tmp_path / "b", multiline={"enabled": False})
    run2.feed(_chunk(GO))
    assert len(run2.quarantined()) == GO.count(b"\n")


def test_a_continuation_never_attaches_to_a_json_record(tmp_path: Path) -> None:
    # Lines that would continue a crash but come after a JSON line are quarantined; the JSON
    # line and the crash before it are untouched.
    run = Run(tmp_path)
    run.feed(_chunk(GO + line(1) + b"\n\tat com.example.Main.main(Main.java:1)\n"))
    recs = run.records()
    assert [r.get("crash") for r in recs] == ["go-panic", None]
    assert recs[1] == orjson.loads(line(1))
    assert [e["raw"] for e in run.quarantined()] == ["\tat com.example.Main.main(Main.java:1)"]


def test_limits_split_a_long_crash_into_parts(tmp_path: Path) -> None:
    run = Run(tmp_path, multiline={"max_lines": 20})
    run.feed(_chunk(GO))
    run.flush([])
    recs = run.records()
    n = GO.count(b"\n")
    assert len(recs) == -(-n // 20)
    assert [r.get("crash_part") for r in recs] == [None, 2, 3, 4, 5]
    assert recs[1]["message"].endswith("(part 2)")
    assert "\n".join(r["error.stack"] for r in recs) == GO.decode().rstrip("\n")


def test_max_bytes_split(tmp_path: Path) -> None:
    run = Run(tmp_path, multiline={"max_bytes": "2KiB"})
    run.feed(_chunk(GO))
    run.flush([])
    recs = run.records()
    assert len(recs) > 2
    assert all(len(orjson.dumps(r)) < 4096 for r in recs)
    assert "\n".join(r["error.stack"] for r in recs) == GO.decode().rstrip("\n")


class _Status:
    def __init__(self, key: str, read: int, size: int) -> None:
        self.file_key, self.read_offset, self.size = key, read, size


def test_flush_waits_for_quiet_and_a_fully_read_file(tmp_path: Path) -> None:
    run = Run(tmp_path, multiline={"max_wait": "1s"})
    run.feed(_chunk(GO))
    stage = run.stage
    now = time.monotonic()
    files = [_Status("k", len(GO), len(GO) + 100)]  # more bytes on disk than read
    assert stage.flush_due(now + 5, lambda: files) == []
    files = [_Status("k", len(GO), len(GO))]
    assert stage.flush_due(now + 0.1, lambda: files) == []  # not quiet yet
    (p,) = stage.flush_due(now + 5, lambda: files)
    assert p.end == len(GO) and p.offsets == [0]
    # A file no longer followed (rotated away and released) flushes at once.
    run.feed(_chunk(GO, key="k2"))
    (p2,) = stage.flush_due(now, lambda: [])
    assert p2.file_key == "k2"


# -- the real tailer: every byte boundary, with a rotation in the middle -------------------

HEAD = line(1, service="orders") + b"\n" + line(2, service="orders") + b"\n"
CONTENT = HEAD + GO_SMALL + line(3, service="orders") + b"\n" + PY  # ends in the traceback
AFTER = line(4, service="orders") + b"\n" + line(5, service="orders") + b"\n"


def _split_run(tmp: Path, k: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    logs = tmp / "logs"
    logs.mkdir(parents=True)
    store = CheckpointStore(tmp / "checkpoints.json")
    settings = SourceSettings(
        path=str(logs), include=["app.log*"], fs_events=False, partial_line_timeout=None
    )
    tailer = Tailer(settings, store)
    run = Run(tmp)
    live = logs / "app.log"
    live.write_bytes(CONTENT[:k])
    run.feed(*tailer.poll())
    # Rotation by rename: the writer still holds the old file and finishes its output there;
    # then it opens a new app.log.
    os.rename(live, logs / "app.log.1")
    with open(logs / "app.log.1", "ab") as fh:
        fh.write(CONTENT[k:])
    live.write_bytes(AFTER)
    for _ in range(4):
        if not run.feed(*tailer.poll()):
            break
    run.flush(tailer.files())
    sizes = {f.file_key: f.size for f in tailer.files()}
    tailer.close()
    ends = {p.file_key: p.end for p in run.out}
    assert ends == sizes, k  # every file's checkpoint reaches its end: nothing held back
    return run.records(), run.quarantined()


@pytest.mark.slow
def test_every_byte_boundary_with_rotation_one_record_per_crash(tmp_path: Path) -> None:
    want_go = GO_SMALL.decode().rstrip("\n")
    want_py = PY.decode().rstrip("\n")
    for k in range(len(CONTENT) + 1):
        recs, quarantined = _split_run(tmp_path / str(k), k)
        assert quarantined == [], k
        seqs = [r.get("seq") for r in recs if "crash" not in r]
        stacks = [r["error.stack"] for r in recs if "crash" in r]
        assert sorted(seqs) == [1, 2, 3, 4, 5], k
        assert sorted(stacks) == sorted([want_go, want_py]), k
        assert all(r["service"] == "orders" for r in recs), k
