"""A copy made by copy+truncate rotation names its lines after the original (``id_key``),
so its lines get the ids they had (or would have had) in the original, also after a restart
from saved checkpoints."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sidecar.checkpoint import CheckpointStore
from sidecar.source.chunk import Chunk
from sidecar.source.settings import SourceSettings
from sidecar.source.tailer import Tailer
from tests.sidecar.source.tailhelp import Reader


def _ids(chunks: list[Chunk]) -> dict[bytes, str]:
    """line -> ``<id_key>-<offset>``, as the engine builds line ids."""
    out = {}
    for c in chunks:
        pos = c.start
        for ln in c.data[:-1].split(b"\n") if c.data else []:
            out[ln] = f"{c.id_key}-{pos}"
            pos += len(ln) + 1
    return out


def _lines(a: int, b: int) -> bytes:
    return b"".join(b"%08d payload\n" % i for i in range(a, b))


def test_chunk_id_key_defaults_to_file_key() -> None:
    c = Chunk("k1", "p", 0, 4, b"abc\n")
    assert c.id_key == "k1"
    assert Chunk("k1", "p", 0, 4, b"abc\n", id_key="k0").id_key == "k0"


def test_copy_lines_keep_original_ids_live_and_after_restart(
    tmp_path: Path, logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    log = logdir / "app.log"
    log.write_bytes(_lines(0, 100))
    t = Tailer(settings, store)
    r = Reader(t, store, ack=False)
    r.poll()
    (orig_key,) = [f.file_key for f in t.files()]
    # What the original's lines would be called if it had been read whole.
    expected = {ln: f"{orig_key}-{i * 17}" for i, ln in enumerate(_lines(0, 300).splitlines())}
    # Checkpoint the first 40 lines only (the rest "delivered but not acknowledged").
    store.advance(orig_key, 40 * 17, str(log))
    store.save()
    with log.open("ab") as f:
        f.write(_lines(100, 200))
    shutil.copyfile(log, logdir / "app.log.1")
    os.truncate(log, 0)
    r.poll()
    copy = [f for f in t.files() if f.path.endswith(".1")]
    assert copy and copy[0].file_key != orig_key
    got = _ids(r.chunks)
    assert len(got) == 200
    assert got == {ln: expected[ln] for ln in got}  # read live from the copy: same ids
    # The copy's progress is checkpointed under its own key, part way (a kill -9 follows).
    copy_key = copy[0].file_key
    store.advance(copy_key, 150 * 17, copy[0].path)
    store.save()
    t.close()
    with (logdir / "app.log.1").open("ab") as f:  # (not a real writer's habit; more lines)
        f.write(_lines(200, 300))

    # Restart: the copy continues from its own checkpoint, its lines still named after the
    # original.
    store2 = CheckpointStore(store.path)
    assert store2.load() == []
    assert store2.origin_of(copy_key) == orig_key
    t2 = Tailer(settings, store2)
    r2 = Reader(t2, store2, ack=False)
    r2.poll()
    got2 = _ids([c for c in r2.chunks if c.file_key == copy_key])
    assert len(got2) == 150
    assert got2 == {ln: expected[ln] for ln in got2}
    assert min(got2) == b"%08d payload" % 150
    assert all(c.file_key == copy_key for c in r2.chunks if c.path.endswith(".1"))
    t2.close()


def test_copy_found_after_restart_via_checkpointed_head_gets_original_ids(
    logdir: Path, store: CheckpointStore, settings: SourceSettings
) -> None:
    log = logdir / "app.log"
    log.write_bytes(_lines(0, 100))
    t = Tailer(settings, store)
    r = Reader(t, store, ack=False)
    r.poll()
    (orig_key,) = [f.file_key for f in t.files()]
    store.advance(orig_key, 60 * 17, str(log))
    store.save()
    t.close()
    # While the sidecar is down: copy+truncate.
    with log.open("ab") as f:
        f.write(_lines(100, 120))
    shutil.copyfile(log, logdir / "app.log.1")
    os.truncate(log, 0)
    store2 = CheckpointStore(store.path)
    assert store2.load() == []
    t2 = Tailer(settings, store2)
    r2 = Reader(t2, store2, ack=False)
    r2.poll()
    got = _ids(r2.chunks)
    assert sorted(got) == [b"%08d payload" % i for i in range(60, 120)]
    assert all(v == f"{orig_key}-{int(k[:8]) * 17}" for k, v in got.items())
    t2.close()
