"""The ``obskit audit`` command as a real subprocess: exit codes 0/1/2, the text and JSON
reports, usage errors, both backends in one run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from audithelp import base_minute, line, ship_es, ship_loki, spread, write
from click.testing import CliRunner

from obskit.audit.buckets import MINUTE_NS
from obskit.cli import main
from obskit.trace.model import format_ns
from tests.receivers.elasticsearch import EsReceiver
from tests.receivers.loki import LokiReceiver


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OBSKIT_")}
    full_env.update(env or {})
    full_env["OBSKIT_TRACE_CONFIG"] = os.devnull
    return subprocess.run(
        [sys.executable, "-m", "obskit.cli", "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=full_env,
    )


def span(t0: int, minutes: int) -> list[str]:
    return ["--from", format_ns(t0, 0), "--to", format_ns(t0 + minutes * MINUTE_NS, 0)]


def test_exit_0_1_and_the_reports(loki: LokiReceiver, tmp_path: Path) -> None:
    t0 = base_minute(40)
    lines = spread(t0, 4, 5) + spread(t0, 4, 5, "payments", first=100)
    write(tmp_path / "logs" / "app.log", lines)
    ship_loki(loki.url, lines)
    ok = run("--path", str(tmp_path / "logs"), "--loki", loki.url, *span(t0, 4))
    assert ok.returncode == 0, ok.stderr
    assert "ok: every minute matches (8 service-minutes, 40 lines)" in ok.stdout
    assert "minute k holds (k, k+1m], as Loki's count_over_time" in ok.stdout

    loki.delete(lambda e: '"line 7"' in e.line)
    bad = run("--path", str(tmp_path / "logs"), "--loki", loki.url, *span(t0, 4))
    assert bad.returncode == 1, bad.stderr
    row = next(x for x in bad.stdout.splitlines() if x.startswith("checkout "))
    assert row.split()[:7] == [
        "checkout",
        *format_ns(t0 + MINUTE_NS, 0)[:16].split("T"),
        "5",
        "4",
        "-1",
        "missing",
    ]
    assert row.endswith(f"{tmp_path / 'logs' / 'app.log'} 5")
    assert "1 of 8 service-minutes differ: 1 lines missing, 0 duplicated" in bad.stdout

    js = run("--path", str(tmp_path / "logs"), "--loki", loki.url, *span(t0, 4), "-o", "json")
    assert js.returncode == 1
    doc = json.loads(js.stdout)
    assert doc["ok"] is False
    (a,) = doc["audits"]
    assert a["totals"] == {"files": 40, "backend": 39, "missing": 1, "duplicated": 0}
    assert a["buckets"]["edges"] == "left-open" and a["buckets"]["minutes"] == 4
    (d,) = a["differences"]
    assert (d["service"], d["files"], d["backend"], d["kind"], d["delta"]) == (
        "checkout",
        5,
        4,
        "missing",
        -1,
    )
    assert d["minute"] == format_ns(t0 + MINUTE_NS, 0)
    assert a["files"]["by_file"] == {str(tmp_path / "logs" / "app.log"): 40}
    assert d["interval"].startswith("(")


def test_backend_error_exits_2(tmp_path: Path) -> None:
    t0 = base_minute(40)
    write(tmp_path / "a.log", spread(t0, 1, 1))
    down = run("--path", str(tmp_path), "--loki", "http://127.0.0.1:1", *span(t0, 1))
    assert down.returncode == 2
    assert "obskit audit: loki http://127.0.0.1:1: connection refused" in down.stderr
    assert "Traceback" not in down.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    write(tmp_path / "a.log", spread(base_minute(40), 1, 1))
    env = {k: None for k in os.environ if k.startswith("OBSKIT_")}
    env["OBSKIT_TRACE_CONFIG"] = os.devnull
    runner = CliRunner()

    def usage(*args: str) -> str:
        res = runner.invoke(main, ["audit", *args], env=env)
        assert res.exit_code == 2, res.output
        assert "Traceback" not in res.output
        return res.output

    assert "no files: give --path" in usage("--loki", "http://127.0.0.1:1")
    assert "no backend" in usage("--path", str(tmp_path))
    assert "no such file or directory" in usage("--path", str(tmp_path / "no"), "--loki", "x")
    loki = ("--path", str(tmp_path), "--loki", "http://127.0.0.1:1")
    assert "is not a duration" in usage(*loki, "--settle", "soon")
    assert "no whole minute" in usage(*loki, "--since", "10s")
    assert "Loki only" in usage("--path", str(tmp_path), "--es", "http://x:1", "--by-instance")
    assert "not an http(s) URL" in usage("--path", str(tmp_path), "--loki", "ftp://x")
    listing = runner.invoke(main, ["--help"]).output
    assert "audit" in listing and "Did every line arrive?" in listing


def test_loki_and_elasticsearch_in_one_run(
    loki: LokiReceiver, es_receiver: EsReceiver, tmp_path: Path
) -> None:
    t0 = base_minute(40)
    # Whole-second lines, one exactly on each minute: the two backends put it in different
    # minutes, and each comparison uses its backend's convention.
    lines = [line(t0 + s * 10**9, i=s) for s in range(0, 180, 10)]
    write(tmp_path / "a.log", lines)
    ship_loki(loki.url, lines)
    ship_es(es_receiver.url, lines[1:])
    out = run(
        "--path",
        str(tmp_path),
        "--loki",
        loki.url,
        "--es",
        es_receiver.url,
        *span(t0, 3),
        "--debug",
    )
    assert out.returncode == 1, out.stderr
    sections = out.stdout.split("audit: files ")[1:]
    assert len(sections) == 2
    assert "against loki" in sections[0] and "ok: every minute matches" in sections[0]
    assert "against elasticsearch" in sections[1]
    assert "1 of 3 service-minutes differ: 1 lines missing" in sections[1]
    assert 'LogQL sum by (service) (count_over_time({service=~".+"}[1m]))' in out.stderr
    assert "terms on service + date_histogram on @timestamp" in out.stderr


def test_terminal_control_characters_are_escaped(loki: LokiReceiver, tmp_path: Path) -> None:
    t0 = base_minute(40)
    evil = line(t0 + 10**9, service="x\x1b[2Jy")
    write(tmp_path / "a.log", [evil])
    out = run("--path", str(tmp_path), "--loki", loki.url, *span(t0, 1))
    assert out.returncode == 1
    assert "\x1b" not in out.stdout and "x\\x1b[2Jy" in out.stdout
