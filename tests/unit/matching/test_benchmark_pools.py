"""The benchmark's pool in a later period: what its dynamic-arrivals row rests on."""

from __future__ import annotations

from benchmarks.matching_pools import previous_period, synthetic_pool, with_previous_period
from services.matching.model import SolverParams
from services.matching.solver import solve


def test_a_later_period_keeps_the_previous_cases_placed_and_this_periods_capacity_free() -> None:
    pool = synthetic_pool(60, 6, seed=3)  # scarce: some of its cases stay unplaced
    previous = previous_period(60, seed=3)
    later = with_previous_period(pool, previous)

    assert max(c.arrived_seq for c in previous) < min(c.arrived_seq for c in pool.cases)
    assert not {c.case_id for c in previous} & {c.case_id for c in pool.cases}
    assert later.hosts[:-1] == pool.hosts  # this period's hosts and their capacity are untouched
    result = solve(later, SolverParams(time_limit_s=2.0))
    keeper = later.hosts[-1].host_id
    assert {case_id for case_id, host_id in result.assignments.items() if host_id == keeper} == {
        c.case_id for c in previous}  # the previous cases stay, and fill their host: no case of this period joins
    alone = solve(pool, SolverParams(time_limit_s=2.0))
    assert alone.unplaced  # so a host with room to spare would have taken some of them
    assert len(alone.assignments) == len(result.assignments) - len(previous)
    assert set(result.unplaced) == set(alone.unplaced)  # the same cases of this period wait
