"""Config errors, through the real CLI: every mistake of a file in one run, an unset ``${VAR}``
in a folder or file setting is an error (not the working directory), and no credential is
ever printed, whatever the error."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from sidecar.cli import main
from tests.sidecar.engine.enginehelp import SIDECAR

PLANTED = "pl4nted-Pw-93c1"


def _cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real ``obskit-sidecar`` process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OBSKIT_SIDECAR")}
    return subprocess.run(
        [*SIDECAR, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**base, **(env or {})},
        check=False,
    )


def _in_process(
    *args: str, cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> subprocess.CompletedProcess[str]:
    """The same CLI run in this process (no interpreter start-up: for the many small cases;
    config errors stop it before anything runs)."""
    for name in list(os.environ):
        if name.startswith("OBSKIT_SIDECAR"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(cwd)
    res = CliRunner().invoke(main, list(args))
    assert not isinstance(res.exception, Exception) or isinstance(res.exception, SystemExit), (
        res.exception
    )
    return subprocess.CompletedProcess(list(args), res.exit_code, res.stdout, res.stderr)


def _errors(res: subprocess.CompletedProcess[str]) -> list[str]:
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr, res.stderr
    head, *rest = res.stderr.splitlines()
    assert head.startswith("obskit-sidecar: invalid configuration in ")
    return [x.strip() for x in rest]


BAD = """\
source: {path: /logs, poll_interval: 0, colour: 1}
checkpoint: {dir: /state, interval: 5q}
batch: {max_wait: 5q, max_lines: 0}
schema: {rules: {OBS001: forward, nope: repair}, max_line_bytes: 3}
quarantine: {max_files: 0}
http: {listen: nope}
memory: {max_inflight_bytes: 1}
enrich: {colour: red}
sinks:
  - {type: file, dir: a, colour: red, max_segment_bytes: 1}
  - {name: x, type: nope}
  - {name: loki, type: loki, url: 'http://loki:3100', labels: {trace_id: x}, timeout: 0,
     tls: {ca: x}}
  - {name: es, type: elasticsearch, url: 'ftp://es', gzip_level: 12, retry: {initial: x}}
  - {name: loki, type: loki}
