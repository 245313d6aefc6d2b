"""Files against a backend, bucket by bucket: :func:`compare` and its :class:`AuditResult`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from obskit.audit.buckets import MINUTE_NS, BackendCounts, BucketRange, Edges
from obskit.audit.elasticsearch import ElasticsearchCounter
from obskit.audit.files import FileCounts, count_files
from obskit.audit.loki import DAY_NS, LokiCounter
from obskit.schema import DEFAULT_MAX_LINE_BYTES
from obskit.trace.config import ElasticsearchConfig, LokiConfig
from obskit.trace.model import BackendError, TraceUsageError, Window, format_ns

Kind = Literal["missing", "duplicated"]
#: Seconds a minute must be over before it is compared (lines may still be on their way).
DEFAULT_SETTLE_S = 30.0


@dataclass
class BucketDiff:
    """One (service, minute) whose counts differ."""

    service: str
    start_ns: int
    files: int
    backend: int
    #: Lines of this bucket per file.
    per_file: dict[str, int] = field(default_factory=dict)
    #: Lines of this bucket per instance label (Loki with ``by_instance``).
    per_instance: dict[str, int] = field(default_factory=dict)

    @property
    def kind(self) -> Kind:
        """``missing`` (the backend has fewer lines) or ``duplicated`` (more)."""
        return "missing" if self.backend < self.files else "duplicated"

    @property
    def delta(self) -> int:
        """``backend - files``: negative when lines are missing."""
        return self.backend - self.files

    def as_json(self, edges: Edges) -> dict[str, Any]:
        return {
            "service": self.service,
            "minute": format_ns(self.start_ns, 0),
            "interval": edges.describe(self.start_ns),
            "files": self.files,
            "backend": self.backend,
            "kind": self.kind,
            "delta": self.delta,
            "per_file": dict(sorted(self.per_file.items())),
            "per_instance": dict(sorted(self.per_instance.items())),
        }


@dataclass
class ServiceTotals:
    files: int = 0
    backend: int = 0
    missing: int = 0
    duplicated: int = 0
    buckets_differing: int = 0


@dataclass
class AuditResult:
    """The outcome of one audit of files against one backend.

    ``ok`` is true when every compared bucket holds the same number of lines on both sides.
    Lines the files hold that cannot be placed in a bucket (``files.apart``) are reported but
    do not make the audit fail: they cannot be compared.
    """

    backend: str
    buckets: BucketRange
    window: Window
    files: FileCounts
    counts: BackendCounts
    diffs: list[BucketDiff]
    services: dict[str, ServiceTotals]
    paths: list[str]
    #: Why the backend could not be counted (then nothing was compared).
    error: BackendError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.diffs

    @property
    def missing(self) -> int:
        """Lines in the files that the backend lacks (summed over buckets)."""
        return sum(-d.delta for d in self.diffs if d.delta < 0)

    @property
    def duplicated(self) -> int:
        """Lines the backend holds more often than the files (summed over buckets)."""
        return sum(d.delta for d in self.diffs if d.delta > 0)

    @property
    def files_total(self) -> int:
        return self.files.total(self.buckets.edges)

    @property
    def backend_total(self) -> int:
        return self.counts.total

    @property
    def buckets_compared(self) -> int:
        """(service, minute) pairs with lines on either side."""
        keys = set(self.files.counts.get(self.buckets.edges, {})) | set(self.counts.counts)
        return len(keys)

    def as_json(self) -> dict[str, Any]:
        """The stable JSON document of ``--output json``."""
        edges = self.buckets.edges
        return {
            "ok": self.ok,
            "backend": self.backend,
            "error": None if self.error is None else str(self.error),
            "window": {
                "from": format_ns(self.window.start_ns, 9),
                "to": format_ns(self.window.end_ns, 9),
            },
            "buckets": {
                "from": format_ns(self.buckets.first, 0),
                "to": format_ns(self.buckets.end, 0),
                "minutes": self.buckets.minutes,
                "edges": edges.value,
                "compared": self.buckets_compared,
                "differing": len(self.diffs),
            },
            "totals": {
                "files": self.files_total,
                "backend": self.backend_total,
                "missing": self.missing,
                "duplicated": self.duplicated,
            },
            "services": {
                name: {
                    "files": t.files,
                    "backend": t.backend,
                    "missing": t.missing,
                    "duplicated": t.duplicated,
                    "buckets_differing": t.buckets_differing,
                }
                for name, t in sorted(self.services.items())
            },
            "differences": [d.as_json(edges) for d in self.diffs],
            "files": {
                "paths": self.paths,
                "files": self.files.files,
                "lines": self.files.lines,
                "outside_window": self.files.outside,
                "other_services": self.files.other_services,
                "by_file": self.lines_by_file(),
                "not_counted": dict(sorted(self.files.apart.items())),
                "examples": self.files.examples,
                "first": None if self.files.first_ns is None else format_ns(self.files.first_ns, 9),
                "last": None if self.files.last_ns is None else format_ns(self.files.last_ns, 9),
                "warnings": self.files.warnings,
            },
            "requests": self.counts.requests,
            "notes": self.notes(),
        }

    def lines_by_file(self) -> dict[str, int]:
        """Lines each file holds in the compared minutes."""
        out: dict[str, int] = {}
        for per in self.files.per_file.get(self.buckets.edges, {}).values():
            for path, n in per.items():
                out[path] = out.get(path, 0) + n
        return dict(sorted(out.items()))

    def notes(self) -> list[str]:
        """What the reader should know besides the differences."""
        out = list(self.counts.notes)
        out.extend(self.files.warnings)
        first = self.files.first_ns
        if first is not None and first > self.buckets.first + MINUTE_NS and self.duplicated:
            out.append(
                f"the files start at {format_ns(first, 0)}, after the window's start: lines "
                "before that may have been rotated away (audit from there with --from)"
            )
        return out


def diff(
    files: FileCounts, counts: BackendCounts, edges: Edges
) -> tuple[list[BucketDiff], dict[str, ServiceTotals]]:
    """The buckets whose counts differ, ordered by service and minute, and per-service
    totals."""
    fc = files.counts.get(edges, {})
    per_file = files.per_file.get(edges, {})
    diffs: list[BucketDiff] = []
    totals: dict[str, ServiceTotals] = {}
    for key in sorted(set(fc) | set(counts.counts)):
        service, start = key
        f, b = fc.get(key, 0), counts.counts.get(key, 0)
        t = totals.setdefault(service, ServiceTotals())
        t.files += f
        t.backend += b
        if f == b:
            continue
        t.buckets_differing += 1
        if b < f:
            t.missing += f - b
        else:
            t.duplicated += b - f
        diffs.append(
            BucketDiff(
                service,
                start,
                f,
                b,
                dict(per_file.get(key, {})),
                dict(counts.per_instance.get(key, {})),
            )
        )
    return diffs, totals


def edges_of(backend: LokiConfig | ElasticsearchConfig) -> Edges:
    """Loki's minutes are ``(k, k+1m]``, Elasticsearch's ``[k, k+1m)``."""
    return Edges.LEFT_OPEN if isinstance(backend, LokiConfig) else Edges.RIGHT_OPEN


def count_backend(
    backend: LokiConfig | ElasticsearchConfig,
    rng: BucketRange,
    *,
    services: Sequence[str] = (),
    instance: str | None = None,
    by_instance: bool = False,
    concurrency: int = 4,
    shard_ns: int = DAY_NS,
) -> BackendCounts:
    """Lines per (service, minute) in ``backend`` for the buckets of ``rng``."""
    if isinstance(backend, LokiConfig):
        return LokiCounter(
            backend,
            services=tuple(services),
            instance=instance,
            by_instance=by_instance,
            instance_label=backend.instance_label,
            concurrency=concurrency,
            shard_ns=shard_ns,
        ).count(rng)
    if by_instance:
        raise TraceUsageError(
            "--by-instance works with Loki only; for Elasticsearch use --instance NAME"
        )
    return ElasticsearchCounter(
        backend,
        services=tuple(services),
        instance=instance,
        concurrency=concurrency,
        shard_ns=shard_ns,
    ).count(rng)


def compare(
    files: Sequence[str | Path],
    backend: LokiConfig | ElasticsearchConfig,
    *,
    window: Window | None = None,
    services: Sequence[str] = (),
    instance: str | None = None,
    by_instance: bool = False,
    settle: float = DEFAULT_SETTLE_S,
    now_ns: int | None = None,
    concurrency: int = 4,
    shard_ns: int = DAY_NS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> AuditResult:
    """Did every line of ``files`` arrive in ``backend``, once?

    Counts the lines of ``files`` (log files, folders, ``.gz``, or the file sink's archive)
    per service and minute of their ``timestamp``, counts the same buckets in ``backend``
    (a :class:`~obskit.trace.config.LokiConfig` or
    :class:`~obskit.trace.config.ElasticsearchConfig`, e.g.
    ``LokiConfig(url="http://127.0.0.1:3100")``), and returns every bucket whose counts differ
    (``result.ok``, ``result.diffs``, ``result.missing``, ``result.duplicated``).

    ``window`` (default: the last 24 hours) is widened to whole minutes, and minutes that end
    later than ``settle`` seconds before ``now_ns`` are left out (pass ``settle=0`` when
    every line has been delivered, as a test harness knows). ``services`` limits both sides
    to those services; ``instance`` limits the backend to lines shipped by that instance
    (Loki label ``instance``; Elasticsearch ``pod`` or ``host``), for files that hold one
    node's lines; ``by_instance`` (Loki) reports the backend's counts per instance.

    Raises :class:`~obskit.trace.model.TraceUsageError` for unusable arguments (no whole
    minute in the window, a missing path) and :class:`~obskit.trace.model.BackendError` when
    the backend cannot be queried.
    """
    (result,) = compare_all(
        files,
        [backend],
        window=window,
        services=services,
        instance=instance,
        by_instance=by_instance,
        settle=settle,
        now_ns=now_ns,
        concurrency=concurrency,
        shard_ns=shard_ns,
        max_line_bytes=max_line_bytes,
    )
    if result.error is not None:
        raise result.error
    return result


def compare_all(
    files: Sequence[str | Path],
    backends: Sequence[LokiConfig | ElasticsearchConfig],
    *,
    window: Window | None = None,
    services: Sequence[str] = (),
    instance: str | None = None,
    by_instance: bool = False,
    settle: float = DEFAULT_SETTLE_S,
    now_ns: int | None = None,
    concurrency: int = 4,
    shard_ns: int = DAY_NS,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> list[AuditResult]:
    """:func:`compare` against several backends, reading the files once. A backend that
    fails gives a result with ``error`` set (and no counts); the others are still compared."""
    now = time.time_ns() if now_ns is None else now_ns
    if window is None:
        window = Window(now - DAY_NS, now)
    if by_instance and not any(isinstance(b, LokiConfig) for b in backends):
        raise TraceUsageError(
            "--by-instance works with Loki only; for Elasticsearch use --instance NAME"
        )
    ranges = {
        edges_of(b): BucketRange.covering(window, edges_of(b), now, int(settle * 1e9))
        for b in backends
    }
    fcounts = count_files(files, list(ranges.values()), services, max_line_bytes)
    results = []
    for b in backends:
        rng = ranges[edges_of(b)]
        error: BackendError | None = None
        try:
            bcounts = count_backend(
                b,
                rng,
                services=services,
                instance=instance,
                by_instance=by_instance and isinstance(b, LokiConfig),
                concurrency=concurrency,
                shard_ns=shard_ns,
            )
        except BackendError as exc:
            error = exc
            bcounts = BackendCounts(exc.backend)
        diffs, totals = diff(fcounts, bcounts, rng.edges) if error is None else ([], {})
        results.append(
            AuditResult(
                backend=bcounts.name,
                buckets=rng,
                window=window,
                files=fcounts,
                counts=bcounts,
                diffs=diffs,
                services=totals,
                paths=[str(p) for p in files],
                error=error,
            )
        )
    return results
