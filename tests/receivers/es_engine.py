"""The storage and query half of the in-process Elasticsearch receiver (no HTTP here).

It follows Elasticsearch 8's documented behaviour closely enough that a client which works
here behaves correctly against a real cluster:

* indices with dynamic mapping (``keyword``/``text``+``.keyword``/``long``/``float``/
  ``boolean``/``date``/``object``), so a field that was a keyword and then receives an object
  fails with ``document_parsing_exception`` exactly where Elasticsearch would;
* composable index templates (+ component templates), highest ``priority`` wins, and two
  templates with overlapping patterns and the same priority are refused;
* data streams: a ``create`` into a name matched by a template with ``data_stream: {}``
  creates the stream and its backing index ``.ds-<name>-<yyyy.MM.dd>-000001``; documents need
  ``@timestamp``; ``index`` ops are refused ("only write ops with an op_type of create are
  allowed in data streams");
* the built-in ``logs`` template (``logs-*-*``, priority 100, strings mapped as keyword,
  ``message`` as ``match_only_text``, ``date_detection`` off), like Elasticsearch 8;
  OpenSearch has no such built-in template;
* search with ``term``/``terms``/``match``/``range``/``bool``/``exists``/``ids``/
  ``match_all``, multi-field ``sort`` with ``_doc``/``_shard_doc`` tiebreakers,
  ``search_after``, ``track_total_hits``, ``index.max_result_window`` (10,000) and point in
  time snapshots.

Documents are visible to search as soon as they are indexed (a real cluster needs a refresh,
every second by default).
"""

from __future__ import annotations

import base64
import calendar
import fnmatch
import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

MAX_RESULT_WINDOW = 10_000

Json = dict[str, Any]


