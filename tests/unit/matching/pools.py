"""Hypothesis strategies for small matching pools, and every feasible assignment of one, shared by the
matching unit tests.

Small vocabularies on purpose: overlaps (same place, same language, same occupation) are what make
the interesting cases (ties, preferences, contention for capacity) happen often.
"""

from __future__ import annotations

import dataclasses
import itertools

from hypothesis import strategies as st

from services.matching.model import HOST_TYPES, URGENCIES, Capacity, Case, Host, PoolSnapshot, compatible

POOL = "pool-1"
PLACES = ("north", "south", "east")
LANGUAGES = ("ar", "uk", "fa")
OCCUPATIONS = ("nurse", "cook")
MEDICAL = ("dialysis", "mental_health")


#: True one time in four: hard needs that rule out many hosts must not make every pool unplaceable
RARELY = st.sampled_from([False, False, False, True])


def subsets(values: tuple[str, ...]) -> st.SearchStrategy[frozenset[str]]:
    return st.frozensets(st.sampled_from(values))


def ranked(values: tuple[str, ...]) -> st.SearchStrategy[tuple[str, ...]]:
    return st.lists(st.sampled_from(values), unique=True, max_size=len(values)).map(tuple)


@st.composite
def cases(draw: st.DrawFn, case_id: str, arrived_seq: int) -> Case:
    people = draw(st.integers(1, 4))
    return Case(
        case_id=case_id, pool_id=POOL, people=people, beds=draw(st.integers(0, people)),
        needs_accessible=draw(RARELY),
        medical_needs=frozenset({draw(st.sampled_from(MEDICAL))}) if draw(RARELY) else frozenset(),
        school_places=draw(st.integers(0, people - 1)), needs_language_support=draw(RARELY),
        languages=draw(subsets(LANGUAGES)), occupations=draw(subsets(OCCUPATIONS)), wants_study=draw(st.booleans()),
        preferred_places=draw(ranked(PLACES)), preferred_host_types=draw(ranked(HOST_TYPES)),
        tie_places=draw(subsets(PLACES)), urgency=draw(st.sampled_from(URGENCIES)), vulnerable=draw(st.booleans()),
        arrived_seq=arrived_seq,
    )


@st.composite
def hosts(draw: st.DrawFn, host_id: str, case_ids: list[str]) -> Host:
    people = draw(st.integers(1, 9))
    return Host(
        host_id=host_id, pool_id=POOL, host_type=draw(st.sampled_from(HOST_TYPES)), place=draw(st.sampled_from(PLACES)),
        capacity=Capacity(
            people=people, beds=draw(st.integers(people // 2, people + 1)), accessible_units=draw(st.integers(0, 1)),
            school_places=draw(st.integers(0, 3)),
            jobs=draw(st.dictionaries(st.sampled_from(OCCUPATIONS), st.integers(0, 2))),
            study_places=draw(st.integers(0, 2)),
        ),
        medical_services=draw(subsets(MEDICAL)), language_support=draw(st.booleans()),
        languages=draw(subsets(LANGUAGES)), max_household_size=draw(st.integers(1, 4)) if draw(RARELY) else None,
        preferred_languages=draw(subsets(LANGUAGES)),
        excluded_case_ids=frozenset({draw(st.sampled_from(case_ids))}) if draw(RARELY) and case_ids else frozenset(),
    )


@st.composite
def pools(draw: st.DrawFn, min_size: int = 0, max_cases: int = 7, max_hosts: int = 4,
          with_state: bool = True) -> PoolSnapshot:
    """A pool of a few cases and hosts; optionally with linked cases, fixed, pending and forbidden pairs."""
    n_cases = draw(st.integers(min_size, max_cases))
    n_hosts = draw(st.integers(min_size, max_hosts))
    case_ids = [f"c{i}" for i in range(n_cases)]
    host_ids = [f"h{j}" for j in range(n_hosts)]
    drawn = [draw(cases(case_id, draw(st.integers(0, 20)))) for case_id in case_ids]
    all_hosts = tuple(draw(hosts(host_id, case_ids)) for host_id in host_ids)
    fixed: dict[str, str] = {}
    pending: dict[str, str] = {}
    forbidden: frozenset[tuple[str, str]] = frozenset()
    if with_state and case_ids:
        links = draw(st.lists(st.tuples(st.sampled_from(case_ids), st.sampled_from(case_ids)), max_size=2))
        linked: dict[str, set[str]] = {c: set() for c in case_ids}
        for a, b in links:
            if a != b:
                linked[a].add(b)  # one direction only: the solver must close the relation itself
        drawn = [dataclasses.replace(c, linked_case_ids=frozenset(linked[c.case_id])) for c in drawn]
    if with_state and case_ids and host_ids:
        pairs = st.tuples(st.sampled_from(case_ids), st.sampled_from(host_ids))
        fixed = dict(draw(st.lists(pairs, max_size=2, unique_by=lambda p: p[0])))
        pending = {c: h for c, h in draw(st.lists(pairs, max_size=3, unique_by=lambda p: p[0])) if c not in fixed}
        forbidden = frozenset(draw(st.lists(pairs, max_size=3)))
    return PoolSnapshot(pool_id=POOL, cases=tuple(drawn), hosts=all_hosts, fixed=fixed, pending=pending,
                        forbidden=forbidden)


def feasible_assignments(snapshot: PoolSnapshot) -> list[dict[str, str]]:
    """Every assignment of a fresh pool (no fixed, pending or linked cases) within every capacity."""
    cases = sorted(snapshot.cases, key=lambda c: c.case_id)
    hosts = sorted(snapshot.hosts, key=lambda h: h.host_id)
    options = [[None, *[h for h in hosts if compatible(c, h) is None
                        and (c.case_id, h.host_id) not in snapshot.forbidden]] for c in cases]
    out = []
    for choice in itertools.product(*options):
        used: dict[str, list[int]] = {}
        fits = True
        for c, h in zip(cases, choice, strict=True):
            if h is None:
                continue
            total = used.setdefault(h.host_id, [0, 0, 0, 0])
            for d, amount in enumerate((c.people, c.beds, int(c.needs_accessible), c.school_places)):
                total[d] += amount
            cap = h.capacity
            fits = fits and all(t <= limit for t, limit in zip(
                total, (cap.people, cap.beds, cap.accessible_units, cap.school_places), strict=True))
        if fits:
            out.append({c.case_id: h.host_id for c, h in zip(cases, choice, strict=True) if h is not None})
    return out
