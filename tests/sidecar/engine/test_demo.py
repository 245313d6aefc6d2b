"""The README's main-job command: ``obskit-sidecar demo`` runs offline and explains itself."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import orjson
from enginehelp import SIDECAR


def test_demo_ships_sample_services_and_prints_a_useful_summary(tmp_path: Path) -> None:
    res = subprocess.run(
        [*SIDECAR, "demo", "--dir", str(tmp_path), "--lines", "230"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "80"},  # the trace command must survive a narrow terminal
    )
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    assert "Lines read" in out and "690" in out
    assert "nothing dropped" in out
    for rule in ("OBS001", "OBS003", "OBS004", "OBS005", "OBS009"):
        assert rule in out
    m = re.search(r"obskit trace ([0-9a-f]{32}) --path (\S+)", out)
    assert m is not None, out
    assert Path(m.group(2)) == tmp_path / "archive"
    archived = [
        orjson.loads(x)
        for seg in (tmp_path / "archive").glob("archive-*.ndjson")
        for x in seg.read_bytes().splitlines()
    ]
    quarantined = (tmp_path / "quarantine" / "quarantine.ndjson").read_bytes().splitlines()
    assert len(archived) + len(quarantined) == 690
    assert {r["service"] for r in archived if r.get("trace_id") == m.group(1)} == {
        "checkout",
        "payments",
        "cart",
    }
