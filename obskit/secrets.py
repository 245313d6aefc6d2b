"""Secrets by reference (an environment variable or a file), never from config text, never
printed; and the credentials built from them. Shared by ``obskit trace`` and the sidecar."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from obskit.schema.encoding import TextFileError, read_text_file


class SecretError(ValueError):
    """A secret reference cannot be resolved (names the variable or file, never the value)."""


@dataclass(frozen=True)
class Secret:
    """A resolved secret whose ``repr``/``str`` say where it came from, never what it is."""

    _value: str
    source: str

    def reveal(self) -> str:
        """The secret itself: only for building an auth header."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from {self.source})"

    __str__ = __repr__


def resolve_secret(*, env: str | None = None, file: str | Path | None = None) -> Secret | None:
    """Read a secret from environment variable ``env`` or from ``file`` (a trailing newline
    is stripped, as Docker and Kubernetes secret files usually end with one; a BOM too, and
    UTF-16 is decoded, as Windows editors and PowerShell write them). ``None`` when neither is
    given."""
    if env and file:
        raise SecretError("give a secret either as an environment variable or a file, not both")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SecretError(f"environment variable {env} is not set")
        return Secret(value, f"env {env}")
    if file:
        p = Path(file)
        try:
            value = read_text_file(p).rstrip("\n")
        except OSError as exc:
            raise SecretError(f"cannot read secret file {p}: {exc.strerror or exc}") from None
        except TextFileError:
            # Not the decoder's reason: it quotes a byte of the secret.
            raise SecretError(
                f"cannot read secret file {p}: not UTF-8 or UTF-16 text; save it as UTF-8"
            ) from None
        return Secret(value, f"file {p}")
    return None


