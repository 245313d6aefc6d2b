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
    text = query
    i, n = 0, len(text)

    def err(msg: str) -> LogQLError:
        return LogQLError(f"parse error at line 1, col {i + 1}: syntax error: {msg}")

    def ws() -> None:
        nonlocal i
        while i < n and text[i] in " \t\r\n":
            i += 1

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
    return q
