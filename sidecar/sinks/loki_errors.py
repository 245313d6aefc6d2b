"""Reading Loki's 400 replies: which entries of a push were rejected, and why.

Loki writes the valid entries of a push and answers 400 for the rest, in one of two shapes
(grafana/loki 3.x):

* Distributor validation (``pkg/distributor``): every failed entry or stream produced a
  message naming the stream and the entry's timestamp (RFC 3339, to the second), line length
  or structured-metadata size; the reply groups identical messages,
  ``"N errors like: <msg>"``, joined by ``"; "`` (``util.GroupedErrors``).
* Ingester (``pkg/ingester/stream.go``): entries too far behind the newest of their stream,
  ``"entry with timestamp <Go time> ignored, reason: '...',\\n"`` for up to 10 entries then
  ``"user 'T', total ignored: N out of M for stream: {...}"``. It replaces any validation
  errors, and only the last stream of the push is reported.

:func:`parse_reply` turns the text into :class:`LokiError` items; the sink matches them to its
entries (see ``LokiSink._attribute``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
from dataclasses import dataclass, field

# A label set: braces around names and quoted values (so a match never runs into the next
# message of a grouped reply).
_SET = r"""\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\}"""
_STREAM = r"(?P<stream>" + _SET + ")"
_PLEASE = r"(?:\. Please see `[^`]*` or contact your Loki administrator to \w+ it\.)?"
_COUNT = r"(?:(?P<n>\d+) errors like: )?"
_END = r"(?=; \d+ errors like: |; entry for stream |; stream '|; Max entry size|$)"

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    (
        "too_old",
        re.compile(
            _COUNT + r"entry for stream '" + _STREAM + r"' has timestamp too old: (?P<ts>\S+), "
            r"oldest acceptable timestamp is: (?P<cutoff>[^;\s]+)" + _END,
            re.S,
        ),
    ),
    (
        "too_new",
        re.compile(
            _COUNT
            + r"entry for stream '"
            + _STREAM
            + r"' has timestamp too new: (?P<ts>[^;\s]+)"
            + _END,
            re.S,
        ),
    ),
    (
        "line_too_long",
        re.compile(
            _COUNT
            + r"Max entry size '(?P<limit>\d+)' bytes exceeded for stream '"
            + _STREAM
            + r"' while adding an entry with length '(?P<len>\d+)' bytes",
            re.S | re.I,
        ),
    ),
    (
        "structured_metadata_too_large",
        re.compile(
            _COUNT + r"stream '" + _STREAM + r"' has structured metadata too large: "
            r"'(?P<size>\d+)' bytes, limit: '(?P<limit>\d+)' bytes" + _PLEASE,
            re.S,
        ),
    ),
    (
        "structured_metadata_too_many",
        re.compile(
            _COUNT + r"stream '" + _STREAM + r"' has too many structured metadata labels: "
            r"'(?P<size>\d+)', limit: '(?P<limit>\d+)'" + _PLEASE,
            re.S,
        ),
    ),
    (
        "structured_metadata_disallowed",
        re.compile(
            _COUNT + r"stream '" + _STREAM + r"' includes structured metadata, but this feature "
            r"is disallowed" + _PLEASE,
            re.S,
        ),
    ),
    (
        "invalid_labels",
        re.compile(
            _COUNT + r"(?:entry for stream '" + _STREAM + r"' has \d+ label names; limit \d+"
            r"|stream '(?P<stream2>" + _SET + r")' has (?:label name too long|label value too long"
            r"|duplicate label name): '.*?'(?=; |$)"
            r"|Error parsing labels '(?P<stream3>.*?)' with error: .*?(?=; |$)"
            r"|missing required labels \S+ for user \S+ for stream (?P<stream4>" + _SET + r"))",
            re.S,
        ),
    ),
]

_INGESTER_ENTRY = re.compile(r"entry with timestamp (?P<ts>.+?) ignored, reason: '(?P<why>.*?)',\n")
_INGESTER_TAIL = re.compile(
    r"user '(?P<tenant>.*?)', total ignored: (?P<n>\d+) out of (?P<m>\d+) for stream: "
    r"(?P<stream>\{.*\})\s*$",
    re.S,
)
_CUTOFF = re.compile(r"oldest acceptable timestamp is: (\S+?)'?$")


@dataclass
class LokiError:
    """One rejection reason from a 400 reply."""

    kind: str  # too_old, too_new, line_too_long, ..., too_far_behind, invalid_labels
    count: int
    stream: dict[str, str] | None
    message: str
    ts_sec: int | None = None  # the entry's timestamp, to the second (distributor)
    cutoff_sec: int | None = None
    length: int | None = None  # line length or structured-metadata size / count
    timestamps: list[int] = field(default_factory=list)  # exact ns (ingester listing)


def parse_reply(text: str) -> list[LokiError]:
    """Every recognised rejection in a 400 body; ``[]`` when the text is not Loki's."""
    text = text.rstrip("\n")
    tail = _INGESTER_TAIL.search(text)
    if tail is not None and text.startswith("entry with timestamp"):
        listed = list(_INGESTER_ENTRY.finditer(text))
        stamps = [ns for m in listed if (ns := parse_go_time(m.group("ts"))) is not None]
        cutoff = None
        if listed:
            cm = _CUTOFF.search(listed[0].group("why"))
            cutoff = parse_rfc3339_sec(cm.group(1)) if cm else None
        why = listed[0].group("why") if listed else "entry too far behind"
        return [
            LokiError(
                "too_far_behind",
                int(tail.group("n")),
                parse_labels(tail.group("stream")),
                why,
                cutoff_sec=cutoff,
                timestamps=stamps,
            )
        ]
    out: list[LokiError] = []
    covered = bytearray(len(text))
    for kind, pat in _PATTERNS:
        for m in pat.finditer(text):
            covered[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
            d = m.groupdict()
            stream_text = (
                d.get("stream") or d.get("stream2") or d.get("stream3") or d.get("stream4") or ""
            )
            msg = m.group(0)
            if d.get("n"):
                msg = msg[len(d["n"]) + len(" errors like: ") :]
            err = LokiError(kind, int(d["n"] or 1), parse_labels(stream_text), msg)
            if d.get("ts"):
                err.ts_sec = parse_rfc3339_sec(d["ts"])
            if d.get("cutoff"):
                err.cutoff_sec = parse_rfc3339_sec(d["cutoff"])
            if d.get("len"):
                err.length = int(d["len"])
            elif d.get("size"):
                err.length = int(d["size"])
            out.append(err)
    # Anything left besides separators is a message we do not know: the caller must not
    # guess which entries it concerns.
    rest = "".join(c for c, hit in zip(text, covered, strict=True) if not hit)
    if rest.replace(";", "").strip():
        return []
    return out


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')


def parse_labels(text: str) -> dict[str, str] | None:
    """``{a="b", c="d"}`` -> dict (None when it is not a label set)."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    out: dict[str, str] = {}
    for m in _LABEL.finditer(text):
        raw = m.group(2)
        try:
            out[m.group(1)] = json.loads(f'"{raw}"')
        except ValueError:
            out[m.group(1)] = raw
    return out


_GO_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))? ([+-])(\d\d)(\d\d)"
)


def parse_go_time(text: str) -> int | None:
    """Go ``time.Time.String()`` -> unix ns (``2025-06-15 15:06:40.5 +0000 UTC``)."""
    m = _GO_TIME.match(text.strip())
    if m is None:
        return None
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    try:
        secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    except ValueError:  # month 13 and the like: a reply we cannot read, not a crash
        return None
    off = (int(m.group(9)) * 3600 + int(m.group(10)) * 60) * (1 if m.group(8) == "+" else -1)
    frac = int((m.group(7) or "").ljust(9, "0"))
    return (secs - off) * 1_000_000_000 + frac


def parse_rfc3339_sec(text: str) -> int | None:
    """Go ``time.RFC3339`` (no fraction) -> unix seconds."""
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp())
