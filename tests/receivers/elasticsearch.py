"""An in-process Elasticsearch-API server for tests (and a separate-process one for benches).

    with EsReceiver() as es:            # 127.0.0.1, free port, ES 8.15 flavour
        httpx.post(es.url + "/_bulk", ...)
        es.faults.fail_items(3, status=429)
        es.stats.docs_stored, es.search("logs-*", {...})

    # in a conftest.py:   from receivers.elasticsearch import es_receiver  # noqa: F401
    # as a process:       python -m tests.receivers.elasticsearch --port 9200 --count-only

Endpoints (Elasticsearch 8 semantics; OpenSearch flavour with ``flavor="opensearch"``):
``GET /``, ``POST /_bulk`` and ``/<target>/_bulk``, ``PUT/GET/DELETE /_index_template/<n>``,
``PUT/GET /_component_template/<n>``, ``GET/DELETE /_data_stream/<n>``, ``PUT/DELETE
/<index>``, ``DELETE /<index>/_doc/<id>``, ``GET /<index>/_mapping``, ``GET|POST
/<index>/_search`` (queries and ``terms``/``date_histogram`` aggregations), ``/_search`` with a
``pit``, ``/<index>/_count``, ``POST /<index>/_pit`` and ``DELETE /_pit`` (OpenSearch:
``/<index>/_search/point_in_time``), ``POST /<index>/_refresh``, ``GET /_cluster/health``,
and ``GET /_receiver/stats`` (counters, for out-of-process use).

Faults (``es.faults``): ``fail_requests(n, status, retry_after=None)``, ``fail_items(n,
status)``, ``stall(seconds, n=1)``, ``reset(n=1)``, ``outage(seconds, status=503)``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
import pytest

from .es_engine import Cluster, EsError, Json
from .es_search import search

DEFAULT_MAX_CONTENT_LENGTH = 100 * 1024 * 1024  # http.max_content_length default: 100mb
ES_VERSION = "8.15.3"
OS_VERSION = "2.17.1"

_ITEM_ERRORS = {
    429: (
        "es_rejected_execution_exception",
        "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
        "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, "
        "max_coordinating_and_primary_bytes=0]",
    ),
    500: ("internal_server_error", "simulated shard failure"),
    503: ("unavailable_shards_exception", "[logs][0] primary shard is not active Timeout: [1m]"),
}
_REQUEST_ERRORS = {
    429: _ITEM_ERRORS[429],
    500: ("null_pointer_exception", "simulated internal error"),
    502: ("bad_gateway", "simulated proxy error"),
    503: (
        "cluster_block_exception",
        "blocked by: [SERVICE_UNAVAILABLE/2/no master];",
    ),
    504: ("gateway_timeout", "simulated proxy timeout"),
}


@dataclass
class Stats:
    """Counters, updated under the cluster lock."""

    requests: int = 0
    bulk_requests: int = 0
    bulk_bytes: int = 0  # as received (compressed when gzip)
    bulk_bytes_decoded: int = 0
    gzip_requests: int = 0
    items: Counter[int] = field(default_factory=Counter)  # by status
    docs_stored: int = 0
    duplicates_prevented: int = 0  # create with an existing _id (409)
    faults_fired: Counter[str] = field(default_factory=Counter)
    search_requests: int = 0
    auth_failures: int = 0
    max_concurrent_bulk: int = 0  # most _bulk requests being handled at the same time
    first_bulk_at: float = 0.0  # wall clock (time.time()) of the first and last bulk answer
    last_bulk_at: float = 0.0

    def as_json(self) -> Json:
        return {
            "requests": self.requests,
            "bulk_requests": self.bulk_requests,
            "bulk_bytes": self.bulk_bytes,
            "bulk_bytes_decoded": self.bulk_bytes_decoded,
            "gzip_requests": self.gzip_requests,
            "items": {str(k): v for k, v in sorted(self.items.items())},
            "docs_stored": self.docs_stored,
            "duplicates_prevented": self.duplicates_prevented,
            "faults_fired": dict(self.faults_fired),
            "search_requests": self.search_requests,
            "max_concurrent_bulk": self.max_concurrent_bulk,
            "first_bulk_at": self.first_bulk_at,
            "last_bulk_at": self.last_bulk_at,
        }


class Faults:
    """Scripted failures. Each method arms a fault for the next matching requests; all are
    thread-safe and may be called while a client is sending."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[tuple[int, float | None, str]] = []
        self._items: list[int] = []
        self._stall: list[tuple[float, bool]] = []
        self._reset = 0
        self._outage_until = 0.0
        self._outage_status = 503
        self._outage_reset = False

    def fail_requests(
        self, n: int, status: int = 503, retry_after: float | None = None, path: str = "_bulk"
    ) -> None:
        """Answer the next ``n`` requests whose path contains ``path`` with ``status``
        (Elasticsearch-style error body; ``Retry-After`` header when given)."""
        with self._lock:
            self._requests.extend([(status, retry_after, path)] * n)

    def fail_items(self, n: int, status: int = 429) -> None:
        """Fail the next ``n`` bulk items (in order, across requests) with ``status``
        (429 es_rejected_execution_exception, 500, 503)."""
        with self._lock:
            self._items.extend([status] * n)

    def stall(self, seconds: float, n: int = 1, then_process: bool = True) -> None:
        """Sleep ``seconds`` before answering the next ``n`` bulk requests. With
        ``then_process`` the request is still applied afterwards (like a real cluster that
        finishes work the client gave up on)."""
        with self._lock:
            self._stall.extend([(seconds, then_process)] * n)

    def reset(self, n: int = 1) -> None:
        """Read the next ``n`` bulk requests, apply nothing, and reset the connection (RST)."""
        with self._lock:
            self._reset += n

    def outage(self, seconds: float, status: int = 503, reset: bool = False) -> None:
        """For ``seconds``, answer every request with ``status`` (or reset connections)."""
        with self._lock:
            self._outage_until = time.monotonic() + seconds
            self._outage_status = status
            self._outage_reset = reset

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._items.clear()
            self._stall.clear()
            self._reset = 0
            self._outage_until = 0.0

    # -- used by the handler
    def take_outage(self) -> tuple[int, bool] | None:
        with self._lock:
            if time.monotonic() < self._outage_until:
                return self._outage_status, self._outage_reset
            return None

    def take_request(self, path: str) -> tuple[int, float | None] | None:
        with self._lock:
            for i, (status, ra, p) in enumerate(self._requests):
                if p in path:
                    del self._requests[i]
                    return status, ra
            return None

    def has_item_faults(self) -> bool:
        with self._lock:
            return bool(self._items)

    def take_item(self) -> int | None:
        with self._lock:
            return self._items.pop(0) if self._items else None

    def take_stall(self) -> tuple[float, bool] | None:
        with self._lock:
            return self._stall.pop(0) if self._stall else None

    def take_reset(self) -> bool:
        with self._lock:
            if self._reset:
                self._reset -= 1
                return True
            return False