@dataclass
class Credentials:
    """Resolved credentials of one HTTP backend; only :meth:`headers` and :meth:`basic`
    reveal them. A bearer token wins over an API key; basic auth needs a username."""

    username: str | None = None
    password: Secret | None = None
    bearer: Secret | None = None
    api_key: Secret | None = None

    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header for a bearer token or an Elasticsearch API key."""
        if self.bearer is not None:
            return {"Authorization": f"Bearer {self.bearer.reveal()}"}
        if self.api_key is not None:
            return {"Authorization": f"ApiKey {self.api_key.reveal()}"}
        return {}

    def basic(self) -> tuple[str, str] | None:
        """``(username, password)`` for HTTP basic auth, or ``None``."""
        if self.username is None:
            return None
        return (self.username, self.password.reveal() if self.password else "")


# --- masking text for logs and errors ---------------------------------------------------------

MASK = "***"
#: Header names and JSON / query keys whose value is a credential (also inside a longer key:
#: "x-amz-security-token", "client_secret", "password_hash").
_SECRET_NAME = (
    r"authorization|api[-_]?key|auth[-_]?token|access[-_]?token|refresh[-_]?token|id[-_]?token"
    r"|private[-_]?key|cookie|password|passwd|secret|token"
)
# Keys are matched as bounded runs of key characters, then tested against the names in the
# replacement: a pattern with the names between unbounded runs backtracks quadratically.
_KEY = r"(?P<key>[\w.-]{1,80})"


class _Patterns:
    """The patterns, compiled on first use (not at every process start)."""

    def __init__(self) -> None:
        self.secret_name = re.compile(_SECRET_NAME, re.IGNORECASE)
        # "authorization": "Bearer x", 'api_key': 'x', "cookie": ["a=b"], "password": 123;
        # the key alone is matched, so the values of other keys (objects, lists) are still
        # searched.
        self.json_key = re.compile(rf"""(?P<q>["']){_KEY}(?P=q)\s*:\s*""")
        self.json_value = re.compile(
            r"""("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?|\[[^\]]*\]?|[^\s,{}\[\]]+)"""
        )
        # The same inside a JSON string (a server echoing a request body in its error).
        self.escaped_json_key = re.compile(rf"""\\"{_KEY}\\"\s*:\s*""")
        self.escaped_json_value = re.compile(
            r"""(\\"(?:[^"\\]|\\[^"])*(?:\\"|$)|[^\s,{}\[\]\\]+)"""
        )
        # A header line ("Authorization: Basic x", "Cookie: a=b; c=d": the whole value), or
        # a header quoted on a command line ("X-Api-Key: x").
        self.header_line = re.compile(rf"^(?P<k>[ \t]*{_KEY}[ \t]*:[ \t]*)\S[^\r\n]*", re.MULTILINE)
        self.quoted_header = re.compile(rf"""(?P<k>["']{_KEY}[ \t]*:[ \t]*)[^"'\r\n]+""")
        # A query or form parameter: ?api_key=x&token=y
        self.param = re.compile(rf"(?P<k>(?<![\w.-]){_KEY}=)[^\s&;,\"'<>]+")
        # An auth scheme and its credential anywhere: "Bearer eyJ...", "Basic dXNlcjpwYXNz".
        self.scheme = re.compile(
            r"(?P<k>\b(?:bearer|basic|apikey|negotiate)\s+)(?P<v>[A-Za-z0-9._~+/=-]+)", re.I
        )
        # user:password@ in URLs, with or without a scheme.
        self.userinfo = re.compile(r"(?P<k>\b[A-Za-z][A-Za-z0-9+.-]{0,30}://)[^\s/@?#\"'<>]+@")
        self.bare_userinfo = re.compile(
            r"(?<![\w.+%~:/-])[\w.+%~-]{1,200}:[^\s/@:\"'<>]{1,200}@(?=[\w\[])"
        )


@functools.cache
def _patterns() -> _Patterns:
    return _Patterns()


def _masked(m: re.Match[str]) -> str:
    if not _patterns().secret_name.search(m.group("key")):
        return m.group(0)
    return m.group("k") + MASK


def _mask_fields(text: str, key: re.Pattern[str], value: re.Pattern[str], masked: str) -> str:
    out: list[str] = []
    pos = 0
    for m in key.finditer(text):
        if m.start() < pos or not _patterns().secret_name.search(m.group("key")):
            continue
        v = value.match(text, m.end())
        if v is None:
            continue
        out += (text[pos : m.end()], masked)
        pos = v.end()
    return "".join(out) + text[pos:] if out else text


def _scheme_value(m: re.Match[str]) -> str:
    value = m.group("v")
    # A credential, not prose ("Basic authentication failed", "Bearer realm"): long enough
    # and not plain lower-case letters.
    looks = len(value) >= 8 and not (value.isalpha() and value[1:].islower())
    return m.group("k") + (MASK if looks else value)


def mask_secrets(text: str | bytes, limit: int | None = 500) -> str:
    """``text`` with anything shaped like a credential replaced by ``***``, cut to ``limit``
    characters (``None``: never cut). For logging what a server answered and for error
    messages that quote configuration values.

    Masked: the user-info of URLs (``https://***@host``, also ``user:pw@host`` without a
    scheme); the values of ``Authorization``, ``Proxy-Authorization``, ``X-Api-Key``,
    ``Cookie``, ``Set-Cookie`` and any ``api_key``, ``token``, ``password`` or ``secret``
    written as a header line, a JSON or Python-repr field (also inside a JSON string) or a
    query parameter; and credentials after ``Bearer``, ``Basic``, ``ApiKey`` or
    ``Negotiate`` anywhere. Bytes are decoded as UTF-8 (invalid bytes replaced). When cut,
    the text ends with ``… (N more characters)``; masking happens before the cut, so a
    secret straddling the limit is not half shown.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    total = len(text)
    if limit is not None and total > limit + 4096:
        # Do not run the patterns over megabytes that will be cut anyway; the margin keeps a
        # secret that straddles the cut inside what is masked.
        text = text[: limit + 4096]
    p = _patterns()
    text = _mask_fields(text, p.json_key, p.json_value, f'"{MASK}"')
    text = _mask_fields(text, p.escaped_json_key, p.escaped_json_value, f'\\"{MASK}\\"')
    text = p.header_line.sub(_masked, text)
    text = p.quoted_header.sub(_masked, text)
    text = p.param.sub(_masked, text)
    text = p.scheme.sub(_scheme_value, text)
    text = p.userinfo.sub(lambda m: m.group("k") + MASK + "@", text)
    text = p.bare_userinfo.sub(MASK + "@", text)
    if limit is not None and total > limit:
        kept = text[:limit]
        return f"{kept}… ({total - len(kept)} more characters)"
    return text
