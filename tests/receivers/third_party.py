"""Fixtures for the third-party Elasticsearch-API servers from PyPI the tests run against:
osmem-server (in memory, OpenSearch API) and noida-db (presents itself as Elasticsearch 8.15).
Both bind to 127.0.0.1; a test is skipped where the server's binary does not run.

    from tests.receivers.third_party import noida, osmem, osmem_url  # noqa: F401
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture(scope="module")
def osmem() -> Iterator[object]:
    """One osmem-server per module (its clones start fast)."""
    osmem_server = pytest.importorskip("osmem_server")
    try:
        server = osmem_server.OsmemServer.start(
            japanese=False, addr="127.0.0.1:0", startup_timeout=30
        )
    except osmem_server.OsmemError as exc:  # no binary for this platform
        pytest.skip(f"osmem-server unavailable: {exc}")
    yield server
    server.close()


@pytest.fixture
def osmem_url(osmem: object) -> Iterator[str]:
    """An empty osmem clone of its own for each test."""
    clone = osmem.clone()  # type: ignore[attr-defined]
    yield clone.url
    clone.close()


def _noida_binary() -> str | None:
    try:
        from importlib.resources import files

        path = files("noida_db").joinpath("noida-db.exe" if sys.platform == "win32" else "noida-db")
    except ModuleNotFoundError:
        return None
    return str(path) if path.is_file() else shutil.which("noida-db")


@pytest.fixture(scope="module")
def noida(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A noida-db process (Elasticsearch API only) on a free port; its URL."""
    binary = _noida_binary()
    if binary is None:
        pytest.skip("noida-db is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path_factory.mktemp("noida")
    proc = subprocess.Popen(
        [
            binary,
            "start",
            "--only",
            "elasticsearch",
            "--host",
            "127.0.0.1",
            "--data-dir",
            str(data),
            "--elasticsearch-port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip("noida-db did not start on this platform")
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
