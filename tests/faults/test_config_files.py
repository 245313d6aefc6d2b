"""Config and policy files as Windows writes them (issue 12, item 8): PowerShell 5's UTF-16 LE
with BOM, UTF-8 with BOM, CRLF, are read; a file in another encoding is one clear error naming
the file and the fix, exit 2, never a traceback. Every test runs the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SIDECAR = [sys.executable, "-c", "from sidecar.cli import main; main()"]
OBSKIT = [sys.executable, "-m", "obskit.cli"]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
FIX = "save it as UTF-8"


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("OBSKIT_")}
    full.update(env or {})
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=60, env=full, check=False)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def _powershell5(text: str) -> bytes:
    """What ``Out-File`` / ``>`` write in Windows PowerShell 5.1: UTF-16 LE, BOM, CRLF."""
    return text.replace("\n", "\r\n").encode("utf-16")  # the utf-16 codec writes a BOM


def _utf8_bom_crlf(text: str) -> bytes:
    """Notepad's "UTF-8 with BOM" and Windows line ends."""
    return b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()


SIDECAR_YAML = """\
source:
  path: {logs}
checkpoint:
  dir: {state}
sinks:
  - type: file
    name: archive
    dir: {archive}
"""


@pytest.mark.parametrize("encode", [_powershell5, _utf8_bom_crlf], ids=["utf16-le-bom", "utf8-bom"])
def test_sidecar_config_written_by_powershell_is_read(tmp_path: Path, encode: object) -> None:
    text = SIDECAR_YAML.format(
        logs=tmp_path / "logs", state=tmp_path / "state", archive=tmp_path / "arch"
    )
    cfg = tmp_path / "sidecar.yaml"
    cfg.write_bytes(encode(text))  # type: ignore[operator]
    code, out, err = _run([*SIDECAR, "check-config", str(cfg)], tmp_path)
    assert code == 0, err
    assert f"OK: {cfg} is valid" in out
    assert str(tmp_path / "logs") in out and str(tmp_path / "arch") in out
    assert "Traceback" not in err


def test_sidecar_config_in_a_legacy_code_page_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "sidecar.yaml"
    # Set-Content in PowerShell 5 writes the ANSI code page: 'é' is one byte, 0xe9.
    cfg.write_bytes("source:\n  path: C:\\logs\\café\n".encode("cp1252"))
    for sub in (["check-config", str(cfg)], ["run", "--config", str(cfg)]):
        code, _, err = _run([*SIDECAR, *sub], tmp_path)
        assert code == 2, err
        assert "Traceback" not in err
        assert f"invalid configuration in {cfg}" in err
        assert "not valid UTF-8" in err and "byte 0xe9 at line 2, column 20" in err
        assert FIX in err


POLICY = 'allowed_services = ["payments"]\n'
LOG = (
    '{"timestamp":"2024-05-01T12:30:00Z","level":"INFO","service":"payments","message":"ok"}\n'
    '{"timestamp":"2024-05-01T12:30:00Z","level":"INFO","service":"intruder","message":"x"}\n'
)


@pytest.mark.parametrize("name", ["obskit.toml", "pyproject.toml"])
@pytest.mark.parametrize("encode", [_powershell5, _utf8_bom_crlf], ids=["utf16-le-bom", "utf8-bom"])
def test_validate_policy_written_by_powershell_is_applied(
    tmp_path: Path, name: str, encode: object
) -> None:
    text = POLICY if name == "obskit.toml" else "[tool.obskit]\n" + POLICY
    (tmp_path / name).write_bytes(encode(text))  # type: ignore[operator]
    (tmp_path / "app.log").write_text(LOG)
    code, out, err = _run([*OBSKIT, "validate", "app.log"], tmp_path)
    assert "Traceback" not in err
    assert code == 1, (out, err)  # the policy was read: 'intruder' is not an allowed service
    assert "app.log:2:" in out and "OBS021" in out
    assert "1 valid, 1 invalid" in out


def test_validate_policy_in_a_legacy_code_page_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "obskit.toml").write_bytes(
        '# café\nallowed_services = ["payments"]\n'.encode("cp1252")
    )
    (tmp_path / "app.log").write_text(LOG)
    code, out, err = _run([*OBSKIT, "validate", "app.log"], tmp_path)
    assert code == 2 and out == ""
    assert "Traceback" not in err
    assert "obskit.toml: not valid UTF-8" in err and "line 1, column 6" in err and FIX in err


def test_trace_config_written_by_powershell_is_read(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text(
        '{"timestamp":"2024-05-01T12:30:00Z","level":"INFO","service":"a","message":"found",'
        f'"trace_id":"{TRACE}"}}\n'
    )
    cfg = tmp_path / "trace.toml"
    cfg.write_bytes(_powershell5(f"[trace.files]\npaths = ['{logs}']\n"))
    code, out, err = _run(
        [
            *OBSKIT,
            "trace",
            TRACE,
            "--config",
            str(cfg),
            "--from",
            "2024-05-01T00:00:00Z",
            "-o",
            "json",
        ],
        tmp_path,
    )
    assert code == 0, err
    assert '"message": "found"' in out


def test_trace_config_in_a_legacy_code_page_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "obskit.toml"
    cfg.write_bytes("[trace]\nsince = '24h' # café\n".encode("cp1252"))
    code, out, err = _run([*OBSKIT, "trace", TRACE, "--path", str(tmp_path)], tmp_path)
    assert code == 2 and out == ""
    assert "Traceback" not in err
    assert f"config {cfg}: not valid UTF-8" in err and FIX in err
