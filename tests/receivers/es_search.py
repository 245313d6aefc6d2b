"""``_search`` and ``_count`` of the in-process Elasticsearch receiver.

Queries: ``match_all``, ``term``, ``terms``, ``match``, ``match_phrase``, ``range``, ``exists``,
``ids``, ``bool`` (``must``/``filter``/``should``/``must_not``). Sorting on mapped fields (date
sort values are epoch millis unless a ``format`` is given), ``_doc`` and ``_shard_doc``
tiebreakers (``_shard_doc`` only with a point in time, which adds it implicitly as ES does),
``search_after``, ``from``/``size`` bounded by ``index.max_result_window``,
``track_total_hits``; ``aggs`` (``terms``, ``date_histogram``: :mod:`.es_aggs`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from . import es_aggs
from .es_engine import (
    MAX_RESULT_WINDOW,
    Cluster,
    Doc,
    EsError,
    FieldMap,
    Json,
    format_date_ns,
    get_values,
    parse_date_ns,
)

_TOKEN = re.compile(r"\w+", re.UNICODE)
_SEARCH_ERR = "search_phase_execution_exception"


def _bad(reason: str, etype: str = "illegal_argument_exception") -> EsError:
    return EsError(400, etype, reason, wrap=_SEARCH_ERR)


def _tokens(value: Any) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(str(value))]


class _Ctx:
    """Field lookup across the indices of one search (first mapping that knows the field)."""

    def __init__(self, maps: list[dict[str, FieldMap]]) -> None:
        self.maps = maps

    def field(self, path: str) -> tuple[str, FieldMap | None]:
        for m in self.maps:
            if path in m:
                return path, m[path]
        if path.endswith(".keyword"):
            base = path[: -len(".keyword")]
            for m in self.maps:
                if base in m and m[base].keyword_sub:
                    return base, FieldMap("keyword")
        return path, None


def _scalar_eq(fm: FieldMap, stored: Any, wanted: Any) -> bool:
    t = fm.type
    if t in ("date", "date_nanos"):
        try:
            return parse_date_ns(stored) == parse_date_ns(wanted)
        except ValueError:
            return False
    if t in ("long", "integer", "short", "float", "double"):
        try:
            return float(stored) == float(wanted)
        except (TypeError, ValueError):
            return False
    if t == "boolean":
        return str(stored).lower() == str(wanted).lower()
    if t in ("text", "match_only_text"):
        return str(wanted) in _tokens(stored)
    return _kw(stored) == _kw(wanted)


def _kw(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _compile(q: Json, ctx: _Ctx) -> Callable[[Doc], bool]:
    if not isinstance(q, dict) or len(q) != 1:
        raise _bad("[_na] query malformed, must start with start_object", "parsing_exception")
    ((kind, spec),) = q.items()
    if kind == "match_all":
        return lambda d: True
    if kind == "match_none":
        return lambda d: False
    if kind in ("term", "terms", "match", "match_phrase", "range", "exists"):
        if kind == "exists":
            path = spec["field"]
            return lambda d: bool(get_values(d.source, path))
        ((fname, arg),) = [(k, v) for k, v in spec.items() if k != "boost"]
        path, fm = ctx.field(fname)
        if fm is None:
            # Unmapped field: matches nothing (no error), as in Elasticsearch.
            return lambda d: False
        if kind == "term":
            wanted = arg["value"] if isinstance(arg, dict) else arg
            return lambda d: any(_scalar_eq(fm, v, wanted) for v in get_values(d.source, path))
        if kind == "terms":
            if not isinstance(arg, list):
                raise _bad(f"[terms] query does not support [{fname}]", "parsing_exception")
            return lambda d: any(
                _scalar_eq(fm, v, w) for v in get_values(d.source, path) for w in arg
            )
        if kind in ("match", "match_phrase"):
            text = arg["query"] if isinstance(arg, dict) else arg
            if fm.type in ("text", "match_only_text"):
                want = _tokens(text)
                if kind == "match_phrase":
                    phrase = " ".join(want)
                    return lambda d: any(
                        phrase in " ".join(_tokens(v)) for v in get_values(d.source, path)
                    )
                op_and = isinstance(arg, dict) and arg.get("operator", "or").lower() == "and"
                agg = all if op_and else any
                return lambda d: any(
                    agg(w in _tokens(v) for w in want) for v in get_values(d.source, path)
                )
            return lambda d: any(_scalar_eq(fm, v, text) for v in get_values(d.source, path))
        return _range(path, fm, arg)
    if kind == "ids":
        ids = set(spec.get("values", []))
        return lambda d: d.id in ids
    if kind == "bool":

        def clauses(name: str) -> list[Callable[[Doc], bool]]:
            c = spec.get(name, [])
            return [_compile(x, ctx) for x in (c if isinstance(c, list) else [c])]

        must = clauses("must") + clauses("filter")
        should = clauses("should")
        must_not = clauses("must_not")
        msm = spec.get("minimum_should_match", 0 if must else 1 if should else 0)
        msm = int(msm)

        def run(d: Doc) -> bool:
            if not all(f(d) for f in must):
                return False
            if any(f(d) for f in must_not):
                return False
            return not should or sum(1 for f in should if f(d)) >= msm

        return run
    raise _bad(f"unknown query [{kind}]", "parsing_exception")


def _range(path: str, fm: FieldMap, arg: Json) -> Callable[[Doc], bool]:
    is_date = fm.type in ("date", "date_nanos")
    fmt = arg.get("format", "")

    def conv(v: Any) -> float | int:
        if is_date:
            if fmt == "epoch_millis" or isinstance(v, (int, float)):
                return int(float(v) * 1_000_000)
            if fmt == "epoch_second":
                return int(float(v) * 1_000_000_000)
            try:
                return parse_date_ns(v)
            except ValueError as exc:
                raise _bad(str(exc), "parse_exception") from None
        return float(v)

    bounds = [(op, conv(arg[op])) for op in ("gte", "gt", "lte", "lt") if arg.get(op) is not None]

    def ok(v: Any) -> bool:
        try:
            x = parse_date_ns(v) if is_date else float(v)
        except (TypeError, ValueError):
            return False
        for op, b in bounds:
            if (
                (op == "gte" and x < b)
                or (op == "gt" and x <= b)
                or (op == "lte" and x > b)
                or (op == "lt" and x >= b)
            ):
                return False
        return True

    return lambda d: any(ok(v) for v in get_values(d.source, path))


def _sort_specs(body: Json, pit: bool) -> list[tuple[str, str, Json]]:
    raw = body.get("sort")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raw = [raw]
    specs: list[tuple[str, str, Json]] = []
    for s in raw:
        if isinstance(s, str):
            specs.append((s, "desc" if s == "_score" else "asc", {}))
        elif isinstance(s, dict):
            ((name, opt),) = s.items()
            if isinstance(opt, str):
                specs.append((name, opt.lower(), {}))
            else:
                specs.append((name, str(opt.get("order", "asc")).lower(), opt))
    if pit and specs and not any(n == "_shard_doc" for n, _, _ in specs):
        # Elasticsearch adds an implicit _shard_doc tiebreaker to every search with a PIT.
        specs.append(("_shard_doc", "asc", {}))
    return specs


class _Missing:
    """Sorts after every value in both directions (``missing: _last``)."""


def search(
    cluster: Cluster, expr: str | None, body: Json, params: dict[str, str], count: bool = False
) -> Json:
    """Run a search request; ``expr`` is the path's index expression (None with a PIT)."""
    aggs = body.get("aggs", body.get("aggregations"))
    if aggs is not None:
        es_aggs.validate(aggs)
    pit_spec = body.get("pit")
    with cluster.lock:
        if pit_spec is not None:
            if expr:
                raise EsError(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: [indices] cannot be used with point in time. Do not "
                    "specify any index with point in time.;",
                )
            pit = cluster.get_pit(pit_spec["id"], pit_spec.get("keep_alive"))
            visible = {n: c for n, c in pit.indices.items() if n in cluster.indices}
        else:
            names = cluster.resolve(expr or "*")
            visible = {n: len(cluster.indices[n].docs) for n in names}
        order = list(visible)
        ctx = _Ctx([cluster.indices[n].mapping.fields for n in order])
        query = body.get("query", {"match_all": {}})
        pred = _compile(query, ctx)
        matches: list[tuple[int, str, Doc]] = []  # (shard_doc, index, doc)
        for ordinal, name in enumerate(order):
            docs = cluster.indices[name].docs[: visible[name]]
            for pos, d in enumerate(docs):
                if d is not None and pred(d):
                    matches.append(((ordinal << 32) | pos, name, d))
    if count:
        return {
            "count": len(matches),
            "_shards": {"total": len(order), "successful": len(order), "skipped": 0, "failed": 0},
        }
    size = int(params.get("size", body.get("size", 10)))
    from_ = int(params.get("from", body.get("from", 0)))
    if from_ + size > MAX_RESULT_WINDOW:
        raise _bad(
            f"Result window is too large, from + size must be less than or equal to: "
            f"[{MAX_RESULT_WINDOW}] but was [{from_ + size}]. See the scroll api for a more "
            "efficient way to request large data sets. This limit can be set by changing the "
            "[index.max_result_window] index level setting."
        )
    specs = _sort_specs(body, pit_spec is not None)
    keys: list[Callable[[tuple[int, str, Doc]], Any]] = []
    for name, direction, opt in specs:
        if direction not in ("asc", "desc"):
            raise _bad(f"Unknown SortOrder [{direction}]")
        if name == "_shard_doc":
            if pit_spec is None:
                raise _bad(
                    "[_shard_doc] sort field cannot be used without [point in time]",
                    "action_request_validation_exception",
                )
            keys.append(lambda m: m[0])
        elif name == "_doc":
            keys.append(lambda m: m[0])
        elif name == "_score":
            keys.append(lambda m: 1.0)
        else:
            path, fm = ctx.field(name)
            if fm is None:
                if "unmapped_type" not in opt:
                    raise _bad(
                        f"No mapping found for [{name}] in order to sort on",
                        "query_shard_exception",
                    )
                keys.append(lambda m: _Missing())
                continue
            if fm.type in ("text", "match_only_text"):
                raise _bad(
                    "Text fields are not optimised for operations that require per-document "
                    "field data like aggregations and sorting, so these operations are disabled "
                    f"by default. Please use a keyword field instead. Alternatively, set "
                    f"fielddata=true on [{name}] in order to load field data by uninverting the "
                    "inverted index. Note that this can use significant memory."
                )
            keys.append(_field_key(path, fm, direction, opt))
    sort_values = [[k(m) for k in keys] for m in matches]
    idx = list(range(len(matches)))
    for pos in range(len(specs) - 1, -1, -1):
        desc = specs[pos][1] == "desc"
        present = [i for i in idx if not isinstance(sort_values[i][pos], _Missing)]
        absent = [i for i in idx if isinstance(sort_values[i][pos], _Missing)]
        present.sort(key=lambda i: sort_values[i][pos], reverse=desc)
        idx = present + absent
    if "search_after" in body:
        after = body["search_after"]
        if len(after) != len(specs):
            raise _bad(
                f"search_after has {len(after)} value(s) but sort has {len(specs)}.",
            )
        after_keys = [_after_value(specs[p], after[p], ctx) for p in range(len(specs))]
        idx = [i for i in idx if _is_after(sort_values[i], after_keys, specs)]
    total = len(idx) if "search_after" not in body else len(matches)
    page = idx[from_ : from_ + size]
    hits = []
    src_filter = body.get("_source", True)
    for i in page:
        _, iname, d = matches[i]
        hit: Json = {"_index": iname, "_id": d.id, "_score": None if specs else 1.0}
        if src_filter is not False:
            src = d.source
            if isinstance(src_filter, list):
                src = {k: v for k, v in src.items() if k in src_filter}
            hit["_source"] = src
        if specs:
            hit["sort"] = [_render(sort_values[i][p]) for p in range(len(specs))]
        hits.append(hit)
    track = body.get("track_total_hits", params.get("track_total_hits", MAX_RESULT_WINDOW))
    if track in ("true", "false"):
        track = track == "true"
    hits_obj: Json = {"max_score": None if specs else 1.0, "hits": hits}
    if track is True:
        hits_obj["total"] = {"value": total, "relation": "eq"}
    elif track is not False:
        limit = int(track)
        hits_obj["total"] = (
            {"value": total, "relation": "eq"}
            if total <= limit
            else {"value": limit, "relation": "gte"}
        )
    resp: Json = {
        "took": 1,
        "timed_out": False,
        "_shards": {"total": len(order), "successful": len(order), "skipped": 0, "failed": 0},
        "hits": hits_obj,
    }
    if aggs is not None:
        # Elasticsearch >= 8.8 answers 400; OpenSearch kept 7.10's 503.
        status = 503 if cluster.flavor == "opensearch" else 400
        resp["aggregations"] = es_aggs.run(
            aggs, [m[2] for m in matches], ctx, cluster.max_buckets, status
        )
    if pit_spec is not None:
        resp["pit_id"] = pit_spec["id"]
    return resp


