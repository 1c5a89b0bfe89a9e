"""Synthetic matching pools for the matching benchmark, built by the repo's own surge generator.

Cases and hosts come from ``deploy/local/synthetic.py`` (its module docstring documents every
distribution) and are turned into solver inputs by ``services/matching/pool.py``, exactly as the
service does with stored profiles. Seeds are fixed, so every run of the benchmark sees the same pools.

A *live* pool is a pool in the middle of a surge: some cases were approved or placed (fixed: they
only use capacity), some hold a pending proposal, the rest wait. :func:`live_pool` makes one by
placing the cases first-come-first-served and then fixing or leaving pending a share of them.

A pool *in a later period* (:func:`with_previous_period`) holds, besides this period's cases, those of
its previous period, placed then: the service keeps placed cases in a pool, so they are part of the
arrival history the dynamic mode samples its futures from.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from deploy.local.synthetic import Pool, case_profile, host_profile
from services.matching.model import Capacity, Case, Host, PoolSnapshot, compatible
from services.matching.pool import case_from_profile, host_from_profile

PLACES = tuple(f"north-town-{n}" for n in range(1, 6))


def synthetic_pool(n_cases: int, n_hosts: int, seed: int = 1, program: str = "municipal") -> PoolSnapshot:
    """A pool of ``n_cases`` households and ``n_hosts`` hosts drawn with ``seed`` (arrival = index)."""
    rng = random.Random(seed)
    pool = Pool(f"{program}.north", program, PLACES)
    hosts = []
    for j in range(n_hosts):
        profile = host_profile(rng, pool).model_dump(mode="json")
        hosts.append(host_from_profile(f"host-{j:05d}", pool.pool_id, profile, profile["capacity"]))
    cases = [case_from_profile(f"case-{i:06d}", pool.pool_id, case_profile(rng, pool).model_dump(mode="json"), i)
             for i in range(n_cases)]
    return PoolSnapshot(pool_id=pool.pool_id, cases=tuple(cases), hosts=tuple(hosts))


def _demand(case: Case) -> tuple[int, int, int, int]:
    return (case.people, case.beds, int(case.needs_accessible), case.school_places)


def _room(host: Host) -> list[int]:
    cap = host.capacity
    return [cap.people, cap.beds, cap.accessible_units, cap.school_places]


def first_come_first_served(snapshot: PoolSnapshot, start: dict[str, str] | None = None) -> dict[str, str]:
    """How a manual desk places: cases in arrival order, each to its first preferred place with room
    (then any host with room), hosts in the order they registered. ``start`` holds matches already made."""
    hosts = sorted(snapshot.hosts, key=lambda h: h.host_id)
    cases = {c.case_id: c for c in snapshot.cases}
    left = {h.host_id: _room(h) for h in hosts}
    assignments = dict(start or {})
    for case_id, host_id in assignments.items():
        for d, amount in enumerate(_demand(cases[case_id])):
            left[host_id][d] -= amount
    for case in sorted(snapshot.cases, key=lambda c: (c.arrived_seq, c.case_id)):
        if case.case_id in assignments:
            continue
        ranked = {place: k for k, place in enumerate(case.preferred_places)}
        for host in sorted(hosts, key=lambda h: ranked.get(h.place, len(ranked))):
            demand = _demand(case)
            if ((case.case_id, host.host_id) in snapshot.forbidden or compatible(case, host) is not None
                    or any(a > r for a, r in zip(demand, left[host.host_id], strict=True))):
                continue
            for d, amount in enumerate(demand):
                left[host.host_id][d] -= amount
            assignments[case.case_id] = host.host_id
            break
    return assignments


def live_pool(n_cases: int, n_hosts: int, seed: int = 1, placed_share: float = 0.85,
              fixed_share: float = 0.6) -> PoolSnapshot:
    """A pool mid-surge: the first ``placed_share`` of the cases (by arrival) already got a match
    (first-come-first-served); of those, ``fixed_share`` are approved/placed, the others pending."""
    snapshot = synthetic_pool(n_cases, n_hosts, seed)
    early = dataclasses.replace(snapshot, cases=snapshot.cases[: int(placed_share * n_cases)])
    matched = first_come_first_served(early)
    rng = random.Random(seed + 1)
    fixed: dict[str, str] = {}
    pending: dict[str, str] = {}
    for case_id, host_id in sorted(matched.items()):
        (fixed if rng.random() < fixed_share else pending)[case_id] = host_id
    return dataclasses.replace(snapshot, fixed=fixed, pending=pending)


def with_capacity(snapshot: PoolSnapshot, host_id: str, **changes: int) -> PoolSnapshot:
    """The same pool after one absolute capacity update of one host."""
    hosts = tuple(dataclasses.replace(h, capacity=dataclasses.replace(h.capacity, **changes))  # type: ignore[arg-type]
                  if h.host_id == host_id else h for h in snapshot.hosts)
    return dataclasses.replace(snapshot, hosts=hosts)


def previous_period(n_cases: int, seed: int, program: str = "municipal") -> tuple[Case, ...]:
    """The cases of a pool's previous period: ``n_cases`` from the same generator with another seed
    (so the same mix, and none of this period's cases), arrived before any of this period's."""
    earlier = synthetic_pool(n_cases, 0, seed=seed + 1000, program=program).cases
    return tuple(dataclasses.replace(c, case_id=f"earlier-{c.case_id}", arrived_seq=c.arrived_seq - n_cases)
                 for c in earlier)


def with_previous_period(snapshot: PoolSnapshot, previous: tuple[Case, ...]) -> PoolSnapshot:
    """The same pool in a later period: ``previous`` were placed in the previous period, so they are
    fixed. They are fixed at a host of their own that they fill exactly, so that this period's hosts
    keep this period's capacity (as the capacity updates that open a period would set it)."""
    def total(demand: Callable[[Case], int]) -> int:
        return sum(demand(c) for c in previous)

    keeper = Host(host_id="earlier-placements", pool_id=snapshot.pool_id, host_type="municipality",
                  place="previous-period",
                  capacity=Capacity(people=total(lambda c: c.people), beds=total(lambda c: c.beds),
                                    accessible_units=total(lambda c: int(c.needs_accessible)),
                                    school_places=total(lambda c: c.school_places)),
                  medical_services=frozenset().union(*(c.medical_needs for c in previous)), language_support=True)
    return dataclasses.replace(snapshot, cases=previous + snapshot.cases, hosts=(*snapshot.hosts, keeper),
                               fixed={**snapshot.fixed, **{c.case_id: keeper.host_id for c in previous}})


def with_host_wishes(pool: PoolSnapshot) -> PoolSnapshot:
    """The same pool where every host states a wish: households speaking its first language (sorted)."""
    return dataclasses.replace(pool, hosts=tuple(dataclasses.replace(h, preferred_languages=frozenset(
        {sorted(h.languages)[0]})) if h.languages else h for h in pool.hosts))


__all__ = ["Capacity", "first_come_first_served", "live_pool", "previous_period", "synthetic_pool", "with_capacity",
           "with_host_wishes", "with_previous_period"]
