"""Exchanges within classes of equal demand (exchange.py): never worse, same households placed, capacity
kept, and - within one class - the best assignment there is."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.exchange import Candidates, better_hosts

EXAMPLES = settings(max_examples=150, deadline=None)


@st.composite
def instances(draw: st.DrawFn, one_class: bool) -> tuple[Candidates, np.ndarray, np.ndarray]:
    """Units with candidate hosts, gains, remaining capacity and a feasible start (greedy, unit order)."""
    n_hosts = draw(st.integers(1, 3))
    n_units = draw(st.integers(1, 5))
    hosts, starts = [], [0]
    for _ in range(n_units):
        mine = draw(st.lists(st.integers(0, n_hosts - 1), min_size=1, max_size=n_hosts, unique=True))
        hosts += mine
        starts.append(len(hosts))
    demand = np.array([[1, 1, 0, 0] if one_class else
                       [draw(st.integers(1, 3)), draw(st.integers(0, 2)), draw(st.integers(0, 1)), 0]
                       for _ in range(n_units)], dtype=np.int64)
    remaining = np.array([[draw(st.integers(0, 4)), draw(st.integers(0, 4)), draw(st.integers(0, 1)), 0]
                          for _ in range(n_hosts)], dtype=np.int64)
    gain = np.array([draw(st.integers(-5, 20)) for _ in hosts], dtype=np.int64)
    candidates = Candidates(np.array(starts, dtype=np.int64), np.array(hosts, dtype=np.int64), demand, remaining)
    choice = np.full(n_units, -1, dtype=np.int64)
    left = remaining.copy()
    for u in range(n_units):
        for p in range(starts[u], starts[u + 1]):
            if (demand[u] <= left[hosts[p]]).all():
                left[hosts[p]] -= demand[u]
                choice[u] = p
                break
    return candidates, gain, choice


def usage(candidates: Candidates, choice: np.ndarray) -> np.ndarray:
    used = np.zeros_like(candidates.remaining)
    for u in np.flatnonzero(choice >= 0):
        used[candidates.host[choice[u]]] += candidates.unit_demand[u]
    return used


def total(gain: np.ndarray, choice: np.ndarray) -> int:
    return int(gain[choice[choice >= 0]].sum())


@EXAMPLES
@given(instances(one_class=False))
def test_exchanges_never_lose_and_keep_who_is_placed_and_every_capacity(
        instance: tuple[Candidates, np.ndarray, np.ndarray]) -> None:
    candidates, gain, start = instance
    result = better_hosts(start, candidates, gain)
    assert ((result >= 0) == (start >= 0)).all()
    for u in np.flatnonzero(result >= 0):
        assert candidates.start[u] <= result[u] < candidates.start[u + 1]
    assert (usage(candidates, result) <= candidates.remaining).all()
    assert total(gain, result) >= total(gain, start)


@EXAMPLES
@given(instances(one_class=True))
def test_within_one_class_the_exchanges_find_the_best_hosts_for_the_placed_households(
        instance: tuple[Candidates, np.ndarray, np.ndarray]) -> None:
    candidates, gain, start = instance
    placed = np.flatnonzero(start >= 0).tolist()
    best = total(gain, start)
    options = [range(candidates.start[u], candidates.start[u + 1]) for u in placed]
    for positions in itertools.product(*options):
        choice = start.copy()
        choice[placed] = positions
        if (usage(candidates, choice) <= candidates.remaining).all():
            best = max(best, total(gain, choice))
    assert total(gain, better_hosts(start, candidates, gain)) == best


def test_two_households_each_at_the_other_ones_better_host_swap() -> None:
    # unit 0: hosts 0 (gain 1) or 1 (gain 9); unit 1: hosts 0 (gain 8) or 1 (gain 2); one place each
    candidates = Candidates(start=np.array([0, 2, 4]), host=np.array([0, 1, 0, 1]),
                            unit_demand=np.array([[1, 1, 0, 0], [1, 1, 0, 0]]),
                            remaining=np.array([[1, 1, 0, 0], [1, 1, 0, 0]]))
    gain = np.array([1, 9, 8, 2])
    assert better_hosts(np.array([0, 3]), candidates, gain).tolist() == [1, 2]
