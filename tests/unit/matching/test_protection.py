"""Protection first, proven on tiny pools by enumerating every feasible assignment, and the
candidate spread that keeps big pools from crowding onto the same few hosts."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings

from services.matching.model import Capacity, Case, Host, PoolSnapshot, SolverParams, compatible
from services.matching.solver import solve
from tests.unit.matching.pools import POOL, pools

EXACT = SolverParams(time_limit_s=10.0)


def _demand(case: Case) -> tuple[int, int, int, int]:
    return (case.people, case.beds, int(case.needs_accessible), case.school_places)


def lexicographic_best(snapshot: PoolSnapshot) -> tuple[int, ...]:
    """(emergency, urgent, vulnerable, placed, seniority) of the best assignment, by enumeration.

    Fresh pools only (no fixed, pending or linked cases): seniority ranks cases by arrival."""
    cases = sorted(snapshot.cases, key=lambda c: c.case_id)
    hosts = sorted(snapshot.hosts, key=lambda h: h.host_id)
    ranked = sorted(cases, key=lambda c: (c.arrived_seq, c.case_id))
    seniority = {c.case_id: len(ranked) - r for r, c in enumerate(ranked)}
    options = [[None, *[h for h in hosts if compatible(c, h) is None
                        and (c.case_id, h.host_id) not in snapshot.forbidden]] for c in cases]
    best: tuple[int, ...] = (0, 0, 0, 0, 0)
    for choice in itertools.product(*options):
        used: dict[str, list[int]] = {}
        fits = True
        for c, h in zip(cases, choice, strict=True):
            if h is None:
                continue
            total = used.setdefault(h.host_id, [0, 0, 0, 0])
            for d, amount in enumerate(_demand(c)):
                total[d] += amount
            cap = h.capacity
            if any(t > limit for t, limit in zip(total, (cap.people, cap.beds, cap.accessible_units,
                                                         cap.school_places), strict=True)):
                fits = False
                break
        if fits:
            placed = [c for c, h in zip(cases, choice, strict=True) if h is not None]
            best = max(best, levels_of(placed, seniority))
    return best


def levels_of(placed: list[Case], seniority: dict[str, int]) -> tuple[int, ...]:
    return (sum(c.urgency == "emergency" for c in placed), sum(c.urgency == "urgent" for c in placed),
            sum(c.vulnerable for c in placed), len(placed), sum(seniority[c.case_id] for c in placed))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools(min_size=1, max_cases=5, max_hosts=3, with_state=False))
def test_protection_levels_are_the_lexicographic_optimum(snapshot: PoolSnapshot) -> None:
    """No assignment places more emergency cases; among those, none more urgent ones; and so on down
    to the number placed and then arrival order: the solver's levels equal the enumerated optimum."""
    result = solve(snapshot, EXACT)
    cases = {c.case_id: c for c in snapshot.cases}
    ranked = sorted(snapshot.cases, key=lambda c: (c.arrived_seq, c.case_id))
    seniority = {c.case_id: len(ranked) - r for r, c in enumerate(ranked)}
    placed = [cases[c] for c in result.assignments]
    assert levels_of(placed, seniority) == lexicographic_best(snapshot)


def test_equal_hosts_are_shared_out_instead_of_crowded() -> None:
    """Sixty equal one-person hosts and a hundred equal one-person cases with only three candidates
    each: ties are broken per case, so the candidates cover the hosts and every host is used (a
    host-id tie-break gave every case the same three hosts and placed four cases)."""
    hosts = tuple(Host(host_id=f"h{j:02d}", pool_id=POOL, host_type="municipality", place="north",
                       capacity=Capacity(people=1, beds=1)) for j in range(60))
    cases = tuple(Case(case_id=f"c{i:03d}", pool_id=POOL, people=1, beds=1, arrived_seq=i) for i in range(100))
    result = solve(PoolSnapshot(POOL, cases, hosts), SolverParams(time_limit_s=5.0, top_k=3))
    assert len(result.assignments) == 60
    assert set(result.assignments.values()) == {h.host_id for h in hosts}
