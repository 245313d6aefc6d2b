"""``obskit audit`` output: a plain-text report for people, one JSON document for scripts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Final

import orjson

from obskit.audit.buckets import Edges
from obskit.audit.compare import AuditResult
from obskit.trace.model import format_ns
from obskit.trace.render import escape

#: Differing buckets printed in full; the rest are summed up in one line.
MAX_ROWS: Final = 200
#: Files named per differing bucket.
MAX_FILES: Final = 3


def _minute(ns: int) -> str:
    return format_ns(ns, 0)[:16].replace("T", " ")


def _table(rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return out


def _edges_text(edges: Edges) -> str:
    if edges is Edges.LEFT_OPEN:
        return "minute k holds (k, k+1m], as Loki's count_over_time"
    return "minute k holds [k, k+1m), as Elasticsearch's date_histogram"


def render_text(result: AuditResult, max_rows: int = MAX_ROWS) -> str:
    """The report for one backend."""
    f = result.files
    paths = ", ".join(escape(p) for p in result.paths)
    lines = [
        f"audit: files {paths} ({f.files} file{'s' * (f.files != 1)}, {f.lines:,} lines) "
        f"against {result.backend}",
        f"minutes {result.buckets.describe()} ({result.buckets.minutes:,}; "
        f"{_edges_text(result.buckets.edges)})",
    ]
    if result.error is not None:
        lines.append(f"error: {result.error}")
        return "\n".join(lines) + "\n"
    lines.append("")
    if result.diffs:
        rows = [["SERVICE", "MINUTE (UTC)", "FILES", "BACKEND", "DIFF", "", "WHERE"]]
        for d in result.diffs[:max_rows]:
            where = sorted(d.per_file.items(), key=lambda kv: (-kv[1], kv[0]))
            text = ", ".join(f"{escape(p)} {n}" for p, n in where[:MAX_FILES])
            if len(where) > MAX_FILES:
                text += f", +{len(where) - MAX_FILES} files"
            if d.per_instance:
                inst = ", ".join(
                    f"{escape(i) or '-'} {n}" for i, n in sorted(d.per_instance.items())
                )
                text = f"{text}; instances {inst}" if text else f"instances {inst}"
            rows.append(
                [
                    escape(d.service),
                    _minute(d.start_ns),
                    str(d.files),
                    str(d.backend),
                    f"{d.delta:+d}",
                    d.kind,
                    text,
                ]
            )
        lines += _table(rows, {2, 3, 4})
        if len(result.diffs) > max_rows:
            rest = result.diffs[max_rows:]
            lines.append(
                f"... and {len(rest)} more differing minutes "
                f"({sum(-d.delta for d in rest if d.delta < 0)} missing, "
                f"{sum(d.delta for d in rest if d.delta > 0)} duplicated; --output json lists all)"
            )
        lines.append("")
    rows = [["SERVICE", "FILES", "BACKEND", "MISSING", "DUPLICATED", "MINUTES DIFFERING"]]
    for name, t in sorted(result.services.items()):
        rows.append(
            [
                escape(name),
                str(t.files),
                str(t.backend),
                str(t.missing),
                str(t.duplicated),
                str(t.buckets_differing),
            ]
        )
    rows.append(
        [
            "total",
            str(result.files_total),
            str(result.backend_total),
            str(result.missing),
            str(result.duplicated),
            f"{len(result.diffs)} of {result.buckets_compared}",
        ]
    )
    lines += _table(rows, {1, 2, 3, 4})
    if f.apart:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(f.apart.items()))
        lines.append("")
        lines.append(f"not counted (cannot be placed in a minute): {reasons}")
        for ex in f.examples[:3]:
            lines.append(f"  e.g. {escape(ex)}")
    for note in result.notes():
        lines.append(f"note: {escape(note)}")
    lines.append("")
    if result.ok:
        lines.append(
            f"ok: every minute matches ({result.buckets_compared} service-minutes, "
            f"{result.files_total:,} lines)"
        )
    else:
        lines.append(
            f"{len(result.diffs)} of {result.buckets_compared} service-minutes differ: "
            f"{result.missing:,} lines missing, {result.duplicated:,} duplicated"
        )
    return "\n".join(lines) + "\n"


def render_json(results: Sequence[AuditResult], out: IO[bytes]) -> None:
    """One document: ``{"ok": ..., "audits": [<one per backend>]}``."""
    doc = {"ok": all(r.ok for r in results), "audits": [r.as_json() for r in results]}
    out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
