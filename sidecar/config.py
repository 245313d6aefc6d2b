"""The sidecar's configuration: one YAML file, ``${VAR}`` expansion, environment overrides,
validated with msgspec into :class:`SidecarConfig`; errors name the file and the key path.

Environment overrides: ``OBSKIT_SIDECAR__<KEY>__<KEY>...=value`` sets one value, keys
case-insensitive, list items by index (``OBSKIT_SIDECAR__SINKS__0__URL=http://loki:3100``,
``OBSKIT_SIDECAR__BATCH__MAX_WAIT=200ms``); the value is read as a YAML scalar (so ``10``,
``true`` and ``[a, b]`` work). An index one past the end of a list appends an item.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from obskit._durations import ByteSize, Duration, dec_hook, parse_duration, parse_size
from obskit.schema.encoding import TextFileError, read_text_file
from sidecar.sinks.registry import SinkTypeError, sink_module
from sidecar.source.settings import SourceSettings, default_log_dir

ENV_PREFIX = "OBSKIT_SIDECAR__"
Action = Literal["forward", "repair", "quarantine"]
#: Rules whose lines are not JSON objects (or not lines at all): never forwarded as is.
NOT_FORWARDABLE = frozenset({"OBS001", "OBS002", "OBS011", "OBS012"})


def default_state_dir() -> str:
    return (
        "C:\\ProgramData\\obskit-sidecar" if sys.platform == "win32" else "/var/lib/obskit-sidecar"
    )


class ConfigError(ValueError):
    """The configuration is invalid; ``errors`` lists ``key.path: reason`` messages."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: " + "; ".join(errors))


class _Base(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class CheckpointConfig(_Base):
    """Where read positions are stored, how often they are saved, how long gone files stay."""

    dir: str = msgspec.field(default_factory=default_state_dir)
    interval: Duration = Duration(5.0)
    retention: Duration = Duration(7 * 86400.0)


class SchemaConfig(_Base):
    """What to do with lines that break schema v1: one default and per-rule overrides."""

    on_invalid: Action = "quarantine"
    rules: dict[str, Action] = msgspec.field(default_factory=dict)
    max_line_bytes: ByteSize = ByteSize(256 * 1024)
    service_default: str | None = None


class EnrichConfig(_Base):
    """Static fields describing where the lines come from (empty values are left out)."""

    environment: str | None = None
    host: str | None = None
    pod: str | None = None
    container: str | None = None
    image_version: str | None = None
    build_tags: list[str] = msgspec.field(default_factory=list)
    fields: dict[str, str] = msgspec.field(default_factory=dict)


class QuarantineConfig(_Base):
    """Dead-letter NDJSON files: invalid lines and lines a sink rejected for good."""

    dir: str | None = None
    max_bytes: ByteSize = ByteSize(64 * 1024 * 1024)
    max_files: int = 10


class HttpConfig(_Base):
    """Health and metrics endpoints."""

    listen: str = "127.0.0.1:9300"
    enabled: bool = True


class BatchConfig(_Base):
    """How lines are grouped before being handed to the sinks."""

    max_lines: int = 10000
    max_bytes: ByteSize = ByteSize(2 * 1024 * 1024)
    max_wait: Duration = Duration(0.2)


class MemoryConfig(_Base):
    """Memory held by lines read but not yet acknowledged by every sink (line bytes plus
    their decoded form); reading pauses above it."""

    #: Reading pauses while this many bytes are read but not acknowledged by every sink
    #: (bounded memory during backend outages). The default keeps the whole process under
    #: 100 MiB RSS with slow Loki/Elasticsearch backends (24 MiB reached 117-165 MiB) at the
    #: same CPU per line.
    max_inflight_bytes: ByteSize = ByteSize(8 * 1024 * 1024)


class HealthConfig(_Base):
    """When ``/readyz`` and ``/healthz`` report trouble (see docs/operations.md)."""

    #: ``/readyz`` is not ready while a sink has failed continuously for this long.
    sink_failing_after: Duration = Duration(60.0)
    #: ``/readyz`` is not ready while checkpoints have not been saved for this long (counted
    #: from start until the first save).
    checkpoint_stale_after: Duration = Duration(60.0)
    #: ``/healthz`` fails (so a liveness probe restarts the sidecar) when the main loop has
    #: not turned for this long.
    stalled_after: Duration = Duration(60.0)


class SpoolConfig(_Base):
    """A sink's disk spool (``sinks[].spool``): lines read but not yet delivered, on disk,
    so log files may rotate away during an outage. ``spool: false`` turns it off."""

    #: On by default for network sinks (Loki, Elasticsearch, OTLP); off for the file sink,
    #: whose archive is itself a local disk store.
    enabled: bool | None = None
    #: Most disk space the spool takes; see the sizing rule in docs/sidecar.md.
    max_bytes: ByteSize = ByteSize(1024 * 1024 * 1024)
    #: Folder (default: ``<checkpoint.dir>/spool/<sink name>``).
    dir: str | None = None
    #: ``interval``: synced before every checkpoint save; ``always``: every append;
    #: ``never``: left to the OS (safe against a crash, not a power cut).
    fsync: Literal["interval", "always", "never"] = "interval"
    #: ``block``: stop reading while full (the log files are the buffer); ``drop_oldest``:
    #: delete the oldest segment, counting and logging the lines dropped.
    when_full: Literal["block", "drop_oldest"] = "block"
    #: Size of one segment file; space is freed a segment at a time.
    segment_bytes: ByteSize = ByteSize(32 * 1024 * 1024)

    def __post_init__(self) -> None:
        if self.max_bytes < 1024 * 1024:
            raise ValueError("max_bytes: must be at least 1MiB")
        if self.segment_bytes < 64 * 1024:
            raise ValueError("segment_bytes: must be at least 64KiB")


#: Sink types that spool by default (a network between the sidecar and the backend).
SPOOLED_BY_DEFAULT = frozenset({"loki", "elasticsearch", "opensearch", "otlp"})


class SidecarConfig(_Base):
    """The whole file, as written (sinks and source are validated by their own modules)."""

    source: dict[str, Any] = msgspec.field(default_factory=dict)
    checkpoint: CheckpointConfig = msgspec.field(default_factory=CheckpointConfig)
    schema: SchemaConfig = msgspec.field(default_factory=SchemaConfig)
    enrich: EnrichConfig = msgspec.field(default_factory=EnrichConfig)
    quarantine: QuarantineConfig = msgspec.field(default_factory=QuarantineConfig)
    sinks: list[dict[str, Any]] = msgspec.field(default_factory=list)
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)
    shutdown_timeout: Duration = Duration(10.0)
    batch: BatchConfig = msgspec.field(default_factory=BatchConfig)
    memory: MemoryConfig = msgspec.field(default_factory=MemoryConfig)
    health: HealthConfig = msgspec.field(default_factory=HealthConfig)


