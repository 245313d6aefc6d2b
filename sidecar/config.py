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
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from obskit._durations import ByteSize, Duration, parse_duration, parse_size
from obskit.schema.encoding import TextFileError, read_text_file
from obskit.secrets import mask_secrets
from sidecar.config_convert import Problems, check, convert, convert_fields, join
from sidecar.enrich import resolve_static
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
    """The configuration is invalid; ``errors`` lists ``key.path: reason`` messages (anything
    shaped like a credential masked: messages may quote the values at fault)."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = [mask_secrets(e, limit=None) for e in errors]
        super().__init__(f"{source}: " + "; ".join(self.errors))


class _Base(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class CheckpointConfig(_Base):
    """Where read positions are stored, how often they are saved, how long gone files stay."""

    dir: str = msgspec.field(default_factory=default_state_dir)
    interval: Duration = Duration(5.0)
    retention: Duration = Duration(7 * 86400.0)

    def __post_init__(self) -> None:
        check(["dir: must not be empty"] if not self.dir.strip() else [])


class DialectRule(_Base):
    """Files written in a known JSON dialect, converted to schema v1 on the way through
    (`docs/migration.md`)."""

    #: File-name globs (like `source.include`); the first rule that matches a file applies.
    include: list[str]
    #: `auto` (each line's own) or one of go-slog, zap, logrus, serilog, ecs, python-json,
    #: structlog.
    dialect: str
    #: `service` of these files' lines that name none (else `schema.service_default`).
    service: str | None = None

    def __post_init__(self) -> None:
        from obskit.schema.dialects import UnknownDialect, dialect_named
        from obskit.schema.rules import check_service

        try:
            dialect_named(self.dialect)
        except UnknownDialect as exc:
            raise ValueError(str(exc)) from None
        if not self.include:
            raise ValueError("include must list at least one file-name pattern")
        why = check_service(self.service) if self.service is not None else None
        if why:
            raise ValueError(f"service: {why}")


class MultilineConfig(_Base):
    """Crash output (Go panic, Python traceback, .NET and Java stack traces) written as plain
    text between JSON lines, grouped into one ERROR record (`docs/sidecar.md`)."""

    #: Group crash output at all (off: each of its lines is quarantined as OBS001).
    enabled: bool = True
    #: File-name globs of files whose crash output is not grouped.
    exclude: list[str] = msgspec.field(default_factory=list)
    #: Lines in one record; a longer crash continues in a new record (`crash_part`: 2, 3...).
    max_lines: int = 1000
    #: Bytes of crash text in one record (capped below `schema.max_line_bytes`).
    max_bytes: ByteSize = ByteSize(128 * 1024)
    #: A crash is complete when nothing was added for this long and its file is read to the end.
    max_wait: Duration = Duration(2.0)

    def __post_init__(self) -> None:
        if self.max_lines < 2:
            raise ValueError("max_lines must be at least 2")
        if self.max_bytes < 1024:
            raise ValueError("max_bytes must be at least 1KiB")


class SchemaConfig(_Base):
    """What to do with lines that break schema v1: one default and per-rule overrides."""

    on_invalid: Action = "quarantine"
    rules: dict[str, Action] = msgspec.field(default_factory=dict)
    max_line_bytes: ByteSize = ByteSize(256 * 1024)
    service_default: str | None = None
    #: Per file-name glob, a JSON dialect to convert from (`[{include: ["orders-*.log"],
    #: dialect: go-slog}]`); converted lines pass the same validator (docs/migration.md).
    dialects: list[DialectRule] = msgspec.field(default_factory=list)
    multiline: MultilineConfig = msgspec.field(default_factory=MultilineConfig)

    def __post_init__(self) -> None:
        # Rule ids are case-insensitive (environment override keys arrive lower-cased).
        self.rules = {k.upper(): v for k, v in self.rules.items()}
        problems = []
        for rule, action in self.rules.items():
            if not re.fullmatch(r"OBS\d{3}", rule):
                problems.append(f"rules.{rule}: not a rule id (like OBS003)")
            elif action == "forward" and rule in NOT_FORWARDABLE:
                problems.append(
                    f"rules.{rule}: 'forward' is not allowed for {rule}: "
                    "the line is not a JSON object a backend could accept"
                )
        if self.max_line_bytes < 16:
            problems.append("max_line_bytes: must be at least 16")
        if self.service_default is not None:
            from obskit.schema.rules import check_service

            why = check_service(self.service_default)
            if why:
                problems.append(f"service_default: {why}")
        check(problems)


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

    def __post_init__(self) -> None:
        check(
            _at_least(("max_files", self.max_files, 1), ("max_bytes", self.max_bytes, 4096))
            + (
                ["dir: must not be empty (leave it out for <checkpoint.dir>/quarantine)"]
                if self.dir is not None and not self.dir.strip()
                else []
            )
        )


class HttpConfig(_Base):
    """Health and metrics endpoints."""

    listen: str = "127.0.0.1:9300"
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.enabled:
            try:
                parse_listen(self.listen)
            except ValueError as exc:
                raise Problems([f"listen: {exc}"]) from None


class BatchConfig(_Base):
    """How lines are grouped before being handed to the sinks."""

    max_lines: int = 10000
    max_bytes: ByteSize = ByteSize(2 * 1024 * 1024)
    max_wait: Duration = Duration(0.2)

    def __post_init__(self) -> None:
        check(_at_least(("max_lines", self.max_lines, 1), ("max_bytes", self.max_bytes, 1024)))


class MemoryConfig(_Base):
    """Memory held by lines read but not yet acknowledged by every sink (line bytes plus
    their decoded form); reading pauses above it."""

    #: Reading pauses while this many bytes are read but not acknowledged by every sink
    #: (bounded memory during backend outages). The default keeps the whole process under
    #: 100 MiB RSS with slow Loki/Elasticsearch backends (24 MiB reached 117-165 MiB) at the
    #: same CPU per line.
    max_inflight_bytes: ByteSize = ByteSize(8 * 1024 * 1024)

    def __post_init__(self) -> None:
        check(_at_least(("max_inflight_bytes", self.max_inflight_bytes, 64 * 1024)))


def _at_least(*limits: tuple[str, int, int]) -> list[str]:
    return [f"{key}: must be at least {lo}, got {val}" for key, val, lo in limits if val < lo]


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
        problems = []
        if self.max_bytes < 1024 * 1024:
            problems.append("max_bytes: must be at least 1MiB")
        if self.segment_bytes < 64 * 1024:
            problems.append("segment_bytes: must be at least 64KiB")
        check(problems)


#: Sink types that spool by default (a network between the sidecar and the backend).
SPOOLED_BY_DEFAULT = frozenset({"loki", "elasticsearch", "opensearch", "otlp"})


class SidecarConfig(_Base):
    """The whole file, as written (sinks and source are validated by their own modules)."""

    source: dict[str, Any] = msgspec.field(default_factory=dict)
    checkpoint: CheckpointConfig = msgspec.field(default_factory=CheckpointConfig)
    schema: SchemaConfig = msgspec.field(default_factory=SchemaConfig)
    enrich: EnrichConfig = msgspec.field(default_factory=EnrichConfig)
    quarantine: QuarantineConfig = msgspec.field(default_factory=QuarantineConfig)
    sinks: list[Any] = msgspec.field(default_factory=list)
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

    def state_folders(self) -> list[tuple[str, Path]]:
        """``(setting, folder)`` of every folder this sidecar writes and must have to itself:
        the state folder, the dead-letter folder, the sinks' spools and what sinks declare
        (``owned_folders``: the file sink's archive). Locked at start (:mod:`sidecar.statelock`)."""
        out = [
            ("checkpoint.dir", Path(self.config.checkpoint.dir)),
            ("quarantine.dir", self.quarantine_dir),
        ]
        for spec in self.sinks:
            for key, folder in getattr(spec.config, "owned_folders", {}).items():
                out.append((f"sink {spec.name!r} {key}", Path(folder)))
            if spec.spool is not None and spec.spool.dir:
                out.append((f"sink {spec.name!r} spool.dir", Path(spec.spool.dir)))
        return out

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
#: Settings naming a folder or a file, where an empty value would silently mean the working
#: directory (or no file): an unset ``${VAR}`` in them is an error, not a warning.
_PATH_KEY = re.compile(r"(?:^|\.)(?:path|dir|[a-z0-9_]+_(?:file|dir|path))$")


def is_path_setting(path: str) -> bool:
    """Whether the setting at ``path`` (``sinks[0].tls.ca_file``) names a folder or file."""
    return bool(_PATH_KEY.search(path))


def expand_vars(
    value: str,
    env: Mapping[str, str],
    path: str,
    warnings: list[str],
    unset: dict[str, str] | None = None,
) -> str:
    """``${VAR}`` and ``${VAR:-default}`` expansion; ``$$`` is a literal ``$``. An unset
    variable without default expands to an empty string, with a warning; in a folder or file
    setting (:func:`is_path_setting`) it is an error instead, recorded in ``unset`` by path
    (an environment override of that setting may still replace it)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        val = env.get(name)
        if val is None or (val == "" and default is not None):
            if default is not None:
                return default
            if unset is not None and is_path_setting(path):
                unset[path] = (
                    f"{path}: ${{{name}}} is not set; a folder or file setting cannot fall "
                    f"back to an empty value (the working directory): set {name}, or write "
                    f"${{{name}:-<default>}}"
                )
            else:
                warnings.append(f"{path}: ${{{name}}} is not set; using an empty value")
            return ""
        return val

    return _VAR.sub(sub, value)


def _expand_tree(
    node: Any, env: Mapping[str, str], path: str, warnings: list[str], unset: dict[str, str]
) -> Any:
    if isinstance(node, str):
        return expand_vars(node, env, path or "<root>", warnings, unset)
    if isinstance(node, dict):
        return {
            k: _expand_tree(v, env, join(path, str(k)), warnings, unset) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_expand_tree(v, env, f"{path}[{i}]", warnings, unset) for i, v in enumerate(node)]
    return node


def apply_env_overrides(
    tree: dict[str, Any],
    env: Mapping[str, str],
    errors: list[str],
    overridden: set[str] | None = None,
) -> dict[str, Any]:
    """Apply ``OBSKIT_SIDECAR__A__B=value`` overrides (see the module docstring); the key
    path of each value set is added to ``overridden``."""
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
                where = join(where, part)
                if last:
                    node[part] = value
                else:
                    if not isinstance(node.get(part), (dict, list)):
                        node[part] = [] if parts[i + 1].isdigit() else {}
                    node = node[part]
            else:
                errors.append(f"{name}: {where} is not a mapping or list")
                break
            if last and overridden is not None:
                overridden.add(where)
    return tree


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
    unset: dict[str, str] = {}
    overridden: set[str] = set()
    tree = _expand_tree(tree, env, "", warnings, unset)
    tree = apply_env_overrides(tree, env, errors, overridden)
    unset = {key: msg for key, msg in unset.items() if key not in overridden}
    try:
        return build_config(tree, origin, env, warnings, list(unset.values()) + errors)
    except ConfigError as exc:
        # "must not be empty" says less than the unset variable that made it empty.
        kept = [e for e in exc.errors if not _said_already(e, unset)]
        raise ConfigError(exc.source, kept) from None


def _said_already(error: str, unset: dict[str, str]) -> bool:
    key, _, reason = error.partition(": ")
    return key in unset and reason.startswith("must not be empty")


def build_config(
    tree: dict[str, Any],
    origin: str = "<config>",
    env: Mapping[str, str] | None = None,
    warnings: list[str] | None = None,
    errors: list[str] | None = None,
) -> LoadedConfig:
    """Validate an already-parsed mapping (see :func:`load_config`); ``errors`` found while
    loading are reported together with these. Every section is checked, whatever the others
    hold, so one run lists every mistake of the file."""
    env = os.environ if env is None else env
    warnings = [] if warnings is None else warnings
    errors = [] if errors is None else errors
    # A section with errors (reported) is left at its defaults, so that the source and the
    # sinks are still checked against something.
    sections = convert_fields(tree, SidecarConfig, "", errors, warnings, partial=True) or {}
    cfg = SidecarConfig(**sections)
    source = _source_settings(tree.get("source"), int(cfg.schema.max_line_bytes), errors)
    sinks = _sink_specs(tree.get("sinks"), cfg, errors, warnings)
    if errors or source is None:
        raise ConfigError(origin, [*dict.fromkeys(errors)])
    qdir = (
        Path(cfg.quarantine.dir) if cfg.quarantine.dir else Path(cfg.checkpoint.dir) / "quarantine"
    )
    return LoadedConfig(
        config=cfg,
        source=source,
        sinks=sinks,
        static=resolve_static(cfg.enrich, env),
        quarantine_dir=qdir,
        origin=origin,
        warnings=[mask_secrets(w, limit=None) for w in warnings],
    )


def _source_settings(raw: Any, max_line_bytes: int, errors: list[str]) -> SourceSettings | None:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return None  # reported with the sections
    raw = dict(raw)
    raw.setdefault("path", default_log_dir())
    # One maximum for the tailer (which sets over-long lines aside) and the validator.
    raw.setdefault("max_line_bytes", max_line_bytes)
    # SourceSettings holds plain seconds and bytes; accept "1s"/"64KiB" forms here too.
    bad = False
    for key, parse in _SOURCE_UNITS.items():
        if isinstance(raw.get(key), str):
            try:
                value = parse(raw[key])
            except ValueError as exc:
                errors.append(f"source.{key}: {exc}")
                bad = True
                continue
            raw[key] = int(value) if parse is parse_size else float(value)
    if not str(raw["path"]).strip():
        errors.append("source.path: must not be empty")
        bad = True
    settings = convert(raw, SourceSettings, "source", errors)
    return None if bad else settings


_SOURCE_UNITS: dict[str, Any] = {
    "poll_interval": parse_duration,
    "partial_line_timeout": parse_duration,
    "close_idle_after": parse_duration,
    "rotate_wait": parse_duration,
    "fingerprint_bytes": parse_size,
    "max_line_bytes": parse_size,
    "read_chunk_bytes": parse_size,
}


def _sink_specs(
    raw_sinks: Any, cfg: SidecarConfig, errors: list[str], warnings: list[str]
) -> list[SinkSpec]:
    if not isinstance(raw_sinks, list):
        raw_sinks = []  # absent (the default below), or not a list (reported with the sections)
    raw_sinks = raw_sinks or [
        {"name": "archive", "type": "file", "dir": str(Path(cfg.checkpoint.dir) / "archive")}
    ]
    specs: list[SinkSpec] = []
    placed: list[int] = []  # the index in ``sinks`` of each spec
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
            name = f"<{where}>"  # go on: the settings are checked too
        elif name in names:
            errors.append(f"{where}.name: {name!r} is used by another sink")
        names.add(name)
        try:
            mod = sink_module(type_)
        except SinkTypeError as exc:
            errors.append(f"{where}.type: {exc}")
            continue
        spool = _spool_config(body.pop("spool", None), type_, name, cfg, where, errors)
        body = _hoist_auth(body, mod.Config)
        conf = convert(body, mod.Config, where, errors, warnings)
        if conf is not None:
            specs.append(SinkSpec(name=name, type=type_, config=conf, spool=spool))
            placed.append(i)
    _check_folders_not_shared(list(zip(placed, specs, strict=True)), errors)
    return specs


def _check_folders_not_shared(specs: list[tuple[int, SinkSpec]], errors: list[str]) -> None:
    # Two sinks writing one folder would cut each other's data (the file sink's journal, a
    # spool's segments).
    owners: dict[str, str] = {}
    for i, spec in specs:
        folders = dict(getattr(spec.config, "owned_folders", {}))
        if spec.spool is not None and spec.spool.dir:
            folders["spool.dir"] = spec.spool.dir
        for key, folder in folders.items():
            other = owners.setdefault(os.path.normcase(os.path.abspath(folder)), spec.name)
            if other != spec.name:
                errors.append(f"sinks[{i}].{key}: {folder} is also the folder of sink {other!r}")


def _spool_config(
    raw: Any, type_: str, name: str, cfg: SidecarConfig, where: str, errors: list[str]
) -> SpoolConfig | None:
    """``sinks[].spool``: a mapping, or ``true``/``false``; defaults by sink type."""
    if isinstance(raw, bool):
        raw = {"enabled": raw}
    spool = convert(raw or {}, SpoolConfig, f"{where}.spool", errors)
    if spool is None:
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


def _redact(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _redact(v, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_redact(v, key) for v in node]
    if isinstance(node, str):
        if _SECRET_KEY.search(key) and not key.endswith(("_env", "_file")) and node:
            return "***"
        return mask_secrets(node, limit=None)
    return node
