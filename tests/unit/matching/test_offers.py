"""Taking the offers of a placement (offers.py): at most one per group, within each slot, and the most
gain there is (checked against enumeration)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.offers import best_offers


def ints(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_a_person_with_two_occupations_takes_the_job_no_one_else_can() -> None:
    # person 0 (group 0) is a cook or a nurse, person 1 (group 1) only a cook; one job of each (slots 0, 1).
    # Taking offers in order gave person 0 the cook's job and person 1 nothing.
    taken = best_offers(group=ints([0, 0, 1]), slot=ints([0, 1, 0]), gain=ints([5, 5, 5]), slot_left=ints([1, 1]))
    assert taken.tolist() == [0, 1, 1]


def test_the_last_place_goes_to_the_one_who_gains_most_and_none_beyond_what_is_left() -> None:
    assert best_offers(ints([0, 1, 2]), ints([0, 0, 0]), ints([2, 7, 4]), ints([1])).tolist() == [0, 1, 0]
    assert best_offers(ints([0, 1]), ints([0, 0]), ints([2, 7]), ints([0])).tolist() == [0, 0]
    assert best_offers(ints([]), ints([]), ints([]), ints([])).tolist() == []


@st.composite
def instances(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n_slots = draw(st.integers(1, 3))
    n = draw(st.integers(1, 7))
    group = ints([draw(st.integers(0, 3)) for _ in range(n)])
    slot = ints([draw(st.integers(0, n_slots - 1)) for _ in range(n)])
    gain = ints([draw(st.integers(0, 9)) for _ in range(n)])
    left = ints([draw(st.integers(0, 2)) for _ in range(n_slots)])
    return group, slot, gain, left


@settings(max_examples=200, deadline=None)
@given(instances())
def test_the_offers_taken_are_allowed_and_worth_the_most_there_is(
        instance: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    group, slot, gain, left = instance

    def allowed(taken: np.ndarray) -> bool:
        on = taken == 1
        return (np.bincount(group[on], minlength=4) <= 1).all() and (
            np.bincount(slot[on], minlength=len(left)) <= left).all()

    taken = best_offers(group, slot, gain, left)
    assert allowed(taken)
    best = max(int(gain @ np.array(t)) for t in itertools.product((0, 1), repeat=len(group)) if allowed(np.array(t)))
    assert int(gain @ taken) == best
