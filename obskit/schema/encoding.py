"""What a file's first bytes say about its encoding, and the one reader that turns any log
file into UTF-8 blocks: UTF-8 (with or without BOM), UTF-16 (what Windows PowerShell 5 writes
by default), gzip. Also the one decoder for config and policy files, which PowerShell 5 writes
in UTF-16 too."""

from __future__ import annotations

import codecs
import enum
import gzip
import io
from collections.abc import Iterator
from pathlib import Path
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


class RefusedEncoding(ValueError):
    """A file in an encoding the caller did not accept (UTF-32; UTF-16 unless accepted).
    Raised by :func:`utf8_blocks` before the first block."""

    def __init__(self, encoding: Encoding) -> None:
        super().__init__(f"file is {encoding.value.upper()}")
        self.encoding = encoding


def utf8_blocks(
    stream: BinaryIO, block_size: int = 1 << 20, *, accept_utf16: bool = True
) -> Iterator[bytes]:
    """The content of ``stream`` as UTF-8 blocks of about ``block_size`` bytes: gzip undone
    (members after members, nested gzip too), UTF-16 transcoded, a BOM dropped. Blocks end
    anywhere, not at line ends. Works on pipes (no seeking).

    Raises :class:`RefusedEncoding` for UTF-32, and for UTF-16 unless ``accept_utf16``;
    ``gzip.BadGzipFile``, ``EOFError`` or ``zlib.error`` for a corrupt archive.
    """
    head = stream.read(4)
    enc = sniff(head)
    if enc is Encoding.GZIP:
        with gzip.GzipFile(fileobj=_Rejoined(head, stream), mode="rb") as gz:
            yield from utf8_blocks(gz, block_size, accept_utf16=accept_utf16)  # type: ignore[arg-type]
        return
    if enc is Encoding.UTF32 or (enc.is_utf16 and not accept_utf16):
        raise RefusedEncoding(enc)
    if enc.is_utf16:
        yield from utf16_to_utf8(_Rejoined(head, stream), enc, block_size)  # type: ignore[arg-type]
        return
    first = head[enc.bom_length :] + stream.read(block_size)
    if first:
        yield first
    while block := stream.read(block_size):
        yield block


class _Rejoined(io.RawIOBase):
    """A stream whose first bytes were already read: give them back first."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(b))
        b[: len(data)] = data
        return len(data)


class TextFileError(ValueError):
    """A text file (config, policy, secret) that cannot be decoded: ``reason`` says where and
    how to fix it; ``str()`` starts with the file's name."""

    def __init__(self, name: str | Path, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = str(name)
        self.reason = reason


_RESAVE: Final = (
    "save it as UTF-8 (PowerShell 5: Out-File -Encoding utf8, or Set-Content -Encoding UTF8; "
    "PowerShell 7 writes UTF-8 by default)"
)


def decode_text(data: bytes, name: str | Path) -> str:
    """The text of a config or policy file, whatever a Windows editor or PowerShell wrote:
    UTF-8 with or without BOM, UTF-16 LE/BE (BOM, or none with an ASCII first character),
    UTF-32 with BOM; CRLF and CR become LF as with ``open()``. Raises
    :class:`TextFileError` naming ``name`` for anything else."""
    enc = sniff(data[:4])
    if enc is Encoding.GZIP:
        raise TextFileError(name, "is a gzip archive, not a text file; decompress it first")
    utf8 = enc in (Encoding.UTF8, Encoding.UTF8_BOM)
    skip = enc.bom_length if utf8 else 0
    try:
        text = data[skip:].decode("utf-8" if utf8 else enc.value)
    except UnicodeDecodeError as exc:
        where = _position(data, skip + exc.start) if utf8 else ""
        what = "UTF-8" if utf8 else enc.value.upper()
        raise TextFileError(name, f"not valid {what} ({exc.reason}{where}); {_RESAVE}") from None
    text = text.removeprefix("\ufeff")  # UTF-16 decoders keep the BOM
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _position(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f", byte 0x{data[offset]:02x} at line {line}, column {column}"


def read_text_file(path: str | Path) -> str:
    """:func:`decode_text` of the file at ``path``; ``OSError`` when it cannot be read."""
    with open(path, "rb") as f:
        return decode_text(f.read(), path)