class _Reset(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing
    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else orjson.dumps(body) if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if self.server.receiver.flavor == "elasticsearch":
            self.send_header("X-Elastic-Product", "Elasticsearch")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, exc: EsError, headers: dict[str, str] | None = None) -> None:
        self._send(exc.status, exc.body(), headers)

    def _reset_connection(self) -> None:
        # SO_LINGER 0 makes close() send RST: the client sees "connection reset by peer".
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        raise _Reset

    def _read_body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(n) if n else b""

    def _dispatch(self) -> None:
        rec = self.server.receiver
        url = urlsplit(self.path)
        path = unquote(url.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        raw = self._read_body()
        with rec.cluster.lock:
            rec.stats.requests += 1
        if path.startswith("/_receiver/"):
            self._send(200, rec.stats.as_json())
            return
        outage = rec.faults.take_outage()
        if outage is not None:
            with rec.cluster.lock:
                rec.stats.faults_fired["outage"] += 1
            if outage[1]:
                self._reset_connection()
            self._fail(outage[0], None)
            return
        if rec.auth is not None and self.headers.get("Authorization") not in rec.auth:
            with rec.cluster.lock:
                rec.stats.auth_failures += 1
            self._error(
                EsError(
                    401,
                    "security_exception",
                    "missing authentication credentials for REST request [" + url.path + "]",
                ),
                {"WWW-Authenticate": 'Basic realm="security" charset="UTF-8", ApiKey'},
            )
            return
        failed = rec.faults.take_request(path)
        if failed is not None:
            with rec.cluster.lock:
                rec.stats.faults_fired[f"request_{failed[0]}"] += 1
            self._fail(*failed)
            return
        if raw and self.headers.get("Content-Encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error):
                self._error(EsError(400, "parse_exception", "failed to decompress gzip body"))
                return
            with rec.cluster.lock:
                rec.stats.gzip_requests += 1
        else:
            body = raw
        # http.max_content_length applies to the content after decompression.
        if len(body) > rec.max_content_length:
            self._send(413, b"")
            return
        parts = [p for p in path.split("/") if p]
        try:
            self._route(parts, params, body, len(raw))
        except EsError as exc:
            self._error(exc)

    def _fail(self, status: int, retry_after: float | None) -> None:
        etype, reason = _REQUEST_ERRORS.get(status, ("exception", "simulated failure"))
        headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
        self._error(EsError(status, etype, reason), headers)

    def _json_body(self, body: bytes) -> Json:
        if not body.strip():
            return {}
        ctype = self.headers.get("Content-Type", "")
        if ctype and "json" not in ctype:
            raise EsError(
                406,
                "media_type_header_exception",
                f"Content-Type header [{ctype}] is not supported",
            )
        try:
            out = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise EsError(400, "x_content_parse_exception", f"[1:1] {exc}") from None
        if not isinstance(out, dict):
            raise EsError(400, "parse_exception", "request body is required")
        return out

    def _route(self, parts: list[str], params: dict[str, str], body: bytes, wire: int) -> None:
        rec = self.server.receiver
        c = rec.cluster
        m = self.command
        if not parts:
            if m in ("GET", "HEAD"):
                self._send(200, rec.info())
                return
        elif parts[-1] == "_bulk" and m in ("POST", "PUT"):
            self._bulk(parts[0] if len(parts) == 2 else None, body, wire)
            return
        elif parts[0] == "_index_template" and len(parts) == 2:
            name = parts[1]
            if m == "PUT" or m == "POST":
                c.put_index_template(name, self._json_body(body))
                self._send(200, {"acknowledged": True})
                return
            if m in ("GET", "HEAD"):
                with c.lock:
                    found = [
                        {"name": n, "index_template": t}
                        for n, t in c.index_templates.items()
                        if __import__("fnmatch").fnmatchcase(n, name)
                    ]
                if not found:
                    raise EsError(
                        404,
                        "resource_not_found_exception",
                        f"index template matching [{name}] not found",
                    )
                self._send(200, {"index_templates": found})
                return
            if m == "DELETE":
                with c.lock:
                    if c.index_templates.pop(name, None) is None:
                        raise EsError(
                            404,
                            "index_template_missing_exception",
                            f"index_template [{name}] missing",
                        )
                self._send(200, {"acknowledged": True})
                return
        elif parts[0] == "_component_template" and len(parts) == 2:
            name = parts[1]
            if m in ("PUT", "POST"):
                c.put_component_template(name, self._json_body(body))
                self._send(200, {"acknowledged": True})
                return
            if m in ("GET", "HEAD"):
                with c.lock:
                    ct = c.component_templates.get(name)
                if ct is None:
                    raise EsError(
                        404,
                        "resource_not_found_exception",
                        f"component template matching [{name}] not found",
                    )
                self._send(200, {"component_templates": [{"name": name, "component_template": ct}]})
                return
        elif parts[0] == "_data_stream":
            self._data_stream(parts[1] if len(parts) > 1 else "*", m)
            return
        elif parts == ["_pit"] and m == "DELETE":
            pid = self._json_body(body).get("id", "")
            freed = c.close_pit(pid)
            self._send(200 if freed else 404, {"succeeded": freed, "num_freed": int(freed)})
            return
        elif parts[:2] == ["_search", "point_in_time"] and m == "DELETE":
            ids = self._json_body(body).get("pit_id", [])
            ids = ids if isinstance(ids, list) else [ids]
            self._send(200, {"pits": [{"pit_id": i, "successful": c.close_pit(i)} for i in ids]})
            return
        elif parts == ["_cluster", "health"]:
            self._send(
                200, {"cluster_name": "obskit-test", "status": "green", "number_of_nodes": 1}
            )
            return
        elif parts[-1] in ("_search", "_count") and m in ("GET", "POST"):
            with c.lock:
                rec.stats.search_requests += 1
            expr = parts[0] if len(parts) == 2 else None
            req = self._json_body(body)
            if expr is None and "pit" not in req:
                expr = "*"
            self._send(200, search(c, expr, req, params, count=parts[-1] == "_count"))
            return
        elif (
            len(parts) == 2 and parts[1] == "_pit" and m == "POST" and rec.flavor == "elasticsearch"
        ):
            if "keep_alive" not in params:
                raise EsError(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: [keep_alive] is not specified;",
                )
            self._send(
                200,
                {
                    "id": c.open_pit(parts[0], params["keep_alive"]),
                    "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                },
            )
            return
        elif len(parts) == 3 and parts[1:] == ["_search", "point_in_time"] and m == "POST":
            pid = c.open_pit(parts[0], params.get("keep_alive", ""))
            self._send(
                200,
                {
                    "pit_id": pid,
                    "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                    "creation_time": int(time.time() * 1000),
                },
            )
            return
        elif len(parts) == 2 and parts[1] == "_refresh":
            self._send(200, {"_shards": {"total": 1, "successful": 1, "failed": 0}})
            return
        elif len(parts) == 2 and parts[1] == "_mapping" and m == "GET":
            with c.lock:
                names = c.resolve(parts[0])
                out = {n: {"mappings": c.indices[n].mapping.to_json()} for n in names}
            self._send(200, out)
            return
        elif len(parts) == 3 and parts[1] == "_doc" and m == "DELETE":
            res = c.delete_doc(parts[0], parts[2])
            self._send(res.pop("status"), res)
            return
        elif len(parts) == 1 and not parts[0].startswith("_"):
            if m == "PUT":
                c.create_index(parts[0], self._json_body(body))
                self._send(
                    200, {"acknowledged": True, "shards_acknowledged": True, "index": parts[0]}
                )
                return
            if m == "DELETE":
                if not c.delete(parts[0]):
                    raise EsError(404, "index_not_found_exception", f"no such index [{parts[0]}]")
                self._send(200, {"acknowledged": True})
                return
            if m in ("GET", "HEAD"):
                with c.lock:
                    names = c.resolve(parts[0])
                    out = {
                        n: {
                            "mappings": c.indices[n].mapping.to_json(),
                            "data_stream": c.indices[n].data_stream,
                        }
                        for n in names
                    }
                self._send(200, out)
                return
        raise EsError(
            405 if parts else 400,
            "illegal_argument_exception" if parts else "invalid_request",
            f"Incorrect HTTP method for uri [{self.path}] and method [{m}]",
        )

    def _data_stream(self, name: str, method: str) -> None:
        c = self.server.receiver.cluster
        with c.lock:
            names = [n for n in c.data_streams if __import__("fnmatch").fnmatchcase(n, name)]
            if not names and "*" not in name:
                raise EsError(
                    404, "index_not_found_exception", f"no such index [{name}]", index=name
                )
            if method == "DELETE":
                for n in names:
                    c.delete(n)
                self._send(200, {"acknowledged": True})
                return
            out = []
            for n in names:
                ds = c.data_streams[n]
                out.append(
                    {
                        "name": n,
                        "timestamp_field": {"name": "@timestamp"},
                        "indices": [
                            {"index_name": i, "index_uuid": c.indices[i].uuid} for i in ds.indices
                        ],
                        "generation": ds.generation,
                        "status": "GREEN",
                        "template": ds.template,
                        "hidden": False,
                        "system": False,
                    }
                )
        self._send(200, {"data_streams": out})

    def _bulk(self, default_index: str | None, body: bytes, wire: int) -> None:
        rec = self.server.receiver
        with rec.cluster.lock:
            rec.bulk_in_progress += 1
            rec.stats.max_concurrent_bulk = max(rec.stats.max_concurrent_bulk, rec.bulk_in_progress)
        try:
            self._bulk_body(default_index, body, wire)
        finally:
            with rec.cluster.lock:
                rec.bulk_in_progress -= 1

    def _bulk_body(self, default_index: str | None, body: bytes, wire: int) -> None:
        rec = self.server.receiver
        ctype = self.headers.get("Content-Type", "")
        if not ctype:
            raise EsError(
                406, "media_type_header_exception", "Content-Type header [] is not supported"
            )
        if not any(t in ctype for t in ("x-ndjson", "json", "smile", "cbor")):
            raise EsError(
                406,
                "media_type_header_exception",
                f"Content-Type header [{ctype}] is not supported",
            )
        if not body:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: no requests added;",
            )
        if not body.endswith(b"\n"):
            raise EsError(
                400,
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]",
            )
        if rec.faults.take_reset():
            with rec.cluster.lock:
                rec.stats.faults_fired["reset"] += 1
            self._reset_connection()
        stall = rec.faults.take_stall()
        if stall is not None:
            with rec.cluster.lock:
                rec.stats.faults_fired["stall"] += 1
            time.sleep(stall[0])
            if not stall[1]:
                self._reset_connection()
        lines = body.split(b"\n")
        lines.pop()  # the empty string after the final newline
        if rec.count_only and self._bulk_count_only(lines, wire, len(body)):
            return
        items: list[Json] = []
        errors = False
        i = 0
        with rec.cluster.lock:
            rec.stats.bulk_requests += 1
            rec.stats.bulk_bytes += wire
            rec.stats.bulk_bytes_decoded += len(body)
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.strip():
                continue
            try:
                action = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise EsError(
                    400,
                    "x_content_parse_exception",
                    f"[1:1] Malformed action/metadata line [{i}], expected START_OBJECT",
                ) from None
            if not isinstance(action, dict) or len(action) != 1:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{i}], expected START_OBJECT or END_OBJECT "
                    "but found [VALUE_STRING]",
                )
            ((op, meta),) = action.items()
            if op not in ("create", "index", "delete", "update"):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"Action/metadata line [{i}] contains an unknown parameter [{op}]",
                )
            target = meta.get("_index", default_index)
            doc_id = meta.get("_id")
            if op == "delete":
                items.append(
                    {op: {"_index": target, "_id": doc_id, "status": 404, "result": "not_found"}}
                )
                continue
            if i >= len(lines):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    "The bulk request must be terminated by a newline [\\n]",
                )
            src_line = lines[i]
            i += 1
            if target is None:
                items.append(
                    self._item_error(
                        op,
                        None,
                        doc_id,
                        EsError(
                            400,
                            "action_request_validation_exception",
                            "Validation Failed: 1: index is missing;",
                        ),
                    )
                )
                errors = True
                continue
            injected = rec.faults.take_item()
            if injected is not None:
                etype, reason = _ITEM_ERRORS.get(injected, ("exception", "simulated failure"))
                with rec.cluster.lock:
                    rec.stats.faults_fired[f"item_{injected}"] += 1
                items.append(self._item_error(op, target, doc_id, EsError(injected, etype, reason)))
                errors = True
                continue
            if rec.count_only:
                with rec.cluster.lock:
                    rec.stats.docs_stored += 1
                    rec.stats.items[201] += 1
                items.append(
                    {
                        op: {
                            "_index": target,
                            "_id": doc_id,
                            "_version": 1,
                            "result": "created",
                            "status": 201,
                        }
                    }
                )
                continue
            try:
                source = orjson.loads(src_line)
                if not isinstance(source, dict):
                    raise ValueError("not an object")
            except (orjson.JSONDecodeError, ValueError):
                items.append(
                    self._item_error(
                        op,
                        target,
                        doc_id,
                        EsError(
                            400,
                            rec.parse_error_type,
                            "[1:1] failed to parse: Unexpected character at "
                            f'[Source: (byte[])"{src_line[:50]!r}"]',
                        ),
                    )
                )
                errors = True
                continue
            try:
                res = rec.cluster.write(op, target, doc_id, source)
            except EsError as exc:
                if exc.etype == "document_parsing_exception" and rec.flavor == "opensearch":
                    exc.etype = "mapper_parsing_exception"
                items.append(self._item_error(op, target, doc_id, exc))
                errors = True
                continue
            items.append({op: res})
            with rec.cluster.lock:
                rec.stats.items[res["status"]] += 1
        with rec.cluster.lock:
            rec.stats.docs_stored = (
                rec.cluster.docs_stored if not rec.count_only else rec.stats.docs_stored
            )
            rec.stats.duplicates_prevented = rec.cluster.duplicates_prevented
            rec.stats.last_bulk_at = time.time()
            rec.stats.first_bulk_at = rec.stats.first_bulk_at or rec.stats.last_bulk_at
        self._send(200, {"errors": errors, "took": 1, "items": items})

    def _bulk_count_only(self, lines: list[bytes], wire: int, decoded: int) -> bool:
        """Benchmark fast path: answer every create/index item 201 by rewriting its action
        line, without decoding anything. False when the request needs the full path."""
        rec = self.server.receiver
        actions = lines[0::2]
        if (
            len(lines) % 2
            or rec.faults.has_item_faults()
            or not all(
                a.startswith((b'{"create":', b'{"index":')) and a.endswith(b"}}") for a in actions
            )
        ):
            return False
        tail = b',"_version":1,"result":"created","status":201}}'
        body = (
            b'{"errors":false,"took":1,"items":['
            + b",".join(a[:-2] + tail for a in actions)
            + b"]}"
        )
        with rec.cluster.lock:
            st = rec.stats
            st.bulk_requests += 1
            st.bulk_bytes += wire
            st.bulk_bytes_decoded += decoded
            st.docs_stored += len(actions)
            st.items[201] += len(actions)
            st.last_bulk_at = time.time()
            st.first_bulk_at = st.first_bulk_at or st.last_bulk_at
        self._send(200, body)
        return True

    def _item_error(self, op: str, target: str | None, doc_id: str | None, exc: EsError) -> Json:
        with self.server.receiver.cluster.lock:
            self.server.receiver.stats.items[exc.status] += 1
        return {op: {"_index": target, "_id": doc_id, "status": exc.status, "error": exc.cause()}}

    def _handle(self) -> None:
        try:
            self._dispatch()
        except _Reset:
            pass
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: EsReceiver