@dataclass
class SinkSpec:
    """One configured sink: its name, type, its module's validated ``Config``, and its spool
    (None when off)."""

    name: str
    type: str
    config: Any
    spool: SpoolConfig | None = None


@dataclass
class LoadedConfig:
    """A validated configuration ready to run."""

    config: SidecarConfig
    source: SourceSettings
    sinks: list[SinkSpec]
    static: dict[str, str]
    quarantine_dir: Path
    origin: str
    warnings: list[str] = field(default_factory=list)

    def redacted(self) -> dict[str, Any]:
        """The effective configuration with anything secret-looking masked."""
        out: dict[str, Any] = dict(msgspec.to_builtins(self.config, enc_hook=_plain))
        out["source"] = msgspec.to_builtins(self.source, enc_hook=_plain)
        out["sinks"] = [
            {"name": s.name, "type": s.type, **msgspec.to_builtins(s.config, enc_hook=_plain)}
            for s in self.sinks
        ]
        out["quarantine"]["dir"] = str(self.quarantine_dir)
        out["enrich"] = {"static": dict(self.static)}
        redacted: dict[str, Any] = _redact(out)
        return redacted


# --- loading ---------------------------------------------------------------------------------

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$")


def expand_vars(value: str, env: Mapping[str, str], path: str, warnings: list[str]) -> str:
    """``${VAR}`` and ``${VAR:-default}`` expansion; ``$$`` is a literal ``$``. An unset
    variable without default expands to an empty string, with a warning."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        val = env.get(name)
        if val is None or (val == "" and default is not None):
            if default is None:
                warnings.append(f"{path}: ${{{name}}} is not set; using an empty value")
                return ""
            return default
        return val

    return _VAR.sub(sub, value)


def _expand_tree(node: Any, env: Mapping[str, str], path: str, warnings: list[str]) -> Any:
    if isinstance(node, str):
        return expand_vars(node, env, path or "<root>", warnings)
    if isinstance(node, dict):
        return {k: _expand_tree(v, env, _join(path, str(k)), warnings) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_tree(v, env, f"{path}[{i}]", warnings) for i, v in enumerate(node)]
    return node


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def apply_env_overrides(
    tree: dict[str, Any], env: Mapping[str, str], errors: list[str]
) -> dict[str, Any]:
    """Apply ``OBSKIT_SIDECAR__A__B=value`` overrides (see the module docstring)."""
    for name in sorted(env):
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == ENV_PREFIX:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        try:
            value = yaml.safe_load(env[name]) if env[name] != "" else ""
        except yaml.YAMLError:
            value = env[name]
        node: Any = tree
        where = ""
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) > len(node):
                    errors.append(f"{name}: {where or '<root>'} has no item {part}")
                    break
                idx = int(part)
                if idx == len(node):
                    node.append({})
                where = f"{where}[{idx}]"
                if last:
                    node[idx] = value
                else:
                    if not isinstance(node[idx], (dict, list)):
                        node[idx] = {}
                    node = node[idx]
            elif isinstance(node, dict):
                where = _join(where, part)
                if last:
                    node[part] = value
                else:
                    if not isinstance(node.get(part), (dict, list)):
                        node[part] = [] if parts[i + 1].isdigit() else {}
                    node = node[part]
            else:
                errors.append(f"{name}: {where} is not a mapping or list")
                break
    return tree


def _msgspec_error(exc: msgspec.ValidationError, prefix: str = "") -> str:
    text = str(exc)
    m = re.search(r" - at `\$(.*)`$", text)
    loc = ""
    if m:
        loc = m.group(1).lstrip(".")
        text = text[: m.start()]
    key = prefix + (("." if prefix and loc and not loc.startswith("[") else "") + loc)
    unknown = re.fullmatch(r"Object contains unknown field `([^`]*)`", text)
    if unknown:
        key = f"{key}.{unknown.group(1)}" if key else unknown.group(1)
        text = "unknown setting"
    return f"{key or '<root>'}: {text}"


def load_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read, expand, override and validate a config file (``None``: defaults plus env)."""
    env = os.environ if env is None else env
    origin = str(path) if path is not None else "<defaults>"
    warnings: list[str] = []
    errors: list[str] = []
    tree: Any = {}
    if path is not None:
        try:
            text = read_text_file(path)
        except OSError as exc:
            raise ConfigError(origin, [f"cannot read: {exc.strerror or exc}"]) from None
        except TextFileError as exc:  # PowerShell 5's UTF-16 is read; this is anything else
            raise ConfigError(origin, [exc.reason]) from None
        try:
            tree = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(origin, [f"invalid YAML: {exc}"]) from None
        if tree is None:
            tree = {}
        if not isinstance(tree, dict):
            raise ConfigError(origin, ["<root>: expected a mapping of settings"])
    tree = _expand_tree(tree, env, "", warnings)
    tree = apply_env_overrides(tree, env, errors)
    if errors:
        raise ConfigError(origin, errors)
    return build_config(tree, origin, env, warnings)


