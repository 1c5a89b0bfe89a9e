"""The dynamic mode's expected arrivals per pool (resolver.expected_arrivals_at) and its setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.matching.pool import arrival_seq
from services.matching.resolver import MatchingSettings, expected_arrivals_at
from tests.unit.matching.test_solver import case, pool

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_the_arrivals_of_the_last_horizon_are_expected_again_and_older_ones_not() -> None:
    arrived = [NOW - timedelta(hours=h) for h in (0.5, 5, 23.9, 24, 30)]
    snapshot = pool([case(f"c{k}", arrived_seq=arrival_seq(t)) for k, t in enumerate(arrived)], [])
    assert expected_arrivals_at(snapshot, NOW, timedelta(days=1)) == 3  # exactly a day ago is not within
    assert expected_arrivals_at(snapshot, NOW, timedelta(hours=1)) == 1
    assert expected_arrivals_at(pool([], []), NOW, timedelta(days=1)) == 0


def test_a_negative_or_endless_planning_horizon_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    for hours in ("-1", "100000"):
        monkeypatch.setenv("MATCHING_PLANNING_HORIZON_H", hours)
        with pytest.raises(ValidationError, match="matching_planning_horizon_h"):
            MatchingSettings()
    monkeypatch.setenv("MATCHING_PLANNING_HORIZON_H", "72")
    assert MatchingSettings().matching_planning_horizon_h == 72.0