class EsReceiver:
    """The fake cluster plus its HTTP server. Use as a context manager or call
    :meth:`start`/:meth:`stop`.

    ``flavor``: ``"elasticsearch"`` (8.x, built-in ``logs-*-*`` data stream template) or
    ``"opensearch"`` (2.x, no built-in templates, ``mapper_parsing_exception``).
    ``max_content_length``: bytes after decompression before answering 413.
    ``auth``: accepted ``Authorization`` header values (None = security off).
    ``count_only``: do not store documents, just count them (benchmarks).
    """

    def __init__(
        self,
        flavor: str = "elasticsearch",
        *,
        max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
        auth: list[str] | None = None,
        count_only: bool = False,
        port: int = 0,
    ) -> None:
        if flavor not in ("elasticsearch", "opensearch"):
            raise ValueError("flavor is elasticsearch or opensearch")
        self.flavor = flavor
        self.max_content_length = max_content_length
        self.auth = set(auth) if auth is not None else None
        self.count_only = count_only
        self.cluster = Cluster(flavor)
        self.stats = Stats()
        self.bulk_in_progress = 0
        self.faults = Faults()
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def basic(username: str, password: str) -> str:
        """An ``Authorization`` value for :attr:`auth`."""
        return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()

    @property
    def parse_error_type(self) -> str:
        return (
            "document_parsing_exception"
            if self.flavor == "elasticsearch"
            else "mapper_parsing_exception"
        )

    def info(self) -> Json:
        if self.flavor == "opensearch":
            return {
                "name": "obskit-test",
                "cluster_name": "obskit-test",
                "cluster_uuid": "obskit-test-uuid",
                "version": {
                    "distribution": "opensearch",
                    "number": OS_VERSION,
                    "build_type": "tar",
                    "lucene_version": "9.12.0",
                    "minimum_wire_compatibility_version": "7.10.0",
                    "minimum_index_compatibility_version": "7.0.0",
                },
                "tagline": "The OpenSearch Project: https://opensearch.org/",
            }
        return {
            "name": "obskit-test",
            "cluster_name": "obskit-test",
            "cluster_uuid": "obskit-test-uuid",
            "version": {
                "number": ES_VERSION,
                "build_flavor": "default",
                "build_type": "docker",
                "lucene_version": "9.11.1",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }

    @property
    def port(self) -> int:
        assert self._server is not None, "receiver not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EsReceiver:
        self._server = _Server(("127.0.0.1", self._port), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self.faults.clear()
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> EsReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- direct access for assertions (no HTTP)
    def search(self, index: str, body: Json | None = None, **params: str) -> Json:
        """Same as ``POST /<index>/_search``, in process."""
        return search(self.cluster, index, body or {}, params)

    def count(self, index: str = "*", query: Json | None = None) -> int:
        body = {"query": query} if query else {}
        return int(search(self.cluster, index, body, {}, count=True)["count"])

    def documents(self, index: str = "*") -> list[Json]:
        """Every stored ``_source`` in ``index`` (wildcards and data streams resolve)."""
        with self.cluster.lock:
            out = []
            for name in self.cluster.resolve(index):
                out.extend(d.source for d in self.cluster.indices[name].docs if d is not None)
            return out

    def ids(self, index: str = "*") -> list[str]:
        with self.cluster.lock:
            out = []
            for name in self.cluster.resolve(index):
                out.extend(d.id for d in self.cluster.indices[name].docs if d is not None)
            return out


@pytest.fixture
def es_receiver() -> Iterator[EsReceiver]:
    """A fresh Elasticsearch 8 receiver per test (``es_receiver.url``)."""
    with EsReceiver() as r:
        yield r


@pytest.fixture
def os_receiver() -> Iterator[EsReceiver]:
    """A fresh OpenSearch 2 flavoured receiver per test."""
    with EsReceiver("opensearch") as r:
        yield r


def main() -> None:
    ap = argparse.ArgumentParser(description="In-process Elasticsearch-API receiver")
    ap.add_argument("--port", type=int, default=9200)
    ap.add_argument("--flavor", choices=["elasticsearch", "opensearch"], default="elasticsearch")
    ap.add_argument("--count-only", action="store_true", help="count documents, store nothing")
    ap.add_argument("--max-content-length", type=int, default=DEFAULT_MAX_CONTENT_LENGTH)
    a = ap.parse_args()
    r = EsReceiver(
        a.flavor, max_content_length=a.max_content_length, count_only=a.count_only, port=a.port
    )
    r.start()
    print(f"listening on {r.url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        r.stop()


if __name__ == "__main__":
    main()
