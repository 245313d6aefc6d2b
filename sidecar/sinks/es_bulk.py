"""Building ``_bulk`` bodies and reading their responses, without a client library.

Per line the work is bytes concatenation: the shipped line is already a JSON object, so the
document is the line with ``@timestamp`` (and this sidecar's static fields) spliced in after
its opening brace. Only a line that already has one of the spliced keys is decoded and
re-encoded, so the document never has a duplicate key (which Elasticsearch rejects).
"""

from __future__ import annotations

import binascii
import hashlib
import re
import time

import msgspec
import orjson

from obskit.schema import timestamp_ns
from obskit.schema.record import Record, without_leap_second
from sidecar.enrich import Enrichment, KeyProbe, encode_object, own_fields
from sidecar.sinks.base import LineId


def doc_id(line: LineId) -> str:
    """The ``_id`` of a line: ``<12 chars>.<offset>``, the first 9 bytes of BLAKE2b over its
    file's id key, URL-safe base64, then the line's byte offset in decimal.

    The same line gets the same id after any retry or restart, so a ``create`` of a line
    Elasticsearch already holds answers 409 instead of storing a duplicate. Lines of one file
    differ by offset; two files share a prefix only if 72-bit hashes of their keys collide
    (about 1 in 10^10 for a million files). Hashing once per file and not per line keeps this
    cheap."""
    return (_file_prefix(line.key) + str(line.offset).encode()).decode()


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _file_prefix(file_key: str) -> bytes:
    digest = hashlib.blake2b(file_key.encode(), digest_size=9).digest()
    return binascii.b2a_base64(digest, newline=False).translate(_URLSAFE) + b"."


_DATASET_BAD = re.compile(r"[^a-z0-9_.]")


def dataset_name(service: str) -> str:
    """``service`` as a data stream dataset: lower case, ``-`` and characters not allowed in
    index names replaced with ``_`` (the data stream naming scheme reserves ``-`` as the
    separator of ``<type>-<dataset>-<namespace>``; Elasticsearch's reroute processor does
    the same)."""
    return _DATASET_BAD.sub("_", service.lower()) or "unknown"


class TargetResolver:
    """Index or data stream name for a record, cached (names are few, lines are many).

    ``template`` may use ``{service}``, ``{dataset}`` and ``{namespace}``; in index mode
    also ``strftime`` codes (``%Y.%m.%d``) expanded from the record's timestamp in UTC.
    """

    def __init__(self, template: str, namespace: str) -> None:
        self.template = template
        self.namespace = namespace
        self.dated = "%" in template
        self._cache: dict[tuple[str, int], str] = {}
        self._plain: dict[str, str] = {}

    def __call__(self, record: Record) -> str:
        if not self.dated:
            name = self._plain.get(record.service)
            if name is None:
                name = self._plain[record.service] = self._resolve(record)
            return name
        return self._resolve(record)

    def _resolve(self, record: Record) -> str:
        hour = timestamp_ns(record.timestamp) // 3_600_000_000_000 if self.dated else 0
        key = (record.service, hour)
        name = self._cache.get(key)
        if name is None:
            ds = dataset_name(record.service)
            name = self.template.format(service=ds, dataset=ds, namespace=self.namespace)
            if self.dated:
                name = time.strftime(name, time.gmtime(hour * 3600))
            name = name.lower()
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = name
        return name


def _json_str(value: str) -> bytes:
    return orjson.dumps(value)


def at_timestamp(ts: str) -> bytes:
    """``@timestamp`` for a schema timestamp, JSON-quoted. A leap second (``23:59:60``, valid
    RFC 3339 but refused by Elasticsearch's date parser) becomes the last nanosecond of the
    minute, so the line is stored rather than rejected; ``timestamp`` keeps the original."""
    return orjson.dumps(without_leap_second(ts))


_ID_TAIL_TS = b'"}}\n{"@timestamp":'


