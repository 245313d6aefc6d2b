"""``obskit.secrets.mask_secrets``: what a server answered, or a config value, made safe to log."""

from __future__ import annotations

import time

import pytest

from obskit.secrets import mask_secrets

SECRET = "s3cr3t-Pl4nted"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # URL user-info, whatever the scheme (a typo included), or none at all.
        (f"htp://bob:{SECRET}@loki:3100", "htp://***@loki:3100"),
        (f"https://bob:{SECRET}@es:9200/_bulk", "https://***@es:9200/_bulk"),
        (f"bob:{SECRET}@loki:3100", "***@loki:3100"),
        # Header lines, and headers quoted on a command line.
        (f"Authorization: Bearer {SECRET}\nHost: x", "Authorization: ***\nHost: x"),
        (f"proxy-authorization: Basic {SECRET}", "proxy-authorization: ***"),
        (f"Cookie: sid={SECRET}; theme=dark", "Cookie: ***"),
        (f"Set-Cookie: sid={SECRET}; HttpOnly", "Set-Cookie: ***"),
        (f'curl -H "X-Api-Key: {SECRET}" http://h', 'curl -H "X-Api-Key: ***" http://h'),
        # JSON and Python-repr fields, nested, in lists, non-string values.
        (
            f'{{"headers":{{"Authorization":["ApiKey {SECRET}"]}},"ok":1}}',
            '{"headers":{"Authorization":"***"},"ok":1}',
        ),
        (f'{{"password": 12345, "api_key": "{SECRET}"}}', '{"password": "***", "api_key": "***"}'),
        (f"{{'x-api-key': '{SECRET}', 'n': 1}}", "{'x-api-key': \"***\", 'n': 1}"),
        (f'{{"client_secret":"{SECRET}"}}', '{"client_secret":"***"}'),
        # A JSON body echoed inside a JSON string.
        (
            f'{{"reason":"bad {{\\"token\\":\\"{SECRET}\\"}}"}}',
            '{"reason":"bad {\\"token\\":\\"***\\"}"}',
        ),
        # Query parameters.
        (f"GET /x?api_key={SECRET}&page=2", "GET /x?api_key=***&page=2"),
        (f"access_token={SECRET}", "access_token=***"),
        # Auth schemes anywhere in prose.
        (f"sent Bearer {SECRET} to the proxy", "sent Bearer *** to the proxy"),
        ("Basic dXNlcjpwYXNzd29yZA== was refused", "Basic *** was refused"),
    ],
)
def test_masks(text: str, expected: str) -> None:
    assert mask_secrets(text) == expected
    assert SECRET not in mask_secrets(text)


@pytest.mark.parametrize(
    "text",
    [
        'Basic authentication failed; Bearer realm="security"',
        "mail bob@example.com at 12:30",
        "sinks[0].auth.password_file: cannot read /run/secrets/x",
        '{"tokens": 5}'.replace("tokens", "count"),
        "checkpoint.dir: ${STATE} is not set",
        "http://loki:3100/loki/api/v1/push",
    ],
)
def test_leaves_ordinary_text_alone(text: str) -> None:
    assert mask_secrets(text) == text


def test_bytes_and_truncation() -> None:
    body = b'{"error":"' + b"x" * 5000 + b'"}\xff'
    out = mask_secrets(body, limit=100)
    assert out.startswith('{"error":"xxx') and out.endswith("… (4913 more characters)")
    assert len(out) < 130
    assert mask_secrets(b"caf\xe9") == "caf\ufffd"
    assert mask_secrets("a" * 5000, limit=None) == "a" * 5000


def test_secret_straddling_the_cut_is_masked_before_cutting() -> None:
    text = "x" * 90 + f"Authorization: Bearer {SECRET}{SECRET}"
    out = mask_secrets(text, limit=100)
    assert SECRET[:4] not in out, out


@pytest.mark.parametrize(
    "text",
    [
        "a." * 3000,
        '"' + "a-" * 3000,
        '\\"' + "a." * 3000,
        '"password":' * 2000,
        '"password": "' + "a" * 6000,
        "a:" * 3000,
        "a" * 6000 + "@",
        "://" * 2000,
    ],
)
def test_linear_time_on_hostile_bodies(text: str) -> None:
    t0 = time.perf_counter()
    mask_secrets(text, limit=None)
    assert time.perf_counter() - t0 < 0.5
