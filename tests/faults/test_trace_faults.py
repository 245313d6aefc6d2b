"""``obskit trace`` faults (issue 12, item 9): a shard size or count that would explode, lines
of the trace that are broken, NO_COLOR, file names that are not UTF-8, and what lines hold.
Each test runs the real CLI as a process on real files."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
WINDOW = ["--from", "2024-05-01T00:00:00Z", "--to", "2024-05-02T00:00:00Z"]


def line(message: str, ts: str = "2024-05-01T12:30:00.000Z", **extra: object) -> bytes:
    rec = {"timestamp": ts, "trace_id": TRACE, "level": "INFO", "service": "checkout"}
    rec.update({"message": message, **extra})
    return json.dumps(rec).encode()


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    full = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OBSKIT_") and k not in ("NO_COLOR", "FORCE_COLOR")
    }
    full["OBSKIT_TRACE_CONFIG"] = os.devnull
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "obskit.cli", "trace", TRACE, *args],
        capture_output=True,
        timeout=60,
        env=full,
        check=False,
    )


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# --- shard size and count --------------------------------------------------------------------


def test_shard_below_one_second_fails_fast(tmp_path: Path) -> None:
    """``--shard 1ms --since 1d`` once grew past 24 GB before the kernel killed it."""
    for backend in (
        ["--loki", _closed_port_url()],
        ["--es", _closed_port_url()],
        ["--path", str(tmp_path)],
    ):
        t0 = time.monotonic()
        p = run("--shard", "1ms", "--since", "1d", *backend)
        assert time.monotonic() - t0 < 20
        assert p.returncode == 2, p.stderr
        err = p.stderr.decode()
        assert "--shard 1ms: '1ms' is too small: a shard must be at least 1s" in err
        assert "Traceback" not in err and p.stdout == b""


def test_shard_count_is_capped_with_the_fix_named(tmp_path: Path) -> None:
    url = _closed_port_url()
    p = run("--shard", "1s", "--since", "1d", "--loki", url)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert (
        "shard 1s splits the 1d window into 86,400 loki queries; at most 10,000 are allowed: "
        "use --shard 9s or more, or a shorter window (--since, --from/--to)"
    ) in err
    assert "Traceback" not in err
    # The suggested shard passes the check: the lookup then reaches the (closed) port.
    p = run("--shard", "9s", "--since", "1d", "--loki", url)
    assert p.returncode == 2 and "connection refused" in p.stderr.decode()
    # A config file's shard is held to the same bounds.
    cfg = tmp_path / "trace.toml"
    cfg.write_text(f"[trace.elasticsearch]\nurl = '{url}'\nshard = '500ms'\n")
    p = run("--config", str(cfg))
    assert p.returncode == 2
    assert f"config {cfg} [trace.elasticsearch]: shard: '500ms' is too small" in p.stderr.decode()


# --- broken lines that contain the trace id ----------------------------------------------------


def _broken_folder(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(
        b"\n".join(
            [
                line("good one"),
                line("raw control").replace(b"raw control", b"raw\x01control"),
                line("bad time", ts="yesterday"),
                line("latin-1").replace(b"latin-1", b"caf\xe9"),
                b"plain text mentioning " + TRACE.encode(),
                line("good two", ts="2024-05-01T12:30:01.000Z"),
                line("cut off")[:-20],  # the last line, still being written: no newline
            ]
        )
    )
    return logs


EXPECTED_NOTES = [
    "app.log:2: mentions the trace id but is not shown: raw control byte 0x01 at column 146"
    " (JSON strings must escape it)",
    "app.log:3: mentions the trace id but is not shown: timestamp 'yesterday' is not an"
    " RFC 3339 date-time",
    "app.log:4: mentions the trace id but is not shown: not valid UTF-8: byte 0xe9 at column 146",
    "app.log:5: mentions the trace id but is not shown: not JSON",
    "app.log:7: mentions the trace id but is not shown: cut off: the line ends inside the"
    " JSON object (partly written?)",
]


def test_broken_lines_of_the_trace_are_noted_and_counted(tmp_path: Path) -> None:
    logs = _broken_folder(tmp_path)
    p = run("--path", str(logs), *WINDOW)
    assert p.returncode == 0, p.stderr
    out, err = p.stdout.decode(), p.stderr.decode()
    assert "good one" in out and "good two" in out and "2 lines" in out
    assert "5 lines mention the trace id but cannot be shown (see the notes on stderr)" in out
    notes = [n for n in err.splitlines() if n.startswith("note: ")]
    assert notes == [f"note: files {logs}: {logs / n}" for n in EXPECTED_NOTES]

    p = run("--path", str(logs), *WINDOW, "-o", "json")
    doc = json.loads(p.stdout)
    (backend,) = doc["backends"]
    assert backend["broken_lines"] == 5
    assert backend["notes"] == [str(logs / n) for n in EXPECTED_NOTES]
    assert [x["message"] for x in doc["lines"]] == ["good one", "good two"]


def test_only_broken_lines_say_so_in_the_not_found_message(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(line("cut")[:-5] + b"\n")
    p = run("--path", str(tmp_path), *WINDOW)
    assert p.returncode == 1
    err = p.stderr.decode()
    assert f"note: files {tmp_path}: {tmp_path / 'a.log'}:1: mentions the trace id" in err
    assert "(1 line mentions the trace id but cannot be shown)" in err


def test_corrupt_gzip_is_a_note_and_other_files_are_still_searched(tmp_path: Path) -> None:
    good = gzip.compress(b"".join(line(f"m{i}") + b"\n" for i in range(200)))
    for pos in range(30, len(good) - 8):
        bad = bytearray(good)
        bad[pos] ^= 0xFF
        try:
            gzip.decompress(bytes(bad))
        except zlib.error:
            break
        except (OSError, EOFError):
            continue
    else:  # pragma: no cover - zlib always finds one of these
        pytest.fail("no corruption that zlib reports")
    (tmp_path / "a.log.gz").write_bytes(bytes(bad))
    (tmp_path / "b.log").write_bytes(line("from b") + b"\n")
    p = run("--path", str(tmp_path), *WINDOW, "-o", "json")
    err = p.stderr.decode()
    assert "Traceback" not in err
    assert p.returncode == 0, err
    doc = json.loads(p.stdout)
    assert "from b" in [x["message"] for x in doc["lines"]]
    assert any(
        n.startswith(f"{tmp_path / 'a.log.gz'}: cannot read: ") for n in doc["backends"][0]["notes"]
    )


# --- colours ------------------------------------------------------------------------------------

_SGR = re.compile(rb"\x1b\[([0-9;]*)m")


def _colour_codes(out: bytes) -> set[str]:
    """Colour parameters of the SGR sequences in ``out`` (bold and the like are not colour)."""
    found = set()
    for m in _SGR.finditer(out):
        for param in m.group(1).decode().split(";"):
            if param.isdigit() and (30 <= int(param) <= 49 or 90 <= int(param) <= 107):
                found.add(param)
    return found


def test_no_color_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(line("hello", level="ERROR") + b"\n")
    args = ("--path", str(tmp_path), *WINDOW)
    assert _colour_codes(run(*args, env={"FORCE_COLOR": "1"}).stdout)  # the check can see colour
    p = run(*args, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert p.returncode == 0 and b"hello" in p.stdout
    assert _colour_codes(p.stdout) == set()
    # An explicit --color still wins over the environment.
    assert _colour_codes(run(*args, "--color", env={"NO_COLOR": "1"}).stdout)


# --- what file names and lines hold ---------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="Windows file names are UTF-16")
def test_file_name_that_is_not_utf8_is_shown_escaped(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.log")
    (tmp_path / name).write_bytes(line("in a latin-1 name") + b"\n" + line("x")[:-3])
    shown = str(tmp_path / "caf\\xe9.log")
    p = run("--path", str(tmp_path), *WINDOW)
    assert p.returncode == 0, p.stderr
    assert b"in a latin-1 name" in p.stdout
    assert f"note: files {tmp_path}: {shown}:2: mentions the trace id".encode() in p.stderr
    for fmt in ("json", "ndjson"):
        p = run("--path", str(tmp_path), *WINDOW, "-o", fmt)
        assert p.returncode == 0, p.stderr
        assert b"Traceback" not in p.stderr
        doc = json.loads(p.stdout.splitlines()[0] if fmt == "ndjson" else p.stdout)
        first = doc if fmt == "ndjson" else doc["lines"][0]
        assert first["source"] == f"{shown}:1"


def test_lone_surrogate_escape_in_a_line_is_shown_escaped(tmp_path: Path) -> None:
    raw = line("x").replace(b'"x"', b'"half \\ud800 pair"')
    (tmp_path / "a.log").write_bytes(raw + b"\n")
    p = run("--path", str(tmp_path), *WINDOW, "-o", "json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["lines"][0]["message"] == "half \\ud800 pair"
    p = run("--path", str(tmp_path), *WINDOW)
    assert p.returncode == 0 and b"half \\ud800 pair" in p.stdout
