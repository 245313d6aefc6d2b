"""The tailer's warnings (unsupported encodings, a file shorter than its checkpoint...) are the
real sidecar's own schema-v1 WARN logs, each once, and counted in
``obskit_sidecar_source_warnings_total{kind}``."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import orjson
from enginehelp import Sidecar, archived, line, run_once, wait_for, write_config

from obskit.schema import validate_line


def _warns(records: list[dict[str, object]]) -> list[dict[str, object]]:
    return [r for r in records if r.get("level") == "WARN" and r.get("component") == "source"]


def test_source_warnings_logged_once_and_counted(tmp_path: Path, sidecars: list[Sidecar]) -> None:
    cfg = write_config(tmp_path, source={"exclude": []})
    logs = tmp_path / "logs"
    (logs / "z.log").write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 20 + b"\n")
    (logs / "w.log").write_bytes("hi\n".encode("utf-32"))
    app = logs / "app.log"
    app.write_bytes(b"".join(line(i) + b"\n" for i in range(100)))
    res = run_once(cfg)
    assert res.returncode == 0, res.stdout + res.stderr
    out = [ln for ln in res.stdout.encode().splitlines() if ln.strip()]
    assert all(validate_line(ln) == [] for ln in out), res.stdout  # schema v1 self logs
    warns = _warns([orjson.loads(ln) for ln in out])
    assert sorted((str(w["kind"]), Path(str(w["message"]).split(":")[0]).name) for w in warns) == [
        ("unsupported_encoding", "w.log"),
        ("unsupported_encoding", "z.log"),
    ]
    assert "UTF-32" in str(next(w for w in warns if "w.log" in str(w["message"]))["message"])

    # Shortened while the sidecar was away (same first line, same inode): read again, warned.
    with open(app, "r+b") as fh:
        fh.truncate(sum(len(line(i)) + 1 for i in range(50)))
    s = Sidecar(cfg, tmp_path)
    sidecars.append(s)
    base = "http://" + s.address()

    def metrics() -> str:
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            return str(r.read().decode())

    wait_for(lambda: len(archived(tmp_path)) == 150, what="the shortened file read again")
    want = [
        'obskit_sidecar_source_warnings_total{kind="truncated_while_away"} 1.0',
        'obskit_sidecar_source_warnings_total{kind="unsupported_encoding"} 2.0',
    ]
    wait_for(lambda: all(w in metrics() for w in want), what="warning metrics")
    assert s.signal(signal.SIGTERM) == 0
    warns = _warns(s.logs())
    kinds = sorted(str(w["kind"]) for w in warns)
    assert kinds == ["truncated_while_away", "unsupported_encoding", "unsupported_encoding"]
    short = next(w for w in warns if w["kind"] == "truncated_while_away")
    assert "app.log" in str(short["message"]) and "shorter" in str(short["message"])
