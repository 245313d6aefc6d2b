"""Parsing Loki's 400 texts (formats from grafana/loki's validation and ingester code)."""

from __future__ import annotations

from sidecar.sinks.loki_errors import parse_go_time, parse_reply

S = '{level="INFO", service="a; b", service_name="a; b"}'


def test_grouped_distributor_errors():
    text = (
        f"2 errors like: entry for stream '{S}' has timestamp too old: 2025-01-01T00:00:00Z, "
        "oldest acceptable timestamp is: 2025-01-02T00:00:00Z; "
        f"1 errors like: entry for stream '{S}' has 16 label names; limit 15; "
        f"1 errors like: stream '{S}' has structured metadata too large: '70000' bytes, limit: "
        "'65536' bytes. Please see `limits_config.max_structured_metadata_size` or contact your "
        "Loki administrator to increase it.; "
        f"1 errors like: stream '{S}' has label value too long: 'xx; yy'\n"
    )
    errs = parse_reply(text)
    assert [(e.kind, e.count) for e in errs] == [
        ("too_old", 2),
        ("structured_metadata_too_large", 1),
        ("invalid_labels", 1),
        ("invalid_labels", 1),
    ]
    assert all(
        e.stream == {"level": "INFO", "service": "a; b", "service_name": "a; b"} for e in errs
    )
    assert errs[0].ts_sec == 1735689600 and errs[0].cutoff_sec == 1735776000
    assert errs[1].length == 70000


def test_single_error_without_count():
    [e] = parse_reply(f"entry for stream '{S}' has timestamp too new: 2025-01-01T00:10:01Z")
    assert (e.kind, e.count, e.ts_sec) == ("too_new", 1, 1735690201)


def test_ingester_reply():
    text = (
        "entry with timestamp 2025-01-01 00:00:00.5 +0000 UTC ignored, reason: 'entry too far "
        "behind, entry timestamp is: 2025-01-01T00:00:00Z, oldest acceptable timestamp is: "
        "2025-01-01T01:00:00Z',\nuser 'fake', total ignored: 1 out of 3 for stream: {a=\"b\"}"
    )
    [e] = parse_reply(text)
    assert (e.kind, e.count, e.stream, e.cutoff_sec) == (
        "too_far_behind",
        1,
        {"a": "b"},
        1735693200,
    )
    assert e.timestamps == [1735689600_500_000_000]


def test_unknown_text_is_not_guessed():
    assert parse_reply("400 Bad Request") == []
    known = f"entry for stream '{S}' has timestamp too new: 2025-01-01T00:10:01Z"
    assert parse_reply(known + "; something else entirely") == []


def test_go_time_with_offset():
    assert parse_go_time("2025-01-01 02:00:00 +0200 EET") == 1735689600 * 10**9


def test_sharded_stream_in_ingester_reply_matches_our_stream():
    from sidecar.sinks.loki import Config, LokiSink

    sink = LokiSink("t", Config(url="http://127.0.0.1:1"))
    sink._instance = "i"
    key = sink._stream_key("api", "INFO")
    theirs = {
        "service": "api",
        "level": "INFO",
        "instance": "i",
        "service_name": "api",
        "__stream_shard__": "2",
    }
    assert sink._match_stream(theirs, {key: [0]}) == key
    assert sink._match_stream({**theirs, "level": "WARN"}, {key: [0]}) is None
