"""The Loki sink: ``POST /loki/api/v1/push`` (protobuf + snappy by default, or JSON + gzip).

Streams are ``{service, level, <instance label>, <static labels>}``; ``trace_id`` and
``span_id`` travel as structured metadata (Loki 3, schema v13), never as labels; the log line
is the original JSON record; the entry timestamp is the record's ``timestamp``. Entries are
grouped per stream, ordered by time within it, and a batch is split into pushes of at most
``batch_max_bytes``.

Delivery: 2xx means Loki stored every entry. 429, 5xx and network errors are retried with
backoff (``Retry-After`` honoured) until delivered or the sidecar stops. A 400 means Loki
stored the valid entries and rejected some: the reply is read (:mod:`.loki_errors`) and
exactly the rejected lines are returned to the engine for the dead-letter file with Loki's
reason; nothing Loki accepted is sent again. Only when a 400 cannot be attributed to entries
is the push split in halves and resent to isolate the culprits. A 413 splits the push.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import time
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

import httpx
import msgspec
import orjson

from obskit._durations import ByteSize, Duration
from obskit._http import (
    RETRYABLE_STATUS,
    AuthConfig,
    Backoff,
    Credentials,
    RetryConfig,
    TLSConfig,
    describe_error,
    make_client,
    retry_after,
)
from obskit.schema import timestamp_ns
from sidecar.sinks.base import Batch, SendResult, Sink, SinkStopped
from sidecar.sinks.loki_errors import LokiError, parse_reply
from sidecar.sinks.loki_proto import (
    SPAN_HDR,
    TRACE_HDR,
    compress,
    encode_stream,
    trace_metadata,
)

PUSH_PATH = "/loki/api/v1/push"
MAX_LABELS = 15  # Loki's default max_label_names_per_series
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RESERVED = {"service", "level", "service_name"}
_LOKI_ADDED = frozenset({"service_name", "__stream_shard__"})


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``type: loki`` settings."""

    url: str
    tenant: str | None = None
    auth: AuthConfig | None = None
    tls: TLSConfig | None = None
    timeout: Duration = Duration(10.0)
    encoding: Literal["protobuf", "json"] = "protobuf"
    json_gzip: bool = True
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    instance_label: str = "instance"
    instance: str | None = None
    batch_max_bytes: ByteSize = ByteSize(1024 * 1024)
    retry: RetryConfig = msgspec.field(default_factory=RetryConfig)
    max_retry_duration: Duration | None = None
    structured_metadata: bool = True

    def __post_init__(self) -> None:
        if not re.match(r"https?://", self.url):
            raise ValueError(f"url: expected http:// or https://, got {self.url!r}")
        names = {"service", "level", self.instance_label, *self.labels}
        if len(names) > MAX_LABELS:
            raise ValueError(
                f"labels: {len(names)} stream labels with service, level and "
                f"{self.instance_label}; Loki accepts at most {MAX_LABELS}"
            )
        for name in [self.instance_label, *self.labels]:
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(f"labels: {name!r} is not a valid Loki label name")
        if self.instance_label in _RESERVED:
            raise ValueError(f"instance_label: {self.instance_label!r} is reserved")
        for name, value in self.labels.items():
            if name in _RESERVED or name == self.instance_label:
                raise ValueError(f"labels: {name!r} is set by the sink")
            if name in ("trace_id", "span_id"):
                raise ValueError(f"labels: {name!r} would be one stream per trace (cardinality)")
            if not value or len(value) > 2048:
                raise ValueError(f"labels.{name}: value must be 1-2048 characters")
        if self.batch_max_bytes < 1024:
            raise ValueError("batch_max_bytes: must be at least 1KiB")
        if self.timeout <= 0:
            raise ValueError("timeout: must be positive")


def build(name: str, config: Config) -> LokiSink:
    """The sink for ``type: loki``."""
    return LokiSink(name, config)


