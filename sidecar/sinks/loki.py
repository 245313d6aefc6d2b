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
import time
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from operator import attrgetter
from typing import Literal

import httpx
import msgspec
import orjson

from obskit._durations import ByteSize, Duration
from obskit._http import (
    RETRYABLE_STATUS,
    AuthConfig,
    RetryConfig,
    TLSConfig,
    describe_error,
    display_url,
    retry_after,
)
from sidecar.config_convert import check, shown
from sidecar.enrich import instance_name
from sidecar.sinks.base import Batch
from sidecar.sinks.delivery import Outcome
from sidecar.sinks.http import HTTPSink
from sidecar.sinks.loki_errors import LokiError, parse_reply
from sidecar.sinks.loki_proto import (
    compress,
    encode_stream,
    trace_metadata_list,
)
from sidecar.sinks.timestamps import Timestamps

PUSH_PATH = "/loki/api/v1/push"
MAX_LABELS = 15  # Loki's default max_label_names_per_series
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RESERVED = {"service", "level", "service_name"}
_LOKI_ADDED = frozenset({"service_name", "__stream_shard__"})
_trace_id, _span_id = attrgetter("trace_id"), attrgetter("span_id")


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
        problems = []
        if not re.match(r"https?://", self.url):
            problems.append(f"url: expected http:// or https://, got {shown(self.url)}")
        names = {"service", "level", self.instance_label, *self.labels}
        if len(names) > MAX_LABELS:
            problems.append(
                f"labels: {len(names)} stream labels with service, level and "
                f"{self.instance_label}; Loki accepts at most {MAX_LABELS}"
            )
        for name in [self.instance_label, *self.labels]:
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                problems.append(f"labels: {name!r} is not a valid Loki label name")
        if self.instance_label in _RESERVED:
            problems.append(f"instance_label: {self.instance_label!r} is reserved")
        for name, value in self.labels.items():
            if name in _RESERVED or name == self.instance_label:
                problems.append(f"labels: {name!r} is set by the sink")
            elif name in ("trace_id", "span_id"):
                problems.append(f"labels: {name!r} would be one stream per trace (cardinality)")
            elif not value or len(value) > 2048:
                problems.append(f"labels.{name}: value must be 1-2048 characters")
        if self.batch_max_bytes < 1024:
            problems.append("batch_max_bytes: must be at least 1KiB")
        if self.timeout <= 0:
            problems.append("timeout: must be positive")
        check(problems)


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


@dataclass
class _Ctx:
    """Per-batch facts every attempt needs, computed once: timestamps and stream keys; the
    pushes :meth:`LokiSink.parts` planned (by the id of the index list it returned, with
    that list); each line's structured metadata, once a push needs it."""

    batch: Batch
    ts: list[int]
    keys: list[str]
    planned: dict[int, tuple[list[int], _Push]] | None = None
    sm: list[bytes] | None = None


