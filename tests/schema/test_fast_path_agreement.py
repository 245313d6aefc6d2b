"""The fast path (validate_chunk / validate_lines / validate_stream) must agree exactly with
the precise path (check_line per line): same valid lines, same records, same violations,
through both of its implementations, the C kernel and the pure Python windows.

This is the safety net for every optimisation of obskit/schema/batch.py and _scan.c.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from unittest import mock

from corpus import corpora, encoded_records, mangled
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loglines import line as line_for
from paths import FAST_PATHS, fast_path

from obskit.schema import (
    LEVELS,
    Policy,
    Record,
    check_line,
    split_lines,
    validate_chunk,
    validate_lines,
)
from obskit.schema import stream as stream_mod
from obskit.schema.encoding import Encoding, sniff

POLICIES = [
    Policy(),
    Policy(max_line_bytes=400),
    Policy(required_fields=("env",)),
    Policy(required_fields=("k", "s")),
    Policy(required_fields=("trace_id",)),
    Policy(required_fields=("level", "span_id", "env")),
    Policy(allowed_services=("checkout-api", "re:[a-m].*")),
    Policy(warn_duplicate_keys=True),
    Policy(allow_blank=True),
    Policy(trace_min_fraction=0.5, trace_min_level="WARN"),
]
policies = st.sampled_from(POLICIES)
paths = st.sampled_from(FAST_PATHS)
#: OBSKIT_PROPERTY_SCALE=20 runs twenty times as many examples (before a release, or after
#: touching validator.py); the default keeps the suite fast.
SCALE = int(os.environ.get("OBSKIT_PROPERTY_SCALE", "1"))
SETTINGS = settings(
    max_examples=150 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fields(rec: Record | None) -> tuple[object, ...] | None:
    """A record's schema fields (with policy-required fields the batch path decodes a Record
    subclass that also holds those keys; the schema fields must be the same)."""
    if rec is None:
        return None
    assert isinstance(rec, Record)
    return tuple(getattr(rec, f) for f in Record.__struct_fields__)


def assert_agree(lines: list[bytes], policy: Policy, path: str) -> None:
    with fast_path(path):
        res = validate_lines(lines, policy)
    assert res.lines == lines
    assert len(res.records) == len(lines)
    flagged = set()
    for i, ln in enumerate(lines):
        rec, viol = check_line(ln, policy)
        fast_viol = res.violations.get(i, [])
        assert (res.records[i] is None) == (rec is None), (i, ln, viol, fast_viol)
        assert fields(res.records[i]) == fields(rec), (i, ln)
        if not policy.required_fields:
            assert res.records[i] == rec, (i, ln)  # the very same type, too
        assert fast_viol == viol, (i, ln)
        if viol:
            flagged.add(i)
    assert set(res.violations) == flagged


@SETTINGS
@given(lines=corpora(), policy=policies, path=paths)
def test_validate_lines_agrees_with_check_line(
    lines: list[bytes], policy: Policy, path: str
) -> None:
    assert_agree(lines, policy, path)


@SETTINGS
@given(lines=corpora(), policy=policies, final_newline=st.booleans(), path=paths)
def test_validate_chunk_agrees_with_check_line(
    lines: list[bytes], policy: Policy, final_newline: bool, path: str
) -> None:
    chunk = b"\n".join(lines) + (b"\n" if final_newline else b"")
    with fast_path(path):
        res = validate_chunk(chunk, policy)
    expected = split_lines(chunk)
    assert res.lines == expected
    for i, ln in enumerate(expected):
        rec, viol = check_line(ln, policy)
        assert fields(res.records[i]) == fields(rec), (i, ln)
        assert res.violations.get(i, []) == viol, (i, ln)


@settings(max_examples=100 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    lines=corpora(),
    policy=policies,
    block=st.sampled_from([64, 333, 4096, 1 << 20]),
    final_newline=st.booleans(),
    path=paths,
)
def test_validate_stream_reports_what_check_line_finds(
    lines: list[bytes], policy: Policy, block: int, final_newline: bool, path: str
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    assume_utf8 = sniff(data[:4]) in (Encoding.UTF8, Encoding.UTF8_BOM)
    if not assume_utf8:
        return  # a NUL as second byte makes a UTF-16 file: covered in the encoding tests
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    expected = split_lines(body)
    summary = stream_mod.StreamSummary()
    # Small blocks cut lines (and over-long lines) at every possible place.
    with mock.patch.object(stream_mod, "BLOCK", block), fast_path(path):
        reports = list(stream_mod.validate_stream(io.BytesIO(data), policy, summary=summary))
    want = {}
    valid = invalid = 0  # blank lines skipped by allow_blank are neither
    services: Counter[str] = Counter()
    eligible = carrying = 0
    floor = LEVELS.index(policy.trace_min_level)
    offsets = [0]
    for ln in expected:
        offsets.append(offsets[-1] + len(ln) + 1)
    for i, ln in enumerate(expected):
        rec, viol = check_line(ln, policy)
        if viol:
            want[i + 1] = viol
        valid += rec is not None
        invalid += any(v.severity == "error" for v in viol)
        if rec is not None:
            services[rec.service] += 1
            if policy.trace_min_fraction and LEVELS.index(rec.level) >= floor:
                eligible += 1
                carrying += bool(rec.trace_id)
    got = {r.line: r.violations for r in reports}
    assert got == want
    assert all(r.offset == offsets[r.line - 1] for r in reports)
    assert summary.lines == len(expected)
    assert summary.valid == valid
    assert summary.invalid == invalid
    assert summary.by_service == services
    assert (summary.trace_eligible, summary.trace_carrying) == (eligible, carrying)


@SETTINGS
@given(
    base=st.lists(encoded_records(valid_only=True), min_size=1, max_size=3),
    bad=encoded_records(),
    data=st.data(),
    n=st.integers(5, 600),
    path=paths,
)
def test_one_bad_line_anywhere_in_a_long_valid_run(
    base: list[bytes], bad: bytes, data: st.DataObject, n: int, path: str
) -> None:
    """The shape of real files: one damaged line hidden in a long valid run."""
    bad_lines = data.draw(mangled(bad)) if data.draw(st.booleans()) else [bad]
    at = data.draw(st.integers(0, n))
    lines = [base[i % len(base)] for i in range(n)]
    lines[at:at] = bad_lines
    assert_agree(lines, data.draw(policies), path)


@st.composite
def calendar_timestamps(draw: st.DrawFn) -> str:
    """Well-shaped timestamps over the whole calendar, valid or not: every year 0000-9999
    (leap rules for /4, /100, /400), day 28-31 of every month, leap seconds in any offset."""
    y = draw(st.one_of(st.integers(0, 9999), st.sampled_from([0, 100, 400, 1900, 2000, 2100])))
    mo = draw(st.integers(1, 12))
    d = draw(st.one_of(st.integers(1, 31), st.integers(28, 31)))
    h = draw(st.sampled_from([0, 7, 15, 23]))
    mi = draw(st.sampled_from([0, 59]))
    s = draw(st.sampled_from([0, 59, 60]))
    frac = draw(st.sampled_from(["", ".5", ".123456789"]))
    tz = draw(st.sampled_from(["Z", "+00:00", "-00:00", "-08:00", "+01:00", "+14:00", "-23:59"]))
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{tz}"


@SETTINGS
@given(stamps=st.lists(calendar_timestamps(), min_size=1, max_size=40), policy=policies, path=paths)
def test_bulk_timestamp_check_agrees_over_the_calendar(
    stamps: list[str], policy: Policy, path: str
) -> None:
    ok = line_for()
    lines = [ok] * 5
    for ts in stamps:
        lines.append(line_for(timestamp=ts))
        lines.extend([ok] * 3)
    assert_agree(lines, policy, path)