class EsError(Exception):
    """An error answered as Elasticsearch does: ``{"error": {...}, "status": N}``."""

    def __init__(
        self,
        status: int,
        etype: str,
        reason: str,
        caused_by: Json | None = None,
        wrap: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.etype = etype
        self.reason = reason
        self.caused_by = caused_by
        self.wrap = wrap
        self.extra = extra

    def cause(self) -> Json:
        """The ``error`` object of a bulk item or of a request."""
        err: Json = {"type": self.etype, "reason": self.reason, **self.extra}
        if self.caused_by:
            err["caused_by"] = self.caused_by
        return err

    def body(self) -> Json:
        root = {"type": self.etype, "reason": self.reason, **self.extra}
        err: Json = {"root_cause": [root], **self.cause()}
        if self.wrap:
            # Search-phase failures are wrapped the way Elasticsearch reports them.
            err = {
                "root_cause": [root],
                "type": self.wrap,
                "reason": "all shards failed",
                "phase": "query",
                "grouped": True,
                "failed_shards": [],
                "caused_by": self.cause(),
            }
        return {"error": err, "status": self.status}


# --------------------------------------------------------------------------------- dates

_DATE_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?)?"
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)?$"
)
_NOW_RE = re.compile(r"^now(?:([+-])(\d+)([smhdw]))?(?:/([smhd]))?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_date_ns(value: Any) -> int:
    """Unix nanoseconds from an ISO 8601 string (``strict_date_optional_time_nanos``), an
    epoch-millis number, or simple date math (``now-24h``). Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"cannot parse date [{value}]")
    if isinstance(value, (int, float)):
        return int(value * 1_000_000)
    if not isinstance(value, str):
        raise ValueError(f"cannot parse date [{value}]")
    m = _NOW_RE.match(value)
    if m:
        now = time.time_ns()
        if m.group(1):
            delta = int(m.group(2)) * _UNITS[m.group(3)] * 1_000_000_000
            now = now + delta if m.group(1) == "+" else now - delta
        if m.group(4):
            unit = _UNITS[m.group(4)] * 1_000_000_000
            now -= now % unit
        return now
    if value.isdigit():
        return int(value) * 1_000_000
    m = _DATE_RE.match(value)
    if not m:
        raise ValueError(
            f"failed to parse date field [{value}] with format [strict_date_optional_time]"
        )
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    try:
        secs = calendar.timegm(
            (int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), 0, 0, 0)
        )
        if not (1 <= int(mo) <= 12 and 1 <= int(d) <= calendar.monthrange(int(y), int(mo))[1]):
            raise ValueError
        if int(hh or 0) > 23 or int(mi or 0) > 59 or int(ss or 0) > 59:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"failed to parse date field [{value}] with format [strict_date_optional_time]"
        ) from None
    ns = secs * 1_000_000_000 + int((frac or "0").ljust(9, "0"))
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        off = int(digits[:2]) * 3600 + int(digits[2:4] or 0) * 60
        ns -= sign * off * 1_000_000_000
    return ns


def format_date_ns(ns: int, nanos: bool) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return f"{base}.{frac:09d}Z" if nanos else f"{base}.{frac // 1_000_000:03d}Z"


# ------------------------------------------------------------------------------ mappings


@dataclass
class FieldMap:
    type: str
    keyword_sub: bool = False  # text fields from dynamic mapping get a ``.keyword`` subfield
    value: Any = None  # constant_keyword value
    ignore_malformed: bool = False


@dataclass
class Mapping:
    """Flat view of an index mapping: dotted path -> field."""

    fields: dict[str, FieldMap] = field(default_factory=dict)
    dynamic_string: str = "text"  # "text" (+ .keyword) or "keyword" (ECS dynamic template)
    date_detection: bool = True

    def merge(self, mappings: Json) -> None:
        """Apply a template/PUT mapping body (``properties``, ``dynamic_templates``...)."""
        if "date_detection" in mappings:
            self.date_detection = bool(mappings["date_detection"])
        for dt in mappings.get("dynamic_templates", []):
            for spec in dt.values():
                if spec.get("match_mapping_type") == "string" and "match" not in spec:
                    mtype = spec.get("mapping", {}).get("type")
                    if mtype in ("keyword", "text"):
                        self.dynamic_string = mtype
        self._merge_props("", mappings.get("properties", {}))

    def _merge_props(self, prefix: str, props: Json) -> None:
        for name, spec in props.items():
            path = prefix + name
            if "properties" in spec and spec.get("type", "object") == "object":
                self.fields[path] = FieldMap("object")
                self._merge_props(path + ".", spec["properties"])
            else:
                ftype = spec.get("type", "object")
                fm = FieldMap(
                    ftype,
                    value=spec.get("value"),
                    ignore_malformed=bool(spec.get("ignore_malformed", False)),
                )
                if ftype == "text" and "keyword" in spec.get("fields", {}):
                    fm.keyword_sub = True
                self.fields[path] = fm

    def to_json(self) -> Json:
        root: Json = {}
        for path, fm in sorted(self.fields.items()):
            node = root
            parts = path.split(".")
            for p in parts[:-1]:
                node = node.setdefault(p, {"properties": {}})["properties"]
            spec: Json = {"type": fm.type} if fm.type != "object" else {"properties": {}}
            if fm.keyword_sub:
                spec["fields"] = {"keyword": {"type": "keyword", "ignore_above": 256}}
            if fm.value is not None:
                spec["value"] = fm.value
            node.setdefault(parts[-1], spec).update(
                {k: v for k, v in spec.items() if k != "properties"}
            )
        return {"properties": root}


def _preview(value: Any) -> str:
    """Java's ``Map.toString`` style preview, as in Elasticsearch's error reasons."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_preview(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_preview(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _parse_error(path: str, ftype: str, doc_id: str, value: Any, cause: Json | None) -> EsError:
    return EsError(
        400,
        "document_parsing_exception",
        f"[1:2] failed to parse field [{path}] of type [{ftype}] in document with id "
        f"'{doc_id}'. Preview of field's value: '{_preview(value)}'",
        caused_by=cause,
    )


def _check_value(path: str, fm: FieldMap, value: Any, doc_id: str) -> None:
    t = fm.type
    if t in ("keyword", "text", "match_only_text", "wildcard"):
        return
    if t == "constant_keyword":
        if fm.value is not None and value != fm.value:
            raise EsError(
                400,
                "document_parsing_exception",
                f"[1:2] failed to parse field [{path}] of type [constant_keyword] in document "
                f"with id '{doc_id}'. Preview of field's value: '{value}'",
                caused_by={
                    "type": "illegal_argument_exception",
                    "reason": f"[constant_keyword] field [{path}] only accepts values that are "
                    f"equal to the value defined in the mappings [{fm.value}], "
                    f"but got [{value}]",
                },
            )
        return
    if t in ("long", "integer", "short", "float", "double", "scaled_float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(value, str):
            try:
                float(value)
                ok = True
            except ValueError:
                ok = False
        if not ok:
            raise _parse_error(
                path,
                t,
                doc_id,
                value,
                {"type": "illegal_argument_exception", "reason": f'For input string: "{value}"'},
            )
        return
    if t == "boolean":
        if not (isinstance(value, bool) or value in ("true", "false", "")):
            raise _parse_error(
                path,
                t,
                doc_id,
                value,
                {
                    "type": "illegal_argument_exception",
                    "reason": f"Failed to parse value [{value}] as only [true] or [false] "
                    "are allowed.",
                },
            )
        return
    if t in ("date", "date_nanos"):
        try:
            ns = parse_date_ns(value)
            if t == "date_nanos" and ns < 0:
                raise ValueError(
                    f"date[{value}] is before the epoch in 1970 and cannot be stored in "
                    "nanosecond resolution"
                )
        except ValueError as exc:
            if fm.ignore_malformed:
                return
            raise _parse_error(
                path, t, doc_id, value, {"type": "illegal_argument_exception", "reason": str(exc)}
            ) from None


def _infer(mapping: Mapping, value: Any) -> FieldMap:
    if isinstance(value, bool):
        return FieldMap("boolean")
    if isinstance(value, int):
        return FieldMap("long")
    if isinstance(value, float):
        return FieldMap("float")
    if isinstance(value, str) and mapping.date_detection:
        try:
            if _DATE_RE.match(value):
                parse_date_ns(value)
                return FieldMap("date")
        except ValueError:
            pass
    if mapping.dynamic_string == "keyword":
        return FieldMap("keyword")
    return FieldMap("text", keyword_sub=True)


def apply_mapping(mapping: Mapping, source: Json, doc_id: str) -> dict[str, FieldMap]:
    """Check ``source`` against ``mapping``; return the new dynamic fields (not yet added)."""
    new: dict[str, FieldMap] = {}

    def known(path: str) -> FieldMap | None:
        return new.get(path) or mapping.fields.get(path)

    def walk(prefix: str, obj: Json) -> None:
        for key, value in obj.items():
            path = prefix + key
            if "." in key:
                # Dotted keys are objects in Elasticsearch: a.b == {"a": {"b": ...}}.
                head, _, rest = key.partition(".")
                walk(prefix, {head: {rest: value}})
                continue
            values = value if isinstance(value, list) else [value]
            for v in values:
                leaf(path, key, v)

    def leaf(path: str, key: str, v: Any) -> None:
        if v is None:
            return
        fm = known(path)
        if isinstance(v, dict):
            if fm is not None and fm.type not in ("object", "flattened"):
                raise _parse_error(
                    path,
                    fm.type,
                    doc_id,
                    v,
                    {
                        "type": "illegal_state_exception",
                        "reason": "Can't get text on a START_OBJECT at 1:2",
                    },
                )
            if fm is None:
                new[path] = FieldMap("object")
            if fm is None or fm.type == "object":
                walk(path + ".", v)
            return
        if isinstance(v, list):
            for item in v:
                leaf(path, key, item)
            return
        if fm is not None and fm.type == "object":
            raise EsError(
                400,
                "document_parsing_exception",
                f"[1:2] object mapping for [{path}] tried to parse field [{key}] as object, "
                "but found a concrete value",
            )
        if fm is None:
            fm = _infer(mapping, v)
            if fm.type == "constant_keyword":
                fm.value = v
            new[path] = fm
            return
        if fm.type == "constant_keyword" and fm.value is None:
            new[path] = FieldMap("constant_keyword", value=v)
            return
        _check_value(path, fm, v, doc_id)

    walk("", source)
    return new


def get_values(source: Json, path: str) -> list[Any]:
    """All values at dotted ``path`` (objects and dotted keys both), arrays flattened."""
    out: list[Any] = []

    def rec(node: Any, parts: list[str]) -> None:
        if isinstance(node, list):
            for n in node:
                rec(n, parts)
            return
        if not parts:
            if node is not None:
                out.append(node)
            return
        if not isinstance(node, dict):
            return
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i])
            if key in node:
                rec(node[key], parts[i:])

    rec(source, path.split("."))
    return out


