"""Inputs the fuzz tests found, kept as plain regression tests."""

from __future__ import annotations

import pytest

from sidecar.sinks.es_bulk import BulkResponseError, item_statuses
from sidecar.sinks.loki_errors import parse_go_time, parse_reply


def test_bulk_item_without_action_is_an_unreadable_response() -> None:
    # Was StopIteration out of the sink (found by test_fuzz_sink_replies).
    with pytest.raises(BulkResponseError):
        item_statuses(b'{"errors": true, "items": [{}]}', 1)
    with pytest.raises(BulkResponseError):
        item_statuses(b'{"errors":true,"items":[{"a":{"status":201},"b":{"status":500}}]}', 1)


def test_loki_reply_with_impossible_month_is_not_understood() -> None:
    # Was ValueError("month must be in 1..12") out of the 400 handler.
    assert parse_go_time("2024-13-01 00:00:00 +0000 UTC") is None
    text = (
        "entry with timestamp 2024-13-01 00:00:00 +0000 UTC ignored, reason: 'entry too far "
        "behind, entry timestamp is: 2024-13-01T00:00:00Z, oldest acceptable timestamp is: "
        "2024-12-01T00:00:00Z',\nuser 'fake', total ignored: 1 out of 1 for stream: "
        '{service="a"}'
    )
    errors = parse_reply(text)
    assert all(not e.timestamps for e in errors)