def build_config(
    tree: dict[str, Any],
    origin: str = "<config>",
    env: Mapping[str, str] | None = None,
    warnings: list[str] | None = None,
) -> LoadedConfig:
    """Validate an already-parsed mapping (see :func:`load_config`)."""
    env = os.environ if env is None else env
    warnings = [] if warnings is None else warnings
    errors: list[str] = []
    known = SidecarConfig.__struct_fields__
    for key in tree:
        if key not in known:
            errors.append(f"{key}: unknown setting (known: {', '.join(known)})")
    good: dict[str, Any] = {}
    for key in known:
        if key not in tree:
            continue
        # Section by section, so one mistake does not hide the others.
        try:
            msgspec.convert({key: tree[key]}, SidecarConfig, dec_hook=dec_hook)
            good[key] = tree[key]
        except msgspec.ValidationError as exc:
            errors.append(_msgspec_error(exc))
    cfg = msgspec.convert(good, SidecarConfig, dec_hook=dec_hook)
    if "sinks" not in good and isinstance(tree.get("sinks"), list):
        cfg.sinks = [s if isinstance(s, dict) else {} for s in tree["sinks"]]

    # Rule ids are case-insensitive (environment override keys arrive lower-cased).
    cfg.schema.rules = {k.upper(): v for k, v in cfg.schema.rules.items()}
    for rule, action in cfg.schema.rules.items():
        if not re.fullmatch(r"OBS\d{3}", rule):
            errors.append(f"schema.rules.{rule}: not a rule id (like OBS003)")
        elif action == "forward" and rule in NOT_FORWARDABLE:
            errors.append(
                f"schema.rules.{rule}: 'forward' is not allowed for {rule}: "
                "the line is not a JSON object a backend could accept"
            )
    if cfg.schema.max_line_bytes < 16:
        errors.append("schema.max_line_bytes: must be at least 16")
    if cfg.schema.service_default is not None:
        from obskit.schema.rules import check_service

        why = check_service(cfg.schema.service_default)
        if why:
            errors.append(f"schema.service_default: {why}")
    for key, val, lo in (
        ("batch.max_lines", cfg.batch.max_lines, 1),
        ("batch.max_bytes", cfg.batch.max_bytes, 1024),
        ("memory.max_inflight_bytes", cfg.memory.max_inflight_bytes, 64 * 1024),
        ("quarantine.max_files", cfg.quarantine.max_files, 1),
        ("quarantine.max_bytes", cfg.quarantine.max_bytes, 4096),
    ):
        if val < lo:
            errors.append(f"{key}: must be at least {lo}, got {val}")
    if cfg.http.enabled:
        try:
            parse_listen(cfg.http.listen)
        except ValueError as exc:
            errors.append(f"http.listen: {exc}")

    source = _source_settings(cfg.source, int(cfg.schema.max_line_bytes), errors)
    sinks = _sink_specs(cfg, errors)
    if errors or source is None:
        raise ConfigError(origin, errors)
    qdir = (
        Path(cfg.quarantine.dir) if cfg.quarantine.dir else Path(cfg.checkpoint.dir) / "quarantine"
    )
    return LoadedConfig(
        config=cfg,
        source=source,
        sinks=sinks,
        static=static_fields(cfg.enrich, env),
        quarantine_dir=qdir,
        origin=origin,
        warnings=warnings,
    )


