"""Where ``obskit trace`` finds its backends: command line, environment, then a config file.

The config file is TOML (an ``obskit.toml`` with a ``[trace]`` table, or a file whose top level
is that table) or YAML (``.yaml``/``.yml``, the same keys). Secrets are never written in it:
only the names of environment variables or files that hold them (``password_env``,
``bearer_token_file``, ...).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec
import yaml

from obskit._http import AuthConfig, Credentials, TLSConfig
from obskit.schema.encoding import TextFileError, read_text_file
from obskit.secrets import Secret, SecretError
from obskit.trace.model import TraceUsageError, parse_duration_ns

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

ENV_CONFIG: Final = "OBSKIT_TRACE_CONFIG"
T = TypeVar("T")
#: Shards shorter than a second only multiply requests (``--shard 1ms`` once made millions).
MIN_SHARD_NS: Final = 1_000_000_000


@dataclass
class HTTPBackendConfig:
    """Settings both HTTP backends share: where, who, TLS, and how to split the window.

    ``auth`` and ``tls`` are the sidecar sinks' schema (:mod:`obskit._http`); in the file their
    keys sit directly in the backend's table (``username``, ``password_env``, ``ca_file``...).
    """

    url: str = ""
    auth: AuthConfig = field(default_factory=AuthConfig)
    tls: TLSConfig | None = None
    timeout: float = 30.0
    shard: str = "6h"
    page_size: int = 5000

    def shard_ns(self) -> int:
        """The shard size in nanoseconds (at least :data:`MIN_SHARD_NS`)."""
        ns = parse_duration_ns(self.shard)
        if ns < MIN_SHARD_NS:
            raise TraceUsageError(
                f"{self.shard!r} is too small: a shard must be at least 1s "
                "(the defaults are 6h for Loki, 1d for Elasticsearch)"
            )
        return ns


@dataclass
class LokiConfig(HTTPBackendConfig):
    """``[trace.loki]``."""

    tenant: str | None = None
    #: Stream selector every query starts from; must match all streams that carry traces.
    selector: str = '{service=~".+"}'
    #: Streams of lines shipped over OTLP (Loki's ``/otlp`` endpoint labels them with
    #: ``service_name`` from the resource, and has no ``service`` label): searched by
    #: structured metadata too. Empty: not searched.
    otlp_selector: str = '{service_name=~".+", service=""}'
    #: ``both`` (structured metadata query and line-filter fallback, merged), ``metadata``
    #: or ``line``.
    mode: str = "both"
    #: Ask Loki 3 for categorized labels (``X-Loki-Response-Encoding-Flags``).
    categorize_labels: bool = True
    #: ``--follow`` poll interval in seconds.
    poll_interval: float = 2.0
    #: ``obskit audit --instance/--by-instance``: the stream label naming the shipping
    #: instance (the Loki sink's ``instance_label``).
    instance_label: str = "instance"


@dataclass
class ElasticsearchConfig(HTTPBackendConfig):
    """``[trace.elasticsearch]``."""

    shard: str = "1d"
    page_size: int = 1000
    index: str = "logs-*"
    trace_field: str = "trace_id"
    timestamp_field: str = "@timestamp"
    #: Use a point in time when the server offers one (ES ``_pit``, OpenSearch 2.4+).
    pit: bool = True
    keep_alive: str = "2m"
    #: ``auto``: ``search_after`` on ``_shard_doc`` inside an Elasticsearch PIT, else a
    #: timestamp cursor that excludes ids already seen. Or a unique keyword field to sort on.
    tiebreaker: str = "auto"


@dataclass
class TraceConfig:
    """Everything ``obskit trace`` reads from the config file, environment and command line."""

    loki: LokiConfig | None = None
    elasticsearch: ElasticsearchConfig | None = None
    paths: list[str] = field(default_factory=list)
    link_template: str | None = None
    since: str = "24h"
    #: Bound on concurrent backend requests (shards of all backends share it).
    concurrency: int = 4
    fields: list[str] = field(default_factory=list)
    source: str = "defaults"


_SECTION_KEYS: Final = {"loki", "elasticsearch", "files"}
_TOP_KEYS: Final = {"link_template", "since", "concurrency", "fields"}


def find_config(start: Path | None = None) -> Path | None:
    """``$OBSKIT_TRACE_CONFIG``, else the nearest ``obskit.toml`` with a ``[trace]`` table
    upwards from ``start``, else the user's ``obskit/trace.toml`` (``%APPDATA%`` on Windows,
    ``$XDG_CONFIG_HOME`` or ``~/.config`` elsewhere)."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        cand = folder / "obskit.toml"
        if cand.is_file():
            try:
                if "trace" in tomllib.loads(read_text_file(cand)):
                    return cand
            except (OSError, TextFileError, tomllib.TOMLDecodeError):
                return cand  # let load_config report the problem
    if sys.platform == "win32":  # pragma: no cover - Windows only
        base = Path(os.environ.get("APPDATA", Path.home()))
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    user = base / "obskit" / "trace.toml"
    return user if user.is_file() else None


