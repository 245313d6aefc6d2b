"""Crash output that runtimes write as plain text into a JSON log stream: a Go panic with its
goroutine dump, a Python traceback, a .NET unhandled exception, a Java stack trace.

Each shape is declared as data (:class:`CrashShape`): the line that starts it and a line that
must follow for the text to count as that crash (a lone ``panic: x`` with no goroutine dump
is not one). ``obskit validate`` uses the start lines for its hint; the sidecar's multi-line
stage (``sidecar/transform/multiline.py``) groups the lines into one record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class CrashShape:
    """One kind of crash output.

    ``start`` matches its first line, ``confirm`` a later line that proves the shape.
    ``chain`` matches a line after which a new ``start`` continues the same crash (Python's
    "During handling of the above exception..."). ``message_last``: the record's message is
    the last line matching ``last`` instead of the first line (a Python traceback's first
    line is always the same; its last line names the exception).
    """

    kind: str
    title: str
    start: re.Pattern[bytes]
    confirm: re.Pattern[bytes]
    chain: re.Pattern[bytes] | None = None
    last: re.Pattern[bytes] | None = None


SHAPES: Final[tuple[CrashShape, ...]] = (
    CrashShape(
        kind="go-panic",
        title="a Go panic",
        start=re.compile(rb"(?:panic: |fatal error: )"),
        confirm=re.compile(rb"goroutine \d+|runtime stack:"),
    ),
    CrashShape(
        kind="python-traceback",
        title="a Python traceback",
        start=re.compile(
            rb"(?:  \+ )?(?:Exception Group )?Traceback \(most recent call last\):[ \t\r]*$"
        ),
        confirm=re.compile(rb"[ |+]*File \""),
        chain=re.compile(
            rb"(?:During handling of the above exception, another exception occurred:"
            rb"|The above exception was the direct cause of the following exception:)"
        ),
        last=re.compile(rb"[ |]*[A-Za-z_][\w.]*(?::|[ \t\r]*$)"),
    ),
    CrashShape(
        kind="dotnet-exception",
        title="a .NET unhandled exception",
        start=re.compile(rb"Unhandled [Ee]xception[.:] "),
        confirm=re.compile(rb"[ \t]+at "),
    ),
    CrashShape(
        kind="java-exception",
        title="a Java stack trace",
        start=re.compile(rb'Exception in thread "[^"]*" '),
        confirm=re.compile(rb"\tat |[ \t]+at "),
    ),
)


def crash_start(line: bytes) -> CrashShape | None:
    """The shape whose first line ``line`` is, or ``None`` (cheap for JSON lines)."""
    head = line[:1]
    if head in (b"{", b""):
        return None
    for shape in SHAPES:
        if shape.start.match(line):
            return shape
    return None


def looks_json(line: bytes) -> bool:
    """Whether ``line`` is meant as a JSON object (a crash group never swallows one)."""
    return line.lstrip(b" \t\xef\xbb\xbf")[:1] == b"{"


def validate_hint(shape: CrashShape) -> str:
    """``obskit validate``'s note on a crash's first line."""
    return f"looks like {shape.title}; the sidecar groups it into one record"
