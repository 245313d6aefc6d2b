"""Reading an OTLP/HTTP server's answer: the ``ExportLogsServiceResponse`` of a 2xx (partial
success) and the ``google.rpc.Status`` of an error, in protobuf or JSON, whatever the
``Content-Type`` says (Loki, for one, sends its protobuf ``Status`` without one)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from sidecar.sinks.protowire import WireError, read_fields

#: Largest answer read (the specification recommends clients to stop at 4 MiB).
MAX_REPLY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class PartialSuccess:
    """``ExportLogsPartialSuccess``: how many records the server rejected (0 with a message is
    a warning about a fully accepted request)."""

    rejected: int = 0
    message: str = ""


def partial_success(body: bytes, json: bool) -> PartialSuccess:
    """The ``partial_success`` of a 2xx answer (empty when the body is empty or unreadable:
    the status code is what says the records were accepted)."""
    if not body.strip():
        return PartialSuccess()
    try:
        if json:
            return _partial_json(body)
        return _partial_pb(body)
    except (WireError, orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
        # A protobuf answer to a JSON request or the reverse: try the other form.
        try:
            return _partial_pb(body) if json else _partial_json(body)
        except (WireError, orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
            return PartialSuccess()


def _partial_pb(body: bytes) -> PartialSuccess:
    rejected, message = 0, ""
    for number, value in read_fields(body):
        if number == 1 and isinstance(value, bytes):  # partial_success
            for n, v in read_fields(value):
                if n == 1 and isinstance(v, int):
                    rejected = v - (1 << 64) if v >= 1 << 63 else v  # int64
                elif n == 2 and isinstance(v, bytes):
                    message = v.decode("utf-8", "replace")
    return PartialSuccess(max(rejected, 0), message)


def _partial_json(body: bytes) -> PartialSuccess:
    doc = orjson.loads(body)
    ps = doc.get("partialSuccess") or doc.get("partial_success") or {}
    raw = ps.get("rejectedLogRecords", ps.get("rejected_log_records", 0)) or 0
    return PartialSuccess(
        max(int(raw), 0), str(ps.get("errorMessage", ps.get("error_message", "")))
    )


def error_message(body: bytes, limit: int = 500) -> str:
    """The ``Status.message`` of an error answer (protobuf or JSON), else its text; at most
    ``limit`` characters."""
    text = _status_message(body)
    if text is None:
        text = body.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _status_message(body: bytes) -> str | None:
    if not body:
        return None
    if body.lstrip()[:1] == b"{":
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        msg = doc.get("message") if isinstance(doc, dict) else None
        return msg if isinstance(msg, str) else None
    try:
        message = None
        for number, value in read_fields(body):
            if number == 2 and isinstance(value, bytes):
                message = value.decode("utf-8")
            elif number not in (1, 3):
                return None  # not a Status: some other text that happened to parse
        return message
    except (WireError, UnicodeDecodeError):
        return None