def load_config(path: Path | None) -> TraceConfig:
    """Read the config file (``None``: defaults only)."""
    if path is None:
        return TraceConfig()
    try:
        text = read_text_file(path)
    except OSError as exc:
        raise TraceUsageError(f"config {path}: cannot read: {exc.strerror or exc}") from None
    except TextFileError as exc:
        raise TraceUsageError(f"config {path}: {exc.reason}") from None
    data: Any
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise TraceUsageError(f"config {path}: invalid YAML: {exc}") from None
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TraceUsageError(f"config {path}: invalid TOML: {exc}") from None
    if not isinstance(data, dict):
        raise TraceUsageError(f"config {path}: expected a table of settings")
    if isinstance(data.get("trace"), dict):
        data = data["trace"]
    elif path.name == "obskit.toml":
        return TraceConfig(source=str(path))
    return config_from_mapping(data, str(path))


def config_from_mapping(data: Mapping[str, Any], source: str) -> TraceConfig:
    unknown = set(data) - _SECTION_KEYS - _TOP_KEYS
    if unknown:
        raise TraceUsageError(f"config {source}: unknown key(s) {', '.join(sorted(unknown))}")
    cfg = TraceConfig(source=source)
    if "loki" in data:
        cfg.loki = _section(LokiConfig, data["loki"], f"{source} [trace.loki]")
    if "elasticsearch" in data:
        cfg.elasticsearch = _section(
            ElasticsearchConfig, data["elasticsearch"], f"{source} [trace.elasticsearch]"
        )
    files = data.get("files", {})
    if not isinstance(files, dict) or set(files) - {"paths"}:
        raise TraceUsageError(f"config {source}: [trace.files] takes only paths = [...]")
    cfg.paths = [str(p) for p in files.get("paths", [])]
    if "link_template" in data:
        cfg.link_template = str(data["link_template"])
    if "since" in data:
        cfg.since = str(data["since"])
        parse_duration_ns(cfg.since)
    if "concurrency" in data:
        cfg.concurrency = _int(data["concurrency"], "concurrency", source, 1)
    if "fields" in data:
        cfg.fields = [str(x) for x in data["fields"]]
    return cfg