unknown_section: 1
"""


def test_every_error_of_the_file_in_one_run(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(BAD)
    errors = _errors(_cli("check-config", str(cfg), cwd=tmp_path))
    expected = [
        "source.poll_interval: must be > 0",
        "source.colour: unknown setting",
        "checkpoint.interval: expected a duration",
        "batch.max_wait: expected a duration",
        "batch.max_lines: must be at least 1, got 0",
        "schema.rules.OBS001: 'forward' is not allowed",
        "schema.rules.NOPE: not a rule id",
        "schema.max_line_bytes: must be at least 16",
        "quarantine.max_files: must be at least 1",
        "http.listen: expected host:port",
        "memory.max_inflight_bytes: must be at least 65536",
        "enrich.colour: unknown setting",
        "unknown_section: unknown setting",
        # A sink's unknown key no longer hides its bad values, nor the other sinks'.
        "sinks[0].colour: unknown setting",
        "sinks[0].max_segment_bytes: must be at least 4096",
        "sinks[1].type: unknown sink type 'nope'",
        "sinks[2].tls.ca: unknown setting (did you mean ca_file?)",
        "sinks[2].labels: 'trace_id' would be one stream per trace",
        "sinks[2].timeout: must be positive",
        "sinks[3].retry.initial: Expected `float`, got `str`",
        "sinks[3].url: 'ftp://es' must start with http:// or https://",
        "sinks[3].gzip_level: 0-9",
        "sinks[4].name: 'loki' is used by another sink",
        "sinks[4].url: required",
    ]
    for want in expected:
        assert sum(e.startswith(want) for e in errors) == 1, (want, errors)
    assert len(errors) == len(expected), errors


@pytest.mark.parametrize(
    ("setting", "yaml_text"),
    [
        ("source.path", "source: {path: '${LOGS}'}"),
        ("checkpoint.dir", "checkpoint: {dir: '${LOGS}'}"),
        ("quarantine.dir", "quarantine: {dir: '${LOGS}/quarantine'}"),
        ("sinks[0].dir", "sinks: [{type: file, dir: '${LOGS}'}]"),
        (
            "sinks[0].tls.ca_file",
            "sinks: [{type: loki, url: 'http://l:1', tls: {ca_file: '${LOGS}'}}]",
        ),
        (
            "sinks[0].api_key_file",
            "sinks: [{type: elasticsearch, url: 'http://e:1', api_key_file: '${LOGS}'}]",
        ),
    ],
)
def test_unset_variable_in_a_path_setting_is_an_error(
    tmp_path: Path, setting: str, yaml_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    cfg = tmp_path / "c.yaml"
    base = f"checkpoint: {{dir: '{tmp_path / 'state'}'}}\nhttp: {{enabled: false}}\n"
    cfg.write_text(base + yaml_text + "\n" if "checkpoint" not in yaml_text else yaml_text + "\n")
    # ``run`` (check-config loads the same way): refused before anything is created.
    args = ("run", "-c", str(cfg), "--exit-on-idle", "0.2")
    # The real process for the first setting; the others in process (the same code path).
    if setting == "source.path":
        res = _cli(*args, cwd=work)
    else:
        res = _in_process(*args, cwd=work, monkeypatch=monkeypatch)
    errors = _errors(res)
    assert errors == [
        f"{setting}: ${{LOGS}} is not set; a folder or file setting cannot fall back to "
        "an empty value (the working directory): set LOGS, or write ${LOGS:-<default>}"
    ]
    # Nothing was created in the working directory (state, archive, quarantine).
    assert list(work.iterdir()) == []


def test_unset_variable_overridden_by_the_environment_or_with_a_default_is_fine(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "source: {path: '${LOGS:-/var/log/app}'}\n"
        "checkpoint: {dir: '${STATE}'}\n"
        "enrich: {environment: '${DEPLOY_ENV}'}\n"
    )
    res = _cli(
        "check-config",
        str(cfg),
        cwd=tmp_path,
        env={"OBSKIT_SIDECAR__CHECKPOINT__DIR": str(tmp_path / "state")},
    )
    assert res.returncode == 0, res.stderr
    assert "path: /var/log/app" in res.stdout and f"dir: {tmp_path / 'state'}" in res.stdout
    # Not a path: an empty environment is left out, with a warning.
    assert "enrich.environment: ${DEPLOY_ENV} is not set; using an empty value" in res.stderr


@pytest.mark.parametrize(
    "yaml_text",
    [
        # A typo in the scheme: the URL is quoted in the error.
        f"sinks: [{{type: loki, url: 'htp://bob:{PLANTED}@loki:3100'}}]",
        f"sinks: [{{type: elasticsearch, url: 'ftp://bob:{PLANTED}@es:9200'}}]",
        f"sinks: [{{type: elasticsearch, urls: ['http://e:1', 'es:{PLANTED}@es:9200']}}]",
        # No scheme at all: user:password@host.
        f"sinks: [{{type: loki, url: 'bob:{PLANTED}@loki:3100'}}]",
        # A secret in a setting of another type.
        f"batch: {{max_wait: 'http://bob:{PLANTED}@x'}}",
        f"http: {{listen: 'bob:{PLANTED}@host:99999'}}",
        f"sinks: [{{type: elasticsearch, url: 'http://e:1',"
        f" headers: {{Authorization: [Basic {PLANTED}]}}}}]",
        # A YAML error on a line holding a secret.
        f"sinks:\n  - {{type: loki, url: 'http://bob:{PLANTED}@loki:3100', x: [\n",
        f"sinks:\n  - type: loki\n    headers: {{Authorization: 'Bearer {PLANTED}'\n  bad\n",
    ],
)
def test_no_credential_in_any_error(
    tmp_path: Path, yaml_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text + "\n")
    res = _in_process("check-config", str(cfg), cwd=tmp_path, monkeypatch=monkeypatch)
    if "htp://" in yaml_text:  # and once through the real process
        real = _cli("check-config", str(cfg), cwd=tmp_path)
        assert (real.returncode, real.stderr) == (res.returncode, res.stderr)
    assert res.returncode == 2, res.stdout + res.stderr
    out = res.stdout + res.stderr
    assert PLANTED not in out, out
    assert PLANTED[:8] not in out, out
    assert "Traceback" not in out


def test_credential_in_an_environment_override_is_not_printed(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sinks: [{type: loki, url: 'http://loki:3100'}]\n")
    res = _cli(
        "check-config",
        str(cfg),
        cwd=tmp_path,
        env={"OBSKIT_SIDECAR__SINKS__0__URL": f"htp://bob:{PLANTED}@loki:3100"},
    )
    assert _errors(res) == ["sinks[0].url: expected http:// or https://, got 'htp://***@loki:3100'"]
    assert PLANTED not in res.stdout + res.stderr


def test_two_file_sinks_on_one_folder_is_an_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"sinks:\n  - {{name: a, type: file, dir: '{tmp_path}/arch'}}\n"
        f"  - {{name: b, type: file, dir: '{tmp_path}/x/../arch'}}\n"
    )
    errors = _errors(_cli("check-config", str(cfg), cwd=tmp_path))
    assert errors == [f"sinks[1].dir: {tmp_path}/x/../arch is also the folder of sink 'a'"]


def test_deprecated_es_flavor_is_accepted_with_a_warning(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sinks: [{type: elasticsearch, url: 'http://es:9200', flavor: opensearch}]\n")
    res = _cli("check-config", str(cfg), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "warning: sinks[0].flavor: deprecated and ignored" in res.stderr
    assert "flavor:" not in res.stdout
