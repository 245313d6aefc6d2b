"""``obskit validate -j N``: the same report, byte for byte and in the same order, as one
process, whatever the ranges a file is cut into."""

from __future__ import annotations

import gzip
import os
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from validate_helpers import jl, run_process

from obskit.schema import Policy
from obskit.schema.stream import LineReport
from obskit.validate.parallel import Options, Plan, Unit, check_unit, plan
from obskit.validate.reporters import FORMATS, render
from obskit.validate.runner import run_validation

LINES = st.sampled_from(
    [
        jl().encode(),
        jl(service="payments").encode(),
        jl(level="WARNING").encode(),
        jl(drop=["trace_id"]).encode(),
        jl(message="x" * 150).encode(),  # over the 120-byte limit used below
        jl().replace("\n", "\r\n").encode(),
        b"not json\n",
        b"\n",
        b"   \n",
        b'{"a":1}\n',
    ]
)


@st.composite
def files(draw: st.DrawFn) -> bytes:
    body = b"".join(draw(st.lists(LINES, max_size=40)))
    if draw(st.booleans()):
        body = body.rstrip(b"\n")  # a last line without newline
    if draw(st.booleans()):
        body = b"\xef\xbb\xbf" + body
    return body


def outputs(paths: list[str], policy: Policy, **kw: object) -> tuple[list[str], list[tuple]]:
    seen: list[tuple[str, int, int, list[str]]] = []

    def on_report(path: str, rep: LineReport) -> None:
        seen.append((path, rep.line, rep.offset, [v.format() for v in rep.violations]))

    res = run_validation(paths, policy, on_report=on_report, **kw)  # type: ignore[arg-type]
    return [render(res, fmt) for fmt in FORMATS], seen


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    contents=st.lists(files(), min_size=1, max_size=3),
    range_bytes=st.integers(1, 400),
    max_errors=st.one_of(st.none(), st.integers(0, 6)),
)
def test_ranges_give_the_one_process_report(
    tmp_path: Path, contents: list[bytes], range_bytes: int, max_errors: int | None
) -> None:
    paths = []
    for i, data in enumerate(contents):
        p = tmp_path / f"f{i}.log"
        p.write_bytes(data)
        paths.append(str(p))
    policy = Policy(max_line_bytes=120)
    one = outputs(paths, policy, max_errors=max_errors)
    with ThreadPoolExecutor(3) as pool:
        many = outputs(
            paths, policy, max_errors=max_errors, jobs=2, range_bytes=range_bytes, executor=pool
        )
    assert many == one


def test_ranges_cut_lines_exactly_once(tmp_path: Path) -> None:
    """Every cut point, including inside a long line and right after a newline."""
    lines = [b"a" * n + b"\n" for n in (0, 1, 5, 30, 2, 0, 17)]
    data = b"".join(lines) + b"tail"
    p = tmp_path / "x.log"
    p.write_bytes(data)
    for size in range(1, len(data) + 2):
        units = plan([(0, str(p))], jobs=2, range_bytes=size).units
        got = []
        for u in units:
            res = check_unit(u, Options(Policy(allow_blank=True)))
            got.append(res.summary.lines)
        assert sum(got) == len(lines) + 1, size
        if size * 2 <= len(data):
            assert len(units) > 1


def test_what_is_not_cut(tmp_path: Path) -> None:
    gz = tmp_path / "a.log.gz"
    gz.write_bytes(gzip.compress(jl().encode() * 100))
    u16 = tmp_path / "b.log"
    u16.write_bytes((jl() * 100).encode("utf-16"))
    plain = tmp_path / "c.log"
    plain.write_bytes(jl().encode() * 100)
    work = plan([(0, str(gz)), (1, str(u16)), (2, "-"), (3, str(plain))], 2, range_bytes=500)
    assert work.parallel
    units = work.units
    assert units[:3] == [Unit(0, str(gz)), Unit(1, str(u16)), Unit(2, "-")]
    assert len(units) > 10 and all(u.index == 3 and u.end > 0 for u in units[3:])
    # One process, or a small total: nothing is cut, no worker is started.
    assert plan([(0, str(plain))], 1, range_bytes=500) == Plan([Unit(0, str(plain))], False)
    assert plan([(0, str(plain)), (1, str(gz))], 2) == Plan(
        [Unit(0, str(plain)), Unit(1, str(gz))], False
    )


