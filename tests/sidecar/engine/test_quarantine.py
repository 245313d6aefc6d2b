"""The dead-letter file: one JSON object per entry, size-bounded rotation, never losing one."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

import sidecar.transform.quarantine as q
from sidecar.transform.quarantine import DeadLetter


def _entries(d: Path) -> list[dict[str, object]]:
    out = []
    for p in [*sorted(d.glob("quarantine-*.ndjson")), d / "quarantine.ndjson"]:
        if p.exists():
            out += [orjson.loads(x) for x in p.read_bytes().splitlines()]
    return out


def _write(dl: DeadLetter, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        dl.write(
            b'{"service":"svc","level":"LOUD","n":%d}' % i,
            file="/logs/a.log",
            file_key="k",
            offset=i * 10,
            reasons=[{"rule": "OBS003", "field": "level", "message": "m", "column": 1}],
        )


def test_rotation_keeps_max_files_and_every_recent_entry(tmp_path: Path) -> None:
    dl = DeadLetter(tmp_path, max_bytes=4096, max_files=3)
    _write(dl, 200)
    dl.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 3 and "quarantine.ndjson" in files
    got = _entries(tmp_path)
    ns = [orjson.loads(str(e["raw"]))["n"] for e in got]
    assert ns == list(range(ns[0], 200))  # the newest entries, in order, none missing
    assert all(os.path.getsize(tmp_path / f) <= 4096 for f in files)
    assert got[-1]["service"] == "svc" and got[-1]["offset"] == 1990


def test_a_rotation_that_fails_loses_no_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dl = DeadLetter(tmp_path, max_bytes=4096, max_files=3)

    def busy(src: object, dst: object) -> None:
        raise PermissionError(32, "being used by another process")

    monkeypatch.setattr(q.os, "replace", busy)
    _write(dl, 60)
    dl.flush()  # written while every rotation fails (as the engine flushes before a save)
    monkeypatch.undo()
    _write(dl, 10, start=60)
    dl.close()
    ns = sorted(orjson.loads(str(e["raw"]))["n"] for e in _entries(tmp_path))
    assert ns == list(range(70))


def test_non_utf8_line_is_kept_byte_exact(tmp_path: Path) -> None:
    dl = DeadLetter(tmp_path, max_bytes=1 << 20, max_files=2)
    dl.write(b'{"a":"\xff"}', file=None, file_key=None, offset=0, reasons=[])
    dl.close()
    (entry,) = _entries(tmp_path)
    assert "raw" not in entry
    import base64

    assert base64.b64decode(str(entry["raw_base64"])) == b'{"a":"\xff"}'
