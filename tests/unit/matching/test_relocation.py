"""Making room by moving placed households (relocation.py): a hand-checked move, a move undone when it
cannot free enough, and on random instances nobody unplaced, capacity kept, and only the level's units
touched."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.exchange import Candidates
from services.matching.relocation import make_room


def two_hosts(room_at_b: int) -> Candidates:
    """Unit 0 (2 people) may go to host A (position 0) or B (position 1); unit 1 (2 people) only to A
    (position 2). A has room for 2 people, B for ``room_at_b``."""
    return Candidates(start=np.array([0, 2, 3]), host=np.array([0, 1, 0]),
                      unit_demand=np.array([[2, 2, 0, 0], [2, 2, 0, 0]]),
                      remaining=np.array([[2, 2, 1, 1], [room_at_b, room_at_b, 1, 1]]))


def test_a_placed_household_moves_to_its_other_host_to_make_room() -> None:
    placed_at_a = np.array([0, -1])
    moved = make_room(placed_at_a, two_hosts(room_at_b=2), weights=np.array([0, 1]), units=np.array([0, 1]))
    assert moved.tolist() == [1, 2]  # unit 0 to B, unit 1 to A


def test_nothing_moves_when_the_move_cannot_make_enough_room() -> None:
    placed_at_a = np.array([0, -1])
    kept = make_room(placed_at_a, two_hosts(room_at_b=1), weights=np.array([0, 1]), units=np.array([0, 1]))
    assert kept.tolist() == [0, -1]


def test_units_outside_the_level_neither_count_nor_move() -> None:
    """Unit 0 is not in the level: its place is the caller's to settle, so unit 1 fits at A as if A were
    empty, and unit 0 keeps its entry."""
    placed_at_a = np.array([0, -1])
    result = make_room(placed_at_a, two_hosts(room_at_b=0), weights=np.array([0, 1]), units=np.array([1]))
    assert result.tolist() == [0, 2]


@st.composite
def instances(draw: st.DrawFn) -> tuple[Candidates, np.ndarray, np.ndarray, np.ndarray]:
    """Units with candidate hosts, a level's weights and units, and a feasible start for those units."""
    n_hosts = draw(st.integers(1, 4))
    n_units = draw(st.integers(1, 7))
    hosts, starts = [], [0]
    for _ in range(n_units):
        hosts += draw(st.lists(st.integers(0, n_hosts - 1), min_size=1, max_size=n_hosts, unique=True))
        starts.append(len(hosts))
    demand = np.array([[draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(0, 1)),
                        draw(st.integers(0, 1))] for _ in range(n_units)], dtype=np.int64)
    remaining = np.array([[draw(st.integers(0, 5)), draw(st.integers(0, 5)), draw(st.integers(0, 1)),
                           draw(st.integers(0, 2))] for _ in range(n_hosts)], dtype=np.int64)
    units = np.array(sorted(draw(st.sets(st.integers(0, n_units - 1), min_size=1))), dtype=np.int64)
    weights = np.array([draw(st.integers(0, 2)) for _ in range(n_units)], dtype=np.int64)
    choice = np.full(n_units, -1, dtype=np.int64)
    left = remaining.copy()
    for u in units.tolist():
        if draw(st.booleans()):
            for p in range(starts[u], starts[u + 1]):
                if (demand[u] <= left[hosts[p]]).all():
                    left[hosts[p]] -= demand[u]
                    choice[u] = p
                    break
    candidates = Candidates(np.array(starts, dtype=np.int64), np.array(hosts, dtype=np.int64), demand, remaining)
    return candidates, weights, units, choice


@settings(max_examples=200, deadline=None)
@given(instances())
def test_making_room_unplaces_nobody_keeps_capacity_and_touches_only_the_level(
        instance: tuple[Candidates, np.ndarray, np.ndarray, np.ndarray]) -> None:
    candidates, weights, units, choice = instance
    result = make_room(choice, candidates, weights, units)
    outside = np.setdiff1d(np.arange(len(choice)), units)
    assert (result[outside] == choice[outside]).all()
    assert (result[units][choice[units] >= 0] >= 0).all()  # nobody unplaced
    newly = units[(choice[units] < 0) & (result[units] >= 0)]
    assert (weights[newly] > 0).all()  # only units that count are placed
    for u in units[result[units] >= 0].tolist():  # each at one of its own candidates
        assert candidates.start[u] <= result[u] < candidates.start[u + 1]
    placed = units[result[units] >= 0]
    used = np.zeros_like(candidates.remaining)
    np.add.at(used, candidates.host[result[placed]], candidates.unit_demand[placed])
    assert (used <= candidates.remaining).all()
