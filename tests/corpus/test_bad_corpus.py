"""The bad-input corpus (``tests/data/bad/``, made by ``tests/data/make_bad_corpus.py``) through
the real sidecar process into the file sink: each bad input gets its stated result (the
quarantine reason, or shipped unchanged), and the valid lines around it are delivered."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

BAD = Path(__file__).resolve().parents[1] / "data" / "bad"
BIG = 10 * 1024 * 1024


def ok_line(name: str, where: str) -> bytes:
    return b'"message":"%s %s"' % (name.encode(), where.encode())


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the sidecar once over the whole corpus (plus a 10 MB line made here)."""
    tmp = tmp_path_factory.mktemp("corpus")
    logs = tmp / "logs"
    shutil.copytree(BAD, logs)
    head = b'{"timestamp":"2024-10-01T12:00:00.000Z","level":"INFO","service":"corpus",'
    with open(logs / "big_line.log", "wb") as f:
        f.write(head + ok_line("big_line", "before") + b"}\n")
        f.write(head + b'"message":"' + b"A" * BIG + b'"}\n')
        f.write(head + ok_line("big_line", "after") + b"}\n")
    cfg = {
        "source": {"path": str(logs), "poll_interval": "100ms", "partial_line_timeout": "500ms"},
        "checkpoint": {"dir": str(tmp / "state"), "interval": "200ms"},
        "http": {"enabled": False},
        "sinks": [{"name": "archive", "type": "file", "dir": str(tmp / "archive")}],
    }
    (tmp / "sidecar.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sidecar.cli import main; main()",
            "run",
            "--config",
            str(tmp / "sidecar.yaml"),
            "--exit-on-idle",
            "2",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")[-3000:]
    archive = b"".join(p.read_bytes() for p in sorted((tmp / "archive").glob("archive-*.ndjson")))
    qfile = tmp / "state" / "quarantine" / "quarantine.ndjson"
    quarantine = (
        [orjson.loads(x) for x in qfile.read_bytes().splitlines()] if qfile.exists() else []
    )
    return {
        "archive_lines": archive.splitlines(),
        "archive": archive,
        "quarantine": quarantine,
        "quarantine_bytes": qfile.read_bytes() if qfile.exists() else b"",
        "stdout": proc.stdout,
    }


def delivered(shipped: dict[str, Any], needle: bytes) -> int:
    return sum(needle in x for x in shipped["archive_lines"])


def q_of(shipped: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [q for q in shipped["quarantine"] if Path(q["file"]).name == name]


# file -> (quarantined count, rule, text in the reason)
QUARANTINED = {
    "invalid_utf8.log": (1, "OBS001", "invalid UTF-8 byte sequence"),
    "nul_bytes.log": (1, "OBS001", "NUL byte in line"),
    "lone_surrogate.log": (1, "OBS001", "lone UTF-16 surrogate escape \\ud800"),
    "deep_nesting.log": (1, "OBS001", "nested more than 256 levels deep"),
    "duplicate_keys.log": (1, "OBS010", "appears twice (first at column 41)"),
    "log_injection.log": (1, "OBS001", "invalid JSON: invalid character"),
    "bom_in_middle.log": (1, "OBS001", "byte-order mark in the middle of the file"),
    "big_line.log": (1, "OBS011", "bytes, more than the maximum 262144"),
}


@pytest.mark.parametrize("name", sorted(QUARANTINED))
def test_bad_line_quarantined_with_reason_neighbours_delivered(
    shipped: dict[str, Any], name: str
) -> None:
    count, rule, text = QUARANTINED[name]
    entries = q_of(shipped, name)
    assert len(entries) == count, entries
    for e in entries:
        assert e["stage"] == "schema" and e["offset"] > 0
        assert any(r.get("rule") == rule and text in r["message"] for r in e["reasons"]), e
    stem = name.removesuffix(".log")
    assert delivered(shipped, ok_line(stem, "before")) == 1
    assert delivered(shipped, ok_line(stem, "after")) == 1


def test_invalid_utf8_kept_byte_exact(shipped: dict[str, Any]) -> None:
    (e,) = q_of(shipped, "invalid_utf8.log")
    assert "raw" not in e and b"caf\xe9 \xff\xfe" in base64.b64decode(e["raw_base64"])


def test_ten_megabyte_line_streamed_past(shipped: dict[str, Any]) -> None:
    (e,) = q_of(shipped, "big_line.log")
    # Only the head is kept; the whole line's length is a top-level field.
    assert [r["rule"] for r in e["reasons"]] == ["OBS011"]
    assert e["line_length"] > BIG and len(e["raw"]) <= 1024
    assert b"A" * 4096 not in shipped["archive"]


@pytest.mark.parametrize(
    ("name", "marker"),
    [
        ("no_newline_at_eof.log", b'"message":"no_newline_at_eof after"'),  # flushed after 500ms
        ("huge_number.log", b'"x":' + b"9" * 5000 + b","),  # valid JSON: shipped byte for byte
        ("utf16le.log", b'"message":"middle"'),
        ("utf16be.log", b'"message":"middle"'),
    ],
)
def test_odd_but_valid_input_shipped(shipped: dict[str, Any], name: str, marker: bytes) -> None:
    assert not q_of(shipped, name)
    assert delivered(shipped, marker) >= 1
    stem = name.removesuffix(".log")
    assert delivered(shipped, ok_line(stem, "before")) == 1
    assert delivered(shipped, ok_line(stem, "after")) == 1


def test_other_duplicate_keys_forwarded_unchanged(shipped: dict[str, Any]) -> None:
    assert delivered(shipped, b'"message":"dupx","x":1,"x":2') == 1


def test_log_injection_stays_escaped(shipped: dict[str, Any]) -> None:
    # The escapes travel as JSON escapes; no raw ESC or CR ever lands in what the sidecar
    # writes (archive, dead letters, its own logs), so no terminal or log viewer acts on them.
    assert delivered(shipped, b"\\u001b[2J\\u001b[31mFAKE ALERT") == 1
    for blob in (shipped["archive"], shipped["quarantine_bytes"], shipped["stdout"]):
        assert b"\x1b" not in blob and b"\r" not in blob


def test_binary_file_quarantined_around_valid_lines(shipped: dict[str, Any]) -> None:
    raw = (BAD / "binary.log").read_bytes().split(b"\n")
    bad_lines = len(raw) - 3  # minus the line before, the line after, and the final ""
    entries = q_of(shipped, "binary.log")
    assert len(entries) == bad_lines
    assert all(e["reasons"] for e in entries)
    assert delivered(shipped, ok_line("binary", "before")) == 1
    assert delivered(shipped, ok_line("binary", "after")) == 1


def test_empty_and_gzip_files(shipped: dict[str, Any]) -> None:
    assert not q_of(shipped, "empty.log") and not q_of(shipped, "gzip_named.log")
    assert delivered(shipped, b"gzip_named") == 0
    assert b"gzip_named.log: gzip-compressed file is not tailed" in shipped["stdout"]


def test_corpus_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    sys.path.insert(0, str(BAD.parent))
    try:
        import make_bad_corpus
    finally:
        sys.path.remove(str(BAD.parent))
    for name, data in make_bad_corpus.files().items():
        assert (BAD / name).read_bytes() == data, name
    assert len(os.listdir(BAD)) == len(make_bad_corpus.files())