def _source_settings(
    raw: dict[str, Any], max_line_bytes: int, errors: list[str]
) -> SourceSettings | None:
    raw = dict(raw)
    raw.setdefault("path", default_log_dir())
    # One maximum for the tailer (which sets over-long lines aside) and the validator.
    raw.setdefault("max_line_bytes", max_line_bytes)
    # SourceSettings holds plain seconds and bytes; accept "1s"/"64KiB" forms here too.
    for key, parse in _SOURCE_UNITS.items():
        if isinstance(raw.get(key), str):
            try:
                raw[key] = parse(raw[key])
            except ValueError as exc:
                errors.append(f"source.{key}: {exc}")
                return None
            raw[key] = int(raw[key]) if parse is parse_size else float(raw[key])
    try:
        return msgspec.convert(raw, SourceSettings, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        errors.append(_msgspec_error(exc, "source"))
    except (ValueError, TypeError) as exc:
        errors.append(f"source: {exc}")
    return None


_SOURCE_UNITS: dict[str, Any] = {
    "poll_interval": parse_duration,
    "partial_line_timeout": parse_duration,
    "close_idle_after": parse_duration,
    "rotate_wait": parse_duration,
    "fingerprint_bytes": parse_size,
    "max_line_bytes": parse_size,
    "read_chunk_bytes": parse_size,
}


def _sink_specs(cfg: SidecarConfig, errors: list[str]) -> list[SinkSpec]:
    raw_sinks = cfg.sinks or [
        {"name": "archive", "type": "file", "dir": str(Path(cfg.checkpoint.dir) / "archive")}
    ]
    specs: list[SinkSpec] = []
    names: set[str] = set()
    for i, raw in enumerate(raw_sinks):
        where = f"sinks[{i}]"
        if not isinstance(raw, dict):
            errors.append(f"{where}: expected a mapping with name and type")
            continue
        body = dict(raw)
        name, type_ = body.pop("name", None), body.pop("type", None)
        if not isinstance(type_, str) or not type_:
            errors.append(f"{where}.type: required (file, loki, elasticsearch, opensearch, otlp)")
            continue
        if name is None:
            name = type_ if type_ not in names else f"{type_}-{i}"
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            errors.append(f"{where}.name: must be 1-64 letters, digits, '-', '_', '.'")
            continue
        if name in names:
            errors.append(f"{where}.name: {name!r} is used by another sink")
            continue
        names.add(name)
        try:
            mod = sink_module(type_)
        except SinkTypeError as exc:
            errors.append(f"{where}.type: {exc}")
            continue
        spool = _spool_config(body.pop("spool", None), type_, name, cfg, where, errors)
        body = _hoist_auth(body, mod.Config)
        try:
            conf = msgspec.convert(body, mod.Config, dec_hook=dec_hook)
        except msgspec.ValidationError as exc:
            errors.append(_msgspec_error(exc, where))
            continue
        except (ValueError, TypeError) as exc:
            errors.append(f"{where}: {exc}")
            continue
        specs.append(SinkSpec(name=name, type=type_, config=conf, spool=spool))
    return specs


def _spool_config(
    raw: Any, type_: str, name: str, cfg: SidecarConfig, where: str, errors: list[str]
) -> SpoolConfig | None:
    """``sinks[].spool``: a mapping, or ``true``/``false``; defaults by sink type."""
    if isinstance(raw, bool):
        raw = {"enabled": raw}
    try:
        spool = msgspec.convert(raw or {}, SpoolConfig, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        errors.append(_msgspec_error(exc, f"{where}.spool"))
        return None
    except (ValueError, TypeError) as exc:
        errors.append(f"{where}.spool: {exc}")
        return None
    on = spool.enabled if spool.enabled is not None else type_ in SPOOLED_BY_DEFAULT
    if not on:
        return None
    if spool.dir is None:
        spool.dir = str(Path(cfg.checkpoint.dir) / "spool" / name)
    if spool.max_bytes < 4 * cfg.batch.max_bytes:
        errors.append(
            f"{where}.spool.max_bytes: must hold at least four batches"
            f" (4 x batch.max_bytes = {4 * cfg.batch.max_bytes} bytes)"
        )
    return spool


#: Credential references that may be written at the top of a sink instead of under ``auth:``.
_AUTH_KEYS = (
    "username",
    "password_env",
    "password_file",
    "bearer_token_env",
    "bearer_token_file",
    "api_key_env",
    "api_key_file",
)


def _hoist_auth(body: dict[str, Any], config_type: Any) -> dict[str, Any]:
    """``{api_key_file: x}`` means ``{auth: {api_key_file: x}}`` for sinks with ``auth``."""
    fields = getattr(config_type, "__struct_fields__", ())
    if "auth" not in fields:
        return body
    moved = {k: body.pop(k) for k in _AUTH_KEYS if k in body and k not in fields}
    if moved:
        auth = body.get("auth")
        body["auth"] = {**(auth if isinstance(auth, dict) else {}), **moved}
    return body


def static_fields(enrich: EnrichConfig, env: Mapping[str, str]) -> dict[str, str]:
    """Enrichment fields: config first, then the usual container environment variables."""
    out: dict[str, str] = {}
    if enrich.environment:
        out["environment"] = enrich.environment
    host = enrich.host or env.get("NODE_NAME") or socket.gethostname()
    if host:
        out["host"] = host
    # In Kubernetes a pod's HOSTNAME is its name (unless the Downward API sets POD_NAME).
    pod = enrich.pod or env.get("POD_NAME")
    if not pod and env.get("KUBERNETES_SERVICE_HOST"):
        pod = env.get("HOSTNAME")
    if pod:
        out["pod"] = pod
    container = enrich.container or env.get("CONTAINER_NAME")
    if container:
        out["container"] = container
    if enrich.image_version:
        out["image_version"] = enrich.image_version
    if enrich.build_tags:
        out["build_tags"] = ",".join(enrich.build_tags)
    for k, v in enrich.fields.items():
        if v:
            out.setdefault(k, v)
    return out


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9300`` for IPv6) -> (host, port)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]*):(\d+)", value.strip())
    if not m:
        raise ValueError(f"expected host:port like 127.0.0.1:9300, got {value!r}")
    host = m.group(1) or m.group(3) or "127.0.0.1"
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


def _plain(obj: Any) -> Any:
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, int):
        return int(obj)
    raise NotImplementedError(type(obj).__name__)


_SECRET_KEY = re.compile(r"(pass|secret|token|api_?key|authorization|credential)", re.I)
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def _redact(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _redact(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_redact(v, key) for v in node]
    if isinstance(node, str):
        if _SECRET_KEY.search(key) and not key.endswith(("_env", "_file")) and node:
            return "***"
        return _URL_USERINFO.sub("***@", node)
    return node
