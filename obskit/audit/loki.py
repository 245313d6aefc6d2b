"""Lines per service and minute in Loki: one metric query per day of the window.

    sum by (service) (count_over_time({service=~".+"}[1m]))

and, for the streams of lines shipped over OTLP (Loki's ``/otlp`` endpoint labels them
``service_name`` from the resource and gives them no ``service`` label), the same over
``otlp_selector`` ``by (service_name)``, counted under that service;
sent to ``GET /loki/api/v1/query_range`` with ``step=60`` and ``start``/``end`` on whole minutes,
so every point ``t`` of the matrix counts exactly the entries of ``(t - 1m, t]`` and points of
consecutive queries never overlap (see :mod:`obskit.audit.buckets`). Loki's limits:

* ``max_query_length`` (721h by default): the window is queried one UTC day at a time; a
  server with a shorter limit answers 400 ``the query time range exceeds the limit (query
  length: ..., limit: 12h)``, and the pieces are cut to fit that limit.
* 11,000 points per series: a day is 1,440 points.
* ``max_query_series`` (500 by default), reached with many services or ``by (service,
  instance)``: the day is queried again one service at a time (services from the label values
  API).
* The results cache would answer a repeated query from what it cached before late lines
  arrived (the drain of a spool after an outage writes old timestamps):
  ``Cache-Control: no-cache`` bypasses it.
"""

from __future__ import annotations

import functools
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import orjson

from obskit._http import display_url
from obskit.audit.buckets import MINUTE_NS, BackendCounts, BucketRange
from obskit.trace.config import LokiConfig, credentials
from obskit.trace.http import backend_client, http_reason, request
from obskit.trace.model import BackendError, TraceUsageError

QUERY_PATH: Final = "/loki/api/v1/query_range"
DAY_NS: Final = 86_400 * 1_000_000_000
#: Loki refuses a range query with more points than this per series.
MAX_POINTS: Final = 11_000
_TOO_LONG: Final = re.compile(r"query time range exceeds the limit.*?limit:\s*([0-9a-zµ.]+)", re.S)
_SERIES: Final = re.compile(r"maximum (?:number )?of series", re.I)
_GO_UNIT: Final = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": MINUTE_NS,
    "h": 3_600_000_000_000,
    "d": DAY_NS,
    "w": 7 * DAY_NS,
    "y": 365 * DAY_NS,
}
_GO_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)")


def go_duration_ns(text: str) -> int | None:
    """A Go ``time.Duration`` or Prometheus ``model.Duration`` string (``24h0m0s``, ``30d1h``,
    ``4w2d1h``) -> nanoseconds; ``None`` if it is not one."""
    pos, total = 0, 0.0
    for m in _GO_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _GO_UNIT[m.group(2)]
        pos = m.end()
    return int(total) if pos == len(text) and pos else None


def _quote(value: str) -> str:
    # LogQL strings are Go string literals; JSON's escapes are a subset Go accepts.
    return orjson.dumps(value).decode()


class _SeriesLimit(Exception):
    pass


@dataclass(frozen=True)
class _Family:
    """Streams counted by one query: their selector and the labels naming service and instance."""

    selector: str
    service_label: str
    instance_label: str


