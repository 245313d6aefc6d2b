"""Coverage-guided fuzzing of the validator and the tail framing with atheris (optional, not
run in CI: atheris needs a clang-built CPython extension).

    pip install atheris
    python tests/fuzz/atheris_validate.py -max_total_time=600 [corpus_dir]

Feeds arbitrary bytes to ``validate_line``, ``validate_chunk`` (the fast batch path) and the
tail framing, and checks the same invariants as the hypothesis tests: only violations come
back, one result per line, a record exactly when there is no error, chunks tile the complete
lines. Seed it with ``tests/data/bad/`` for a head start.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from obskit.schema import Policy, check_line, validate_chunk, validate_line
    from obskit.schema.encoding import Encoding
    from sidecar.source.framing import frame

POLICY = Policy()


def one_input(data: bytes) -> None:
    line = data.replace(b"\n", b" ")
    violations = validate_line(line)
    record, checked = check_line(line, POLICY)
    assert (record is None) == any(v.severity == "error" for v in checked)
    assert bool(violations) == bool(checked)
    chunk = data if data.endswith(b"\n") else data + b"\n"
    res = validate_chunk(chunk, POLICY)
    assert len(res.lines) == len(res.records) == chunk.count(b"\n")
    for enc in (Encoding.UTF8, Encoding.UTF16_LE):
        chunks, used = frame(data, 0, enc, 64, "k", "p")
        if chunks:
            assert chunks[0].start == 0 and chunks[-1].end == used


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