def test_gzip_utf16_and_stdin_beside_ranges(tmp_path: Path) -> None:
    import io

    (tmp_path / "a.log.gz").write_bytes(gzip.compress((jl() + jl(level="info")).encode() * 50))
    (tmp_path / "b.log").write_bytes((jl() * 20 + jl(level="x")).encode("utf-16"))
    (tmp_path / "c.log").write_bytes((jl() * 40 + "oops\n" + jl() * 40).encode())
    paths = [str(tmp_path / "a.log.gz"), "-", str(tmp_path / "b.log"), str(tmp_path / "c.log")]
    stdin = (jl() + "x\n").encode()
    one = outputs(paths, Policy(), stdin=io.BytesIO(stdin), accept_utf16=True)
    with ThreadPoolExecutor(2) as pool:
        many = outputs(
            paths,
            Policy(),
            stdin=io.BytesIO(stdin),
            accept_utf16=True,
            jobs=2,
            range_bytes=700,
            executor=pool,
        )
    assert many == one


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_worker_processes(tmp_path: Path, method: str) -> None:
    """Real worker processes, with the start method Windows uses (spawn) too."""
    if method not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip(f"{method} not available here")
    for i in range(3):
        (tmp_path / f"{i}.log").write_text(jl() * 200 + jl(level="WARNING") + jl() * 200)
    paths = sorted(str(p) for p in tmp_path.iterdir())
    one = outputs(paths, Policy())
    many = outputs(paths, Policy(), jobs=2, range_bytes=20_000, start_method=method)
    assert many == one
    assert len(one[1]) == 3


def test_range_memory_is_bounded(tmp_path: Path) -> None:
    """A worker holds about a block or two of its range, never the range."""
    p = tmp_path / "big.log"
    line = jl().encode()
    with p.open("wb") as f:
        for _ in range(40):
            f.write(line * ((1 << 20) // len(line)))
    units = plan([(0, str(p))], 2, range_bytes=16 << 20).units
    tracemalloc.start()
    try:
        res = check_unit(units[1], Options(Policy()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert res.summary.lines > 40_000 and res.summary.invalid == 0
    assert peak < 6 << 20, peak


def _big_logs(folder: Path) -> Iterator[str]:
    folder.mkdir()
    ok = jl().encode()
    for name, n in (("a.log", 30_000), ("b.log", 20_000)):
        with (folder / name).open("wb") as f:
            for i in range(n):
                f.write(ok if i % 997 else jl(level="info", message=str(i)).encode())
        yield name


def test_cli_jobs_output_is_byte_identical(tmp_path: Path) -> None:
    """The real CLI on 12 MB of logs (big enough to be cut): the same with -j 1 and -j 2
    (every format is compared with real workers in test_worker_processes)."""
    list(_big_logs(tmp_path / "logs"))
    assert sum(f.stat().st_size for f in (tmp_path / "logs").iterdir()) > 8 << 20
    for fmt in ("text", "sarif"):
        one = run_process("--format", fmt, "-j", "1", "logs", cwd=tmp_path)
        two = run_process("--format", fmt, "-j", "2", "logs", cwd=tmp_path)
        assert one.code == 1, one
        assert (two.code, two.out, two.err) == (one.code, one.out, one.err), fmt
    assert one.out  # not vacuous


def test_default_jobs_follow_the_cpus_available() -> None:
    from obskit.validate.parallel import default_jobs

    want = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert default_jobs() == want
