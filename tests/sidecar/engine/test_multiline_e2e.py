"""Crash grouping and dialect conversion in the real ``obskit-sidecar`` process: a crash
still being written holds its file's checkpoint, survives ``kill -9`` whole, and is shipped
once complete; dialect files arrive converted, counted per dialect."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import orjson
from enginehelp import Sidecar, archived, line, quarantined, run_once, wait_for, write_config

DATA = Path(__file__).resolve().parents[2] / "data"
GO = (DATA / "crash" / "go-panic-system.txt").read_bytes()


def _checkpoint(tmp: Path) -> int | None:
    cp = tmp / "state" / "checkpoints.json"
    if not cp.exists():
        return None
    files = orjson.loads(cp.read_bytes())["files"]
    return max((f["offset"] for f in files.values()), default=None)


def test_kill9_while_a_crash_is_written_rereads_it_whole(
    tmp_path: Path, sidecars: list[Sidecar]
) -> None:
    cfg = write_config(tmp_path, schema={"multiline": {"max_wait": "1h"}})
    log = tmp_path / "logs" / "app.log"
    head = line(1, service="orders") + b"\n" + line(2, service="orders") + b"\n"
    cut = GO.index(b"\ngoroutine 2 ") + 1  # the dump is half written
    log.write_bytes(head + GO[:cut])
    s = Sidecar(cfg, tmp_path)
    sidecars.append(s)
    wait_for(lambda: len(archived(tmp_path)) == 2, what="the lines before the crash")
    wait_for(lambda: _checkpoint(tmp_path) == len(head), what="checkpoint at the crash")
    s.kill()  # kill -9 with the crash open: its lines were never acknowledged
    assert [r["seq"] for r in archived(tmp_path)] == [1, 2]
    with log.open("ab") as fh:
        fh.write(GO[cut:] + line(3, service="orders") + b"\n")
    proc = run_once(cfg)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recs = archived(tmp_path)
    assert [r.get("seq") for r in recs] == [1, 2, None, 3]
    crash = recs[2]
    assert crash["error.stack"] == GO.decode().rstrip("\n")  # whole: never split by the kill
    assert crash["service"] == "orders" and crash["level"] == "ERROR"
    assert quarantined(tmp_path) == []
    assert _checkpoint(tmp_path) == log.stat().st_size


def test_crash_at_the_end_of_a_file_is_shipped_when_quiet(
    tmp_path: Path, sidecars: list[Sidecar]
) -> None:
    cfg = write_config(tmp_path, schema={"multiline": {"max_wait": "300ms"}})
    log = tmp_path / "logs" / "app.log"
    log.write_bytes(line(1, service="orders") + b"\n" + GO)  # the service died: nothing after
    s = Sidecar(cfg, tmp_path)
    sidecars.append(s)
    addr = s.address()
    wait_for(lambda: len(archived(tmp_path)) == 2, what="the crash record")
    assert archived(tmp_path)[1]["error.stack"] == GO.decode().rstrip("\n")
    wait_for(lambda: _checkpoint(tmp_path) == log.stat().st_size, what="checkpoint at the end")
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    assert 'obskit_sidecar_lines_repaired_total{rule="multiline"} 1.0' in metrics
    assert f"obskit_sidecar_lines_grouped_total {float(len(GO.splitlines()))}" in metrics
    assert s.signal(signal.SIGTERM) == 0


def test_crash_grouping_turned_off_for_a_file(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, schema={"multiline": {"exclude": ["legacy.log"]}})
    (tmp_path / "logs" / "legacy.log").write_bytes(GO)
    # (Not the same first line: the tailer would take one file for a copy of the other.) The
    # crash ends the file: --exit-on-idle's shutdown hands it over before max_wait.
    (tmp_path / "logs" / "app.log").write_bytes(line(1) + b"\n" + GO)
    assert run_once(cfg).returncode == 0
    assert [r.get("crash") for r in archived(tmp_path)] == [None, "go-panic"]
    q = quarantined(tmp_path)
    assert len(q) == GO.count(b"\n") and all(e["file"].endswith("legacy.log") for e in q)


def test_dialect_files_arrive_converted_and_counted(
    tmp_path: Path, sidecars: list[Sidecar]
) -> None:
    logs = tmp_path / "logs"
    cfg = write_config(
        tmp_path,
        schema={
            "dialects": [
                {"include": ["orders-*.log"], "dialect": "go-slog", "service": "orders"},
                {"include": ["*.log"], "dialect": "auto", "service": "orders"},
            ]
        },
    )
    names = ["zap", "serilog", "ecs", "python-json"]
    (logs / "orders-1.log").write_bytes((DATA / "dialects" / "go-slog.log").read_bytes())
    for name in names:
        (logs / f"{name}.log").write_bytes((DATA / "dialects" / f"{name}.log").read_bytes())
    (logs / "mixed.log").write_bytes(
        line(1, service="cart") + b'\n{"time":"yesterday","level":"INFO","msg":"bad time"}\n'
    )
    s = Sidecar(cfg, tmp_path)
    sidecars.append(s)
    addr = s.address()
    want = {
        name: (DATA / "dialects" / f"{name}.expected.ndjson").read_bytes().splitlines()
        for name in ["go-slog", *names]
    }
    total = sum(map(len, want.values())) + 1
    wait_for(lambda: len(archived(tmp_path)) == total, what="every line")
    shipped = []
    for rec in archived(tmp_path):
        for k in ("host", "container", "pod", "environment"):
            rec.pop(k, None)  # enrichment added by the file sink
        shipped.append(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS))
    expected = [
        orjson.dumps(orjson.loads(x), option=orjson.OPT_SORT_KEYS)
        for lines in want.values()
        for x in lines
    ]
    expected.append(
        orjson.dumps(orjson.loads(line(1, service="cart")), option=orjson.OPT_SORT_KEYS)
    )
    shipped.sort()
    expected.sort()
    assert shipped == expected
    wait_for(lambda: len(quarantined(tmp_path)) == 1, what="the quarantined line")
    q = quarantined(tmp_path)
    assert q[0]["raw"].startswith('{"time":"yesterday"')
    assert "(after conversion from go-slog)" in q[0]["reasons"][0]["message"]
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    conv = [m for m in metrics.splitlines() if "lines_converted_total" in m]
    for name in ["go-slog", *names]:
        n = float(len(want[name]))
        assert f'obskit_sidecar_lines_converted_total{{dialect="{name}"}} {n}' in conv, conv
    assert s.signal(signal.SIGTERM) == 0
