"""The blocking pairs kept up to date as households move: after any moves, the count is the one
``blocking_pairs`` gives for the assignment from scratch, and weighing a move changes nothing."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.model import PoolSnapshot, Weights
from services.matching.scores import PoolScores, demand_of
from services.matching.solver import blocking_pairs
from services.matching.stability import BlockingPairs
from tests.unit.matching.pools import pools


def tracked(snapshot: PoolSnapshot, assignments: dict[str, str]) -> BlockingPairs:
    cases, hosts = snapshot.cases, snapshot.hosts
    scores = PoolScores(cases, hosts, snapshot.pool_id, snapshot.forbidden, Weights())
    rows = scores.rows(list(range(len(cases))))
    index = {h.host_id: j for j, h in enumerate(hosts)}
    host_of = np.array([index.get(assignments.get(c.case_id, ""), -1) for c in cases], dtype=np.int64)
    demand = np.array([demand_of(c) for c in cases], dtype=np.int64).reshape(len(cases), 4)
    return BlockingPairs(rows.allowed, rows.beneficiary_preference, rows.host_preference, demand, scores.capacity,
                         host_of)


@settings(max_examples=60, deadline=None)
@given(pools(min_size=1), st.randoms(use_true_random=False))
def test_after_any_moves_the_count_is_the_count_from_scratch(snapshot: PoolSnapshot, rnd: random.Random) -> None:
    host_ids = [h.host_id for h in snapshot.hosts]
    assignments = {c.case_id: rnd.choice(host_ids) for c in snapshot.cases if rnd.random() < 0.6}
    pairs = tracked(snapshot, assignments)
    assert pairs.count == blocking_pairs(snapshot, assignments)
    for _ in range(8):
        # one case to a host or out, or two at once (as a household taking another's place)
        moved = rnd.sample(range(len(snapshot.cases)), k=min(len(snapshot.cases), rnd.choice([1, 2])))
        moves = {i: rnd.choice([-1, *range(len(host_ids))]) for i in moved}
        before = pairs.count
        change = pairs.change(moves)
        assert pairs.count == before == blocking_pairs(snapshot, assignments), "weighing a move moves nothing"
        pairs.move(moves)
        for i, j in moves.items():
            case_id = snapshot.cases[i].case_id
            if j < 0:
                assignments.pop(case_id, None)
            else:
                assignments[case_id] = host_ids[j]
        assert pairs.count == before + change == blocking_pairs(snapshot, assignments)
