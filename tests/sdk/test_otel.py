"""trace_id/span_id come from the current OpenTelemetry span, on both paths."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import TracerProvider
from sdk_helpers import assert_valid, read_records

import obskit


def test_ids_from_current_span_and_absent_outside(sdk: Any, log_dir: Path) -> None:
    sdk()
    tracer = TracerProvider().get_tracer("test")
    log = obskit.get_logger("t")
    log.info("before")
    with tracer.start_as_current_span("outer") as outer:
        log.info("in outer")
        with tracer.start_as_current_span("inner") as inner:
            logging.getLogger("t").info("in inner")
    log.info("after")
    lines = read_records(log_dir)
    assert_valid(lines)
    before, in_outer, in_inner, after = map(orjson.loads, lines)
    octx, ictx = outer.get_span_context(), inner.get_span_context()
    assert "trace_id" not in before and "span_id" not in before
    assert "trace_id" not in after
    assert in_outer["trace_id"] == format(octx.trace_id, "032x")
    assert in_outer["span_id"] == format(octx.span_id, "016x")
    assert in_inner["trace_id"] == in_outer["trace_id"]
    assert in_inner["span_id"] == format(ictx.span_id, "016x") != in_outer["span_id"]
