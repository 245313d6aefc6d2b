"""A dead-letter file whose last entry was torn by a crash (kill -9 while the disk was full:
found by the chaos suite's disk-full test) must not swallow the next entry."""

from __future__ import annotations

from pathlib import Path

import orjson

from sidecar.transform.quarantine import DeadLetter


def test_entry_after_a_torn_tail_starts_on_its_own_line(tmp_path: Path) -> None:
    q = tmp_path / "quarantine.ndjson"
    whole = b'{"stage":"schema","raw":"first"}\n'
    q.write_bytes(whole + b'{"time":"2026-11-25T21:09:41.812Z","stage":"sch')  # torn
    dl = DeadLetter(tmp_path, max_bytes=1 << 20, max_files=3)
    dl.write(b"bad line", file="a.log", file_key="k", offset=7, reasons=[])
    dl.flush()
    dl.close()
    lines = q.read_bytes().split(b"\n")
    assert lines[0] + b"\n" == whole
    assert lines[1] == b'{"time":"2026-11-25T21:09:41.812Z","stage":"sch'  # kept, alone
    assert orjson.loads(lines[2])["raw"] == "bad line"
    assert lines[3] == b""