# --------------------------------------------------------------------------- the cluster


@dataclass
class Doc:
    id: str
    source: Json
    seq_no: int
    version: int = 1


@dataclass
class Index:
    name: str
    uuid: str
    mapping: Mapping
    data_stream: str | None = None
    docs: list[Doc | None] = field(default_factory=list)  # position = Lucene doc id
    by_id: dict[str, int] = field(default_factory=dict)
    created_ns: int = field(default_factory=time.time_ns)


@dataclass
class DataStream:
    name: str
    template: str
    indices: list[str]
    generation: int = 1


@dataclass
class Pit:
    indices: dict[str, int]  # index name -> number of doc slots visible
    expires: float
    keep_alive: str


BUILTIN_LOGS_TEMPLATE: Json = {
    "index_patterns": ["logs-*-*"],
    "priority": 100,
    "data_stream": {"hidden": False, "allow_custom_routing": False},
    "composed_of": ["logs@mappings", "logs@settings", "logs@custom", "ecs@mappings"],
    "ignore_missing_component_templates": ["logs@custom"],
    "allow_auto_create": True,
    "_meta": {"description": "default logs template installed by x-pack", "managed": True},
}
BUILTIN_COMPONENTS: dict[str, Json] = {
    "logs@mappings": {
        "template": {
            "mappings": {
                "date_detection": False,
                "properties": {
                    "@timestamp": {"type": "date"},
                    "message": {"type": "match_only_text"},
                    "data_stream": {
                        "properties": {
                            "type": {"type": "constant_keyword", "value": "logs"},
                            "dataset": {"type": "constant_keyword"},
                            "namespace": {"type": "constant_keyword"},
                        }
                    },
                },
            }
        }
    },
    "logs@settings": {"template": {"settings": {"index": {"codec": "best_compression"}}}},
    "ecs@mappings": {
        "template": {
            "mappings": {
                "dynamic_templates": [
                    {
                        "all_strings_to_keywords": {
                            "match_mapping_type": "string",
                            "mapping": {"ignore_above": 1024, "type": "keyword"},
                        }
                    }
                ]
            }
        }
    },
}

