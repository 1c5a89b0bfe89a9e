"""How an auditor names a period on the command line: a seq, a date or a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.audit.cli import parser
from services.audit.export import Bound, ExportRefused


def test_a_number_is_a_seq_and_a_date_or_time_is_a_moment() -> None:
    assert Bound.parse("1234") == Bound(seq=1234)
    assert Bound.parse("2026-03-01") == Bound(time=datetime(2026, 3, 1, tzinfo=UTC))
    assert Bound.parse("2026-03-01T12:30:00") == Bound(time=datetime(2026, 3, 1, 12, 30, tzinfo=UTC))
    offset = Bound.parse("2026-03-01T12:30:00+02:00").time
    assert offset == datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    for nonsense in ("yesterday", "-5", "2026-13-01"):
        with pytest.raises(ExportRefused):
            Bound.parse(nonsense)


def test_the_command_line_reads_like_the_brief() -> None:
    arguments = parser().parse_args(["export", "--from", "10", "--to", "2026-03-02", "out"])
    assert (arguments.command, arguments.start, arguments.end, str(arguments.directory)) == (
        "export", "10", "2026-03-02", "out")
    assert parser().parse_args(["timeline", "case-1"]).case_id == "case-1"
    assert parser().parse_args(["replay", "run-1"]).run_id == "run-1"
