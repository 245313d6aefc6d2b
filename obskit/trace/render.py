"""Show a trace: a coloured terminal timeline with a per-service summary, or JSON / NDJSON with
stable field names for scripts.

Everything that comes from log data is escaped before it reaches the terminal: control
characters, ANSI escape sequences and bidirectional overrides are shown as ``\\x1b``-style
text, so a crafted log line cannot rewrite the screen or hide text (log injection).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Final

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from obskit._jsonsafe import json_safe
from obskit.trace.model import Entry, format_ns

# C0 and C1 controls, DEL, the bidi controls used to disguise text ("Trojan Source"), and
# lone surrogates (a ``\ud800`` escape in a line), which no terminal encoding can write.
_UNSAFE: Final = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
PALETTE: Final = (
    "cyan",
    "magenta",
    "green",
    "blue",
    "yellow",
    "bright_cyan",
    "bright_magenta",
    "bright_green",
    "bright_blue",
    "dark_orange",
    "orchid",
    "turquoise2",
)
LEVEL_STYLES: Final = {
    "DEBUG": "dim",
    "INFO": "green",
    "WARN": "bold yellow",
    "ERROR": "bold white on red",
}
LEVEL_ORDER: Final = ("DEBUG", "INFO", "WARN", "ERROR")


def escape(text: str) -> str:
    """``text`` with control characters and bidi overrides made visible."""

    def one(m: re.Match[str]) -> str:
        c = m.group()
        if c in _NAMED:
            return _NAMED[c]
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return _UNSAFE.sub(one, text)


def service_colours(entries: Iterable[Entry]) -> dict[str, str]:
    """A distinct colour per service in order of first appearance (hash once they run out)."""
    out: dict[str, str] = {}
    for e in entries:
        if e.service not in out:
            n = len(out)
            out[e.service] = (
                PALETTE[n] if n < len(PALETTE) else PALETTE[zlib.crc32(e.service.encode()) % 12]
            )
    return out


@dataclass
class ServiceSummary:
    first_ns: int
    last_ns: int
    lines: int = 0
    levels: dict[str, int] = field(default_factory=dict)


def summarise(entries: Sequence[Entry]) -> dict[str, ServiceSummary]:
    """Per service: first and last time, line count, counts by level (services by first line)."""
    out: dict[str, ServiceSummary] = {}
    for e in entries:
        s = out.get(e.service)
        if s is None:
            s = out[e.service] = ServiceSummary(e.ts_ns, e.ts_ns)
        s.first_ns = min(s.first_ns, e.ts_ns)
        s.last_ns = max(s.last_ns, e.ts_ns)
        s.lines += 1
        s.levels[e.level] = s.levels.get(e.level, 0) + 1
    return out


def format_offset(ns: int) -> str:
    """``+0.000s``, ``+12.345s``, ``+2m05.120s``, ``+1h02m03.000s``."""
    sign = "-" if ns < 0 else "+"
    ms = abs(ns) // 1_000_000
    s, ms = divmod(ms, 1000)
    if s < 60:
        return f"{sign}{s}.{ms:03d}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{sign}{m}m{s:02d}.{ms:03d}s"
    h, m = divmod(m, 60)
    return f"{sign}{h}h{m:02d}m{s:02d}.{ms:03d}s"


def _field_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


class Timeline:
    """Prints entries as timeline rows; used for the whole trace and for ``--follow``."""

    def __init__(
        self,
        console: Console,
        fields: Sequence[str] = (),
        colours: dict[str, str] | None = None,
        show_date: bool = True,
    ) -> None:
        self.console = console
        self.fields = list(fields)
        self.colours = dict(colours or {})
        self.show_date = show_date
        self.first_ns: int | None = None
        self.width = 10

    def header(self) -> None:
        t = Text()
        t.append(f"{'TIME (UTC)':<{26 if self.show_date else 15}}  ", style="bold")
        t.append(f"{'OFFSET':>9}  {'SERVICE':<{self.width}}  {'LEVEL':<5}  MESSAGE", style="bold")
        self.console.print(t, soft_wrap=True)

    def row(self, e: Entry) -> None:
        if self.first_ns is None:
            self.first_ns = e.ts_ns
        if e.service not in self.colours:
            n = len(self.colours)
            self.colours[e.service] = PALETTE[n % len(PALETTE)]
        stamp = format_ns(e.ts_ns, 6).replace("T", " ").rstrip("Z")
        if not self.show_date:
            stamp = stamp[11:]
        level_style = LEVEL_STYLES.get(e.level, "bold magenta")
        t = Text()
        t.append(stamp, style="dim" if e.level == "DEBUG" else "")
        t.append(f"  {format_offset(e.ts_ns - self.first_ns):>9}  ", style="cyan dim")
        t.append(f"{escape(e.service):<{self.width}}", style=self.colours[e.service])
        t.append("  ")
        t.append(f"{escape(e.level):<5}", style=level_style)
        t.append("  ")
        t.append(escape(e.message), style="bold" if e.level == "ERROR" else "")
        for name in self.fields:
            value = e.field(name)
            if value is not None:
                t.append(f"  {escape(name)}=", style="dim")
                t.append(escape(_field_text(value)), style="dim")
        self.console.print(t, soft_wrap=True)


def render_text(
    entries: Sequence[Entry],
    console: Console,
    trace_id: str,
    fields: Sequence[str] = (),
    link: str | None = None,
    searched: str = "",
) -> None:
    """The whole trace: a title line, the timeline, the per-service summary, the total span."""
    first, last = entries[0].ts_ns, entries[-1].ts_ns
    one_day = format_ns(first)[:10] == format_ns(last)[:10]
    summary = summarise(entries)
    title = Text()
    title.append("trace ", style="bold")
    title.append(trace_id, style="bold cyan")
    title.append(
        f"  {len(entries)} line{'s' * (len(entries) != 1)}, {len(summary)} "
        f"service{'s' * (len(summary) != 1)}, span {format_offset(last - first)[1:]}"
    )
    if one_day:
        title.append(f"  ({format_ns(first)[:10]})", style="dim")
    console.print(title, soft_wrap=True)
    if link:
        console.print(Text(link, style="underline blue"), soft_wrap=True)
    console.print()
    tl = Timeline(console, fields, service_colours(entries), show_date=not one_day)
    tl.width = max(7, min(24, max(len(escape(s)) for s in summary)))
    tl.header()
    for e in entries:
        tl.row(e)
    console.print()
    table = Table(title=None, box=None, header_style="bold", pad_edge=False)
    for col, justify in (
        ("SERVICE", "left"),
        ("FIRST (UTC)", "left"),
        ("LAST (UTC)", "left"),
        ("LINES", "right"),
        *((lvl, "right") for lvl in LEVEL_ORDER),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    others = sorted({lvl for s in summary.values() for lvl in s.levels} - set(LEVEL_ORDER))
    for lvl in others:
        table.add_column(escape(lvl), justify="right")
    for name, s in summary.items():
        counts = []
        for lvl in (*LEVEL_ORDER, *others):
            n = s.levels.get(lvl, 0)
            style = LEVEL_STYLES.get(lvl, "") if n and lvl in ("WARN", "ERROR") else ""
            counts.append(Text(str(n) if n else "-", style=style))
        table.add_row(
            Text(escape(name), style=tl.colours.get(name, "")),
            format_ns(s.first_ns, 6)[11 if one_day else 0 :].replace("T", " ").rstrip("Z"),
            format_ns(s.last_ns, 6)[11 if one_day else 0 :].replace("T", " ").rstrip("Z"),
            str(s.lines),
            *counts,
        )
    console.print(table)
    console.print()
    span = Text()
    span.append("total span ", style="bold")
    span.append(f"{format_offset(last - first)[1:]}")
    span.append(f"  {format_ns(first, 6)} .. {format_ns(last, 6)}", style="dim")
    console.print(span, soft_wrap=True)
    invalid = sum(1 for e in entries if e.problems)
    if invalid:
        console.print(
            Text(
                f"{invalid} line{'s' * (invalid != 1)} break log schema v1 "
                "(see --output json, or run obskit validate)",
                style="yellow",
            ),
            soft_wrap=True,
        )
    if searched:
        console.print(Text(f"searched: {searched}", style="dim"), soft_wrap=True)


def entry_json(e: Entry, first_ns: int, fields: Sequence[str] = ()) -> dict[str, Any]:
    """The stable JSON shape of one line (also each NDJSON line)."""
    tid = e.fields.get("trace_id")
    return {
        "time": format_ns(e.ts_ns, 9),
        "timestamp": e.timestamp,
        "offset_seconds": round((e.ts_ns - first_ns) / 1e9, 9),
        "service": e.service,
        "level": e.level,
        "message": e.message,
        "trace_id": tid if isinstance(tid, str) else None,
        "span_id": e.span_id,
        "source": e.source,
        "fields": {name: e.field(name) for name in fields},
        "problems": e.problems,
        "record": e.fields,
    }


def render_json(
    entries: Sequence[Entry],
    out: IO[bytes],
    trace_id: str,
    fields: Sequence[str] = (),
    link: str | None = None,
    window: tuple[int, int] | None = None,
    backends: Sequence[dict[str, Any]] = (),
) -> None:
    """One JSON document: trace id, window, backends, per-service summary, lines."""
    first = entries[0].ts_ns if entries else 0
    last = entries[-1].ts_ns if entries else 0
    doc = {
        "trace_id": trace_id,
        "link": link,
        "window": {"from": format_ns(window[0], 9), "to": format_ns(window[1], 9)}
        if window
        else None,
        "backends": list(backends),
        "summary": {
            "lines": len(entries),
            "first": format_ns(first, 9) if entries else None,
            "last": format_ns(last, 9) if entries else None,
            "span_seconds": round((last - first) / 1e9, 9),
            "services": {
                name: {
                    "first": format_ns(s.first_ns, 9),
                    "last": format_ns(s.last_ns, 9),
                    "lines": s.lines,
                    "levels": s.levels,
                }
                for name, s in summarise(entries).items()
            },
        },
        "lines": [entry_json(e, first, fields) for e in entries],
    }
    out.write(_dumps(doc, orjson.OPT_INDENT_2) + b"\n")


def render_ndjson(entries: Sequence[Entry], out: IO[bytes], fields: Sequence[str] = ()) -> None:
    """One JSON object per line, in time order (the ``lines`` items of the JSON output)."""
    first = entries[0].ts_ns if entries else 0
    for e in entries:
        out.write(_dumps(entry_json(e, first, fields)) + b"\n")


def _dumps(doc: Any, option: int = 0) -> bytes:
    try:
        return orjson.dumps(doc, option=option)
    except TypeError:  # a lone surrogate or a huge integer from a line: shown escaped
        return orjson.dumps(json_safe(doc), option=option)
