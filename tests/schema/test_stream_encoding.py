"""validate_stream on real files: encodings (BOM, UTF-16, UTF-32, gzip), CRLF, the last line,
line numbers and offsets, and a 10 MB line streamed in bounded memory."""

from __future__ import annotations

import gzip
import io
import tracemalloc
from pathlib import Path

import pytest
from loglines import line

from obskit.schema import Policy, StreamSummary, validate_stream
from obskit.schema.encoding import Encoding, sniff, utf16_to_utf8
from obskit.schema.stream import LineReport

L = line()
BAD = line(level="WARNING")


def run(path: Path, **kw: object) -> tuple[list[LineReport], StreamSummary]:
    summary = StreamSummary()
    with path.open("rb") as fh:
        reports = list(validate_stream(fh, summary=summary, **kw))  # type: ignore[arg-type]
    return reports, summary


def rules(reports: list[LineReport]) -> list[tuple[int, str]]:
    return [(r.line, v.rule) for r in reports for v in r.violations]


def write(tmp_path: Path, data: bytes, name: str = "app.log") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_line_numbers_offsets_and_counts(tmp_path: Path) -> None:
    data = L + b"\n" + BAD + b"\n" + L + b"\n" + b"\n" + L + b"\n"
    reports, s = run(write(tmp_path, data))
    assert rules(reports) == [(2, "OBS003"), (4, "OBS012")]
    assert [r.offset for r in reports] == [len(L) + 1, 2 * len(L) + len(BAD) + 3]
    assert (s.lines, s.valid, s.invalid) == (5, 3, 2)
    assert s.by_rule == {"OBS003": 1, "OBS012": 1}
    assert s.by_service == {"checkout-api": 3}
    assert s.invalid_by_service == {"checkout-api": 1, "?": 1}


def test_allow_blank_skips_blank_lines(tmp_path: Path) -> None:
    p = write(tmp_path, L + b"\n\n  \n\r\n" + L + b"\n")
    reports, s = run(p, policy=Policy(allow_blank=True))
    assert reports == [] and s.valid == 2 and s.invalid == 0


@pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n"])
def test_last_line_without_newline_is_validated(tmp_path: Path, ending: bytes) -> None:
    reports, s = run(write(tmp_path, L + b"\n" + BAD + ending))
    assert rules(reports) == [(2, "OBS003")]
    assert s.lines == 2


def test_crlf_file_is_valid(tmp_path: Path) -> None:
    reports, s = run(write(tmp_path, (L + b"\r\n") * 5))
    assert reports == [] and s.valid == 5


def test_mixed_lf_and_crlf(tmp_path: Path) -> None:
    reports, s = run(write(tmp_path, L + b"\r\n" + L + b"\n" + BAD + b"\r\n"))
    assert s.valid == 2
    assert rules(reports) == [(3, "OBS003")]


def test_utf8_bom_at_file_start_accepted(tmp_path: Path) -> None:
    reports, s = run(write(tmp_path, b"\xef\xbb\xbf" + L + b"\r\n" + L + b"\r\n"))
    assert reports == [] and s.valid == 2


def test_utf8_bom_mid_file_is_an_error_on_its_line(tmp_path: Path) -> None:
    reports, _ = run(write(tmp_path, L + b"\n" + b"\xef\xbb\xbf" + L + b"\n"))
    assert rules(reports) == [(2, "OBS001")]
    assert "byte-order mark" in reports[0].violations[0].message


@pytest.mark.parametrize(
    ("codec", "name"),
    [("utf-16", "UTF-16-LE"), ("utf-16-le", "UTF-16-LE"), ("utf-16-be", "UTF-16-BE")],
)
def test_utf16_file_is_one_error_naming_the_fix(tmp_path: Path, codec: str, name: str) -> None:
    # What Windows PowerShell 5 writes with ">" (utf-16 = LE with BOM); also without a BOM.
    text = (L.decode() + "\r\n") * 3
    data = text.encode(codec)
    if codec == "utf-16-be":
        data = b"\xfe\xff" + data
    reports, s = run(write(tmp_path, data))
    assert len(reports) == 1 and reports[0].line == 1
    v = reports[0].violations[0]
    assert v.rule == "OBS013"
    assert name in v.message and "--accept-utf16" in v.message and "utf8" in v.message
    assert s.file_error == v and s.lines == 0


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_accept_utf16_transcodes(tmp_path: Path, codec: str) -> None:
    text = L.decode() + "\r\n" + BAD.decode() + "\r\n" + line(message="héllo ✓ 😀").decode()
    data = text.encode(codec)
    reports, s = run(write(tmp_path, data), accept_utf16=True)
    assert rules(reports) == [(2, "OBS003")]
    assert (s.lines, s.valid, s.invalid) == (3, 2, 1)


def test_accept_utf16_small_blocks_split_surrogate_pairs() -> None:
    text = (line(message="😀" * 50).decode() + "\n") * 20
    blocks = list(utf16_to_utf8(io.BytesIO(text.encode("utf-16")), Encoding.UTF16_LE, block=7))
    assert b"".join(blocks).decode("utf-8") == text


def test_utf32_file_is_reported(tmp_path: Path) -> None:
    reports, _ = run(write(tmp_path, (L.decode() + "\n").encode("utf-32")), accept_utf16=True)
    assert rules(reports) == [(1, "OBS013")]
    assert "UTF-32" in reports[0].violations[0].message


def test_sniff() -> None:
    assert sniff(b'{"ti') is Encoding.UTF8
    assert sniff(b"\xef\xbb\xbf{") is Encoding.UTF8_BOM
    assert sniff(b"\xff\xfe{\x00") is Encoding.UTF16_LE
    assert sniff(b"\xfe\xff\x00{") is Encoding.UTF16_BE
    assert sniff(b'{\x00"\x00') is Encoding.UTF16_LE
    assert sniff(b'\x00{\x00"') is Encoding.UTF16_BE
    assert sniff(b"\xff\xfe\x00\x00") is Encoding.UTF32
    assert sniff(b"\x1f\x8b\x08\x00") is Encoding.GZIP
    assert sniff(b"") is Encoding.UTF8


def test_gzip_file(tmp_path: Path) -> None:
    p = write(tmp_path, gzip.compress(b"\xef\xbb\xbf" + L + b"\n" + BAD + b"\n" + L), "a.log.gz")
    reports, s = run(p)
    assert rules(reports) == [(2, "OBS003")] and s.lines == 3


def test_gzip_of_utf16_is_still_recognised(tmp_path: Path) -> None:
    p = write(tmp_path, gzip.compress((L.decode() + "\n").encode("utf-16")), "a.log.gz")
    assert rules(run(p)[0]) == [(1, "OBS013")]
    assert run(p, accept_utf16=True)[1].valid == 1


def test_truncated_gzip_raises_eoferror(tmp_path: Path) -> None:
    p = write(tmp_path, gzip.compress((L + b"\n") * 1000)[:-30], "a.log.gz")
    with pytest.raises(EOFError):
        run(p)


def test_empty_and_bom_only_files(tmp_path: Path) -> None:
    assert run(write(tmp_path, b""))[1].lines == 0
    assert run(write(tmp_path, b"\xef\xbb\xbf"))[1].lines == 0


def test_ten_megabyte_line_is_obs011_and_streamed_in_bounded_memory(tmp_path: Path) -> None:
    size = 10 * 1024 * 1024
    p = tmp_path / "big.log"
    with p.open("wb") as fh:
        fh.write(L + b"\n" + L[:-1] + b',"pad":"')
        chunk = b"x" * (1 << 20)
        for _ in range(10):
            fh.write(chunk)
        fh.write(b'"}\n' + BAD + b"\n" + L)
    expected_len = len(L) - 1 + len(b',"pad":"') + size + 2
    tracemalloc.start()
    try:
        reports, s = run(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rules(reports) == [(2, "OBS011"), (3, "OBS003")]
    assert reports[0].violations[0].message == (
        f"line is {expected_len} bytes, more than the maximum 262144"
    )
    assert reports[1].offset == len(L) + 1 + expected_len + 1
    assert (s.lines, s.valid, s.invalid) == (4, 2, 2)
    # Blocks of 1 MiB plus one carried partial line: far below the line's 10 MB.
    assert peak < 4 * 1024 * 1024, peak


def test_line_exactly_at_the_limit_and_one_over(tmp_path: Path) -> None:
    limit = 300
    ok = line(message="PAD")
    ok = ok.replace(b"PAD", b"x" * (limit - len(ok) + 3))
    assert len(ok) == limit
    data = ok + b"\n" + ok + b" \n" + ok + b"\r\n" + ok
    reports, _ = run(write(tmp_path, data), policy=Policy(max_line_bytes=limit))
    # The limit counts the line's bytes without LF; a CR counts (it is part of the line).
    assert rules(reports) == [(2, "OBS011"), (3, "OBS011")]


def test_multi_member_gzip(tmp_path: Path) -> None:
    # `cat a.gz b.gz > c.gz` (log rotation tools do this) is one valid gzip stream.
    data = gzip.compress(L + b"\r\n") + gzip.compress(BAD + b"\n" + L)
    reports, s = run(write(tmp_path, data, "c.log.gz"))
    assert rules(reports) == [(2, "OBS003")] and s.lines == 3


def test_gzip_larger_than_a_block(tmp_path: Path) -> None:
    lines = [L] * 20_000
    lines[12_345] = BAD
    reports, s = run(write(tmp_path, gzip.compress(b"\n".join(lines)), "big.log.gz"))
    assert rules(reports) == [(12_346, "OBS003")] and s.lines == 20_000
    assert reports[0].offset == 12_345 * (len(L) + 1)
