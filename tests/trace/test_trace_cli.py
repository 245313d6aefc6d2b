"""The ``obskit trace`` command: real subprocesses for the exit codes and ``--follow``, click's
runner for the rest; backends are real files and the in-process receivers."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from trace_helpers import OTHER, TRACE, es_bulk, line, loki_push, record

from obskit.cli import main
from obskit.trace.model import format_ns
from tests.receivers.elasticsearch import EsReceiver
from tests.receivers.loki import LokiReceiver

NOW = time.time_ns() // 10**6 * 10**6
T = NOW - 300 * 10**9  # five minutes ago: inside the default 24 h window


def write_logs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gateway.log").write_text(
        "\n".join(
            [
                line(record(T, "gateway", "INFO", "GET /checkout", http={"status": 200})),
                line(record(T + 10**6, "gateway", "INFO", "other", trace_id=OTHER)),
                line(record(T + 1_250_000_000, "gateway", "ERROR", "upstream \x1b[2Jfailed")),
            ]
        )
        + "\n"
    )
    (folder / "checkout.log").write_text(
        line(record(T + 40_000_000, "checkout", "WARN", "slow payment", span_id="1" * 16)) + "\n"
    )


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OBSKIT_")}
    full_env.update(env or {})
    full_env["OBSKIT_TRACE_CONFIG"] = full_env.get("OBSKIT_TRACE_CONFIG", os.devnull)
    return subprocess.run(
        [sys.executable, "-m", "obskit.cli", "trace", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def test_subprocess_exit_codes_and_timeline(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_logs(logs)
    found = run(TRACE.upper(), "--path", str(logs), "--fields", "http.status")
    assert found.returncode == 0, found.stderr
    out = found.stdout
    assert f"trace {TRACE}  3 lines, 2 services, span 1.250s" in out
    rows = [r for r in out.splitlines() if "+0." in r or "+1." in r]
    assert [r.split()[2:4] for r in rows] == [
        ["gateway", "INFO"],
        ["checkout", "WARN"],
        ["gateway", "ERROR"],
    ]
    assert "+0.040s" in rows[1] and "+1.250s" in rows[2]
    assert "http.status=200" in rows[0]
    assert "upstream \\x1b[2Jfailed" in rows[2] and "\x1b" not in out  # escaped, no colour
    assert "total span 1.250s" in out
    assert "Traceback" not in found.stderr

    missing = run(OTHER.replace("0", "1"), "--path", str(logs))
    assert missing.returncode == 1
    assert "no lines of trace" in missing.stderr and "files " + str(logs) in missing.stderr
    assert "window" in missing.stderr and missing.stdout == ""

    bad = run("00000000000000000000000000000000", "--path", str(logs))
    assert bad.returncode == 2 and "all-zero trace id is invalid" in bad.stderr

    refused = run(TRACE, "--loki", f"http://127.0.0.1:{free_port()}")
    assert refused.returncode == 2
    assert "loki http://127.0.0.1:" in refused.stderr and "connection refused" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_json_and_ndjson_output(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_logs(logs)
    r = CliRunner().invoke(
        main,
        ["trace", TRACE, "--path", str(logs), "-o", "json", "--fields", "http.status,nope"],
        env={"OBSKIT_TRACE_CONFIG": os.devnull},
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["trace_id"] == TRACE and doc["summary"]["lines"] == 3
    assert doc["summary"]["services"]["gateway"]["levels"] == {"INFO": 1, "ERROR": 1}
    assert doc["summary"]["span_seconds"] == 1.25
    first = doc["lines"][0]
    assert set(first) == {
        "time",
        "timestamp",
        "offset_seconds",
        "service",
        "level",
        "message",
        "trace_id",
        "span_id",
        "source",
        "fields",
        "problems",
        "record",
    }
    assert first["fields"] == {"http.status": 200, "nope": None}
    assert first["source"].endswith("gateway.log:1")
    assert doc["backends"][0]["lines"] == 3 and doc["backends"][0]["error"] is None
    assert doc["lines"][2]["message"] == "upstream \x1b[2Jfailed"  # JSON keeps data exact

    r = CliRunner().invoke(
        main,
        ["trace", TRACE, "--path", str(logs), "-o", "ndjson"],
        env={"OBSKIT_TRACE_CONFIG": os.devnull},
    )
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["offset_seconds"] for x in rows] == [0.0, 0.04, 1.25]


def test_config_file_env_and_merge_across_backends(
    tmp_path: Path, loki: LokiReceiver, es_receiver: EsReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files, Loki and Elasticsearch at once: one timeline, each line once."""
    logs = tmp_path / "logs"
    write_logs(logs)
    shared = record(T + 500_000_000, "payments", "INFO", "charge accepted", span_id="2" * 16)
    loki_push(loki.url, [shared, record(T + 600_000_000, "payments", "INFO", "loki only")])
    es_bulk(es_receiver.url, [shared, record(T + 700_000_000, "cart", "DEBUG", "es only")])
    token = tmp_path / "loki-token"
    token.write_text("t0ps3cret\n")
    cfg = tmp_path / "obskit.toml"
    cfg.write_text(
        f"""
[trace]
link_template = "https://tempo.example/trace/{{trace_id}}"
[trace.loki]
url = "{loki.url}"
bearer_token_file = "{token.as_posix()}"
shard = "2h"
[trace.files]
paths = ["{logs.as_posix()}"]
"""
    )
    monkeypatch.setenv("OBSKIT_ES_URL", es_receiver.url)
    monkeypatch.setenv("OBSKIT_TRACE_CONFIG", str(cfg))
    r = CliRunner().invoke(main, ["trace", TRACE, "-o", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    msgs = [x["message"] for x in doc["lines"]]
    assert msgs == [
        "GET /checkout",
        "slow payment",
        "charge accepted",
        "loki only",
        "es only",
        "upstream \x1b[2Jfailed",
    ]
    assert doc["link"] == f"https://tempo.example/trace/{TRACE}"
    assert len(doc["backends"]) == 3
    assert "t0ps3cret" not in r.output

    # YAML works the same; unknown keys and inline secrets are refused clearly.
    monkeypatch.delenv("OBSKIT_ES_URL")
    y = tmp_path / "trace.yaml"
    y.write_text(f"loki:\n  url: {loki.url}\n  mode: metadata\n")
    r = CliRunner().invoke(main, ["trace", TRACE, "--config", str(y), "-o", "ndjson"])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 2
    y.write_text(f"loki:\n  url: {loki.url}\n  password: hunter2\n")
    r = CliRunner().invoke(main, ["trace", TRACE, "--config", str(y)])
    assert r.exit_code == 2 and "password cannot be written in the config" in r.output
    assert "hunter2" not in r.output


def test_partial_failure_still_shows_lines_but_exits_2(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_logs(logs)
    r = run(TRACE, "--path", str(logs), "--es", f"http://127.0.0.1:{free_port()}", "-o", "ndjson")
    assert r.returncode == 2
    assert len(r.stdout.splitlines()) == 3
    assert "elasticsearch http://127.0.0.1:" in r.stderr and "connection refused" in r.stderr
    assert "incomplete" in r.stderr


def test_usage_errors() -> None:
    env = {"OBSKIT_TRACE_CONFIG": os.devnull}
    for args, text in [
        ([TRACE], "no backend"),
        ([TRACE, "--path", "x", "--since", "2 days"], "not a duration"),
        ([TRACE, "--path", "x", "--from", "monday"], "not an RFC 3339"),
        ([TRACE, "--loki", "ftp://x"], "not an http(s) URL"),
        ([TRACE, "--path", "/definitely/not/here"], "no such file"),
        (["abc"], "not a trace id"),
    ]:
        r = CliRunner().invoke(main, ["trace", *args], env=env)
        assert r.exit_code == 2, (args, r.output)
        assert text in r.output, (args, r.output)


def test_follow_prints_new_lines_until_interrupted(loki: LokiReceiver) -> None:
    # Older than the five-minute re-read of later polls: the first poll reads the whole window.
    loki_push(loki.url, [record(time.time_ns() - 1200 * 10**9, message="already there")])
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBSKIT_")}
    env["OBSKIT_TRACE_CONFIG"] = os.devnull
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "obskit.cli", "trace", TRACE),
            *("--follow", "--interval", "0.2", "--loki", loki.url),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    rows: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # readline blocks; a thread keeps every wait below bounded
        assert proc.stdout is not None
        for row in proc.stdout:
            rows.put(row)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    seen: list[str] = []
    out = err = ""
    try:
        deadline = time.monotonic() + 20
        pushed = False
        while time.monotonic() < deadline:
            try:
                row = rows.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(row)
            if "already there" in row and not pushed:
                loki_push(loki.url, [record(time.time_ns(), "payments", "ERROR", "live line")])
                pushed = True
            if "live line" in row:
                break
        assert any("already there" in r for r in seen), seen
        assert any("live line" in r for r in seen), seen
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        reader.join(timeout=5)
        while not rows.empty():
            out += rows.get()
        assert proc.stderr is not None
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, err
    assert "2 lines shown" in out and "Traceback" not in err


def test_time_format_is_utc() -> None:
    assert format_ns(0) == "1970-01-01T00:00:00.000000Z"


def test_obskit_toml_trace_table_is_found_and_validate_still_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One obskit.toml serves both commands: the policy keys and the [trace] table."""
    logs = tmp_path / "logs"
    write_logs(logs)
    (tmp_path / "obskit.toml").write_text(
        f'allow_blank = true\n[trace]\nsince = "1h"\n[trace.files]\npaths = ["{logs.as_posix()}"]\n'
    )
    sub = tmp_path / "deeper"
    sub.mkdir()
    monkeypatch.chdir(sub)
    monkeypatch.delenv("OBSKIT_TRACE_CONFIG", raising=False)
    r = CliRunner().invoke(main, ["trace", TRACE, "-o", "ndjson"])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) == 3
    v = CliRunner().invoke(main, ["validate", str(logs / "checkout.log")])
    assert v.exit_code == 0, v.output


def test_lines_outside_the_window_are_pointed_out(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_logs(logs)  # five minutes ago
    r = CliRunner().invoke(
        main,
        ["trace", TRACE, "--path", str(logs), "--since", "1m", "--debug"],
        env={"OBSKIT_TRACE_CONFIG": os.devnull},
    )
    assert r.exit_code == 1
    assert "3 line(s) of this trace are outside the window (widen --since" in r.stderr
    assert "debug: files " in r.stderr and "2 files" in r.stderr
