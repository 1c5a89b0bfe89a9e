"""The dynamic mode's relaxed plan (services/matching/future.py), on cases small enough to check by hand."""

from __future__ import annotations

import dataclasses

import numpy as np

from services.matching.future import Future, Offers, Present, relaxed_plan, welfare_bound

ONE_PERSON = [1, 1, 0, 0]
#: two hosts with room for everyone, one job each (slot 0 at host 0, slot 1 at host 1)
ROOMY = np.array([[5, 5, 1, 0], [5, 5, 1, 0]])
NO_SLOTS = np.zeros(0, dtype=np.int64)


def offers(position: list[int], slot: list[int], gain: list[int]) -> Offers:
    return Offers(position=np.array(position), group=np.arange(len(position)), slot=np.array(slot),
                  gain=np.array(gain))


def present(gains: list[int], job_gains: list[int] | None = None) -> Present:
    """One household of one person, with a candidate position at host 0 and at host 1."""
    jobs = offers([0, 1], [0, 1], job_gains) if job_gains else Offers.none()
    return Present(unit=np.array([0, 0]), host=np.array([0, 1]), demand=np.array([ONE_PERSON, ONE_PERSON]),
                   gain=np.array(gains), offers=jobs)


def future_at_host_0(gain: int, scenario: int, demand: list[int], jobs: Offers | None = None) -> Future:
    """One expected arrival whose only candidate is host 0."""
    return Future(case=np.array([0]), scenario=np.array([scenario]), count=np.array([1]), host=np.array([0]),
                  demand=np.array([demand]), gain=np.array([gain]), offers=jobs or Offers.none())


def plan(now: Present, future: Future, remaining: np.ndarray, scenarios: int,
         slots_left: np.ndarray = NO_SLOTS) -> tuple[list[float], float]:
    found = relaxed_plan(now, future, remaining, slots_left, scenarios, deterministic_s=1.0, wall_s=None)
    assert found is not None
    return [round(v, 6) for v in found.present.tolist()], round(found.future_placed, 6)


# one place at each host, the accessible unit at host 0
SCARCE = np.array([[1, 1, 1, 0], [1, 1, 0, 0]])
NEEDS_ACCESS = [1, 1, 1, 0]


def test_the_present_case_leaves_the_place_an_expected_arrival_needs_more() -> None:
    # at host 1: 8 now + 10 later = 18 > 10 now at host 0
    assert plan(present([10, 8]), future_at_host_0(10, 0, NEEDS_ACCESS), SCARCE, scenarios=1) == ([0.0, 1.0], 1.0)


def test_a_future_that_shows_in_one_scenario_of_two_counts_half() -> None:
    # the arrival appears in one of two scenarios: leaving host 0 is worth 8 + 3 / 2 = 9.5 < 10
    assert plan(present([10, 8]), future_at_host_0(3, 1, NEEDS_ACCESS), SCARCE, scenarios=2) == ([1.0, 0.0], 0.0)
    # with 6 it is worth 8 + 6 / 2 = 11 > 10
    assert plan(present([10, 8]), future_at_host_0(6, 1, NEEDS_ACCESS), SCARCE, scenarios=2) == ([0.0, 1.0], 0.5)


def test_the_present_case_leaves_a_job_an_expected_arrival_gains_more_from() -> None:
    # room for both at host 0; its one job is worth 5 to the present case, 8 to the arrival. Host 1's
    # job is worth 5 to the present case too: 9 + 5 + 10 + 8 = 32 beats staying at host 0 (10 + 5 + 10)
    # or leaving it the job (10 + 10 + 8)
    now = present([10, 9], job_gains=[5, 5])
    later = future_at_host_0(10, 0, ONE_PERSON, jobs=offers([0], [0], [8]))
    assert plan(now, later, ROOMY, scenarios=1, slots_left=np.array([1, 1])) == ([0.0, 1.0], 1.0)
    # with a second job at host 0 nothing is scarce: host 0 fits the present case better
    assert plan(now, later, ROOMY, scenarios=1, slots_left=np.array([2, 1])) == ([1.0, 0.0], 1.0)


def test_no_future_leaves_the_present_case_at_its_best_host() -> None:
    none = Future(case=NO_SLOTS, scenario=NO_SLOTS, count=NO_SLOTS, host=NO_SLOTS,
                  demand=np.zeros((0, 4), dtype=np.int64), gain=NO_SLOTS, offers=Offers.none())
    assert plan(present([10, 8]), none, SCARCE, scenarios=1) == ([1.0, 0.0], 0.0)


def test_a_case_that_may_be_held_back_leaves_its_place_to_an_expected_arrival_that_gains_more() -> None:
    """One place, at host 0, the only candidate of the present case (gain 5) and of the arrival."""
    now = Present(unit=np.array([0]), host=np.array([0]), demand=np.array([ONE_PERSON]), gain=np.array([5]),
                  offers=Offers.none(), may_hold_back=frozenset({0}))
    assert plan(now, future_at_host_0(8, 0, ONE_PERSON), SCARCE, scenarios=1) == ([0.0], 1.0)
    # seen in one scenario of two, the arrival is worth 4 < 5
    assert plan(now, future_at_host_0(8, 1, ONE_PERSON), SCARCE, scenarios=2) == ([1.0], 0.0)
    # a case that protection places is never held back
    required = dataclasses.replace(now, may_hold_back=frozenset())
    assert plan(required, future_at_host_0(8, 0, ONE_PERSON), SCARCE, scenarios=1) == ([1.0], 0.0)


def test_the_welfare_bound_counts_a_job_once_however_many_want_it() -> None:
    """Two households of one person, both at host 0 (room for two), each gaining 4 there and 3 more
    from its one job, but the host has one job left: the bound is 4 + 4 + 3 = 11, where counting
    every household's offers in full would give 14."""
    both = Present(unit=np.array([0, 1]), host=np.array([0, 0]), demand=np.array([ONE_PERSON, ONE_PERSON]),
                   gain=np.array([4, 4]), offers=offers([0, 1], [0, 0], [3, 3]))
    bound = welfare_bound(both, np.array([[2, 2, 0, 0]]), np.array([1]), deterministic_s=1.0, wall_s=None)
    assert bound is not None and round(bound, 6) == 11.0
    # past the wall stop no LP is solved
    assert welfare_bound(both, np.array([[2, 2, 0, 0]]), np.array([1]), deterministic_s=1.0, wall_s=0.0) is None