def _field_key(
    path: str, fm: FieldMap, direction: str, opt: Json
) -> Callable[[tuple[int, str, Doc]], Any]:
    is_date = fm.type in ("date", "date_nanos")
    nanos = fm.type == "date_nanos" or opt.get("numeric_type") == "date_nanos"
    numeric = fm.type in ("long", "integer", "short", "float", "double")

    def key(m: tuple[int, str, Doc]) -> Any:
        vals = get_values(m[2].source, path)
        if not vals:
            return _Missing()
        try:
            if is_date:
                conv = [parse_date_ns(v) for v in vals]
                conv = conv if nanos else [c // 1_000_000 for c in conv]
            elif numeric:
                conv = [float(v) if "." in str(v) else int(v) for v in vals]
            else:
                conv = [_kw(v) for v in vals]
        except ValueError:
            return _Missing()
        # Multi-valued fields sort by min (asc) or max (desc), as Elasticsearch does.
        v = min(conv) if direction == "asc" else max(conv)
        if is_date and "format" in opt:
            return _Formatted(v if nanos else v * 1_000_000, "nanos" in opt["format"], v)
        return v

    return key


class _Formatted:
    """A date sort value shown as a formatted string but compared numerically."""

    def __init__(self, ns: int, nanos: bool, raw: int) -> None:
        self.ns, self.nanos, self.raw = ns, nanos, raw

    def __lt__(self, other: _Formatted) -> bool:
        return self.raw < other.raw

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Formatted) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def text(self) -> str:
        return format_date_ns(self.ns, self.nanos)