class DocumentBuilder:
    """Turns one shipped line into ``action\nsource\n`` bytes."""

    def __init__(
        self,
        target: TargetResolver,
        op_type: str,
        static: dict[str, str],
        data_stream: bool,
        namespace: str,
    ) -> None:
        self.target = target
        self.op_type = op_type
        self.static = dict(static)
        self.data_stream = data_stream
        self.namespace = namespace
        #: index -> (action line up to the id, fields spliced after @timestamp)
        self._per_index: dict[str, tuple[bytes, bytes]] = {}
        self._extra: dict[str, bytes] = {}
        self._files: dict[str, bytes] = {}
        self._static_frag = b"".join(
            _json_str(k) + b":" + _json_str(v) + b"," for k, v in self.static.items()
        )
        self.enrichment = Enrichment(self.static)
        keys = ["@timestamp", *self.static]
        if data_stream:
            keys.append("data_stream")
        # The fields spliced in must not be in the line already (Elasticsearch refuses
        # duplicate keys): the probe says so without decoding the line.
        probe = KeyProbe(keys)
        self._spliced_keys = (probe.decode, probe.empty)

    def _index_parts(self, index: str) -> tuple[bytes, bytes]:
        prefix = b'{"' + self.op_type.encode() + b'":{"_index":' + _json_str(index) + b',"_id":"'
        extra = b""
        if self.data_stream and index.count("-") >= 2:
            # The data stream fields of the naming scheme <type>-<dataset>-<namespace>;
            # Kibana filters on them and the built-in logs template maps them as
            # constant_keyword (so they must match the stream's name exactly).
            dtype, rest = index.split("-", 1)
            dataset, namespace = rest.rsplit("-", 1)
            fields = {"type": dtype, "dataset": dataset, "namespace": namespace}
            extra = b'"data_stream":' + orjson.dumps(fields) + b","
        self._extra[index] = extra
        parts = (prefix, extra + self._static_frag)
        self._per_index[index] = parts
        return parts

    def _id(self, key: str, offset: int) -> bytes:
        fp = self._files.get(key)
        if fp is None:
            fp = self._files[key] = _file_prefix(key)
        return fp + str(offset).encode()

    def item(self, line: bytes, record: Record, key: str, offset: int) -> bytes:
        """The bulk item (action line + document line, each ending in a newline) of the line
        at ``offset`` in the file with id key ``key``."""
        index = self.target(record)
        prefix, spliced = self._per_index.get(index) or self._index_parts(index)
        ident = self._id(key, offset)
        body = line.strip()
        decode, empty = self._spliced_keys
        try:
            clash = decode(body) != empty
        except msgspec.DecodeError:
            clash = False  # not for us to judge: Elasticsearch answers for this item
        if clash:
            return b"".join((prefix, ident, b'"}}\n', self._merged(body, record, index), b"\n"))
        rest = body[1:]
        first = rest[:1]
        if first == b"}" or (first.isspace() and rest.lstrip()[:1] == b"}"):
            # An empty object: no comma after the spliced fields.
            head = b'{"@timestamp":' + at_timestamp(record.timestamp) + b"," + spliced
            return b"".join((prefix, ident, b'"}}\n', head[:-1], b"}\n"))
        return b"".join(
            (prefix, ident, _ID_TAIL_TS, at_timestamp(record.timestamp), b",", spliced, rest, b"\n")
        )

    def _merged(self, body: bytes, record: Record, index: str) -> bytes:
        """Slow path for a line that already has a spliced key: its own fields, their values
        left as they are (never parsed: a value a full parser refuses, like ``1e999``, is
        copied through for Elasticsearch to judge), after ours minus those it has."""
        own = own_fields(body)
        lead: list[tuple[str, bytes]] = [("@timestamp", at_timestamp(record.timestamp))]
        extra = self._extra[index]
        if self.data_stream and extra and "data_stream" not in own:
            lead.append(("data_stream", extra[len(b'"data_stream":') : -1]))
        # The record's own fields win over enrichment (enrich.py's rule), but @timestamp is
        # always the record's schema timestamp, so time filters and sorting agree with
        # ``timestamp``; the line's own @timestamp is kept as log.original_timestamp.
        lead += self.enrichment.absent_from(own)
        fields: list[tuple[str, bytes]] = lead
        original = own.pop("@timestamp", None)
        if original is not None:
            own.pop("log.original_timestamp", None)
        fields += [(k, bytes(v)) for k, v in own.items()]
        if original is not None:
            fields.append(("log.original_timestamp", bytes(original)))
        return encode_object(fields)


# ------------------------------------------------------------------------------ responses


class _Error(msgspec.Struct):
    type: str = ""
    reason: str | None = None
    caused_by: dict[str, object] | None = None


class _Item(msgspec.Struct):
    status: int
    error: _Error | None = None


class _Errors(msgspec.Struct):
    errors: bool = True


class _Full(msgspec.Struct):
    items: list[dict[str, _Item]]
    errors: bool = True


_errors_decoder = msgspec.json.Decoder(_Errors)
_full_decoder = msgspec.json.Decoder(_Full)


class BulkResponseError(ValueError):
    """The body of a 200 answer is not a bulk response we can trust."""


def item_statuses(body: bytes, expected: int) -> list[tuple[int, str]] | None:
    """``None`` when every item succeeded (``errors: false``), else ``(status, reason)`` per
    item in request order (reason empty for successes)."""
    try:
        if not _errors_decoder.decode(body).errors:
            return None
        full = _full_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise BulkResponseError(f"unreadable bulk response: {exc}") from None
    if len(full.items) != expected:
        raise BulkResponseError(
            f"bulk response has {len(full.items)} items for {expected} documents"
        )
    out: list[tuple[int, str]] = []
    for entry in full.items:
        if len(entry) != 1:  # one action per item; anything else is not a bulk response
            raise BulkResponseError(f"bulk response item with {len(entry)} actions")
        item = next(iter(entry.values()))
        reason = ""
        if item.error is not None:
            reason = f"{item.error.type}: {item.error.reason or ''}".rstrip(": ")
            cause = item.error.caused_by
            if cause and isinstance(cause.get("reason"), str):
                reason += f" (caused by {cause.get('type')}: {cause['reason']})"
        out.append((item.status, reason))
    return out


def request_error(body: bytes) -> str:
    """``type: reason`` from an Elasticsearch error body, or a short prefix of the text."""
    try:
        err = orjson.loads(body).get("error")
        if isinstance(err, dict):
            return f"{err.get('type')}: {err.get('reason')}"
        if isinstance(err, str):
            return err
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return body[:200].decode("utf-8", "replace")
