"""The LogQL subset the test receiver answers: what ``obskit trace`` sends.

Supported: a stream selector with ``=``, ``!=``, ``=~``, ``!~`` matchers (regexes fully
anchored, as in Loki); line filters ``|=``, ``!=``, ``|~``, ``!~``; the ``| json`` parser
(nested keys flattened with ``_``, clashing names get ``_extracted``); label filters
``| name op "value"`` evaluated on stream labels, structured metadata and parsed labels.
Anything else is a parse error answered with 400, like Loki.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .loki_wire import read_string


class LogQLError(ValueError):
    pass


@dataclass
class Matcher:
    name: str
    op: str
    value: str
    _re: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            try:
                self._re = re.compile(self.value)
            except re.error as exc:
                raise LogQLError(f"parse error : error parsing regexp: {exc}") from exc

    def matches(self, value: str | None) -> bool:
        v = value if value is not None else ""
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        assert self._re is not None
        hit = self._re.fullmatch(v) is not None
        return hit if self.op == "=~" else not hit


Stage = Callable[[str, dict[str, str], dict[str, str], dict[str, str]], bool]


@dataclass
class Query:
    matchers: list[Matcher]
    stages: list[tuple[str, object]] = field(default_factory=list)

    def stream_matches(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels.get(m.name)) for m in self.matchers)

    def run(
        self, line: str, labels: dict[str, str], sm: dict[str, str]
    ) -> tuple[bool, dict[str, str]]:
        """Apply the pipeline to one entry: (kept, parsed labels)."""
        parsed: dict[str, str] = {}
        for kind, arg in self.stages:
            if kind == "line":
                op, needle = arg  # type: ignore[misc]
                if op == "|=" and needle not in line:
                    return False, parsed
                if op == "!=" and needle in line:
                    return False, parsed
                if op == "|~" and not needle.search(line):
                    return False, parsed
                if op == "!~" and needle.search(line):
                    return False, parsed
            elif kind == "json":
                parsed.update(json_labels(line, labels, sm))
            elif kind == "label":
                m: Matcher = arg  # type: ignore[assignment]
                value = parsed.get(m.name, sm.get(m.name, labels.get(m.name)))
                if not m.matches(value):
                    return False, parsed
        return True, parsed


def json_labels(line: str, labels: dict[str, str], sm: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        doc = json.loads(line)
    except ValueError:
        out["__error__"] = "JSONParserErr"
        return out
    if not isinstance(doc, dict):
        out["__error__"] = "JSONParserErr"
        return out

    def walk(prefix: str, obj: dict[str, object]) -> None:
        for k, v in obj.items():
            name = re.sub(r"[^a-zA-Z0-9_]", "_", k)
            key = f"{prefix}_{name}" if prefix else name
            if isinstance(v, dict):
                walk(key, v)
            elif isinstance(v, list):
                continue
            else:
                if isinstance(v, bool):
                    s = "true" if v else "false"
                elif v is None:
                    s = ""
                elif isinstance(v, str):
                    s = v
                else:
                    s = json.dumps(v)
                if key in labels or key in sm:
                    key += "_extracted"
                out[key] = s

    walk("", doc)
    return out


_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def parse(query: str) -> Query:
    """A log query (stream selector and pipeline); anything else is a :class:`LogQLError`."""
    q, _ = _parse_log(query, 0, embedded=False)
    return q


def _syntax_error(i: int, msg: str) -> LogQLError:
    return LogQLError(f"parse error at line 1, col {i + 1}: syntax error: {msg}")


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _parse_log(text: str, i: int, *, embedded: bool) -> tuple[Query, int]:
    """The log query starting at ``text[i]``; ``embedded``: it ends at a ``[`` (the range of a
    range aggregation) instead of at the end of the text."""
    n = len(text)

    def err(msg: str) -> LogQLError:
        return _syntax_error(i, msg)

    def ws() -> None:
        nonlocal i
        i = _skip_ws(text, i)

    def op_at(ops: tuple[str, ...]) -> str | None:
        for op in ops:
            if text.startswith(op, i):
                return op
        return None

    def string() -> str:
        nonlocal i
        value, j = read_string(text, i)
        if value is None:
            raise err("unexpected character, expecting STRING")
        i = j
        return value

    ws()
    if i >= n or text[i] != "{":
        raise err("unexpected IDENTIFIER, expecting {")
    i += 1
    matchers: list[Matcher] = []
    while True:
        ws()
        if i < n and text[i] == "}" and not matchers:
            raise err("unexpected }")
        m = _NAME.match(text, i)
        if not m:
            raise err("unexpected character, expecting IDENTIFIER")
        i = m.end()
        ws()
        op = op_at(("=~", "!~", "!=", "="))
        if op is None:
            raise err("unexpected character, expecting = or =~ or != or !~")
        i += len(op)
        ws()
        matchers.append(Matcher(m.group(0), op, string()))
        ws()
        if i < n and text[i] == ",":
            i += 1
            continue
        if i < n and text[i] == "}":
            i += 1
            break
        raise err("unexpected $end, expecting } or ,")
    if all(mm.matches("") for mm in matchers):
        raise LogQLError(
            "parse error : queries require at least one regexp or equality matcher that "
            'does not have an empty-compatible value. For instance, app=~".*" does not meet '
            'this requirement, but app=~".+" will'
        )
    q = Query(matchers)
    while True:
        ws()
        if i >= n:
            if embedded:
                raise err("unexpected $end, expecting [ (a range, e.g. [1m])")
            break
        if embedded and text[i] == "[":
            break
        op = op_at(("|=", "|~", "!=", "!~"))
        if op is not None:
            i += 2
            ws()
            needle = string()
            if op in ("|~", "!~"):
                try:
                    q.stages.append(("line", (op, re.compile(needle))))
                except re.error as exc:
                    raise LogQLError(f"parse error : error parsing regexp: {exc}") from exc
            else:
                q.stages.append(("line", (op, needle)))
            continue
        if text[i] == "|":
            i += 1
            ws()
            m = _NAME.match(text, i)
            if not m:
                raise err("unexpected character after |")
            word = m.group(0)
            i = m.end()
            ws()
            if word == "json" and (i >= n or text[i] in "|!"):
                q.stages.append(("json", None))
                continue
            lop = op_at(("=~", "!~", "!=", "==", "="))
            if lop is None:
                raise err(f"unexpected IDENTIFIER {word!r}")
            i += len(lop)
            ws()
            q.stages.append(("label", Matcher(word, "=" if lop == "==" else lop, string())))
            continue
        raise err(f"unexpected character {text[i]!r}")
    return q, i


# --- metric queries ----------------------------------------------------------------------------
#
# What ``obskit audit`` sends: a vector aggregation (``sum``/``count``/``max``/``min`` with
# ``by (...)`` or ``without (...)`` before or after its argument) over a range aggregation
# (``count_over_time``/``rate``) of a log query with a range (``[1m]``). Evaluated as Loki's
# engine does (``pkg/logql/range_vector.go``): at each step ``t`` from ``start`` to ``end``
# (both included) the range selects the entries with ``t - range < ts <= t`` (the lower
# bound is not inclusive); a step whose range holds no entry has no point. A sample's labels
# are its stream labels plus structured metadata and parsed labels.

RANGE_FUNCTIONS = ("count_over_time", "rate")
VECTOR_OPS = ("sum", "count", "max", "min")
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_NS = {
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
    "w": 7 * 86400 * 10**9,
    "y": 365 * 86400 * 10**9,
}


@dataclass
class RangeAgg:
    fn: str
    log: Query
    range_ns: int


@dataclass
class VectorAgg:
    op: str
    grouping: tuple[str, ...] | None  # None: no grouping clause (one series)
    without: bool
    inner: RangeAgg | VectorAgg


Metric = RangeAgg | VectorAgg
Labels = tuple[tuple[str, str], ...]


def parse_expr(query: str) -> Query | Metric:
    """A log query or a metric query of the subset above."""
    text = query
    i = _skip_ws(text, 0)
    if text[i : i + 1] == "{":
        return parse(query)
    expr, i = _metric(text, i)
    i = _skip_ws(text, i)
    if i != len(text):
        raise _syntax_error(i, f"unexpected {text[i]!r}")
    return expr


def _metric(text: str, i: int) -> tuple[Metric, int]:
    n = len(text)

    def err(msg: str) -> LogQLError:
        return _syntax_error(i, msg)

    def ws() -> None:
        nonlocal i
        i = _skip_ws(text, i)

    def expect(ch: str) -> None:
        nonlocal i
        ws()
        if i >= n or text[i] != ch:
            raise err(f"unexpected {text[i] if i < n else '$end'!r}, expecting {ch}")
        i += 1

    def grouping() -> tuple[tuple[str, ...], bool] | None:
        nonlocal i
        ws()
        m = _NAME.match(text, i)
        if not m or m.group(0) not in ("by", "without"):
            return None
        i = m.end()
        expect("(")
        names: list[str] = []
        while True:
            ws()
            if i < n and text[i] == ")":
                i += 1
                break
            lm = _NAME.match(text, i)
            if not lm:
                raise err("unexpected character in grouping, expecting IDENTIFIER")
            names.append(lm.group(0))
            i = lm.end()
            ws()
            if i < n and text[i] == ",":
                i += 1
        return tuple(names), m.group(0) == "without"

    ws()
    m = _NAME.match(text, i)
    if not m:
        raise err("unexpected character, expecting IDENTIFIER or {")
    word = m.group(0)
    i = m.end()
    if word in VECTOR_OPS:
        group = grouping()
        expect("(")
        inner, i = _metric(text, i)
        expect(")")
        if group is None:
            group = grouping()
        names, without = group if group is not None else (None, False)
        return VectorAgg(word, names, without, inner), i
    if word in RANGE_FUNCTIONS:
        expect("(")
        ws()
        log, i = _parse_log(text, i, embedded=True)
        expect("[")
        close = text.find("]", i)
        if close < 0:
            raise err("unexpected $end, expecting ]")
        rng = text[i:close].strip()
        total, pos = 0, 0
        for dm in _DURATION.finditer(rng):
            if dm.start() != pos:
                break
            total += int(dm.group(1)) * _UNIT_NS[dm.group(2)]
            pos = dm.end()
        if pos != len(rng) or total <= 0:
            raise err(f"invalid range {rng!r}")
        i = close + 1
        expect(")")
        return RangeAgg(word, log, total), i
    raise err(f"unexpected IDENTIFIER {word!r}")


def selector_of(expr: Metric) -> Query:
    """The log query at the bottom of a metric query."""
    while isinstance(expr, VectorAgg):
        expr = expr.inner
    return expr.log


def range_of(expr: Metric) -> int:
    while isinstance(expr, VectorAgg):
        expr = expr.inner
    return expr.range_ns


Sample = tuple[int, dict[str, str]]  # (entry timestamp, the sample's labels)


def evaluate(
    expr: Metric, samples: list[Sample], start: int, end: int, step: int
) -> dict[Labels, dict[int, float]]:
    """Series -> {step time (ns): value} for ``samples``, the entries that passed the log
    query (any order), at steps ``start, start + step, ..., <= end``."""
    if isinstance(expr, RangeAgg):
        out: dict[Labels, dict[int, float]] = {}
        for ts, labels in samples:
            # The steps t whose range (t - range, t] holds ts: ts <= t < ts + range.
            k = max(0, -(-(ts - start) // step))
            t = start + k * step
            if t < ts:
                t += step
            key = tuple(sorted(labels.items()))
            while t <= end and t < ts + expr.range_ns:
                pts = out.setdefault(key, {})
                pts[t] = pts.get(t, 0.0) + 1.0
                t += step
        if expr.fn == "rate":
            secs = expr.range_ns / 1e9
            for pts in out.values():
                for t in pts:
                    pts[t] /= secs
        return out
    inner = evaluate(expr.inner, samples, start, end, step)
    groups: dict[Labels, dict[int, list[float]]] = {}
    for key, pts in inner.items():
        lbls = dict(key)
        if expr.grouping is None:
            kept: Labels = ()
        elif expr.without:
            kept = tuple((k, v) for k, v in key if k not in expr.grouping)
        else:
            kept = tuple(sorted((k, lbls[k]) for k in expr.grouping if lbls.get(k)))
        g = groups.setdefault(kept, {})
        for t, v in pts.items():
            g.setdefault(t, []).append(v)
    agg = {"sum": sum, "count": len, "max": max, "min": min}[expr.op]
    return {key: {t: float(agg(vs)) for t, vs in pts.items()} for key, pts in groups.items()}
