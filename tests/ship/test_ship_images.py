"""The sidecar images: hadolint clean, metadata present, tag scheme correct.

Docker cannot run on the test machines (docs/testing.md), so the Dockerfiles are kept correct
by lint plus these structural checks of what the image standard requires.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = [REPO / "sidecar" / "Dockerfile", REPO / "sidecar" / "Dockerfile.windows"]
# Every Dockerfile in the repository is linted (sidecar images and the examples').
ALL_DOCKERFILES = sorted(
    p
    for p in REPO.rglob("Dockerfile*")
    if p.is_file() and not {".venv", ".git", "site"} & set(p.relative_to(REPO).parts)
)
SCRIPT = REPO / "scripts" / "image-tags.py"
LABELS = [
    "maintainer",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
    "org.opencontainers.image.source",
]


def _run_hadolint(hadolint: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint, "--no-color", "--config", str(REPO / ".hadolint.yaml"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_dockerfile_is_found() -> None:
    assert set(DOCKERFILES) <= set(ALL_DOCKERFILES)
    assert len(ALL_DOCKERFILES) >= 4


@pytest.mark.parametrize(
    "dockerfile", ALL_DOCKERFILES, ids=lambda p: p.relative_to(REPO).as_posix()
)
def test_dockerfile_passes_hadolint(hadolint: str, dockerfile: Path) -> None:
    proc = _run_hadolint(hadolint, dockerfile)
    assert proc.returncode == 0, (
        f"hadolint findings in {dockerfile.name}:\n{proc.stdout}{proc.stderr}"
    )


def test_hadolint_rule_set_catches_a_bad_dockerfile(hadolint: str, tmp_path: Path) -> None:
    # Proves the lint step can fail: missing labels, unpinned pip, pip cache, root user.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.12-slim\nRUN pip install requests\n", encoding="utf-8")
    proc = _run_hadolint(hadolint, bad)
    assert proc.returncode != 0
    for rule in ("DL3013", "DL3042", "DL3049"):
        assert rule in proc.stdout


def _stages(text: str) -> list[str]:
    return re.split(r"(?im)^FROM\s", text)[1:]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_final_stage_meets_the_image_standard(dockerfile: Path) -> None:
    text = dockerfile.read_text(encoding="utf-8")
    stages = _stages(text)
    assert len(stages) >= 2, "must be a multi-stage build"
    final = stages[-1]
    for label in LABELS:
        assert re.search(rf"^(LABEL)?\s*{re.escape(label)}=", final, re.M), f"label {label} missing"
    for arg in ("VERSION", "BUILD_DATE", "VCS_REF"):
        assert re.search(rf"^ARG {arg}\b", final, re.M), f"ARG {arg} missing in final stage"
    assert "HEALTHCHECK" in final and "http://127.0.0.1:9300/healthz" in final
    assert "COPY --from=build" in final
    users = re.findall(r"^USER (\S+)", final, re.M)
    assert users, "final stage must set USER"
    if dockerfile.suffix == ".windows":
        assert users[-1] == "ContainerUser"
        assert stages[-1].lstrip().startswith("${RUNTIME_IMAGE}")
        assert "ARG RUNTIME_IMAGE=mcr.microsoft.com/windows/nanoserver:ltsc2022\n" in text
        assert 'VOLUME ["C:\\\\app\\\\logs"' in final
        assert "C:\\\\app\\\\config\\\\sidecar.yaml" in final
    else:
        assert re.fullmatch(r"\d+(:\d+)?", users[-1]), "Linux image must use a numeric uid"
        assert not users[-1].startswith("0"), "must not run as root"
        assert 'VOLUME ["/app/logs"' in final
    # No package manager caches: pip always --no-cache-dir, and apt is not used at all.
    for line in re.findall(r"pip install[^\n]*", dockerfile.read_text(encoding="utf-8")):
        assert "--no-cache-dir" in line, line
    assert "apt-get" not in final


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--version", "1.4.2", "--date", "2026-11-25", "--env", "prod"],
            ["v1.4.2", "build-20261125", "latest-prod"],
        ),
        (
            ["--version", "v2.0.0-rc.1+sha.abc", "--date", "20260102", "--env", "staging"],
            ["v2.0.0-rc.1", "build-20260102", "latest-staging"],
        ),
        # 23:30 at UTC-2 is the next day in UTC: build dates are UTC.
        (
            [
                "--version",
                "0.1.0",
                "--date",
                "2026-11-25T23:30:00-02:00",
                "--env",
                "dev",
                "--variant",
                "ltsc2022",
            ],
            ["v0.1.0-ltsc2022", "build-20261126-ltsc2022", "latest-dev-ltsc2022"],
        ),
        (
            [
                "--version",
                "0.1.0",
                "--date",
                "2026-11-25",
                "--env",
                "dev",
                "--image",
                "reg.local/sc",
            ],
            ["reg.local/sc:v0.1.0", "reg.local/sc:build-20261125", "reg.local/sc:latest-dev"],
        ),
    ],
)
def test_image_tags_script(args: list[str], expected: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected


def test_image_tags_default_version_is_the_package_version() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    version = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--env", "prod"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"v{version}"
    assert re.fullmatch(r"build-\d{8}", lines[1])


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--version", "1.2", "--env", "prod"], "not a semantic version"),
        (["--version", "1.2.3", "--env", "Prod"], "env 'Prod'"),
        (["--version", "1.2.3", "--env", "prod", "--date", "25/11/2026"], "date '25/11/2026'"),
        (["--version", "1.2.3", "--env", "prod", "--date", "2026-11-25T10:00:00"], "no UTC offset"),
    ],
)
def test_image_tags_rejects_bad_input_with_a_reason(args: list[str], reason: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert reason in proc.stderr
    assert proc.stdout == ""


def test_make_image_tags_target_uses_the_script() -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed on this machine")
    proc = subprocess.run(
        [
            make,
            "-s",
            "image-tags",
            f"PYTHON={sys.executable}",
            "ENV=qa",
            "VERSION=3.1.4",
            "BUILD_DATE=2026-01-31",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["v3.1.4", "build-20260131", "latest-qa"]
