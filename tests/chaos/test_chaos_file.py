"""Kill -9 storm into the file sink while four services rotate by every scheme: every valid
line archived exactly once, in file order, and every invalid line quarantined."""

from __future__ import annotations

import pytest
from chaoshelp import Chaos, file_order, outcome_of_records, quarantine_entries, read_ndjson

pytestmark = pytest.mark.chaos


def test_file_sink_kill9_storm_all_rotations(chaos: Chaos) -> None:
    archive = chaos.tmp / "archive"
    chaos.write_config([{"name": "archive", "type": "file", "dir": str(archive)}])
    chaos.start_writer(rate=2000, seconds=25)
    chaos.storm(interval=(1.0, 3.0))
    chaos.drain()
    records = read_ndjson(sorted(archive.glob("archive-*.ndjson")))
    got = outcome_of_records(records, file_order)
    r = chaos.account(got, quarantine_entries(chaos.state), check_order=True)
    # The file sink's journal makes it exactly once, even across kill -9.
    chaos.assert_clean(r, max_duplicates=0)