def _render(v: Any) -> Any:
    if isinstance(v, _Formatted):
        return v.text()
    if isinstance(v, _Missing):
        return None
    return v


def _after_value(spec: tuple[str, str, Json], v: Any, ctx: _Ctx) -> Any:
    name, _, opt = spec
    if name in ("_doc", "_shard_doc"):
        return int(v)
    _, fm = ctx.field(name)
    if fm is not None and fm.type in ("date", "date_nanos"):
        nanos = fm.type == "date_nanos" or opt.get("numeric_type") == "date_nanos"
        if isinstance(v, str) and not v.lstrip("-").isdigit():
            ns = parse_date_ns(v)
            return ns if nanos else ns // 1_000_000
        return int(v)
    if fm is not None and fm.type in ("long", "integer", "short", "float", "double"):
        return float(v) if isinstance(v, float) else int(v)
    return v if v is None else _kw(v)


def _is_after(values: list[Any], after: list[Any], specs: list[tuple[str, str, Json]]) -> bool:
    for v, a, (_, direction, _) in zip(values, after, specs, strict=True):
        if isinstance(v, _Formatted):
            v = v.raw
        if isinstance(v, _Missing):
            return a is not None  # missing values sort last
        if a is None:
            return False
        if v == a:
            continue
        return bool(v > a) if direction == "asc" else bool(v < a)
    return False
