"""Re-solves around the changes (neighbourhood.py): which pending proposals stay as they are, and a
re-solve in that scope keeps every hard constraint and never lets a protected case wait behind a
proposal it outranks."""

from __future__ import annotations

import dataclasses

from hypothesis import given

from services.matching.model import Capacity, PoolSnapshot, SolverParams, Weights
from services.matching.neighbourhood import BUMP_HOSTS, kept_proposals
from services.matching.resolver import scope_of_solve
from services.matching.solver import solve
from tests.unit.matching.pools import pools
from tests.unit.matching.test_solver import FAST, PROPERTY, case, check_hard_constraints, host, pool

AROUND_CHANGES = dataclasses.replace(FAST, scope="changes")


def settled() -> PoolSnapshot:
    """Two hosts with one place each, both taken by pending proposals."""
    return pool([case("a", arrived_seq=0), case("b", arrived_seq=1)], [host("h1"), host("h2")],
                pending={"a": "h1", "b": "h2"})


def test_proposals_nothing_touched_are_kept() -> None:
    assert kept_proposals(settled(), Weights()) == {"a", "b"}
    result = solve(settled(), AROUND_CHANGES)
    assert result.assignments == {"a": "h1", "b": "h2"}
    assert result.new_proposals == {} and result.withdrawn == {}
    assert result.phases[0].name == "kept_pending" and result.phases[0].objective == 2


def test_a_capacity_cut_reopens_the_proposals_at_that_host_only() -> None:
    cut = dataclasses.replace(settled(), hosts=(host("h1", people=0), host("h2")))
    assert kept_proposals(cut, Weights()) == {"b"}
    assert solve(cut, AROUND_CHANGES).withdrawn == {"a": "h1"}


def test_a_declined_pair_is_reopened() -> None:
    declined = dataclasses.replace(settled(), forbidden=frozenset({("a", "h1")}))
    assert kept_proposals(declined, Weights()) == {"b"}


def test_a_waiting_emergency_reopens_the_proposals_it_outranks_at_its_best_host_and_takes_a_place() -> None:
    normal = [case(f"n{k}", arrived_seq=k) for k in range(BUMP_HOSTS + 1)]
    hosts = [host(f"h{k}") for k in range(BUMP_HOSTS + 1)]
    snapshot = pool([*normal, case("e", urgency="emergency", arrived_seq=9)], hosts,
                    pending={f"n{k}": f"h{k}" for k in range(BUMP_HOSTS + 1)})
    assert len(kept_proposals(snapshot, Weights())) == 1
    result = solve(snapshot, AROUND_CHANGES)
    assert "e" in result.assignments
    assert result.protected_placed["emergency"] == 1


def test_a_waiting_case_of_no_higher_rank_reopens_nothing() -> None:
    snapshot = dataclasses.replace(settled(), cases=(*settled().cases, case("late", arrived_seq=5)))
    assert kept_proposals(snapshot, Weights()) == {"a", "b"}


def test_a_waiting_emergency_reopens_nothing_where_it_would_not_fit_anyway() -> None:
    big = case("e", urgency="emergency", people=3, beds=3, arrived_seq=2)
    snapshot = dataclasses.replace(settled(), cases=(*settled().cases, big))
    assert kept_proposals(snapshot, Weights()) == {"a", "b"}


def test_a_proposal_linked_to_a_waiting_case_is_reopened() -> None:
    a, b = case("a", linked_case_ids=frozenset({"w"})), case("b")
    snapshot = pool([a, b, case("w")], [host("h1", people=2), host("h2")], pending={"a": "h1", "b": "h2"})
    assert kept_proposals(snapshot, Weights()) == {"b"}


def test_linked_proposals_at_different_hosts_are_both_reopened() -> None:
    a = case("a", linked_case_ids=frozenset({"b"}))
    snapshot = pool([a, case("b")], [host("h1", people=2), host("h2", people=2)], pending={"a": "h1", "b": "h2"})
    assert kept_proposals(snapshot, Weights()) == set()
    result = solve(snapshot, AROUND_CHANGES)
    assert result.assignments["a"] == result.assignments["b"]


def test_room_that_opened_is_used_without_reopening_anything() -> None:
    grown = dataclasses.replace(settled(), cases=(*settled().cases, case("new", arrived_seq=3)),
                                hosts=(host("h1", capacity=Capacity(people=2, beds=2)), host("h2")))
    result = solve(grown, AROUND_CHANGES)
    assert result.new_proposals == {"new": "h1"} and result.withdrawn == {}


@PROPERTY
@given(pools(min_size=1))
def test_a_re_solve_around_the_changes_keeps_every_hard_constraint_and_every_kept_proposal(
        snapshot: PoolSnapshot) -> None:
    result = solve(snapshot, AROUND_CHANGES)
    check_hard_constraints(snapshot, result)
    for case_id in kept_proposals(snapshot, SolverParams().weights):
        assert result.assignments[case_id] == snapshot.pending[case_id]


def test_the_service_solves_the_whole_pool_first_and_every_nth_time_and_around_the_changes_between() -> None:
    assert [scope_of_solve(k, 3) for k in range(7)] == [
        "pool", "changes", "changes", "pool", "changes", "changes", "pool"]
    assert {scope_of_solve(k, 1) for k in range(5)} == {"pool"}


def test_a_stability_claim_of_a_re_solve_around_the_changes_says_it_holds_given_the_kept_proposals() -> None:
    # one host with room for 2 people that wants Ukrainian speakers: c, who does not speak it, holds a
    # pending proposal there that the re-solve keeps, so w, who does, blocks with the host
    c = case("c", people=2, beds=2)
    w = case("w", people=2, beds=2, languages=frozenset({"uk"}), arrived_seq=1)
    h = host("h", capacity=Capacity(people=2, beds=2), preferred_languages=frozenset({"uk"}))
    stable = dataclasses.replace(AROUND_CHANGES, mechanism="stable")
    result = solve(pool([c, w], [h], pending={"c": "h"}), stable)
    assert result.blocking_pairs_bound == 1
    assert result.stability.startswith(
        "no stable matching keeps the protection levels given the 1 pending proposals kept by this re-solve")
