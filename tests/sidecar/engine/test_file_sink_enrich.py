"""The file sink's static-field enrichment: the one-join fast path gives exactly what the
per-line rule gives (add each field the line's object does not have as a top-level key, after a
comma unless the object is empty; lines that are not objects are left alone), whatever mix of
lines a batch holds."""

from __future__ import annotations

from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.sinks.file import Config, FileSink

STATIC = {"host": "web-1", "environment": "prod", "pod": "web-1-abc"}


def _reference(line: bytes, static: dict[str, str]) -> bytes:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    if not isinstance(obj, dict):
        return line
    extra = [orjson.dumps(k) + b":" + orjson.dumps(v) for k, v in static.items() if k not in obj]
    if not extra:
        return line
    stripped = line.rstrip(b" \t")
    return stripped[:-1] + (b"," if obj else b"") + b",".join(extra) + b"}"


_line = st.one_of(
    st.builds(
        lambda msg, extra, ws: orjson.dumps({"message": msg, **extra}) + ws,
        # A static key's name as a value, or inside a nested object, is not the key.
        st.sampled_from(["m1", "host", 'say "pod"', "environment"]),
        st.dictionaries(
            st.sampled_from(["host", "hostname", "x", "pod"]),
            st.one_of(st.text(max_size=5), st.integers(-(2**60), 2**60), st.just({"host": "n"})),
        ),
        st.sampled_from([b"", b"", b"", b" ", b"\t "]),
    ),
    st.sampled_from([b"[1,2]", b"not json", b'"host"', b"{}", b"{ }", b'{"n": 1 }', b'{"a":{}}']),
)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(_line, min_size=1, max_size=30), nkeys=st.integers(1, 3))
def test_enrich_matches_the_per_line_rule(lines: list[bytes], nkeys: int) -> None:
    static = dict(list(STATIC.items())[:nkeys])
    sink = FileSink("a", Config(dir="unused"))  # _encode touches no file
    got = sink._encode(lines, static)
    assert got == b"".join(_reference(ln, static) + b"\n" for ln in lines)


def test_enrich_off_or_no_static_writes_lines_unchanged(tmp_path: Path) -> None:
    lines = [b'{"a":1}', b"[2]"]
    off = FileSink("a", Config(dir=str(tmp_path / "a"), enrich=False))
    assert off._encode(lines, STATIC) == b'{"a":1}\n[2]\n'
    on = FileSink("b", Config(dir=str(tmp_path / "b")))
    assert on._encode(lines, {}) == b'{"a":1}\n[2]\n'
    assert on._encode([], STATIC) == b""