def _quote(value: str) -> str:
    # JSON string escaping is accepted by Loki's label parser (Go strconv.Unquote rules).
    return json.dumps(value, ensure_ascii=False)


@dataclass
class _Push:
    """Entries of one request: per stream, batch indices ordered by time."""

    streams: list[tuple[str, list[int]]]

    def indices(self) -> list[int]:
        return [i for _, idx in self.streams for i in idx]

    def __len__(self) -> int:
        return sum(len(idx) for _, idx in self.streams)

    def halves(self) -> tuple[_Push, _Push]:
        flat = [(key, i) for key, idx in self.streams for i in idx]
        mid = len(flat) // 2
        return _Push(_regroup(flat[:mid])), _Push(_regroup(flat[mid:]))


def _regroup(flat: list[tuple[str, int]]) -> list[tuple[str, list[int]]]:
    out: list[tuple[str, list[int]]] = []
    for key, i in flat:
        if out and out[-1][0] == key:
            out[-1][1].append(i)
        else:
            out.append((key, [i]))
    return out


class LokiSink(Sink):
    """Ships batches to Loki; see the module docstring for the delivery rules."""

    kind = "loki"

    def __init__(self, name: str, config: Config) -> None:
        super().__init__(name)
        self.config = config
        url = config.url.rstrip("/")
        self.push_url = url if url.endswith(PUSH_PATH) else url + PUSH_PATH
        self.structured_metadata = config.structured_metadata
        self._client: httpx.Client | None = None
        self._stream_text: dict[tuple[str, str], str] = {}
        self._stream_labels: dict[str, dict[str, str]] = {}
        self._instance: str | None = config.instance
        self._ts_cache: dict[str, int] = {}
        #: Pushes whose outcome is unknown (timeout, reset) and that were sent again: each
        #: may be stored twice by Loki. Counted for tests and docs.
        self.resent_after_unknown = 0

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._client is None:
            headers = {"X-Scope-OrgID": self.config.tenant} if self.config.tenant else {}
            self._client = make_client(
                timeout=float(self.config.timeout),
                tls=self.config.tls,
                credentials=Credentials.resolve(self.config.auth),
                headers=headers,
            )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # --- send ------------------------------------------------------------------------------
    def send(self, batch: Batch) -> SendResult:
        """Deliver ``batch``; returns the lines Loki rejected for good, with its reasons."""
        if self._client is None:
            self.start()
        if self._instance is None:
            self._instance = (
                batch.static.get("pod") or batch.static.get("host") or socket.gethostname()
            )
        ts = self._timestamps(batch)
        rejected: list[tuple[int, str]] = []
        for push in self._plan(batch, ts):
            rejected += self._deliver_safe(batch, ts, push)
        rejected.sort()
        return SendResult(rejected=rejected)

    def _timestamps(self, batch: Batch) -> list[int]:
        cache = self._ts_cache
        if len(cache) > 8192:
            cache.clear()
        out = []
        for rec in batch.records:
            t = rec.timestamp
            # Fast path for the usual "YYYY-MM-DDTHH:MM:SS[.fff]Z": the minute is cached.
            if len(t) >= 20 and t[-1] == "Z" and t[19] in ".Z" and t[16] == ":":
                base = cache.get(t[:16])
                if base is None:
                    base = cache[t[:16]] = timestamp_ns(t[:16] + ":00Z")
                frac = t[20:-1]
                out.append(
                    base + int(t[17:19]) * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)
                )
            else:
                out.append(timestamp_ns(t))
        return out

    def _stream_key(self, service: str, level: str) -> str:
        key = (service, level)
        text = self._stream_text.get(key)
        if text is None:
            labels = {**self.config.labels, "service": service, "level": level}
            labels[self.config.instance_label] = self._instance or "unknown"
            text = "{" + ", ".join(f"{k}={_quote(labels[k])}" for k in sorted(labels)) + "}"
            self._stream_text[key] = text
            self._stream_labels[text] = labels
        return text

    def _plan(self, batch: Batch, ts: list[int]) -> list[_Push]:
        by_pair: dict[tuple[str, str], list[int]] = {}
        for i, rec in enumerate(batch.records):
            pair = (rec.service, rec.level)
            got = by_pair.get(pair)
            if got is None:
                by_pair[pair] = [i]
            else:
                got.append(i)
        lines = batch.lines
        limit = int(self.config.batch_max_bytes)
        pushes: list[_Push] = []
        cur: list[tuple[str, list[int]]] = []
        size = 0
        for (service, level), idx in by_pair.items():
            key = self._stream_key(service, level)
            idx.sort(key=ts.__getitem__)
            # Entry size estimate: the line plus framing, timestamp and trace/span metadata.
            cum = list(accumulate(len(lines[i]) + 96 for i in idx))
            start, base = 0, 0
            while start < len(idx):
                room = limit - size
                # The longest run of entries that fits; at least one entry per push.
                end = bisect_right(cum, base + room, lo=start)
                if end == start:
                    if cur:
                        pushes.append(_Push(cur))
                        cur, size = [], 0
                        continue
                    end = start + 1
                cur.append((key, idx[start:end]))
                size += cum[end - 1] - base
                base = cum[end - 1]
                start = end
                if start < len(idx):
                    pushes.append(_Push(cur))
                    cur, size = [], 0
        if cur:
            pushes.append(_Push(cur))
        return pushes

    # --- encoding --------------------------------------------------------------------------
    def _metadata(self, batch: Batch, i: int) -> list[tuple[str, str]]:
        if not self.structured_metadata:
            return []
        rec = batch.records[i]
        out = []
        if rec.trace_id:
            out.append(("trace_id", str(rec.trace_id)))
            if rec.span_id:
                out.append(("span_id", str(rec.span_id)))
        return out

    def _encode(self, batch: Batch, ts: list[int], push: _Push) -> tuple[bytes, dict[str, str]]:
        lines = batch.lines
        if self.config.encoding == "json":
            streams = []
            for key, idx in push.streams:
                values: list[list[object]] = []
                for i in idx:
                    meta = self._metadata(batch, i)
                    row: list[object] = [str(ts[i]), lines[i].decode("utf-8", "replace")]
                    if meta:
                        row.append(dict(meta))
                    values.append(row)
                streams.append({"stream": self._stream_labels[key], "values": values})
            body = orjson.dumps({"streams": streams})
            headers = {"Content-Type": "application/json"}
            if self.config.json_gzip:
                body = gzip.compress(body, compresslevel=1)
                headers["Content-Encoding"] = "gzip"
            return body, headers
        records = batch.records
        sm_on = self.structured_metadata
        parts = []
        for key, idx in push.streams:
            sm: list[bytes] | None = None
            if sm_on:
                sm = []
                append = sm.append
                for i in idx:
                    rec = records[i]
                    tid = rec.trace_id
                    if not tid:
                        append(b"")
                        continue
                    sid = rec.span_id
                    tb = tid.encode()
                    # W3C-sized ids (what schema v1 enforces) take the precomputed headers.
                    if len(tb) == 32:
                        if not sid:
                            append(TRACE_HDR + tb)
                            continue
                        sb = sid.encode()
                        if len(sb) == 16:
                            append(TRACE_HDR + tb + SPAN_HDR + sb)
                            continue
                    append(trace_metadata(tid, sid or None))
            parts.append(encode_stream(key, [ts[i] for i in idx], [lines[i] for i in idx], sm))
        return compress(b"".join(parts)), {"Content-Type": "application/x-protobuf"}

    # --- delivery --------------------------------------------------------------------------
    def _deliver(self, batch: Batch, ts: list[int], push: _Push) -> list[tuple[int, str]]:
        """Send one push until Loki answered for every entry; return the rejected ones."""
        assert self._client is not None
        backoff = Backoff(self.config.retry)
        started = time.monotonic()
        unknown = False  # a previous attempt may have been stored (timeout, reset)
        while True:
            if self.stopping.is_set():
                raise SinkStopped()
            body, headers = self._encode(batch, ts, push)
            t0 = time.monotonic()
            try:
                resp = self._client.post(self.push_url, content=body, headers=headers)
            except httpx.TransportError as exc:
                cause = describe_error(exc)
                self.metrics.request(time.monotonic() - t0, cause)
                # A timeout or a reset after the body was sent may have been stored.
                unknown = unknown or not isinstance(exc, httpx.ConnectError)
                self._wait(backoff, None, cause, started, push)
                continue
            self.metrics.request(time.monotonic() - t0, str(resp.status_code))
            code = resp.status_code
            if unknown:
                self.resent_after_unknown += 1
                unknown = False
            if 200 <= code < 300:
                self.metrics.sent(len(push), len(body))
                return []
            if code == 413:
                return self._split(batch, ts, push, f"loki 413: {resp.text.strip()[:300]}")
            if code in (400, 422):
                return self._on_400(batch, ts, push, resp.text, len(body))
            # 429, 5xx, and misconfiguration (401/403/404): nothing was stored; retry. A
            # wrong tenant or credential is fixed by an operator, never by dropping lines.
            cause = "5xx" if code >= 500 else str(code)
            hint = retry_after(resp) if code in RETRYABLE_STATUS or code == 429 else None
            self._wait(backoff, hint, cause, started, push)

    def _wait(
        self, backoff: Backoff, hint: float | None, cause: str, started: float, push: _Push
    ) -> None:
        limit = self.config.max_retry_duration
        if limit is not None and time.monotonic() - started > limit:
            raise _GiveUp(cause)
        self.metrics.retry(cause)
        if self.stopping.wait(backoff.next_delay(hint)):
            raise SinkStopped()

    def _split(
        self, batch: Batch, ts: list[int], push: _Push, reason: str
    ) -> list[tuple[int, str]]:
        if len(push) <= 1:
            self.metrics.dead_lettered("too_large", len(push))
            return [(i, reason) for i in push.indices()]
        a, b = push.halves()
        return self._deliver_safe(batch, ts, a) + self._deliver_safe(batch, ts, b)

    def _deliver_safe(self, batch: Batch, ts: list[int], push: _Push) -> list[tuple[int, str]]:
        try:
            return self._deliver(batch, ts, push)
        except _GiveUp as exc:
            reason = f"loki: gave up after max_retry_duration ({exc})"
            self.metrics.dead_lettered("retry_budget", len(push))
            return [(i, reason) for i in push.indices()]

    def _on_400(
        self, batch: Batch, ts: list[int], push: _Push, text: str, nbytes: int
    ) -> list[tuple[int, str]]:
        errors = parse_reply(text)
        if any(e.kind == "structured_metadata_disallowed" for e in errors) and (
            self.structured_metadata
        ):
            # This Loki (schema < v13 or disabled by limits) refuses structured metadata:
            # trace_id stays in the JSON line, where `| json | trace_id=...` finds it.
            self.structured_metadata = False
            others = [e for e in errors if e.kind != "structured_metadata_disallowed"]
            hit = self._attribute(batch, ts, push, others) if others else {}
            if hit is None:
                return self._split(batch, ts, push, f"loki 400: {text.strip()[:500]}")
            affected = _Push(
                _regroup(
                    [
                        (k, i)
                        for k, idx in push.streams
                        for i in idx
                        if i not in hit and self._metadata_was_sent(batch, i)
                    ]
                )
            )
            out = self._rejected(hit)
            return out + (self._deliver(batch, ts, affected) if len(affected) else [])
        hit = self._attribute(batch, ts, push, errors) if errors else None
        if hit is None:
            # Not attributable: isolate by halving. Entries Loki did accept are sent again
            # (Loki drops most of them as exact duplicates).
            return self._split(batch, ts, push, f"loki 400: {text.strip()[:500]}")
        self.metrics.sent(len(push) - len(hit), nbytes)
        return self._rejected(hit)

    def _rejected(self, hit: dict[int, tuple[str, str]]) -> list[tuple[int, str]]:
        """Report dead letters by reason; ``(index, reason)`` pairs for the engine."""
        kinds: dict[str, int] = {}
        for kind, _ in hit.values():
            kinds[kind] = kinds.get(kind, 0) + 1
        for kind, n in kinds.items():
            self.metrics.dead_lettered(kind, n)
        return sorted((i, reason) for i, (_, reason) in hit.items())

    def _metadata_was_sent(self, batch: Batch, i: int) -> bool:
        return bool(batch.records[i].trace_id)

    def _attribute(
        self, batch: Batch, ts: list[int], push: _Push, errors: list[LokiError]
    ) -> dict[int, tuple[str, str]] | None:
        """Batch index -> (kind, Loki's reason) for every rejected entry, or None if the
        reply does not account for its own error count."""
        streams = {key: idx for key, idx in push.streams}
        hit: dict[int, tuple[str, str]] = {}
        for e in errors:
            key = self._match_stream(e.stream, streams)
            if key is None:
                return None
            idx = [i for i in streams[key] if i not in hit]
            cand = self._candidates(batch, ts, idx, e)
            if cand is None or len(cand) < e.count:
                return None
            if e.kind == "invalid_labels":
                pass  # one error per stream: every entry of it
            elif e.kind == "too_new":
                cand = cand[len(cand) - e.count :]  # the newest ones crossed the limit
            else:
                cand = cand[: e.count]  # too old / behind: the oldest ones
            reason = f"loki 400 ({e.kind}): {e.message}"
            for i in cand:
                hit[i] = (e.kind, reason)
        return hit

    def _candidates(
        self, batch: Batch, ts: list[int], idx: list[int], e: LokiError
    ) -> list[int] | None:
        lines = batch.lines
        if e.kind == "invalid_labels":
            return idx
        if e.kind == "too_far_behind":
            if e.timestamps and len(e.timestamps) == e.count:
                want = sorted(e.timestamps)
                out = []
                for t in want:
                    j = next((i for i in idx if ts[i] == t and i not in out), None)
                    if j is None:
                        return None
                    out.append(j)
                return out
            if e.cutoff_sec is None:
                return None
            limit = (e.cutoff_sec + 1) * 1_000_000_000
            return sorted((i for i in idx if ts[i] < limit), key=ts.__getitem__)
        if e.kind in ("too_old", "too_new"):
            if e.ts_sec is None:
                return None
            lo = e.ts_sec * 1_000_000_000
            return sorted((i for i in idx if lo <= ts[i] < lo + 1_000_000_000), key=ts.__getitem__)
        if e.kind == "line_too_long":
            return [i for i in idx if len(lines[i]) == e.length]
        if e.kind in ("structured_metadata_too_large", "structured_metadata_too_many"):
            out = []
            for i in idx:
                meta = self._metadata(batch, i)
                n = sum(len(k) + len(v) for k, v in meta)
                if e.kind.endswith("many"):
                    n = len(meta)
                if n == e.length:
                    out.append(i)
            return out
        return None

    def _match_stream(
        self, labels: dict[str, str] | None, streams: dict[str, list[int]]
    ) -> str | None:
        if labels is None:
            return None
        for key in streams:
            ours = self._stream_labels.get(key, {})
            # Labels Loki adds itself: service_name (Loki 3 discovery) and the shard label of
            # streams split by rate (shard_streams); not part of what we sent.
            theirs = {k: v for k, v in labels.items() if k in ours or k not in _LOKI_ADDED}
            if theirs == ours:
                return key
        return None


class _GiveUp(Exception):
    """max_retry_duration elapsed."""
