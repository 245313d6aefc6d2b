"""The OTLP sink against the in-process OTLP receiver: configuration, delivery, retries,
400/413 isolation, partial success in both modes, unknown outcomes, TLS and headers."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from sidecar.config import ConfigError, build_config
from sidecar.sinks.otlp import Config, OTLPSink, logs_endpoint
from tests.receivers.otlp import Limits, OTLPReceiver
from tests.sinks.otlp.helpers import batch, sink

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def recs(n: int, **extra: Any) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{i:06d}Z",
            "level": "INFO",
            "service": f"svc{i % 2}",
            "message": f"line {i}",
            "trace_id": TRACE,
            "i": i,
            **extra,
        }
        for i in range(n)
    ]


def seen(rx: OTLPReceiver) -> list[int]:
    return sorted(r.attributes["i"] for r in rx.records())


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://collector:4318", "http://collector:4318/v1/logs"),
        ("http://collector:4318/", "http://collector:4318/v1/logs"),
        ("http://loki:3100/otlp", "http://loki:3100/otlp/v1/logs"),
        ("http://loki:3100/otlp/v1/logs", "http://loki:3100/otlp/v1/logs"),
        ("https://x.example/in/v1/logs/", "https://x.example/in/v1/logs"),
        ("https://x.example/api?tenant=a", "https://x.example/api/v1/logs?tenant=a"),
    ],
)
def test_endpoint_follows_the_exporter_convention(url: str, endpoint: str) -> None:
    assert logs_endpoint(url) == endpoint


def sink_config(**kw: Any) -> Any:
    return build_config({"sinks": [{"name": "o", "type": "otlp", **kw}]}, env={})


def test_config_through_the_sidecar_loader() -> None:
    cfg = sink_config(
        url="http://c:4318",
        encoding="json",
        headers={"X-Scope-OrgID": "team-a"},
        secret_headers={"x-api-key": {"env": "KEY"}},
        bearer_token_env="TOKEN",
        resource={"service.namespace": "shop"},
    )
    (spec,) = cfg.sinks
    assert spec.type == "otlp" and spec.spool is not None  # spooled by default
    assert spec.config.auth.bearer_token_env == "TOKEN"
    assert spec.config.secret_headers["x-api-key"].env == "KEY"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"url": "collector:4318"}, "expected http:// or https://"),
        ({"url": "http://c", "headers": {"Authorization": "Bearer x"}}, "by reference"),
        ({"url": "http://c", "headers": {"X-Api-Key": "x"}}, "by reference"),
        ({"url": "http://c", "headers": {"Content-Type": "a"}}, "set by the sink"),
        ({"url": "http://c", "headers": {"bad name": "a"}}, "not a valid header name"),
        ({"url": "http://c", "secret_headers": {"k": {}}}, "exactly one of env or file"),
        ({"url": "http://c", "encoding": "yaml"}, "encoding"),
        ({"url": "http://c", "partial_success": "drop"}, "partial_success"),
        ({"url": "http://c", "batch_max_bytes": "10"}, "at least 1KiB"),
    ],
)
def test_config_errors_name_the_key(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        sink_config(**kw)
    assert message in str(err.value) and "sinks[0]" in str(err.value)
    assert "Bearer x" not in str(err.value)


# --- delivery -------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [{}, {"encoding": "json"}, {"compression": "none"}])
def test_delivers_every_line_once(otlp: OTLPReceiver, kw: dict[str, Any]) -> None:
    s, m = sink(otlp.url, batch_max_bytes="2KiB", **kw)
    res = s.send(batch(recs(40)))
    assert res.rejected == []
    assert seen(otlp) == list(range(40))
    st = otlp.stats()
    assert st["export_requests"] > 1  # split by batch_max_bytes
    assert st["gzip_requests"] == (0 if kw.get("compression") == "none" else st["export_requests"])
    json_requests = st["export_requests"] if kw.get("encoding") == "json" else 0
    assert st["json_requests"] == json_requests
    assert m.sent_lines == 40 and m.requests == ["200"] * st["export_requests"]


def test_body_line_mode_sends_the_line(otlp: OTLPReceiver) -> None:
    s, _ = sink(otlp.url, body="line")
    b = batch(recs(2))
    s.send(b)
    assert [r.body for r in otlp.records()] == [x.decode() for x in b.lines]
    assert [r.attributes for r in otlp.records()] == [{}, {}]
    assert [r.trace_id for r in otlp.records()] == [TRACE, TRACE]


def test_headers_auth_and_secret_headers(
    otlp: OTLPReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTLP_TEST_TOKEN", "s3cr3t-token")
    (tmp_path / "key").write_text("k3y-from-file\n")
    s, _ = sink(
        otlp.url,
        headers={"X-Scope-OrgID": "team-a"},
        secret_headers={"x-api-key": {"file": str(tmp_path / "key")}},
        auth={"bearer_token_env": "OTLP_TEST_TOKEN"},
    )
    s.send(batch(recs(1)))
    (h,) = otlp.requests_seen
    assert h["X-Scope-OrgID"] == "team-a"
    assert h["x-api-key"] == "k3y-from-file"
    assert h["Authorization"] == "Bearer s3cr3t-token"
    assert h["Content-Type"] == "application/x-protobuf" and h["Content-Encoding"] == "gzip"
    assert "s3cr3t" not in s.describe_target() and "k3y" not in repr(s.config)


def test_429_with_retry_after_is_honoured(otlp: OTLPReceiver) -> None:
    s, m = sink(otlp.url, retry={"initial": 0.01, "max": 0.5})  # honoured up to 4 x max
    otlp.fail_next(1, 429, retry_after="1")
    t0 = time.monotonic()
    assert s.send(batch(recs(3))).rejected == []
    assert time.monotonic() - t0 >= 1.0
    assert m.retries == ["429"] and seen(otlp) == [0, 1, 2]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 401, 403, 404, 415])
def test_server_and_configuration_errors_are_retried_not_dead_lettered(
    otlp: OTLPReceiver, status: int
) -> None:
    s, m = sink(otlp.url)
    otlp.fail_next(2, status)
    assert s.send(batch(recs(3))).rejected == []
    assert seen(otlp) == [0, 1, 2]
    assert len(m.retries) == 2 and m.dead == {}


def test_400_isolates_exactly_the_bad_lines(otlp_factory) -> None:
    rx = otlp_factory(Limits(reject=lambda r: "bad i" if r.attributes["i"] in (3, 9) else None,
                             reject_mode="400_all"))  # fmt: skip
    s, m = sink(rx.url)
    res = s.send(batch(recs(16)))
    assert [i for i, _ in res.rejected] == [3, 9]
    assert all(reason == "otlp 400: bad i" for _, reason in res.rejected)
    assert seen(rx) == [i for i in range(16) if i not in (3, 9)]  # each once: nothing was stored
    assert m.dead == {"http_400": 2}


def test_loki_style_400_stores_the_rest_and_isolation_resends_it(otlp_factory) -> None:
    # Loki's /otlp answers 400 after storing the valid records: isolation sends them again
    # (Loki drops exact duplicates still in its head block).
    rx = otlp_factory(Limits(reject=lambda r: "too old" if r.attributes["i"] == 5 else None,
                             reject_mode="400_partial"))  # fmt: skip
    s, _ = sink(rx.url)
    res = s.send(batch(recs(8)))
    assert [i for i, _ in res.rejected] == [5]
    assert set(seen(rx)) == {0, 1, 2, 3, 4, 6, 7}
    # 8 sent, halves [0-3] [4-7], then [4,5] [6,7], then [4] [5]: copies of each good line
    copies = {i: seen(rx).count(i) for i in set(seen(rx))}
    assert copies == {0: 2, 1: 2, 2: 2, 3: 2, 4: 4, 6: 3, 7: 3}


def test_partial_success_isolate_dead_letters_exactly_the_rejected(otlp_factory) -> None:
    rx = otlp_factory(
        Limits(reject=lambda r: "attribute too long" if r.attributes["i"] == 5 else None)
    )
    s, m = sink(rx.url)
    res = s.send(batch(recs(8)))
    assert res.rejected == [
        (5, "otlp partial success: 1 of 1 records rejected: attribute too long")
    ]
    copies = {i: seen(rx).count(i) for i in set(seen(rx))}
    assert copies == {0: 2, 1: 2, 2: 2, 3: 2, 4: 4, 6: 3, 7: 3}
    # Accepted records sent again: 7 (in the first answer) + 3 (in [4-7]) + 1 (in [4,5]).
    assert s.resent_after_partial == 11 == sum(copies.values()) - 7
    assert m.dead == {"partial_success": 1}
    assert rx.stats()["partial_successes"] == 4  # [0-7], [4-7], [4,5], [5]


def test_partial_success_rejecting_everything_sends_nothing_twice(otlp_factory) -> None:
    rx = otlp_factory(Limits(reject=lambda r: "quota" if r.attributes["i"] < 4 else None))
    s, _ = sink(rx.url)
    res = s.send(batch(recs(8)))
    assert [i for i, _ in res.rejected] == [0, 1, 2, 3]
    assert sorted(seen(rx)) == [4, 4, 5, 5, 6, 6, 7, 7]  # the first answer stored them
    assert s.resent_after_partial == 4


def test_partial_success_dead_letter_mode_resends_nothing(otlp_factory) -> None:
    rx = otlp_factory(Limits(reject=lambda r: "too long" if r.attributes["i"] == 2 else None))
    s, m = sink(rx.url, partial_success="dead_letter")
    res = s.send(batch(recs(4)))
    assert [i for i, _ in res.rejected] == [0, 1, 2, 3]
    assert "1 of these 4 records were rejected" in res.rejected[0][1]
    assert "too long" in res.rejected[0][1]
    assert seen(rx) == [0, 1, 3] and rx.stats()["export_requests"] == 1
    assert m.dead == {"partial_success_unattributed": 4} and s.resent_after_partial == 0


def test_partial_success_warning_is_success(otlp: OTLPReceiver) -> None:
    logged: list[tuple[Any, ...]] = []
    s, _ = sink(otlp.url)
    s.delivery.set_log(lambda *a, **k: logged.append((a, k)))
    out = s._accepted([0, 1], b"\x0a\x06\x12\x04slow", 10)  # rejected 0, message "slow"
    assert out.delivered == 2 and not out.rejected and out.split is None
    assert logged and logged[0][1]["detail"] == "slow"


def test_413_splits_and_a_single_oversized_record_is_dead_lettered(otlp_factory) -> None:
    rx = otlp_factory(Limits(max_body_bytes=2000))
    s, m = sink(rx.url, compression="none")
    rows = recs(6)
    rows[4]["blob"] = "x" * 3000
    res = s.send(batch(rows))
    assert [i for i, _ in res.rejected] == [4]
    assert "otlp 413" in res.rejected[0][1]
    assert seen(rx) == [0, 1, 2, 3, 5]
    assert m.dead == {"too_large": 1}


def test_reset_after_store_is_resent_and_counted(otlp: OTLPReceiver) -> None:
    s, m = sink(otlp.url)
    otlp.reset_next(1, store=True)
    assert s.send(batch(recs(4))).rejected == []
    assert sorted(seen(otlp)) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert s.resent_after_unknown == 1 and m.retries == ["network"]


def test_timeout_is_retried(otlp: OTLPReceiver) -> None:
    s, m = sink(otlp.url, timeout="0.3s")
    otlp.stall_next(1, seconds=1.0, store=False)
    assert s.send(batch(recs(2))).rejected == []
    assert seen(otlp) == [0, 1] and m.retries == ["timeout"]


def test_unreachable_then_back(tmp_path: Path) -> None:
    rx = OTLPReceiver()
    rx.start()
    port = rx.port
    rx.stop()
    s, m = sink(f"http://127.0.0.1:{port}")
    import threading

    b = batch(recs(3))
    result: list[Any] = []
    t = threading.Thread(target=lambda: result.append(s.send(b)))
    t.start()
    time.sleep(0.5)
    rx2 = OTLPReceiver().start(port=port)
    try:
        t.join(timeout=20)
        assert result and result[0].rejected == []
        assert seen(rx2) == [0, 1, 2] and "connect" in m.retries
    finally:
        s.stopping.set()
        rx2.stop()


def test_a_line_the_encoder_cannot_handle_is_isolated(otlp: OTLPReceiver) -> None:
    s, _m = sink(otlp.url)
    b = batch(recs(4))
    b.records[2].level = "TRACE"  # type: ignore[assignment]  # no severity for it
    res = s.send(b)
    assert [i for i, _ in res.rejected] == [2]
    assert "cannot send" in res.rejected[0][1] and "TRACE" in res.rejected[0][1]
    assert seen(otlp) == [0, 1, 3]


def test_unreadable_2xx_body_counts_as_accepted(otlp: OTLPReceiver) -> None:
    s, _ = sink(otlp.url)
    out = s._accepted([0, 1, 2], b"<html>ok</html>", 10)
    assert out.delivered == 3 and out.split is None


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture
def cert(tmp_path: Path) -> tuple[str, str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(crt), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return str(crt), str(key)


def test_tls_verified_against_a_private_ca(otlp_factory, cert: tuple[str, str]) -> None:
    rx = otlp_factory(tls=cert)
    assert rx.url.startswith("https://")
    b = batch(recs(2))
    untrusted, _ = sink(rx.url)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusted.attempt(b, [0, 1])
    assert untrusted.transient_cause(httpx.ConnectError("x")) == "connect"  # retried, kept
    trusted, _ = sink(rx.url, tls={"ca_file": cert[0]})
    assert trusted.send(b).rejected == []
    assert seen(rx) == [0, 1]


def test_sink_config_struct_rejects_unknown_keys() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"url": "http://x", "colour": 1}, Config)


def test_describe_target_hides_credentials() -> None:
    s = OTLPSink("o", Config(url="https://user:pw@collector:4318"))
    assert s.describe_target() == "https://collector:4318/v1/logs"
