"""What a log file's first bytes say about its encoding: UTF-8 (with or without BOM), UTF-16
(what Windows PowerShell 5 writes by default), or gzip."""

from __future__ import annotations

import codecs
import enum
from collections.abc import Iterator
from typing import BinaryIO, Final

UTF8_BOM: Final = codecs.BOM_UTF8


class Encoding(enum.Enum):
    UTF8 = "utf-8"
    UTF8_BOM = "utf-8-sig"
    UTF16_LE = "utf-16-le"
    UTF16_BE = "utf-16-be"
    UTF32 = "utf-32"
    GZIP = "gzip"

    @property
    def is_utf16(self) -> bool:
        return self in (Encoding.UTF16_LE, Encoding.UTF16_BE)

    @property
    def bom_length(self) -> int:
        return {Encoding.UTF8_BOM: 3, Encoding.UTF16_LE: 2, Encoding.UTF16_BE: 2}.get(self, 0)


def sniff(head: bytes) -> Encoding:
    """Classify a file by its first bytes (4 are enough).

    UTF-16 is recognised by its BOM, and also without one when the first character is ASCII
    followed by a NUL byte (``{\\x00``), which no UTF-8 log line starts with.
    """
    if head.startswith(b"\x1f\x8b"):
        return Encoding.GZIP
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return Encoding.UTF32
    if head.startswith(UTF8_BOM):
        return Encoding.UTF8_BOM
    if head.startswith(codecs.BOM_UTF16_LE):
        return Encoding.UTF16_LE
    if head.startswith(codecs.BOM_UTF16_BE):
        return Encoding.UTF16_BE
    if len(head) >= 2 and head[0] != 0 and head[1] == 0 and head[0] < 0x80:
        return Encoding.UTF16_LE
    if len(head) >= 2 and head[0] == 0 and head[1] != 0 and head[1] < 0x80:
        return Encoding.UTF16_BE
    return Encoding.UTF8


def utf16_to_utf8(stream: BinaryIO, enc: Encoding, block: int = 1 << 20) -> Iterator[bytes]:
    """Transcode a UTF-16 stream (BOM included or not) to UTF-8 blocks, incrementally.

    Unpaired surrogates become U+FFFD so the result is always valid UTF-8.
    """
    dec = codecs.getincrementaldecoder(enc.value)(errors="replace")
    first = True
    while True:
        data = stream.read(block)
        text = dec.decode(data, final=not data)
        if first:
            text = text.removeprefix("\ufeff")
            first = False
        if text:
            yield text.encode("utf-8", "replace")
        if not data:
            return
