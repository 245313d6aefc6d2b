"""Aggregations of the in-process Elasticsearch receiver: ``terms`` and ``date_histogram``,
nested through ``aggs``/``aggregations``, as Elasticsearch 8 documents them.

* ``terms``: ``field`` (keyword, numeric, boolean, or a ``text`` field's ``.keyword``
  sub-field, whose values longer than ``ignore_above: 256`` are not indexed), ``size`` (default
  10, must be > 0), ``min_doc_count`` (default 1), ``order`` by ``_count`` or ``_key``
  (default ``_count`` desc then ``_key`` asc); ``doc_count_error_upper_bound`` (always 0: one
  shard) and ``sum_other_doc_count``. A ``text`` field is refused with the fielddata error.
* ``date_histogram``: ``field`` (``date``/``date_nanos``), exactly one of ``fixed_interval``
  (``ms``, ``s``, ``m``, ``h``, ``d`` multiples) or ``calendar_interval`` (``minute``/``1m``,
  ``hour``/``1h``, ``day``/``1d``); ``key = floor(ms / interval) * interval`` in epoch
  milliseconds with ``key_as_string`` in ISO form; ``min_doc_count`` (default 0: empty buckets
  between the first and the last are returned); ``time_zone`` UTC only (a receiver limit).
* ``search.max_buckets`` (65,536): more buckets in one response answer
  ``too_many_buckets_exception``, status 400 (Elasticsearch >= 8.8; 503 before, and on
  OpenSearch, which kept 7.10's status).
* An unmapped field gives no buckets; an unknown aggregation type or parameter is a 400.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from .es_engine import Doc, EsError, FieldMap, Json, format_date_ns, get_values, parse_date_ns

DEFAULT_MAX_BUCKETS = 65_536
KEYWORD_IGNORE_ABOVE = 256
_FIXED = re.compile(r"(\d+)(ms|s|m|h|d)")
_FIXED_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_CALENDAR_MS = {
    "minute": 60_000,
    "1m": 60_000,
    "hour": 3_600_000,
    "1h": 3_600_000,
    "day": 86_400_000,
    "1d": 86_400_000,
}
_UTC = {"UTC", "Z", "+00:00", "Etc/UTC", "GMT"}
_TEXT_REASON = (
    "Text fields are not optimised for operations that require per-document field data like "
    "aggregations and sorting, so these operations are disabled by default. Please use a "
    "keyword field instead. Alternatively, set fielddata=true on [{}] in order to load field "
    "data by uninverting the inverted index. Note that this can use significant memory."
)
_TERMS_KEYS = {"field", "size", "min_doc_count", "order", "shard_size"}
_HISTO_KEYS = {"field", "fixed_interval", "calendar_interval", "min_doc_count", "time_zone"}

FieldLookup = Any  # es_search._Ctx: .field(path) -> (path, FieldMap | None)


def _bad(reason: str, etype: str = "illegal_argument_exception") -> EsError:
    return EsError(400, etype, reason, wrap="search_phase_execution_exception")


def _parse_error(reason: str) -> EsError:
    return EsError(400, "x_content_parse_exception", reason)


class _Budget:
    def __init__(self, limit: int, status: int) -> None:
        self.limit, self.status, self.used = limit, status, 0

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise EsError(
                self.status,
                "too_many_buckets_exception",
                f"Trying to create too many buckets. Must be less than or equal to: "
                f"[{self.limit}] but was [{self.limit + 1}]. This limit can be set by changing "
                "the [search.max_buckets] cluster level setting.",
                wrap="search_phase_execution_exception",
                max_buckets=self.limit,
            )


def validate(aggs: Any) -> None:
    """Refuse a malformed request before anything runs, as Elasticsearch parses it first."""
    if not isinstance(aggs, dict):
        raise _parse_error("[aggs] must be an object")
    for name, spec in aggs.items():
        if not isinstance(spec, dict):
            raise _parse_error(f"Expected [START_OBJECT] under [{name}]")
        kinds = [k for k in spec if k not in ("aggs", "aggregations", "meta")]
        if len(kinds) != 1:
            raise EsError(
                400,
                "parsing_exception",
                f"Expected one aggregation type under [{name}], found {kinds}",
            )
        kind = kinds[0]
        params = spec[kind]
        if kind == "terms":
            allowed = _TERMS_KEYS
        elif kind == "date_histogram":
            allowed = _HISTO_KEYS
        else:
            raise EsError(400, "parsing_exception", f"Unknown aggregation type [{kind}]")
        for key in params:
            if key not in allowed:
                raise _parse_error(f"[1:1] [{kind}] unknown field [{key}]")
        if "field" not in params:
            raise _bad("Required one of fields [field, script], but none were specified.")
        if kind == "terms":
            size = params.get("size", 10)
            if not isinstance(size, int) or size <= 0:
                raise _bad(f"[size] must be greater than 0. Found [{size}] in [{name}]")
        else:
            _interval_ms(params)
            tz = params.get("time_zone", "UTC")
            if tz not in _UTC:
                raise _bad(f"the test receiver only supports time_zone UTC, got [{tz}]")
        sub = spec.get("aggs", spec.get("aggregations"))
        if sub is not None:
            validate(sub)


def _interval_ms(params: Json) -> int:
    fixed, cal = params.get("fixed_interval"), params.get("calendar_interval")
    if fixed is not None and cal is not None:
        raise _bad("Cannot use [fixed_interval] with [calendar_interval] configuration option.")
    if fixed is None and cal is None:
        raise _bad("Invalid interval specified, must be non-null and non-empty")
    if fixed is not None:
        m = _FIXED.fullmatch(str(fixed))
        if not m or int(m.group(1)) <= 0:
            raise EsError(
                400,
                "parse_exception",
                f"failed to parse setting [date_histogram.fixedInterval] with value [{fixed}] "
                "as a time value: unit is missing or unrecognized",
            )
        return int(m.group(1)) * _FIXED_MS[m.group(2)]
    if str(cal) not in _CALENDAR_MS:
        raise _bad(f"The supplied interval [{cal}] could not be parsed as a calendar interval.")
    return _CALENDAR_MS[str(cal)]


def run(aggs: Json, docs: list[Doc], ctx: FieldLookup, max_buckets: int, status: int = 400) -> Json:
    """The ``aggregations`` object of the response for ``docs`` (the query's matches)."""
    validate(aggs)
    return _run(aggs, docs, ctx, _Budget(max_buckets, status))


def _run(aggs: Json, docs: list[Doc], ctx: FieldLookup, budget: _Budget) -> Json:
    out: Json = {}
    for name, spec in aggs.items():
        sub = spec.get("aggs", spec.get("aggregations"))
        if "terms" in spec:
            out[name] = _terms(name, spec["terms"], sub, docs, ctx, budget)
        else:
            out[name] = _histogram(spec["date_histogram"], sub, docs, ctx, budget)
    return out


def _values(doc: Doc, path: str, keyword_sub: bool) -> list[Any]:
    vals = get_values(doc.source, path)
    if keyword_sub:
        vals = [v for v in vals if len(str(v)) <= KEYWORD_IGNORE_ABOVE]
    return vals


def _field(ctx: FieldLookup, name: str) -> tuple[str, FieldMap | None, bool]:
    path, fm = ctx.field(name)
    return path, fm, path != name  # resolved from "<text field>.keyword"


def _terms(
    name: str, p: Json, sub: Json | None, docs: list[Doc], ctx: FieldLookup, budget: _Budget
) -> Json:
    path, fm, via_keyword = _field(ctx, p["field"])
    empty = {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": []}
    if fm is None:
        return empty
    if fm.type in ("text", "match_only_text"):
        raise _bad(_TEXT_REASON.format(p["field"]))
    members: dict[Any, list[Doc]] = {}
    counts: Counter[Any] = Counter()
    for d in docs:
        seen = set()
        for v in _values(d, path, via_keyword):
            key = v if isinstance(v, (int, float, bool)) else str(v)
            if key in seen:
                continue
            seen.add(key)
            counts[key] += 1
            members.setdefault(key, []).append(d)
    min_count = int(p.get("min_doc_count", 1))
    keys = [k for k, c in counts.items() if c >= min_count]
    order = p.get("order", {"_count": "desc"})
    orders = order if isinstance(order, list) else [order]
    # Stable sorts from the last criterion to the first; _key asc is the final tiebreak.
    keys.sort(key=lambda k: (str(type(k)), k))
    for crit in reversed(orders):
        ((what, direction),) = crit.items()
        desc = str(direction).lower() == "desc"
        if what == "_count":
            keys.sort(key=lambda k: counts[k], reverse=desc)
        elif what == "_key":
            keys.sort(key=lambda k: (str(type(k)), k), reverse=desc)
        else:
            raise _bad(f"Invalid aggregation order path [{what}]")
    size = int(p.get("size", 10))
    shown = keys[:size]
    budget.take(len(shown))
    buckets = []
    for k in shown:
        b: Json = {"key": int(k) if isinstance(k, bool) else k, "doc_count": counts[k]}
        if isinstance(k, bool):
            b["key_as_string"] = "true" if k else "false"
        if sub:
            b.update(_run(sub, members[k], ctx, budget))
        buckets.append(b)
    return {
        "doc_count_error_upper_bound": 0,
        "sum_other_doc_count": sum(counts[k] for k in keys[size:]),
        "buckets": buckets,
    }


def _histogram(
    p: Json, sub: Json | None, docs: list[Doc], ctx: FieldLookup, budget: _Budget
) -> Json:
    path, fm, _ = _field(ctx, p["field"])
    if fm is None:
        return {"buckets": []}
    if fm.type not in ("date", "date_nanos"):
        raise _bad(
            f"Field [{p['field']}] of type [{fm.type}] is not supported for aggregation "
            "[date_histogram]"
        )
    interval = _interval_ms(p)
    members: dict[int, list[Doc]] = {}
    for d in docs:
        seen = set()
        for v in get_values(d.source, path):
            try:
                ms = parse_date_ns(v) // 1_000_000
            except (TypeError, ValueError):
                continue
            key = (ms // interval) * interval
            if key not in seen:
                seen.add(key)
                members.setdefault(key, []).append(d)
    min_count = int(p.get("min_doc_count", 0))
    keys = sorted(members)
    if min_count == 0 and keys:
        keys = list(range(keys[0], keys[-1] + interval, interval))
    keys = [k for k in keys if len(members.get(k, ())) >= min_count]
    budget.take(len(keys))
    buckets = []
    for k in keys:
        b: Json = {
            "key_as_string": format_date_ns(k * 1_000_000, False),
            "key": k,
            "doc_count": len(members.get(k, ())),
        }
        if sub:
            b.update(_run(sub, members.get(k, []), ctx, budget))
        buckets.append(b)
    return {"buckets": buckets}
