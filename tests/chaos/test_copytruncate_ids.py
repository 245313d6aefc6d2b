"""Found by the chaos suite (ES scenario): lines re-read from a copy+truncate copy after a
kill -9 got new ids, so Elasticsearch stored them twice.

The copy (``app.log.1``) continues from the original's checkpoint (lineage), but its lines
were identified by the COPY's file key (fingerprint + device + inode), so the lines between
the saved checkpoint and what had already been delivered from the original got different
``_id``s the second time. Deterministic reproduction, found by the chaos suite; passes since
line ids follow the file's lineage across restarts (``Chunk.id_key``, checkpoint ``origin``)."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from chaoshelp import Chaos, wait_until

from tests.receivers.elasticsearch import EsReceiver

pytestmark = pytest.mark.chaos


def test_copytruncate_after_kill9_no_es_duplicates(chaos: Chaos) -> None:
    n = 2000
    with EsReceiver() as es:
        chaos.write_config(
            [
                {
                    "name": "es",
                    "type": "elasticsearch",
                    "url": es.url,
                    "timeout": "1s",
                    "retry": {"initial": 0.05, "max": 0.3},
                }
            ]
        )
        log = chaos.logs / "app.log"
        now = time.time()
        with open(log, "wb") as f:
            for i in range(n):
                ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{i:06d}Z"
                f.write(
                    b'{"timestamp":"%s","level":"INFO","service":"app","message":"m","seq":"app-%d"}\n'
                    % (ts.encode(), i)
                )
        # Every bulk hangs past the client timeout and is applied afterwards: the lines are
        # stored but never acknowledged, so the checkpoint stays at the start.
        es.faults.stall(1.5, n=50, then_process=True)
        side = chaos.start_sidecar()
        wait_until(lambda: es.stats.faults_fired["stall"] >= 2, 30, "stalled bulks")
        side.kill9()
        es.faults.clear()
        wait_until(lambda: es.count("logs-*") >= 1, 10, "the stalled bulks to land")
        shutil.copyfile(log, log.with_name("app.log.1"))  # logrotate copytruncate
        os.truncate(log, 0)
        chaos.drain()
        seqs = [d["seq"] for d in es.documents("logs-*")]
        assert len(set(seqs)) == n
        assert len(seqs) == n, f"{len(seqs) - n} stored twice"


def test_kill9_before_any_checkpoint_save_then_copytruncate_no_es_duplicates(
    chaos: Chaos,
) -> None:
    # Checkpoints are saved only every hour here, so nothing but the file's discovery can
    # have made its identity durable before the kill. Found by the ES chaos run (700 lines
    # stored twice): the copy had no lineage after the restart and got new ids.
    n = 500
    with EsReceiver() as es:
        chaos.write_config(
            [{"name": "es", "type": "elasticsearch", "url": es.url, "timeout": "2s"}],
            checkpoint={"interval": "1h"},
        )
        log = chaos.logs / "app.log"
        now = time.time()
        with open(log, "wb") as f:
            for i in range(n):
                ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{i:06d}Z"
                f.write(
                    b'{"timestamp":"%s","level":"INFO","service":"app","message":"m","seq":"app-%d"}\n'
                    % (ts.encode(), i)
                )
        side = chaos.start_sidecar()
        wait_until(lambda: es.count("logs-*") >= n, 30, "every line delivered")
        side.kill9()
        shutil.copyfile(log, log.with_name("app.log.1"))  # logrotate copytruncate
        os.truncate(log, 0)
        chaos.drain()
        seqs = [d["seq"] for d in es.documents("logs-*")]
        assert len(set(seqs)) == n
        assert len(seqs) == n, f"{len(seqs) - n} stored twice"