def _int(value: Any, key: str, source: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TraceUsageError(f"config {source}: {key} must be an integer >= {minimum}")
    return value


#: The sidecar's auth and TLS settings; in ``[trace.loki]``/``[trace.elasticsearch]`` they sit
#: directly in the table.
_AUTH_KEYS: Final = frozenset(AuthConfig.__struct_fields__)
_TLS_KEYS: Final = frozenset(TLSConfig.__struct_fields__)


def _section(cls: type[Any], data: Any, source: str) -> Any:
    if not isinstance(data, dict):
        raise TraceUsageError(f"config {source}: expected a table")
    own = {f.name for f in fields(cls)} - {"auth", "tls"}
    unknown = set(data) - own - _AUTH_KEYS - _TLS_KEYS
    for secret in ("password", "bearer_token", "api_key", "token"):
        if secret in unknown:
            raise TraceUsageError(
                f"config {source}: {secret} cannot be written in the config; "
                f"use {secret if secret != 'token' else 'bearer_token'}_env or _file"
            )
    if unknown:
        raise TraceUsageError(f"config {source}: unknown key(s) {', '.join(sorted(unknown))}")
    obj = cls()
    for k, v in data.items():
        if k not in own:
            continue
        default = getattr(obj, k)
        if isinstance(default, bool) and not isinstance(v, bool):
            raise TraceUsageError(f"config {source}: {k} must be true or false")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise TraceUsageError(f"config {source}: {k} must be a positive number")
            v = type(default)(v)
        elif default is not None and isinstance(default, str) and not isinstance(v, str):
            raise TraceUsageError(f"config {source}: {k} must be a string")
        setattr(obj, k, v)
    obj.auth = _struct(AuthConfig, {k: v for k, v in data.items() if k in _AUTH_KEYS}, source)
    tls = {k: v for k, v in data.items() if k in _TLS_KEYS}
    if tls:
        obj.tls = _struct(TLSConfig, tls, source)
    if obj.shard:
        try:
            obj.shard_ns()
        except TraceUsageError as exc:
            raise TraceUsageError(f"config {source}: shard: {exc}") from None
    return obj


def _struct(cls: type[T], data: dict[str, Any], source: str) -> T:
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise TraceUsageError(f"config {source}: {exc}") from None


def apply_env(cfg: TraceConfig, env: Mapping[str, str] | None = None) -> TraceConfig:
    """Environment over the config file: ``OBSKIT_LOKI_URL``, ``OBSKIT_LOKI_TENANT``,
    ``OBSKIT_LOKI_USERNAME``, ``OBSKIT_ES_URL``, ``OBSKIT_ES_INDEX``, ``OBSKIT_ES_USERNAME``.
    Secret variables (``OBSKIT_LOKI_PASSWORD``, ``OBSKIT_LOKI_TOKEN``, ``OBSKIT_ES_PASSWORD``,
    ``OBSKIT_ES_API_KEY``, ``OBSKIT_ES_TOKEN``) are read when the credentials are built."""
    env = os.environ if env is None else env
    if env.get("OBSKIT_LOKI_URL"):
        cfg.loki = cfg.loki or LokiConfig()
        cfg.loki.url = env["OBSKIT_LOKI_URL"]
    if cfg.loki is not None:
        if env.get("OBSKIT_LOKI_TENANT"):
            cfg.loki.tenant = env["OBSKIT_LOKI_TENANT"]
        if env.get("OBSKIT_LOKI_USERNAME"):
            cfg.loki.auth.username = env["OBSKIT_LOKI_USERNAME"]
    if env.get("OBSKIT_ES_URL"):
        cfg.elasticsearch = cfg.elasticsearch or ElasticsearchConfig()
        cfg.elasticsearch.url = env["OBSKIT_ES_URL"]
    if cfg.elasticsearch is not None:
        if env.get("OBSKIT_ES_INDEX"):
            cfg.elasticsearch.index = env["OBSKIT_ES_INDEX"]
        if env.get("OBSKIT_ES_USERNAME"):
            cfg.elasticsearch.auth.username = env["OBSKIT_ES_USERNAME"]
    return cfg


def credentials(
    cfg: HTTPBackendConfig, prefix: str, what: str, env: Mapping[str, str] | None = None
) -> Credentials:
    """Credentials from the config's ``*_env``/``*_file`` references, else from the
    ``OBSKIT_<prefix>_PASSWORD`` / ``_TOKEN`` / ``_API_KEY`` environment variables."""
    env = os.environ if env is None else env
    try:
        c = Credentials.resolve(cfg.auth)
    except SecretError as exc:
        raise TraceUsageError(f"{what}: {exc}") from None

    def from_env(name: str) -> Secret | None:
        value = env.get(f"OBSKIT_{prefix}_{name}")
        return None if value is None else Secret(value, f"env OBSKIT_{prefix}_{name}")

    # The password variable only means something with a username (basic auth).
    if c.password is None and c.username is not None:
        c.password = from_env("PASSWORD")
    if c.bearer is None:
        c.bearer = from_env("TOKEN")
    if c.api_key is None and isinstance(cfg, ElasticsearchConfig):
        c.api_key = from_env("API_KEY")
    if c.password is not None and c.username is None:
        raise TraceUsageError(f"{what}: a password is set but no username")
    return c


def resolve_config(
    config_path: Path | None,
    loki_url: str | None,
    tenant: str | None,
    es_url: str | None,
    index: str | None,
    paths: tuple[Path, ...] | list[Path] = (),
    shard: str | None = None,
    concurrency: int | None = None,
) -> TraceConfig:
    """The backends of ``obskit trace`` and ``obskit audit``: the config file, then the
    environment, then the command line (each overrides the one before)."""
    if config_path is not None and not config_path.is_file():
        raise TraceUsageError(f"--config {config_path}: no such file")
    cfg = apply_env(load_config(config_path or find_config()))
    if loki_url:
        cfg.loki = cfg.loki or LokiConfig()
        cfg.loki.url = loki_url
    if tenant:
        if cfg.loki is None:
            raise TraceUsageError("--tenant needs a Loki backend (--loki URL)")
        cfg.loki.tenant = tenant
    if es_url:
        cfg.elasticsearch = cfg.elasticsearch or ElasticsearchConfig()
        cfg.elasticsearch.url = es_url
    if index:
        if cfg.elasticsearch is None:
            raise TraceUsageError("--index needs an Elasticsearch backend (--es URL)")
        cfg.elasticsearch.index = index
    if paths:
        cfg.paths = [str(p) for p in paths]
    if shard:
        try:
            HTTPBackendConfig(shard=shard).shard_ns()
        except TraceUsageError as exc:
            raise TraceUsageError(f"--shard {shard}: {exc}") from None
        for backend in (cfg.loki, cfg.elasticsearch):
            if backend is not None:
                backend.shard = shard
    if concurrency:
        cfg.concurrency = concurrency
    return cfg