class LokiCounter:
    """Counts lines per (service, minute) in one Loki (one tenant)."""

    def __init__(
        self,
        cfg: LokiConfig,
        *,
        services: tuple[str, ...] = (),
        instance: str | None = None,
        by_instance: bool = False,
        instance_label: str = "instance",
        concurrency: int = 4,
        shard_ns: int = DAY_NS,
    ) -> None:
        if shard_ns % MINUTE_NS or not MINUTE_NS <= shard_ns <= (MAX_POINTS - 1) * MINUTE_NS:
            raise TraceUsageError(
                "--shard for Loki: whole minutes, from 1m to 7d (Loki answers at most "
                f"{MAX_POINTS} points per series)"
            )
        self.cfg = cfg
        self.services = services
        self.instance = instance
        self.by_instance = by_instance
        self.concurrency = concurrency
        self.shard_ns = shard_ns
        self.name = f"loki {display_url(cfg.url)}"
        creds = credentials(cfg, "LOKI", self.name)
        headers = {"Cache-Control": "no-cache"}
        if cfg.tenant:
            headers["X-Scope-OrgID"] = cfg.tenant
        self.client = backend_client(cfg, creds, self.name, headers, concurrency)
        self._lock = threading.Lock()
        self.families = [_Family(cfg.selector, "service", instance_label)]
        if cfg.otlp_selector:
            # OTLP resources carry the instance as service.instance.id.
            self.families.append(_Family(cfg.otlp_selector, "service_name", "service_instance_id"))

    # -- queries ----------------------------------------------------------------------------

    def selector(self, fam: _Family, service: str | None = None) -> str:
        """The family's stream selector plus the service and instance matchers asked for."""
        base = fam.selector.strip()
        if not (base.startswith("{") and base.endswith("}")):
            raise TraceUsageError(f"loki: selector {base!r} must be a stream selector {{...}}")
        extra = []
        svc = fam.service_label
        if service is not None:
            extra.append(f"{svc}={_quote(service)}")
        elif len(self.services) == 1:
            extra.append(f"{svc}={_quote(self.services[0])}")
        elif self.services:
            alt = "|".join(re.escape(s) for s in sorted(self.services))
            extra.append(f"{svc}=~{_quote(alt)}")
        if self.instance is not None:
            extra.append(f"{fam.instance_label}={_quote(self.instance)}")
        if not extra:
            return base
        return base[:-1].rstrip() + ", " + ", ".join(extra) + "}"

    def query(self, fam: _Family, selector: str) -> str:
        by = fam.service_label
        if self.by_instance:
            by += f", {fam.instance_label}"
        return f"sum by ({by}) (count_over_time({selector}[1m]))"

    # -- counting ---------------------------------------------------------------------------

    def count(self, rng: BucketRange) -> BackendCounts:
        """Lines per (service, minute) for every bucket of ``rng`` (``Edges.LEFT_OPEN``)."""
        out = BackendCounts(self.name)
        for fam in self.families:
            out.info.append(f"LogQL {self.query(fam, self.selector(fam))}")
        pieces = rng.split(self.shard_ns // MINUTE_NS, align_ns=DAY_NS)
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="audit-loki") as pool:
                for _ in pool.map(functools.partial(self._piece, out), pieces):
                    pass
        finally:
            self.client.close()
        out.info.append(f"{len(pieces)} piece(s) of at most {self.shard_ns // MINUTE_NS} minutes")
        return out

    def _piece(self, out: BackendCounts, piece: BucketRange) -> None:
        for fam in self.families:
            self._family_piece(out, piece, fam)

    def _family_piece(self, out: BackendCounts, piece: BucketRange, fam: _Family) -> None:
        with self._lock:
            shard = self.shard_ns
        if piece.end - piece.first > shard:
            # The server taught us a shorter max_query_length meanwhile.
            for p in piece.split(shard // MINUTE_NS):
                self._family_piece(out, p, fam)
            return
        try:
            self._matrix(out, self.query(fam, self.selector(fam)), piece, fam)
        except _SeriesLimit as exc:
            if self.services and len(self.services) == 1:
                raise BackendError(self.name, f"{exc} (drop --by-instance?)") from None
            services = self._service_values(out, piece, fam)
            out.note(
                f"{self.name}: more series than the server's max_query_series; "
                "counted one service at a time"
            )
            for svc in services:
                try:
                    self._matrix(out, self.query(fam, self.selector(fam, svc)), piece, fam)
                except _SeriesLimit as again:
                    raise BackendError(
                        self.name, f"{again} (service {svc!r}; drop --by-instance?)"
                    ) from None

    def _get(self, out: BackendCounts, path: str, params: dict[str, str]) -> Any:
        resp = request(self.client, self.name, "GET", path, params=params)
        out.request_made()
        if resp.status_code == 400:
            text = resp.text
            if m := _TOO_LONG.search(text):
                limit = go_duration_ns(m.group(1))
                if limit is None or limit < MINUTE_NS:
                    raise BackendError(self.name, http_reason(resp))
                raise _TooLong(limit)
            if _SERIES.search(text):
                raise _SeriesLimit(http_reason(resp))
        if resp.status_code != 200:
            raise BackendError(self.name, http_reason(resp))
        try:
            body = resp.json()
        except ValueError:
            raise BackendError(self.name, f"not JSON: {resp.text[:200]!r}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise BackendError(self.name, f"unexpected answer: {str(body)[:200]}")
        for w in body.get("warnings") or []:
            out.note(f"{self.name}: warning: {w}")
        return body.get("data")

    def _matrix(self, out: BackendCounts, query: str, piece: BucketRange, fam: _Family) -> None:
        # Point t counts (t - 1m, t]: the bucket of minute k is the point at k + 1m.
        params = {
            "query": query,
            "start": str(piece.first + MINUTE_NS),
            "end": str(piece.end),
            "step": "60",
        }
        try:
            data = self._get(out, QUERY_PATH, params)
        except _TooLong as exc:
            # Pieces of at most (limit - 1m): their length (points - 1 minutes) plus the
            # range [1m] stays within the limit.
            fit = (exc.limit // MINUTE_NS) * MINUTE_NS
            if fit <= MINUTE_NS and piece.minutes == 1:
                raise BackendError(self.name, "max_query_length is shorter than a minute") from None
            with self._lock:
                self.shard_ns = min(self.shard_ns, max(MINUTE_NS, fit - MINUTE_NS))
                shard = self.shard_ns
            out.note(
                f"{self.name}: the server's max_query_length is {exc.limit / 3.6e12:g}h; "
                f"queried {shard // MINUTE_NS} minutes at a time"
            )
            for p in piece.split(shard // MINUTE_NS):
                self._matrix(out, query, p, fam)
            return
        try:
            if not isinstance(data, dict) or data.get("resultType") != "matrix":
                got = data.get("resultType") if isinstance(data, dict) else data
                raise ValueError(f"expected a matrix, got {got!r}")
            for series in data.get("result") or []:
                metric = series.get("metric") or {}
                service = str(metric.get(fam.service_label, ""))
                inst = str(metric.get(fam.instance_label, "")) if self.by_instance else None
                for t, value in series.get("values") or []:
                    t_ns = round(float(t) * 1000) * 1_000_000
                    key = t_ns - MINUTE_NS
                    n = float(value)
                    if key not in piece or t_ns % MINUTE_NS or n != int(n):
                        raise ValueError(f"unexpected point [{t}, {value!r}]")
                    if n:
                        out.add(service, key, int(n), inst)
        except (ValueError, TypeError, AttributeError) as exc:
            raise BackendError(self.name, f"unexpected query_range answer: {exc}") from None

    def _service_values(self, out: BackendCounts, piece: BucketRange, fam: _Family) -> list[str]:
        params = {
            "start": str(piece.first),
            "end": str(piece.end + 1),
            "query": self.selector(fam),
        }
        try:
            data = self._get(out, f"/loki/api/v1/label/{fam.service_label}/values", params)
        except (_TooLong, _SeriesLimit) as exc:
            raise BackendError(self.name, f"cannot list the services: {exc}") from None
        if not isinstance(data, list):
            raise BackendError(self.name, "unexpected label values answer")
        return sorted(str(v) for v in data)


class _TooLong(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit
