"""Write the bad-input corpus ``tests/data/bad/`` (run once; the files are committed).

    python tests/data/make_bad_corpus.py

Every file has a valid line before and after the bad input (``"message": "<name> before"``
/ ``"<name> after"``) wherever the format allows, so tests can check that the lines around
it are delivered. The 10 MB line is generated at test time (``tests/corpus/``), not here.
"""

from __future__ import annotations

import codecs
import gzip
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent / "bad"
TS = "2024-10-01T12:00:00.000Z"


def ok(name: str, where: str) -> bytes:
    return (
        f'{{"timestamp":"{TS}","level":"INFO","service":"corpus","message":"{name} {where}"}}'
    ).encode()


def head(msg: bytes = b'"m"') -> bytes:
    return b'{"timestamp":"' + TS.encode() + b'","level":"INFO","service":"corpus","message":' + msg


def around(name: str, bad: bytes, *, last_newline: bool = True) -> bytes:
    tail = ok(name, "after") + (b"\n" if last_newline else b"")
    return ok(name, "before") + b"\n" + bad + b"\n" + tail


def files() -> dict[str, bytes]:
    rng = random.Random(20261125)
    binary = bytes(rng.randrange(256) for _ in range(4096))
    out = {
        "invalid_utf8.log": around("invalid_utf8", head(b'"caf\xe9 \xff\xfe"}')),
        "nul_bytes.log": around("nul_bytes", head(b'"a\x00b"}')),
        "lone_surrogate.log": around("lone_surrogate", head(b'"\\ud800 alone"}')),
        "no_newline_at_eof.log": around("no_newline_at_eof", head(b'"fine"}'), last_newline=False),
        "deep_nesting.log": around(
            "deep_nesting", head(b'"m","x":' + b"[" * 10_000 + b"]" * 10_000 + b"}")
        ),
        "huge_number.log": around("huge_number", head(b'"m","x":' + b"9" * 5000 + b"}")),
        "duplicate_keys.log": around(
            "duplicate_keys", head(b'"m","level":"ERROR"}') + b"\n" + head(b'"dupx","x":1,"x":2}')
        ),
        # Log injection: ANSI escapes and CR/LF escaped inside JSON strings (valid, shipped
        # byte for byte), and a raw CR inside a string (invalid JSON).
        "log_injection.log": around(
            "log_injection",
            head(b'"\\u001b[2J\\u001b[31mFAKE ALERT\\u001b[0m\\r\\n{\\"level\\":\\"ERROR\\"}"}')
            + b"\n"
            + head(b'"raw\rcarriage"}'),
        ),
        "bom_in_middle.log": around("bom_in_middle", codecs.BOM_UTF8 + head(b'"after bom"}')),
        # Windows PowerShell 5 style: BOM, CRLF (LE); BOM, LF (BE).
        "utf16le.log": codecs.BOM_UTF16_LE
        + around("utf16le", head(b'"middle"}'))
        .replace(b"\n", b"\r\n")
        .decode()
        .encode("utf-16-le"),
        "utf16be.log": codecs.BOM_UTF16_BE
        + around("utf16be", head(b'"middle"}')).decode().encode("utf-16-be"),
        "empty.log": b"",
        "binary.log": around("binary", binary),
        "gzip_named.log": gzip.compress(around("gzip_named", b"{}") + b"\n", mtime=0),
    }
    return out


def main() -> None:
    HERE.mkdir(exist_ok=True)
    for name, data in files().items():
        (HERE / name).write_bytes(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
