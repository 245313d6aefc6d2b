"""Faults a user can drive ``obskit validate`` into (issue 12 item 9), through the real CLI:
never a traceback; exact exit codes and messages; the other inputs are still checked; every
report format stays valid (the JUnit XML and the SARIF JSON are parsed)."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deepfolders import unlistable_below
from tests.validate.validate_helpers import Result, jl, run_process

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file types and names")


def validate(*args: str, cwd: Path) -> Result:
    r = run_process(*args, cwd=cwd)
    assert "Traceback" not in r.err, r.err
    return r


def corrupt_gzip() -> bytes:
    """A gzip member whose deflate data refers back past its start, the error users meet in
    damaged archives ("invalid distance too far back")."""
    text = "".join(jl(message=f"order {i}") for i in range(2000)).encode()
    good = gzip.compress(text, mtime=0)
    for pos in range(20, 400):
        for bit in (0x01, 0x10, 0x80, 0xFF):
            bad = bytearray(good)
            bad[pos] ^= bit
            try:
                gzip.decompress(bytes(bad))
            except zlib.error as exc:
                if "invalid distance too far back" in str(exc):
                    return bytes(bad)
            except (OSError, EOFError):
                pass
    raise AssertionError("no corruption found")  # pragma: no cover


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    (d / "b.log").write_text(jl() * 3 + jl(level="WARNING"))
    return d


B_VIOLATION = (
    "logs/b.log:4:52: OBS003 level: 'WARNING' is not one of DEBUG, INFO, WARN, ERROR"
    " (did you mean WARN?)"
)


def test_corrupt_gzip_member_is_reported_on_its_file_and_later_files_are_checked(
    logs: Path,
) -> None:
    (logs / "a.log.gz").write_bytes(corrupt_gzip())
    r = validate("logs", cwd=logs.parent)
    assert r.code == 2
    out = r.out.splitlines()
    assert out[0] == B_VIOLATION  # b.log, after the broken a.log.gz, was checked
    assert out[-1] == "error: logs/a.log.gz: corrupt gzip data: invalid distance too far back"
    assert r.err == ""
    r = validate("--format", "json", "logs", cwd=logs.parent)
    assert r.code == 2
    doc = json.loads(r.out)
    assert doc["io_errors"] == ["logs/a.log.gz: corrupt gzip data: invalid distance too far back"]
    assert [v["path"] for v in doc["violations"]] == ["logs/b.log"]
    assert r.err == (
        "obskit validate: error: logs/a.log.gz: corrupt gzip data: invalid distance too far back\n"
    )


def test_output_into_a_missing_folder_fails_before_any_work(logs: Path) -> None:
    r = validate("--format", "json", "-o", "nothere/report.json", "logs", cwd=logs.parent)
    assert (r.code, r.out) == (2, "")
    assert r.err == (
        "obskit validate: error: -o nothere/report.json: folder nothere does not exist\n"
    )  # and no summary: nothing was checked


def test_output_onto_a_folder_fails_before_any_work(logs: Path) -> None:
    r = validate("--format", "junit", "-o", "logs", "logs", cwd=logs.parent)
    assert (r.code, r.out) == (2, "")
    assert r.err == "obskit validate: error: -o logs: is a folder; name the report file\n"


@posix_only
def test_fifo_socket_and_device_in_a_folder_are_skipped_with_a_note(logs: Path) -> None:
    os.mkfifo(logs / "pipe.log")  # opening it would block until a writer comes
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(logs / "sock.log"))
    (logs / "zero.log").symlink_to("/dev/zero")  # endless, no newline
    try:
        r = validate("logs", cwd=logs.parent)
    finally:
        sock.close()
    assert r.code == 1
    assert r.err == (
        "obskit validate: note: skipped logs/pipe.log: a FIFO, not a regular file\n"
        "obskit validate: note: skipped logs/sock.log: a socket, not a regular file\n"
        "obskit validate: note: skipped logs/zero.log: a character device, not a regular file\n"
    )
    assert r.out.splitlines()[:2] == [
        B_VIOLATION,
        "checked 4 lines in 1 file(s): 3 valid, 1 invalid, 0 warning(s)",
    ]


@pytest.fixture
def unlistable(logs: Path) -> str:
    """A sub-folder that cannot be listed, for root too; the path os.walk gives up on."""
    unlistable_below(logs / "deep")
    path = str(Path("logs") / "deep")
    while len(os.fsencode(path)) < 4096:  # the first path past PATH_MAX
        path = str(Path(path) / ("d" * 200))
    return path


@posix_only
def test_unlistable_sub_folder_is_reported_not_skipped(logs: Path, unlistable: str) -> None:
    r = validate("logs", cwd=logs.parent)
    assert r.code == 2
    out = r.out.splitlines()
    assert out[0] == B_VIOLATION
    assert out[1] == "checked 4 lines in 1 file(s): 3 valid, 1 invalid, 0 warning(s)"
    assert out[-1] == f"error: {unlistable}: cannot list folder: File name too long"
    r = validate("--format", "sarif", "logs", cwd=logs.parent)
    assert r.code == 2
    inv = json.loads(r.out)["runs"][0]["invocations"][0]
    assert inv["executionSuccessful"] is False
    [note] = inv["toolExecutionNotifications"]
    assert note["message"]["text"].endswith(": cannot list folder: File name too long")


def test_report_written_into_the_validated_folder_is_not_validated(logs: Path) -> None:
    (logs / "b.log").write_text(jl() * 3)
    args = ("--format", "json", "-o", "logs/report.json", "logs")
    first = validate(*args, cwd=logs.parent)
    assert first.code == 0 and first.out == ""
    second = validate(*args, cwd=logs.parent)
    assert second.code == 0
    assert second.err.startswith(
        "obskit validate: note: skipped logs/report.json: the report file being written\n"
        "checked 3 lines in 1 file(s): 3 valid, 0 invalid, 0 warning(s)\n"
    )
    assert json.loads((logs / "report.json").read_text())["summary"]["files"] == 1


@pytest.fixture
def odd_names(logs: Path) -> Path:
    """Files whose names need escaping: not UTF-8, XML-special, URI-special, a control byte."""
    (logs / "b.log").unlink()
    for raw in (b"caf\xe9.log", b'we"ird<&\x1b.log', b"a#b c%.log", "é.log".encode()):
        with open(os.path.join(os.fsencode(logs), raw), "wb") as f:
            f.write((jl() + jl(level="WARNING")).encode())
    return logs


@posix_only
def test_non_utf8_and_odd_file_names_in_every_reporter(odd_names: Path) -> None:
    cwd = odd_names.parent
    shown = ["logs/a#b c%.log", "logs/caf\\xe9.log", 'logs/we"ird<&\\u001b.log', "logs/é.log"]

    text = validate("logs", cwd=cwd)
    assert text.code == 1
    assert [ln.split(":2:52:")[0] for ln in text.out.splitlines()[:4]] == shown

    doc = json.loads(validate("--format", "json", "logs", cwd=cwd).out)
    # JSON keeps a UTF-8 name exactly (a control character is escaped by JSON itself).
    assert [v["path"] for v in doc["violations"]] == [
        "logs/a#b c%.log",
        "logs/caf\\xe9.log",
        'logs/we"ird<&\x1b.log',
        "logs/é.log",
    ]
    exact = [base64.b64decode(v["path_b64"]) for v in doc["violations"] if "path_b64" in v]
    assert exact == [b"logs/caf\xe9.log"]  # lossless where the name is not UTF-8

    junit = validate("--format", "junit", "logs", cwd=cwd).out
    root = ET.fromstring(junit.encode())  # well-formed, control byte included
    assert [s.get("name") for s in root.iter("testsuite")] == shown
    assert [c.get("name") for c in root.iter("testcase")] == [f"log schema v1: {s}" for s in shown]

    sarif = json.loads(validate("--format", "sarif", "logs", cwd=cwd).out)
    uris = [
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in sarif["runs"][0]["results"]
    ]
    assert uris == [
        "logs/a%23b%20c%25.log",
        "logs/caf%E9.log",
        "logs/we%22ird%3C%26%1B.log",
        "logs/%C3%A9.log",
    ]

    gh = validate("--format", "github", "logs", cwd=cwd).out.splitlines()
    assert [ln.split(",line=")[0] for ln in gh[:4]] == [
        "::error file=logs/a#b c%25.log",
        "::error file=logs/caf\\xe9.log",
        '::error file=logs/we"ird<&\\u001b.log',
        "::error file=logs/é.log",
    ]


def test_sarif_lists_unreadable_inputs(logs: Path) -> None:
    (logs / "a.log.gz").write_bytes(corrupt_gzip())
    cut = gzip.compress(jl().encode() * 5000)
    (logs / "c.log.gz").write_bytes(cut[: len(cut) // 2])
    r = validate("--format", "sarif", "logs", cwd=logs.parent)
    assert r.code == 2
    run = json.loads(r.out)["runs"][0]
    inv = run["invocations"][0]
    assert inv["executionSuccessful"] is False
    notes = [
        (n["level"], n["message"]["text"], n["locations"][0]["physicalLocation"])
        for n in inv["toolExecutionNotifications"]
    ]
    assert notes == [
        (
            "error",
            "logs/a.log.gz: corrupt gzip data: invalid distance too far back",
            {"artifactLocation": {"uri": "logs/a.log.gz"}},
        ),
        (
            "error",
            "logs/c.log.gz: truncated gzip stream: Compressed file ended before the "
            "end-of-stream marker was reached",
            {"artifactLocation": {"uri": "logs/c.log.gz"}},
        ),
    ]
    assert [x["ruleId"] for x in run["results"]] == ["OBS003"]
    clean = json.loads(validate("--format", "sarif", "logs/b.log", cwd=logs.parent).out)
    assert clean["runs"][0]["invocations"] == [
        {"executionSuccessful": True, "toolExecutionNotifications": []}
    ]


def test_junit_names_an_unreadable_input_in_an_error(logs: Path) -> None:
    (logs / "a.log.gz").write_bytes(corrupt_gzip())
    r = validate("--format", "junit", "logs", cwd=logs.parent)
    assert r.code == 2
    root = ET.fromstring(r.out.encode())
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    err = suites["logs/a.log.gz"].find("testcase/error")
    assert err is not None
    assert err.get("message") == ("logs/a.log.gz: corrupt gzip data: invalid distance too far back")
    assert suites["logs/b.log"].find("testcase/failure") is not None


@pytest.fixture
def stuck_worker(logs: Path) -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    """``obskit validate -j 2`` with one worker blocked on a FIFO nobody writes (named on the
    command line, so it is read) beside 5 MB of logs: workers are running, deterministically."""
    os.mkfifo(logs / "stuck.log")
    (logs / "big.log").write_text(jl() * 30_000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "obskit.cli", "validate", "-j", "2", "logs/stuck.log", "logs"],
        cwd=logs.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        kids: list[int] = []
        while time.monotonic() < deadline and len(kids) < 2:
            time.sleep(0.02)
            kids = _children(proc.pid)
        assert len(kids) == 2, kids
        yield proc, kids
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# The FIFO is read because it is named; in the folder walk it is skipped.
NOTE_STUCK = "obskit validate: note: skipped logs/stuck.log: a FIFO, not a regular file\n"


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and FIFOs")
def test_worker_killed_mid_run_is_a_clear_error(
    stuck_worker: tuple[subprocess.Popen[bytes], list[int]],
) -> None:
    proc, kids = stuck_worker
    os.kill(kids[0], signal.SIGKILL)  # what the OOM killer does
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.decode() == (
        NOTE_STUCK + "obskit validate: error: a worker process ended without an answer "
        "(killed?); run again with -j 1\n"
    )
    assert not any(os.path.exists(f"/proc/{k}") for k in kids[1:]), "a worker was left behind"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and FIFOs")
def test_ctrl_c_stops_every_worker_without_a_traceback(
    stuck_worker: tuple[subprocess.Popen[bytes], list[int]],
) -> None:
    proc, kids = stuck_worker
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
    _, err = proc.communicate(timeout=30)
    assert (proc.returncode, err.decode()) == (1, NOTE_STUCK + "\nAborted!\n")  # click's
    time.sleep(0.2)
    assert not any(os.path.exists(f"/proc/{k}") for k in kids), "a worker was left behind"