_INVALID_NAME_CHARS = set('\\/*?"<>| ,#:')


def _uid() -> str:
    return base64.urlsafe_b64encode(time.time_ns().to_bytes(8, "big") + next(_UIDS)).decode()[:22]


_UIDS = (i.to_bytes(8, "big") for i in itertools.count())


class Cluster:
    """All state of one fake cluster. Thread-safe: every public method takes the lock."""

    def __init__(self, flavor: str = "elasticsearch") -> None:
        self.flavor = flavor
        self.lock = threading.RLock()
        self.indices: dict[str, Index] = {}
        self.data_streams: dict[str, DataStream] = {}
        self.index_templates: dict[str, Json] = {}
        self.component_templates: dict[str, Json] = {}
        self.pits: dict[str, Pit] = {}
        #: ``search.max_buckets``: Elasticsearch 8's default; OpenSearch's is 65,535.
        self.max_buckets = 65_536 if flavor == "elasticsearch" else 65_535
        self._seq = itertools.count()
        self._auto_ids = itertools.count(1)
        if flavor == "elasticsearch":
            self.index_templates["logs"] = dict(BUILTIN_LOGS_TEMPLATE)
            self.component_templates.update(BUILTIN_COMPONENTS)
        self.docs_stored = 0
        self.duplicates_prevented = 0

    # ---------------------------------------------------------------- templates

    def _check_mappings(self, mappings: Json) -> None:
        """OpenSearch's constant_keyword requires ``value`` (Elasticsearch's does not)."""
        if self.flavor != "opensearch":
            return

        def walk(props: Json) -> None:
            for name, spec in props.items():
                if spec.get("type") == "constant_keyword" and "value" not in spec:
                    raise EsError(
                        400,
                        "mapper_parsing_exception",
                        "Failed to parse mapping [_doc]: Field [" + name + "] is missing "
                        "required parameter [value]",
                    )
                walk(spec.get("properties", {}))

        walk(mappings.get("properties", {}))

    def put_component_template(self, name: str, body: Json) -> None:
        if "template" not in body:
            raise EsError(400, "x_content_parse_exception", "[1:2] Required [template]")
        self._check_mappings(body["template"].get("mappings", {}))
        with self.lock:
            self.component_templates[name] = body

    def put_index_template(self, name: str, body: Json) -> None:
        patterns = body.get("index_patterns")
        if isinstance(patterns, str):
            patterns = [patterns]
        if not patterns:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: index patterns are missing;",
            )
        self._check_mappings(body.get("template", {}).get("mappings", {}))
        with self.lock:
            ignore = set(body.get("ignore_missing_component_templates", []))
            missing = [
                c
                for c in body.get("composed_of", [])
                if c not in self.component_templates and c not in ignore
            ]
            if missing:
                raise EsError(
                    400,
                    "invalid_index_template_exception",
                    f"index_template [{name}] invalid, cause [index template [{name}] specifies "
                    f"component templates {missing} that do not exist]",
                )
            prio = body.get("priority", 0)
            for other, ob in self.index_templates.items():
                if other == name or ob.get("priority", 0) != prio:
                    continue
                overlap = [
                    p
                    for p in patterns
                    for q in ob["index_patterns"]
                    if fnmatch.fnmatchcase(p, q) or fnmatch.fnmatchcase(q, p)
                ]
                if overlap:
                    raise EsError(
                        400,
                        "illegal_argument_exception",
                        f"index template [{name}] has index patterns {patterns} matching "
                        f"patterns from existing templates [{other}] with patterns ({other} => "
                        f"{ob['index_patterns']}) that have the same priority [{prio}], multiple "
                        "index templates may not match during index creation, please use a "
                        "different priority",
                    )
            stored = dict(body)
            stored["index_patterns"] = list(patterns)
            self.index_templates[name] = stored

    def find_template(self, index: str) -> tuple[str, Json] | None:
        best: tuple[str, Json] | None = None
        for name, t in self.index_templates.items():
            if any(fnmatch.fnmatchcase(index, p) for p in t["index_patterns"]) and (
                best is None or t.get("priority", 0) > best[1].get("priority", 0)
            ):
                best = (name, t)
        return best

    def _mapping_for(self, template: Json | None) -> Mapping:
        m = Mapping()
        if template is None:
            return m
        for comp in template.get("composed_of", []):
            ct = self.component_templates.get(comp)
            if ct:
                m.merge(ct.get("template", {}).get("mappings", {}))
        m.merge(template.get("template", {}).get("mappings", {}))
        return m

    # ------------------------------------------------------------------ indices

    @staticmethod
    def validate_name(name: str) -> None:
        reason = None
        if name != name.lower():
            reason = "must be lowercase"
        elif any(c in _INVALID_NAME_CHARS for c in name):
            reason = 'must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?]'
        elif name.startswith(("-", "_", "+")):
            reason = "must not start with '_', '-', or '+'"
        elif not name or len(name.encode()) > 255:
            reason = "index name is too long"
        if reason:
            raise EsError(
                400,
                "invalid_index_name_exception",
                f"Invalid index name [{name}], {reason}",
                index=name,
            )

    def _write_index(self, target: str, op: str) -> Index:
        """The concrete index a write to ``target`` goes to, auto-creating it."""
        ds = self.data_streams.get(target)
        if ds is not None:
            if op != "create":
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    "only write ops with an op_type of create are allowed in data streams",
                )
            return self.indices[ds.indices[-1]]
        idx = self.indices.get(target)
        if idx is not None:
            return idx
        self.validate_name(target)
        found = self.find_template(target)
        template = found[1] if found else None
        if template is not None and "data_stream" in template:
            if op != "create":
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    "only write ops with an op_type of create are allowed in data streams",
                )
            assert found is not None
            day = time.strftime("%Y.%m.%d", time.gmtime())
            backing = f".ds-{target}-{day}-000001"
            self.data_streams[target] = DataStream(target, found[0], [backing])
            idx = Index(backing, _uid(), self._mapping_for(template), data_stream=target)
            self.indices[backing] = idx
            return idx
        idx = Index(target, _uid(), self._mapping_for(template))
        self.indices[target] = idx
        return idx

    def create_index(self, name: str, body: Json) -> None:
        with self.lock:
            if name in self.indices or name in self.data_streams:
                raise EsError(
                    400,
                    "resource_already_exists_exception",
                    f"index [{name}/{self.indices[name].uuid if name in self.indices else '_'}] "
                    "already exists",
                    index=name,
                )
            self.validate_name(name)
            found = self.find_template(name)
            idx = Index(name, _uid(), self._mapping_for(found[1] if found else None))
            idx.mapping.merge(body.get("mappings", {}))
            self.indices[name] = idx

    def delete(self, name: str) -> bool:
        with self.lock:
            hit = False
            for n in self.resolve(name, data_streams=True):
                self.indices.pop(n, None)
                hit = True
            for ds in [d for d in self.data_streams if fnmatch.fnmatchcase(d, name)]:
                for n in self.data_streams.pop(ds).indices:
                    self.indices.pop(n, None)
                hit = True
            return hit

    # ------------------------------------------------------------------- writes

    def write(self, op: str, target: str, doc_id: str | None, source: Json) -> Json:
        """One bulk item; returns the item result (``status`` included) or raises EsError."""
        with self.lock:
            idx = self._write_index(target, op)
            auto_id = doc_id is None
            if doc_id is None:
                doc_id = _uid()
            if idx.data_stream is not None:
                ts = get_values(source, "@timestamp")
                if not ts:
                    raise EsError(
                        400,
                        "document_parsing_exception",
                        "[1:2] failed to parse: data stream timestamp field [@timestamp] is "
                        "missing",
                        caused_by={
                            "type": "illegal_argument_exception",
                            "reason": "data stream timestamp field [@timestamp] is missing",
                        },
                    )
            pos = None if auto_id else idx.by_id.get(doc_id)
            if pos is not None and op == "create":
                self.duplicates_prevented += 1
                cur = idx.docs[pos]
                assert cur is not None
                raise EsError(
                    409,
                    "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, document already exists (current version "
                    f"[{cur.version}])",
                    index_uuid=idx.uuid,
                    shard="0",
                    index=idx.name,
                )
            new_fields = apply_mapping(idx.mapping, source, doc_id)
            idx.mapping.fields.update(new_fields)
            seq_no = next(self._seq)
            if pos is not None:
                old = idx.docs[pos]
                assert old is not None
                idx.docs[pos] = None  # the old version is deleted; the new one appended
                version = old.version + 1
                result, status = "updated", 200
            else:
                version, result, status = 1, "created", 201
                self.docs_stored += 1
            idx.by_id[doc_id] = len(idx.docs)
            idx.docs.append(Doc(doc_id, source, seq_no, version))
            return {
                "_index": idx.name,
                "_id": doc_id,
                "_version": version,
                "result": result,
                "_shards": {"total": 2, "successful": 1, "failed": 0},
                "_seq_no": seq_no,
                "_primary_term": 1,
                "status": status,
            }

    def delete_doc(self, target: str, doc_id: str) -> Json:
        """``DELETE /<index>/_doc/<id>``. A data stream must be addressed through its
        backing index, as in Elasticsearch."""
        with self.lock:
            if target in self.data_streams:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"index request with op_type=delete and no if_primary_term and if_seq_no "
                    f"set targeting data stream [{target}]: only write ops with an op_type of "
                    "create are allowed in data streams",
                )
            idx = self.indices.get(target)
            if idx is None:
                raise EsError(
                    404, "index_not_found_exception", f"no such index [{target}]", index=target
                )
            pos = idx.by_id.pop(doc_id, None)
            seq_no = next(self._seq)
            out: Json = {
                "_index": idx.name,
                "_id": doc_id,
                "_seq_no": seq_no,
                "_primary_term": 1,
                "_shards": {"total": 2, "successful": 1, "failed": 0},
            }
            if pos is None:
                return {**out, "_version": 1, "result": "not_found", "status": 404}
            doc = idx.docs[pos]
            assert doc is not None
            idx.docs[pos] = None
            return {**out, "_version": doc.version + 1, "result": "deleted", "status": 200}

    # ------------------------------------------------------------------- reads

    def resolve(self, expr: str, data_streams: bool = True) -> list[str]:
        """Concrete index names for ``a,b,logs-*`` (data streams expand to backing indices).
        A missing concrete name raises index_not_found_exception; wildcards may match none."""
        out: list[str] = []
        for part in [p for p in expr.split(",") if p]:
            if part in ("_all", "*"):
                part = "*"
            if "*" in part or "?" in part:
                for ds in self.data_streams.values():
                    if data_streams and fnmatch.fnmatchcase(ds.name, part):
                        out.extend(ds.indices)
                for name in self.indices:
                    # Hidden (dot) indices only match patterns that start with a dot.
                    if name.startswith(".") and not part.startswith("."):
                        continue
                    if fnmatch.fnmatchcase(name, part):
                        out.append(name)
            elif part in self.data_streams:
                out.extend(self.data_streams[part].indices)
            elif part in self.indices:
                out.append(part)
            else:
                raise EsError(
                    404,
                    "index_not_found_exception",
                    f"no such index [{part}]",
                    resource_type="index_or_alias",
                    resource_id=part,
                    index=part,
                )
        return list(dict.fromkeys(out))

    def open_pit(self, expr: str, keep_alive: str) -> str:
        with self.lock:
            names = self.resolve(expr)
            pid = base64.urlsafe_b64encode(f"pit:{_uid()}:{expr}".encode()).decode()
            self.pits[pid] = Pit(
                {n: len(self.indices[n].docs) for n in names},
                time.monotonic() + parse_keep_alive(keep_alive),
                keep_alive,
            )
            return pid

    def close_pit(self, pid: str) -> bool:
        with self.lock:
            return self.pits.pop(pid, None) is not None

    def get_pit(self, pid: str, keep_alive: str | None) -> Pit:
        with self.lock:
            pit = self.pits.get(pid)
            if pit is None or pit.expires < time.monotonic():
                self.pits.pop(pid, None)
                raise EsError(
                    404,
                    "search_context_missing_exception",
                    "No search context found for id [1]",
                    wrap="search_phase_execution_exception",
                )
            if keep_alive:
                pit.expires = time.monotonic() + parse_keep_alive(keep_alive)
            return pit


def parse_keep_alive(value: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", value or "")
    if not m:
        raise EsError(
            400,
            "illegal_argument_exception",
            f"failed to parse setting [keep_alive] with value [{value}] as a time value: unit "
            "is missing or unrecognized",
        )
    n = int(m.group(1))
    return (
        n / 1000 if m.group(2) == "ms" else n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    )
