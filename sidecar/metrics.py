"""Prometheus metrics of the sidecar, in its own registry (no process-global state), plus
plain totals for the end-of-run summary. Labels never carry secrets or URLs."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter as Tally
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from obskit._names import safe_path
from obskit.schema.rules import SERVICE_RE
from sidecar.sinks.base import SinkMetrics
from sidecar.spool import SpoolStats

#: Distinct ``service`` label values kept on the quarantine counter; further names count
#: under ``other``.
MAX_SERVICE_LABELS = 200


@dataclass
class Totals:
    """What happened, for summaries and tests (mirrors the counters)."""

    lines_read: int = 0
    bytes_read: int = 0
    forwarded: Tally[str] = field(default_factory=Tally)
    quarantined: Tally[str] = field(default_factory=Tally)
    repaired: Tally[str] = field(default_factory=Tally)
    converted: Tally[str] = field(default_factory=Tally)
    #: Lines of crash output merged into multi-line records (``repaired["multiline"]``).
    grouped_lines: int = 0
    forwarded_invalid: Tally[str] = field(default_factory=Tally)
    dead_lettered: Tally[str] = field(default_factory=Tally)
    examples: dict[str, str] = field(default_factory=dict)


class Metrics:
    """Every sidecar metric; one instance per engine."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.totals = Totals()
        self._lock = threading.Lock()
        self.lines_read = Counter(
            "obskit_sidecar_lines_read", "Complete lines read from log files.", registry=r
        )
        self.bytes_read = Counter(
            "obskit_sidecar_bytes_read", "Bytes of complete lines read from log files.", registry=r
        )
        self.lines_forwarded = Counter(
            "obskit_sidecar_lines_forwarded",
            "Lines a sink accepted (or already had).",
            ["sink"],
            registry=r,
        )
        self.lines_quarantined = Counter(
            "obskit_sidecar_lines_quarantined",
            "Invalid lines written to the quarantine file, by first rule broken.",
            ["rule", "service"],
            registry=r,
        )
        self.lines_repaired = Counter(
            "obskit_sidecar_lines_repaired",
            "Lines repaired before forwarding.",
            ["rule"],
            registry=r,
        )
        self.lines_converted = Counter(
            "obskit_sidecar_lines_converted",
            "Lines converted from a JSON dialect (schema.dialects) to schema v1, by dialect.",
            ["dialect"],
            registry=r,
        )
        self.lines_grouped = Counter(
            "obskit_sidecar_lines_grouped",
            "Lines of crash output (Go panic, Python traceback, .NET or Java stack trace)"
            " merged into multi-line records (each record also counts as"
            " lines_repaired{rule=multiline}).",
            registry=r,
        )
        self.lines_forwarded_invalid = Counter(
            "obskit_sidecar_lines_forwarded_invalid",
            "Invalid lines forwarded as is (policy 'forward').",
            ["rule"],
            registry=r,
        )
        self.source_warnings = Counter(
            "obskit_sidecar_source_warnings",
            "Problems met reading the log folder (each logged once as a WARN), by kind:"
            " unsupported_encoding, truncated_while_away, folder_missing, fs_events.",
            ["kind"],
            registry=r,
        )
        self.source_errors = Counter(
            "obskit_sidecar_source_errors",
            "Failed attempts to list, stat, open or read a log file or folder, by reason (the"
            " errno name: EACCES, EIO, ELOOP, ENXIO...); each path is retried with back-off.",
            ["reason"],
            registry=r,
        )
        self.source_lost_bytes = Counter(
            "obskit_sidecar_source_lost_bytes",
            "Bytes of log files that became unreachable before they were read (or, at"
            " shutdown and after a crash, acknowledged): a file deleted first, a truncation"
            " that overtook the reader.",
            registry=r,
        )
        self.source_lost_lines = Counter(
            "obskit_sidecar_source_lost_lines",
            "Lines among the lost bytes, where they could be counted (see the WARN log line"
            " of each loss: its line count may be unknown).",
            registry=r,
        )
        self.file_lag = Gauge(
            "obskit_sidecar_file_lag_bytes",
            "Bytes written to a file but not yet read.",
            ["path"],
            registry=r,
        )
        self.checkpoint_age = Gauge(
            "obskit_sidecar_checkpoint_age_seconds",
            "Seconds since checkpoints were last saved.",
            registry=r,
        )
        self.inflight_bytes = Gauge(
            "obskit_sidecar_inflight_bytes",
            "Bytes read and not yet acknowledged by every sink.",
            registry=r,
        )
        self.sink_batches = Counter(
            "obskit_sidecar_sink_batches",
            "Batches a sink finished, by outcome (ok, partial, error).",
            ["sink", "outcome"],
            registry=r,
        )
        self.sink_retries = Counter(
            "obskit_sidecar_sink_retries", "Retries by cause.", ["sink", "cause"], registry=r
        )
        self.sink_request_seconds = Histogram(
            "obskit_sidecar_sink_request_seconds",
            "Duration of one request (or file write) to a sink.",
            ["sink"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.sink_requests = Counter(
            "obskit_sidecar_sink_requests", "Requests by outcome.", ["sink", "outcome"], registry=r
        )
        self.sink_bytes = Counter(
            "obskit_sidecar_sink_bytes", "Bytes accepted by a sink.", ["sink"], registry=r
        )
        self.sink_dead_lettered = Counter(
            "obskit_sidecar_sink_dead_lettered",
            "Lines a sink rejected for good (written to the dead-letter file).",
            ["sink", "reason"],
            registry=r,
        )
        self.sink_failing_seconds = Gauge(
            "obskit_sidecar_sink_failing_seconds",
            "Seconds a sink has been failing without a single success (0 while healthy).",
            ["sink"],
            registry=r,
        )
        self.spool_bytes = Gauge(
            "obskit_sidecar_spool_bytes", "Disk space a sink's spool takes.", ["sink"], registry=r
        )
        self.spool_records = Gauge(
            "obskit_sidecar_spool_records",
            "Batches in a sink's spool not delivered yet.",
            ["sink"],
            registry=r,
        )
        self.spool_lines = Gauge(
            "obskit_sidecar_spool_lines",
            "Lines in a sink's spool not delivered yet.",
            ["sink"],
            registry=r,
        )
        self.spool_oldest_age = Gauge(
            "obskit_sidecar_spool_oldest_age_seconds",
            "Age of the oldest undelivered batch in a sink's spool (0 when empty).",
            ["sink"],
            registry=r,
        )
        self.spool_dropped_lines = Counter(
            "obskit_sidecar_spool_dropped_lines",
            "Lines a spool dropped, by reason: full (when_full: drop_oldest) or corrupt"
            " (a damaged record skipped).",
            ["sink", "reason"],
            registry=r,
        )
        self.spool_append_failures = Counter(
            "obskit_sidecar_spool_append_failures",
            "Batches a spool could not take yet, by kind: full (when_full: block) or error.",
            ["sink", "kind"],
            registry=r,
        )
        self._spool_seen: dict[str, tuple[int, int]] = {}
        self.ready = Gauge("obskit_sidecar_ready", "1 when the sidecar is ready.", registry=r)
        self._lag_paths: set[str] = set()
        self._service_labels: set[str] = set()

    # engine side -----------------------------------------------------------------------------
    def read(self, lines: int, nbytes: int) -> None:
        self.lines_read.inc(lines)
        self.bytes_read.inc(nbytes)
        self.totals.lines_read += lines
        self.totals.bytes_read += nbytes

    def _service_label(self, service: str | None) -> str:
        # Service names come from invalid lines too: bound the label's values so hostile or
        # broken input cannot grow the metric without limit.
        if not service:
            return "unknown"
        if service in self._service_labels:
            return service
        if len(self._service_labels) >= MAX_SERVICE_LABELS or not SERVICE_RE.fullmatch(service):
            return "other"
        self._service_labels.add(service)
        return service

    def quarantined(self, rule: str, service: str | None, example: str) -> None:
        self.lines_quarantined.labels(rule, self._service_label(service)).inc()
        self.totals.quarantined[rule] += 1
        self.totals.examples.setdefault(rule, example)

    def quarantined_many(self, counts: dict[tuple[str, str | None], int]) -> None:
        """Several quarantined lines at once: ``(rule, service) -> lines``."""
        for (rule, service), n in counts.items():
            self.lines_quarantined.labels(rule, self._service_label(service)).inc(n)
            self.totals.quarantined[rule] += n

    def example(self, rule: str, reason: str) -> None:
        """Keep the first reason seen for ``rule`` (for summaries)."""
        self.totals.examples.setdefault(rule, reason)

    def repaired(self, rule: str) -> None:
        self.lines_repaired.labels(rule).inc()
        self.totals.repaired[rule] += 1

    def converted(self, dialect: str, lines: int) -> None:
        self.lines_converted.labels(dialect).inc(lines)
        self.totals.converted[dialect] += lines

    def grouped(self, lines: int) -> None:
        self.lines_grouped.inc(lines)
        self.totals.grouped_lines += lines

    def forwarded_invalid(self, rule: str) -> None:
        self.lines_forwarded_invalid.labels(rule).inc()
        self.totals.forwarded_invalid[rule] += 1

    def forwarded(self, sink: str, lines: int) -> None:
        self.lines_forwarded.labels(sink).inc(lines)
        with self._lock:
            self.totals.forwarded[sink] += lines

    def batch_done(self, sink: str, outcome: str) -> None:
        self.sink_batches.labels(sink, outcome).inc()

    def source_event(self, ev: object) -> None:
        """Count one event of the source (``sidecar.source.faults.SourceEvent``)."""
        kind = str(getattr(ev, "kind", "other"))
        if kind == "error":
            self.source_errors.labels(str(getattr(ev, "reason", "other"))).inc()
        elif kind == "lost":
            self.source_lost_bytes.inc(int(getattr(ev, "lost_bytes", 0)))
            lines = getattr(ev, "lost_lines", None)
            if lines:
                self.source_lost_lines.inc(int(lines))
        elif kind != "recovered":
            self.source_warnings.labels(kind).inc()

    def set_file_lag(self, lags: dict[str, int]) -> None:
        for gone in self._lag_paths - lags.keys():
            with contextlib.suppress(KeyError):
                self.file_lag.remove(safe_path(gone))
        for path, lag in lags.items():
            self.file_lag.labels(safe_path(path)).set(lag)
        self._lag_paths = set(lags)

    def set_spool(self, sink: str, st: SpoolStats, now: float) -> None:
        """Publish a spool's backlog (called about once a second)."""
        self.spool_bytes.labels(sink).set(st.nbytes)
        self.spool_records.labels(sink).set(st.records)
        self.spool_lines.labels(sink).set(st.lines)
        self.spool_oldest_age.labels(sink).set(0 if st.oldest is None else max(0, now - st.oldest))
        full, corrupt = self._spool_seen.get(sink, (0, 0))
        if st.dropped_lines > full:
            self.spool_dropped_lines.labels(sink, "full").inc(st.dropped_lines - full)
        if st.corrupt_lines > corrupt:
            self.spool_dropped_lines.labels(sink, "corrupt").inc(st.corrupt_lines - corrupt)
        self._spool_seen[sink] = (st.dropped_lines, st.corrupt_lines)

    def spool_append_failed(self, sink: str, kind: str) -> None:
        self.spool_append_failures.labels(sink, kind).inc()

    def for_sink(self, name: str) -> SinkMetrics:
        """The :class:`SinkMetrics` to install on sink ``name``."""
        return PromSinkMetrics(self, name)


class PromSinkMetrics(SinkMetrics):
    """Sink reports, recorded as Prometheus metrics labelled with the sink's name."""

    def __init__(self, metrics: Metrics, sink: str) -> None:
        self._m = metrics
        self._sink = sink

    def request(self, seconds: float, outcome: str) -> None:
        self._m.sink_request_seconds.labels(self._sink).observe(seconds)
        self._m.sink_requests.labels(self._sink, outcome).inc()

    def retry(self, cause: str) -> None:
        self._m.sink_retries.labels(self._sink, cause).inc()

    def sent(self, lines: int, nbytes: int) -> None:
        self._m.sink_bytes.labels(self._sink).inc(nbytes)

    def dead_lettered(self, reason: str, lines: int = 1) -> None:
        self._m.sink_dead_lettered.labels(self._sink, reason).inc(lines)
        with self._m._lock:
            self._m.totals.dead_lettered[f"{self._sink}: {reason}"] += lines
