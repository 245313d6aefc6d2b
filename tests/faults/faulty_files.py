"""Run ``obskit-sidecar`` with an OS layer that fails on chosen files: the source's injectable
``Files`` seam (``sidecar/source/osfile.py``), inside the real process, for faults a test
cannot produce for real (EIO from a failing disk; EACCES and EISDIR when the tests run as root,
where ``chmod 000`` stops nobody).

    python faulty_files.py run --config F [--exit-on-idle S]

``OBSKIT_FAULT_FILES``: JSON ``{"<file name>": ["open" | "read", "<errno name>", <byte>]}``;
``read`` fails every read that reaches ``<byte>`` (a bad block there), ``open`` fails the open.
Active while the file named by ``OBSKIT_FAULT_FLAG`` exists.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path
from typing import Any


class _BadBlock:
    """A file object whose reads reaching ``after`` fail with ``code`` while ``flag`` exists."""

    def __init__(self, f: Any, code: int, after: int, flag: Path) -> None:
        self._f, self._code, self._after, self._flag = f, code, after, flag

    def read(self, n: int = -1) -> bytes:
        end = os.fstat(self._f.fileno()).st_size if n < 0 else self._f.tell() + n
        if end > self._after and self._flag.exists():
            raise OSError(self._code, os.strerror(self._code))
        data: bytes = self._f.read(n)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


class FaultyFiles:
    def __init__(self, inner: Any, spec: dict[str, list[Any]], flag: Path) -> None:
        self._inner, self._spec, self._flag = inner, spec, flag

    def open_read(self, path: str) -> Any:
        rule = self._spec.get(os.path.basename(path))
        if rule is not None and self._flag.exists():
            op, name, after = rule
            code = getattr(errno, name)
            if op == "open":
                raise OSError(code, os.strerror(code), path)
            return _BadBlock(self._inner.open_read(path), code, int(after), self._flag)
        return self._inner.open_read(path)

    def identify(self, f: Any) -> Any:
        return self._inner.identify(f._f if isinstance(f, _BadBlock) else f)

    def deleted(self, f: Any) -> bool:
        return bool(self._inner.deleted(f._f if isinstance(f, _BadBlock) else f))


def main() -> None:
    spec = json.loads(os.environ.get("OBSKIT_FAULT_FILES", "{}"))
    flag = Path(os.environ.get("OBSKIT_FAULT_FLAG", os.devnull + ".absent"))
    from sidecar.source import osfile

    real = osfile.default_files
    osfile.default_files = lambda: FaultyFiles(real(), spec, flag)  # type: ignore[assignment,return-value]
    import sidecar.source.tailer as tailer

    tailer.default_files = osfile.default_files  # (bound by name at import)
    from sidecar.cli import main as sidecar_main

    sys.argv[0] = "obskit-sidecar"
    sidecar_main()


if __name__ == "__main__":
    main()
