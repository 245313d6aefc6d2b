"""``identity.identify``: which known file is this, and where does reading start? A pure
function of the file's first bytes, device/inode, size, the checkpoints and the lineage."""

from __future__ import annotations

from pathlib import Path

from obskit.schema.encoding import Encoding
from sidecar.checkpoint import CheckpointStore
from sidecar.source.identity import (
    Discovery,
    Known,
    Lineage,
    Probe,
    Start,
    Tracked,
    Unsupported,
    Wait,
    devino_of_key,
    file_key,
    fingerprint,
    head_digest,
    identify,
)

LIMIT = 64
HEAD = b"first line of the file\nsecond line\n"
FP = fingerprint(b"first line of the file\n")


class Known0:
    """No checkpoints."""

    def file_keys(self) -> list[str]:
        return []

    def known(self, file_key: str) -> Known | None:
        return None


def decide(probe: Probe, known: object = None, lineage: Lineage | None = None, **kw: object):  # type: ignore[no-untyped-def]
    return identify(
        probe,
        limit=LIMIT,
        known=known or Known0(),  # type: ignore[arg-type]
        lineage=lineage or Lineage(),
        tracked=kw.get("tracked", ()),  # type: ignore[arg-type]
        at_end=bool(kw.get("at_end", False)),
    )


def test_new_file_starts_at_zero_and_records_its_start() -> None:
    d = decide(Probe(1, 2, len(HEAD), HEAD))
    assert isinstance(d, Start)
    assert (d.key, d.offset, d.origin, d.why, d.enc) == (
        file_key(FP, 1, 2),
        0,
        file_key(FP, 1, 2),
        "new",
        Encoding.UTF8,
    )
    assert d.record_start
    end = decide(Probe(1, 2, len(HEAD), HEAD), at_end=True)
    assert isinstance(end, Start) and end.offset is None and end.why == "end" and end.record_start


def test_no_complete_first_line_waits_until_stale() -> None:
    assert decide(Probe(1, 2, 5, b"parti")) == Wait()
    d = decide(Probe(1, 2, 5, b"parti", stale_partial=True))
    assert isinstance(d, Start) and d.fp_source == b"parti"


def test_gzip_and_utf32_are_unsupported_and_tracked_is_never_restarted() -> None:
    assert decide(Probe(1, 2, 30, b"\x1f\x8b\x08" + b"\0" * 20 + b"\n")) == Unsupported(
        "gzip-compressed"
    )
    assert decide(Probe(1, 2, 30, "hi\n".encode("utf-32"))) == Unsupported("UTF-32")
    key = file_key(FP, 1, 2)
    assert decide(Probe(1, 2, len(HEAD), HEAD), tracked={key}) == Tracked(key)


def test_checkpoint_resumes_and_a_shorter_file_is_read_again(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    key = file_key(FP, 1, 2)
    store.advance(key, 30, "/logs/a.log")
    d = decide(Probe(1, 2, len(HEAD), HEAD), known=store)
    assert isinstance(d, Start) and (d.offset, d.why, d.record_start) == (30, "checkpoint", False)
    first = b"first line of the file\n"
    short = decide(Probe(1, 2, len(first), first), known=store)
    assert isinstance(short, Start)
    assert (short.offset, short.why, short.saved) == (0, "truncated_while_away", 30)


def test_copy_continues_where_the_original_was_read_named_after_it() -> None:
    lin = Lineage()
    orig = file_key(FP, 1, 2)
    lin.note(FP, HEAD, 23, orig)
    d = decide(Probe(1, 99, 100, HEAD), lineage=lin)
    assert isinstance(d, Start)
    assert (d.offset, d.origin, d.why, d.record_start) == (23, orig, "copy", False)
    # Same first line, different first KiB: a constant header, not a copy.
    other = b"first line of the file\nsomething else\n"
    d2 = decide(Probe(1, 98, 100, other), lineage=lin)
    assert isinstance(d2, Start) and d2.why == "new"


def test_lineage_seeded_from_checkpoints_only_with_a_head(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    with_head, without = file_key(FP, 1, 2), file_key(FP, 1, 3)
    store.record(Discovery(with_head, "/l/a.log", head=(len(HEAD), head_digest(HEAD))))
    store.advance(with_head, 23, "/l/a.log")
    store.advance(without, 30, "/l/b.log")
    lin = Lineage.from_known(store)
    e = lin.find(FP, HEAD + b"more\n")
    assert e is not None and e.offset == 23 and e.origin == with_head
    assert lin.find(FP, b"first line of the file\nother\n") is None


def test_identify_changes_nothing(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "cp.json")
    lin = Lineage()
    decide(Probe(1, 2, len(HEAD), HEAD), known=store, lineage=lin)
    assert store.file_keys() == [] and not store.dirty and lin.find(FP, HEAD) is None


def test_key_round_trip() -> None:
    assert devino_of_key(file_key(FP, 0xFD00, 0x1A2B3C)) == (0xFD00, 0x1A2B3C)
    assert devino_of_key("not-a-key-at-all") is None