class LokiSink(HTTPSink):
    """Ships batches to Loki; see the module docstring for the delivery rules."""

    kind = "loki"

    def __init__(self, name: str, config: Config) -> None:
        super().__init__(name, config, config.max_retry_duration)
        self.config = config
        url = config.url.rstrip("/")
        self.push_url = url if url.endswith(PUSH_PATH) else url + PUSH_PATH
        self.structured_metadata = config.structured_metadata
        self._stream_text: dict[tuple[str, str], str] = {}
        self._stream_labels: dict[str, dict[str, str]] = {}
        self._instance: str | None = config.instance
        self._ts = Timestamps()
        self._ctx: _Ctx | None = None
        self._unknown = False  # the last attempt may have been stored (timeout, reset)
        #: Pushes whose outcome is unknown (timeout, reset) and that were sent again: each
        #: may be stored twice by Loki. Counted for tests and docs.
        self.resent_after_unknown = 0

    # --- lifecycle -------------------------------------------------------------------------
    def client_headers(self) -> dict[str, str]:
        return {"X-Scope-OrgID": self.config.tenant} if self.config.tenant else {}

    def describe_target(self) -> str:
        return display_url(self.push_url)

    # --- planning --------------------------------------------------------------------------
    def parts(self, batch: Batch) -> list[list[int]]:
        """Pushes of at most ``batch_max_bytes``: entries grouped per stream and ordered by
        time within it, each a flat list of indices (:meth:`_streams` regroups them)."""
        ctx = self._context(batch)
        out = []
        planned = {}
        for push in self._plan(batch, ctx):
            idx = push.indices()
            planned[id(idx)] = (idx, push)
            out.append(idx)
        ctx.planned = planned
        return out

    def _context(self, batch: Batch) -> _Ctx:
        if self._ctx is not None and self._ctx.batch is batch:
            return self._ctx
        if self._instance is None:
            self._instance = instance_name(batch.static)
        ts = self._timestamps(batch)
        known, key_of = self._stream_text.get, self._stream_key
        keys = [known((r.service, r.level)) or key_of(r.service, r.level) for r in batch.records]
        self._ctx = _Ctx(batch, ts, keys)
        return self._ctx

    def _timestamps(self, batch: Batch) -> list[int]:
        return self._ts(batch.records)

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

    def _plan(self, batch: Batch, ctx: _Ctx) -> list[_Push]:
        by_key: dict[str, list[int]] = {}
        for i, key in enumerate(ctx.keys):
            got = by_key.get(key)
            if got is None:
                by_key[key] = [i]
            else:
                got.append(i)
        ts = ctx.ts
        lines = batch.lines
        limit = int(self.config.batch_max_bytes)
        pushes: list[_Push] = []
        cur: list[tuple[str, list[int]]] = []
        size = 0
        for key, idx in by_key.items():
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

    def _streams(self, ctx: _Ctx, part: list[int]) -> _Push:
        got = ctx.planned.get(id(part)) if ctx.planned else None
        if got is not None and got[0] is part:  # as planned (not a half of a split push)
            return got[1]
        keys = ctx.keys
        out: list[tuple[str, list[int]]] = []
        for i in part:
            k = keys[i]
            if out and out[-1][0] == k:
                out[-1][1].append(i)
            else:
                out.append((k, [i]))
        return _Push(out)

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
        sm_all = self._structured_metadata(batch) if self.structured_metadata else None
        parts = []
        for key, idx in push.streams:
            sm = [sm_all[i] for i in idx] if sm_all is not None else None
            parts.append(encode_stream(key, [ts[i] for i in idx], [lines[i] for i in idx], sm))
        return compress(b"".join(parts)), {"Content-Type": "application/x-protobuf"}

    def _structured_metadata(self, batch: Batch) -> list[bytes]:
        """Every line's encoded trace/span metadata, once per batch."""
        ctx = self._ctx
        if ctx is not None and ctx.batch is batch and ctx.sm is not None:
            return ctx.sm
        recs = batch.records
        sm = trace_metadata_list(list(map(_trace_id, recs)), list(map(_span_id, recs)))
        if ctx is not None and ctx.batch is batch:
            ctx.sm = sm
        return sm

    # --- one attempt -----------------------------------------------------------------------
    def attempt(self, batch: Batch, part: list[int]) -> Outcome:
        """Push ``part`` once and read Loki's answer (see the module docstring)."""
        if self._client is None:
            self.start()
        assert self._client is not None
        ctx = self._context(batch)
        push = self._streams(ctx, part)
        body, headers = self._encode(batch, ctx.ts, push)
        t0 = time.monotonic()
        try:
            resp = self._client.post(self.push_url, content=body, headers=headers)
        except httpx.TransportError as exc:
            self.metrics.request(time.monotonic() - t0, describe_error(exc))
            # A timeout or a reset after the body was sent may have been stored.
            self._unknown = self._unknown or not isinstance(exc, httpx.ConnectError)
            raise
        code = resp.status_code
        self.metrics.request(time.monotonic() - t0, str(code))
        if self._unknown:
            self.resent_after_unknown += 1
            self._unknown = False
        if 200 <= code < 300:
            return Outcome.ok(len(part), len(body))
        if code == 413:
            return Outcome.refused(f"loki 413: {resp.text.strip()[:300]}", "too_large")
        if code in (400, 422):
            return self._on_400(batch, ctx, push, resp.text, len(body))
        # 429, 5xx, and misconfiguration (401/403/404): nothing was stored; retry. A wrong
        # tenant or credential is fixed by an operator, never by dropping lines.
        cause = "5xx" if code >= 500 else str(code)
        hint = retry_after(resp) if code in RETRYABLE_STATUS or code == 429 else None
        return Outcome.transient(part, cause, f"HTTP {code}: {resp.text.strip()[:300]}", hint)

    def _on_400(self, batch: Batch, ctx: _Ctx, push: _Push, text: str, nbytes: int) -> Outcome:
        errors = parse_reply(text)
        unattributable = Outcome.refused(f"loki 400: {text.strip()[:500]}", "http_400")
        if any(e.kind == "structured_metadata_disallowed" for e in errors) and (
            self.structured_metadata
        ):
            # This Loki (schema < v13 or disabled by limits) refuses structured metadata:
            # trace_id stays in the JSON line, where `| json | trace_id=...` finds it. The
            # entries that carried metadata were refused: send them again without it.
            self.structured_metadata = False
            others = [e for e in errors if e.kind != "structured_metadata_disallowed"]
            hit = self._attribute(batch, ctx.ts, push, others) if others else {}
            if hit is None:
                return unattributable
            again = [i for i in push.indices() if i not in hit and batch.records[i].trace_id]
            out = self._rejected(hit)
            out.again = again
            return out
        hit = self._attribute(batch, ctx.ts, push, errors) if errors else None
        if hit is None:
            # Not attributable: isolate by halving. Entries Loki did accept are sent again
            # (Loki drops most of them as exact duplicates).
            return unattributable
        out = self._rejected(hit)
        out.delivered = len(push) - len(hit)
        out.wire_bytes = nbytes
        return out

    def _rejected(self, hit: dict[int, tuple[str, str]]) -> Outcome:
        return Outcome(rejected={i: (reason, kind) for i, (kind, reason) in hit.items()})

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
