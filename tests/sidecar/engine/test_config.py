"""Config loading: env expansion and overrides, errors naming file and key, redaction."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from enginehelp import SIDECAR

from sidecar.config import ConfigError, load_config

EXAMPLE = """\
source: {path: /app/logs, include: ["*.log"], poll_interval: 1s}
checkpoint: {dir: /var/lib/obskit-sidecar}
schema: {on_invalid: quarantine}
enrich: {environment: "${OBSKIT_ENV}"}
sinks:
  - {name: archive, type: file, dir: /tmp/archive}
http: {listen: "0.0.0.0:9300"}
"""


def _check(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SIDECAR, "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


def test_example_is_valid_and_env_expanded(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(EXAMPLE)
    cfg = load_config(p, env={"OBSKIT_ENV": "prod", "POD_NAME": "web-1"})
    assert cfg.source.poll_interval == 1.0
    assert cfg.static["environment"] == "prod" and cfg.static["pod"] == "web-1"
    assert cfg.config.http.listen == "0.0.0.0:9300"
    unset = load_config(p, env={})
    assert "environment" not in unset.static
    assert any("OBSKIT_ENV" in w for w in unset.warnings)


def test_env_overrides_any_value_including_list_items(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(EXAMPLE)
    cfg = load_config(
        p,
        env={
            "OBSKIT_SIDECAR__SINKS__0__DIR": "/elsewhere",
            "OBSKIT_SIDECAR__SINKS__1__TYPE": "file",
            "OBSKIT_SIDECAR__SINKS__1__NAME": "second",
            "OBSKIT_SIDECAR__BATCH__MAX_WAIT": "750ms",
            "OBSKIT_SIDECAR__SCHEMA__RULES__OBS003": "repair",
            "OBSKIT_SIDECAR__SOURCE__INCLUDE": "[a.log, b.log]",
            "OBSKIT_SIDECAR__CHECKPOINT__DIR": "${HOME:-/h}",
        },
    )
    assert cfg.sinks[0].config.dir == "/elsewhere"
    assert [s.name for s in cfg.sinks] == ["archive", "second"]
    assert cfg.config.batch.max_wait == 0.75
    assert cfg.config.schema.rules == {"OBS003": "repair"}
    assert cfg.source.include == ["a.log", "b.log"]


def test_default_expansion(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text('enrich: {environment: "${OBSKIT_ENV:-staging}"}\nsource: {path: x}\n')
    assert load_config(p, env={}).static["environment"] == "staging"


def test_errors_name_every_bad_key_and_exit_2(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(
        "source: {path: /x, poll_interval: soon}\n"
        "batch: {max_wait: 5q}\n"
        "schema: {rules: {OBS001: forward, nope: repair}}\n"
        "sinks:\n"
        "  - {type: file, dir: a, colour: red}\n"
        "  - {name: x, type: nope}\n"
        "unknown_section: 1\n"
    )
    res = _check(p)
    assert res.returncode == 2
    err = res.stderr
    assert str(p) in err
    for key in (
        "source.poll_interval:",
        "batch.max_wait:",
        "schema.rules.OBS001:",
        "schema.rules.NOPE:",
        "sinks[0].colour: unknown setting",
        "sinks[1].type: unknown sink type 'nope'",
        "unknown_section: unknown setting",
    ):
        assert key in err, err


def test_unavailable_sink_module_is_a_config_error_not_a_crash(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("source: {path: x}\nsinks: [{name: s, type: file, dir: a}]\n")
    from sidecar.sinks import registry

    registry.SINK_TYPES["ghost"] = "sidecar.sinks.ghost_sink_that_does_not_exist"
    try:
        p.write_text("source: {path: x}\nsinks: [{name: s, type: ghost}]\n")
        with pytest.raises(ConfigError) as ei:
            load_config(p, env={})
        assert "sinks[0].type: sink type 'ghost' is not available" in str(ei.value)
    finally:
        del registry.SINK_TYPES["ghost"]


def test_check_config_prints_ok_and_masks_secrets(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(
        EXAMPLE.replace(
            "dir: /tmp/archive", "dir: /tmp/archive}\n  - {name: b, type: file, dir: '${ARCH}'"
        )
    )
    res = _check(p, OBSKIT_ENV="prod", ARCH="https://user:hunter2@host/x")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"OK: {p} is valid")
    assert "hunter2" not in res.stdout and "***@host" in res.stdout
    assert "environment: prod" in res.stdout


def test_backend_sinks_and_top_level_credential_references(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(
        "source: {path: /app/logs}\n"
        "sinks:\n"
        '  - {name: loki, type: loki, url: "http://loki:3100", tenant: team-a}\n'
        '  - {name: es, type: elasticsearch, url: "http://es:9200",'
        " api_key_file: /run/secrets/es_api_key}\n"
        '  - {name: os, type: opensearch, url: "http://os:9200", auth: {username: u},'
        " password_env: OS_PW}\n"
    )
    cfg = load_config(p, env={})
    es, os_ = cfg.sinks[1].config, cfg.sinks[2].config
    assert es.auth.api_key_file == "/run/secrets/es_api_key"
    assert (os_.auth.username, os_.auth.password_env) == ("u", "OS_PW")


def test_enrichment_from_the_container_environment(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("source: {path: x}\nenrich: {image_version: v1.2.0, build_tags: [build-7, rc]}\n")
    k8s = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "HOSTNAME": "web-5d9f-abc", "NODE_NAME": "n1"}
    s = load_config(p, env=k8s).static
    assert (s["pod"], s["host"], s["image_version"], s["build_tags"]) == (
        "web-5d9f-abc",
        "n1",
        "v1.2.0",
        "build-7,rc",
    )
    plain = load_config(p, env={"HOSTNAME": "box", "CONTAINER_NAME": "app"}).static
    assert "pod" not in plain and plain["container"] == "app"
