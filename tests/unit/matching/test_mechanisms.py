"""The stable and dynamic mechanisms: blocking pairs counted right, the fewest of them found (checked
against enumeration), no stable matching reported as such, protection levels the same in every mode,
and the dynamic plan keeping a scarce place for the arrivals that need it, or holding a case back for
them."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from benchmarks.matching_pools import synthetic_pool, with_host_wishes
from services.matching import solver
from services.matching.future import Future, Plan, Present, relaxed_plan
from services.matching.model import Capacity, Case, PoolSnapshot, SolverParams, inputs_digest
from services.matching.solver import SolveResult, blocking_pairs, solve
from tests.unit.matching.pools import feasible_assignments, pools
from tests.unit.matching.test_solver import case, check_hard_constraints, host, naive_blocking_pairs, pool

WELFARE = SolverParams(time_limit_s=10.0)
STABLE = SolverParams(time_limit_s=10.0, mechanism="stable")
DYNAMIC = SolverParams(time_limit_s=10.0, mechanism="dynamic", expected_arrivals=3, scenarios=2)
TINY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def protected(result: SolveResult) -> dict[str, int]:
    """The levels every mode keeps: emergency, urgent and vulnerable cases placed, and cases placed."""
    return dict(result.protected_placed)


def levels(snapshot: PoolSnapshot, assignments: dict[str, str]) -> tuple[int, int, int, int]:
    cases = {c.case_id: c for c in snapshot.cases}
    placed = [cases[c] for c in assignments]
    return (sum(c.urgency == "emergency" for c in placed), sum(c.urgency == "urgent" for c in placed),
            sum(c.vulnerable for c in placed), len(placed))


def fewest_blocking_pairs(snapshot: PoolSnapshot) -> tuple[int, int]:
    """(fewest blocking pairs of any assignment, fewest among those with the best protection levels)."""
    counted = [(levels(snapshot, a), naive_blocking_pairs(snapshot, a)) for a in feasible_assignments(snapshot)]
    best = max(level for level, _ in counted)
    return min(n for _, n in counted), min(n for level, n in counted if level == best)


# --------------------------------------------------------------------------------------------------
# Blocking pairs, hand-checked
# --------------------------------------------------------------------------------------------------


def test_blocking_pairs_hand_checked_with_capacity_in_several_dimensions() -> None:
    # one host, 4 people and 1 school place, that wants Ukrainian speakers: a and b speak it and
    # each need the school place; d speaks it and needs none; c does not speak it and needs none
    a = case("a", people=2, beds=2, school_places=1, languages=frozenset({"uk"}))
    b = case("b", people=2, beds=2, school_places=1, languages=frozenset({"uk"}))
    c = case("c", people=2, beds=2)
    d = case("d", people=2, beds=2, languages=frozenset({"uk"}))
    h = host("h", capacity=Capacity(people=4, beds=4, school_places=1), preferred_languages=frozenset({"uk"}))
    snapshot = pool([a, b, c, d], [h])
    # a and c placed: d blocks (h lets c go, and d fits beside a); b does not, since it needs a's
    # school place and h wants a as much as b: 1
    assert blocking_pairs(snapshot, {"a": "h", "c": "h"}) == 1
    # a alone: c and d fit in the room left; b does not (the school place is taken): 2
    assert blocking_pairs(snapshot, {"a": "h"}) == 2
    # c alone: a, b and d fit beside c: 3
    assert blocking_pairs(snapshot, {"c": "h"}) == 3
    # c and d: h would let c go for a, or for b, and either fits beside d: 2
    assert blocking_pairs(snapshot, {"c": "h", "d": "h"}) == 2
    # a and d: h is full of cases it wants, so neither b nor c blocks: stable
    assert blocking_pairs(snapshot, {"a": "h", "d": "h"}) == 0
    # nobody: all four fit: 4
    assert blocking_pairs(snapshot, {}) == 4


def test_welfare_mode_reports_blocking_pairs_and_stable_mode_removes_them() -> None:
    # both rank p1 first; h1 (p1) wants Arabic speakers (b). a speaks h1's language and has family
    # at p1, so welfare puts a at h1; then (b, h1) blocks. b at h1, a at h2 is stable.
    a = case("a", preferred_places=("p1", "p2"), languages=frozenset({"uk"}), tie_places=frozenset({"p1"}))
    b = case("b", preferred_places=("p1", "p2"), languages=frozenset({"ar"}), arrived_seq=1)
    h1 = host("h1", place="p1", preferred_languages=frozenset({"ar"}), languages=frozenset({"uk"}))
    h2 = host("h2", place="p2")
    snapshot = pool([a, b], [h1, h2])
    welfare = solve(snapshot, WELFARE)
    assert welfare.assignments == {"a": "h1", "b": "h2"}
    assert welfare.blocking_pairs == 1 and welfare.mechanism == "welfare"
    assert welfare.blocking_pairs_bound is None
    stable = solve(snapshot, STABLE)
    assert stable.assignments == {"a": "h2", "b": "h1"}
    assert stable.blocking_pairs == 0 and stable.blocking_pairs_bound == 0
    assert stable.stability.startswith("stable")
    assert protected(stable) == protected(welfare)
    assert stable.objective < welfare.objective  # stability costs welfare here


def test_stable_mode_says_when_no_stable_matching_keeps_the_protection_levels() -> None:
    """One host, with room for 2 people, that wants Ukrainian speakers: w speaks it, e does not but is an
    emergency. Placing w alone is stable (enumerated), but protection places e, and then h would let e
    go for w: every assignment that keeps the protection levels has a blocking pair."""
    e = case("e", people=2, beds=2, urgency="emergency")
    w = case("w", people=2, beds=2, languages=frozenset({"uk"}), arrived_seq=1)
    h = host("h", capacity=Capacity(people=2, beds=2), preferred_languages=frozenset({"uk"}))
    snapshot = pool([e, w], [h])
    assert fewest_blocking_pairs(snapshot) == (0, 1)

    result = solve(snapshot, STABLE)
    assert result.assignments == {"e": "h"}
    assert result.blocking_pairs == 1 and result.blocking_pairs_bound == 1
    assert next(p for p in result.phases if p.name == "stable:blocking_pairs").status == "OPTIMAL"
    assert result.stability.startswith("no stable matching keeps the protection levels")
    assert result.stability in result.warnings
    assert protected(result) == protected(solve(snapshot, WELFARE))


def test_stable_mode_keeps_the_best_exchanged_solution_and_then_lowers_its_blocking_pairs_by_moves() -> None:
    """With too little budget for the stability phase to improve on the protection solution, the
    stable mode keeps the exchanged solution with the fewest blocking pairs: here the one exchanged
    towards what hosts want, which has fewer than the welfare mode's (whose exchanges are the other
    candidate). Single households then move, each move kept only if the exact count drops: fewer still,
    with the same protection levels and every hard constraint."""
    snapshot = with_host_wishes(synthetic_pool(300, 30, seed=1))
    stable = solve(snapshot, SolverParams(time_limit_s=0.1, mechanism="stable"))
    welfare = solve(snapshot, SolverParams(time_limit_s=0.1))
    exchanged = {p.name: p for p in stable.phases if p.name.startswith("stable:exchanged:")}
    assert set(exchanged) == {"stable:exchanged:welfare", "stable:exchanged:host_wishes"}
    assert [p.status for p in exchanged.values()].count("PREFERRED") == 1
    assert exchanged["stable:exchanged:host_wishes"].status == "PREFERRED"
    assert exchanged["stable:exchanged:host_wishes"].objective < exchanged["stable:exchanged:welfare"].objective
    moves = next(p for p in stable.phases if p.name == "stable:moves")
    assert (moves.status, moves.bound) == ("IMPROVED", exchanged["stable:exchanged:host_wishes"].objective)
    assert stable.blocking_pairs == moves.objective == blocking_pairs(snapshot, stable.assignments)
    assert stable.blocking_pairs < moves.bound
    assert stable.blocking_pairs < welfare.blocking_pairs
    assert protected(stable) == protected(welfare)
    check_hard_constraints(snapshot, stable)
    assert stable.stability.startswith(f"{stable.blocking_pairs} blocking pairs")


def test_households_of_different_sizes_trade_hosts_when_that_lowers_the_blocking_pairs() -> None:
    """The exchanges of step 5 trade hosts only among households of one size; with a budget for more
    moves, households of any size trade too, each trade kept only where both fit and the exact count
    drops, so the protection levels and every hard constraint hold."""
    snapshot = with_host_wishes(synthetic_pool(300, 30, seed=1))
    stable = solve(snapshot, SolverParams(time_limit_s=1.0, mechanism="stable"))
    phases = {p.name: p for p in stable.phases}
    assert phases["stable:moves:exchange"].objective > 0
    assert stable.blocking_pairs == phases["stable:moves"].objective == blocking_pairs(snapshot, stable.assignments)
    assert stable.blocking_pairs < phases["stable:moves"].bound
    # the levels protection proved; "placed" is not proven on this pool within the budget in either mode
    proven = ("emergency", "urgent", "vulnerable")
    welfare = solve(snapshot, SolverParams(time_limit_s=1.0))
    assert [stable.protected_placed[level] for level in proven] == [welfare.protected_placed[level] for level in proven]
    assert all(phases[f"protect:{level}"].status in ("OPTIMAL", "ATTAINED") for level in proven)
    check_hard_constraints(snapshot, stable)


def test_on_a_pool_too_big_for_the_exact_model_the_stable_mode_exchanges_and_moves(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Above STABLE_MODEL_MAX_PAIRS the exact model is not built: the welfare phase runs as in the welfare
    mode, and the exchanged solutions and the moves that follow lower the blocking pairs from there;
    the result says that whether a stable matching exists is not known, and claims no bound."""
    monkeypatch.setattr(solver, "STABLE_MODEL_MAX_PAIRS", 1_000)
    snapshot = with_host_wishes(synthetic_pool(300, 30, seed=1))
    stable = solve(snapshot, SolverParams(time_limit_s=0.1, mechanism="stable"))
    phases = {p.name: p for p in stable.phases}
    assert phases["stable:blocking_pairs"].status == "NOT_SEARCHED" and "stable:arrival" not in phases
    exchanged = min(phases[f"stable:exchanged:{name}"].objective or 0 for name in ("welfare", "host_wishes"))
    assert stable.blocking_pairs == phases["stable:moves"].objective == blocking_pairs(snapshot, stable.assignments)
    assert stable.blocking_pairs < exchanged
    assert stable.blocking_pairs_bound is None
    assert stable.stability.endswith("is not known (the exact model is not searched on a pool this big)")
    assert protected(stable) == protected(solve(snapshot, SolverParams(time_limit_s=0.1)))
    check_hard_constraints(snapshot, stable)


# --------------------------------------------------------------------------------------------------
# Properties on random pools
# --------------------------------------------------------------------------------------------------


@TINY
@given(pools(min_size=1, max_cases=5, max_hosts=3, with_state=False))
def test_stable_mode_finds_the_fewest_blocking_pairs_and_keeps_protection(snapshot: PoolSnapshot) -> None:
    """Against enumeration of every assignment: the stable mode's blocking pairs are the fewest among
    the assignments with the best protection levels, and its levels equal the welfare mode's."""
    welfare, stable = solve(snapshot, WELFARE), solve(snapshot, STABLE)
    assert protected(stable) == protected(welfare)
    _, fewest = fewest_blocking_pairs(snapshot)
    assert stable.blocking_pairs == fewest == stable.blocking_pairs_bound
    assert stable.blocking_pairs <= welfare.blocking_pairs
    assert welfare.blocking_pairs == naive_blocking_pairs(snapshot, welfare.assignments)
    assert (stable.blocking_pairs == 0) == stable.stability.startswith("stable")


@TINY
@given(pools(min_size=1))
def test_stable_and_dynamic_modes_respect_every_hard_constraint(snapshot: PoolSnapshot) -> None:
    """With fixed, pending, declined and linked cases: every hard constraint holds, the levels equal
    the welfare mode's, and the stable mode's count is exactly what its model minimised."""
    welfare = solve(snapshot, WELFARE)
    for params in (STABLE, DYNAMIC):
        result = solve(snapshot, params)
        check_hard_constraints(snapshot, result)
        # the dynamic mode may hold back cases that no protection level asks to place
        held = [c for c in snapshot.cases if c.case_id in result.held_back]
        assert not any(c.urgency != "normal" or c.vulnerable or c.case_id in snapshot.pending for c in held)
        assert not set(result.held_back) & set(result.assignments)
        assert protected(result) == {**protected(welfare), "total": protected(welfare)["total"] - len(held)}
        assert not any(c.startswith("~future") for c in result.assignments)
        assert result.blocking_pairs == blocking_pairs(snapshot, result.assignments)
    stable = solve(snapshot, STABLE)
    phase = next((p for p in stable.phases if p.name == "stable:blocking_pairs"), None)
    if phase is not None and phase.status == "OPTIMAL":
        assert stable.blocking_pairs == stable.blocking_pairs_bound


# --------------------------------------------------------------------------------------------------
# Dynamic mode
# --------------------------------------------------------------------------------------------------


def accessible_pool() -> PoolSnapshot:
    """Nine earlier arrivals needed an accessible unit (placed, fixed, at a full host); now e, who needs
    none, arrives and ranks the last free accessible unit's place (p1) above p2."""
    earlier = [case(f"f{k}", needs_accessible=True, arrived_seq=k) for k in range(9)]
    full = host("x", place="p3", capacity=Capacity(people=9, beds=9, accessible_units=9))
    accessible = host("a", place="p1", capacity=Capacity(people=1, beds=1, accessible_units=1))
    plain = host("b", place="p2")
    e = case("e", preferred_places=("p1", "p2"), arrived_seq=9)
    return pool([*earlier, e], [full, accessible, plain], fixed={f.case_id: "x" for f in earlier})


def test_the_dynamic_plan_keeps_a_scarce_accessible_unit_for_the_arrival_that_needs_it() -> None:
    snapshot = accessible_pool()
    later = case("n", needs_accessible=True, arrived_seq=10)

    # plain re-solve (welfare), one arrival at a time: e takes the accessible unit, n then has none
    first = solve(snapshot, WELFARE)
    assert first.assignments["e"] == "a"
    then = dataclasses.replace(snapshot, cases=(*snapshot.cases, later), fixed={**snapshot.fixed, "e": "a"})
    assert "n" in solve(then, WELFARE).unplaced

    # dynamic: one more arrival is expected, drawn from the recent mix (mostly needing access)
    params = SolverParams(time_limit_s=10.0, mechanism="dynamic", expected_arrivals=1, scenarios=4)
    planned = solve(snapshot, params)
    assert planned.assignments["e"] == "b"
    assert planned.mechanism == "dynamic" and planned.future_placed is not None and planned.future_placed > 0
    assert protected(planned) == protected(first)
    then = dataclasses.replace(snapshot, cases=(*snapshot.cases, later), fixed={**snapshot.fixed, "e": "b"})
    assert solve(then, WELFARE).assignments["n"] == "a"


def clinic_pool(protection: dict[str, Any]) -> tuple[PoolSnapshot, Case]:
    """Nine earlier arrivals were urgent (or vulnerable) and needed dialysis (placed, fixed, at a full
    host); the one host left with dialysis (a, at p1) has one place. Now e arrives, who is neither
    and needs nothing, but ranks p1 first and has family there: e gains more at a than such an arrival
    would. Also returns the next such arrival."""
    def needs_dialysis(case_id: str, k: int) -> Case:
        return case(case_id, medical_needs=frozenset({"dialysis"}), preferred_places=("p3",), arrived_seq=k,
                    **protection)

    earlier = [needs_dialysis(f"f{k}", k) for k in range(9)]
    full = host("x", place="p3", capacity=Capacity(people=9, beds=9), medical_services=frozenset({"dialysis"}))
    clinic = host("a", place="p1", medical_services=frozenset({"dialysis"}))
    e = case("e", preferred_places=("p1", "p2"), tie_places=frozenset({"p1"}), arrived_seq=9)
    snapshot = pool([*earlier, e], [full, clinic, host("b", place="p2")], fixed={f.case_id: "x" for f in earlier})
    return snapshot, needs_dialysis("n", 10)


@pytest.mark.parametrize("protection", [{"urgency": "urgent"}, {"vulnerable": True}], ids=["urgent", "vulnerable"])
def test_the_dynamic_plan_keeps_room_for_an_expected_protected_arrival_though_welfare_would_not(
        protection: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot, arrival = clinic_pool(protection)
    params = SolverParams(time_limit_s=10.0, mechanism="dynamic", expected_arrivals=1, scenarios=4)

    planned = solve(snapshot, params)
    assert planned.assignments["e"] == "b" and planned.held_back == ()
    then = dataclasses.replace(snapshot, cases=(*snapshot.cases, arrival), fixed={**snapshot.fixed, "e": "b"})
    assert solve(then, WELFARE).assignments["n"] == "a"

    # weighed by welfare alone, e's gain at a beats the expected arrival's, and the arrival finds no room
    monkeypatch.setattr(solver, "PROTECTED_ARRIVAL_WEIGHT", 0)
    assert solve(snapshot, params).assignments["e"] == "a"
    then = dataclasses.replace(snapshot, cases=(*snapshot.cases, arrival), fixed={**snapshot.fixed, "e": "a"})
    assert "n" in solve(then, WELFARE).unplaced


def held_back_pool(**e_fields: Any) -> PoolSnapshot:
    """Nine earlier arrivals ranked p1 first (placed, fixed, at a full host); now e arrives, whose only
    host with room is the one place at p1, which e did not rank."""
    earlier = [case(f"f{k}", preferred_places=("p1",), arrived_seq=k) for k in range(9)]
    full = host("x", place="p3", capacity=Capacity(people=9, beds=9))
    e = case("e", preferred_places=("p2",), arrived_seq=9, **e_fields)
    return pool([*earlier, e], [full, host("a", place="p1")], fixed={f.case_id: "x" for f in earlier})


def test_the_dynamic_mode_holds_back_a_case_whose_place_expected_arrivals_gain_more_from() -> None:
    params = SolverParams(time_limit_s=10.0, mechanism="dynamic", expected_arrivals=1, scenarios=4)
    assert solve(held_back_pool(), WELFARE).assignments["e"] == "a"
    planned = solve(held_back_pool(), params)
    assert planned.held_back == ("e",) and "e" in planned.unplaced and not planned.new_proposals
    assert [(p.name, p.objective) for p in planned.phases if p.name == "dynamic:held_back"] == [
        ("dynamic:held_back", 1)]
    assert planned.to_dict()["held_back"] == ["e"]
    # protection's cases are never held back, nor a proposal under review
    for kept in (held_back_pool(urgency="urgent"), held_back_pool(vulnerable=True),
                 dataclasses.replace(held_back_pool(), pending={"e": "a"})):
        result = solve(kept, params)
        assert result.assignments["e"] == "a" and result.held_back == ()
    # with no arrivals expected, e is placed
    assert solve(held_back_pool(), dataclasses.replace(params, expected_arrivals=0)).assignments["e"] == "a"


def test_a_plan_too_big_for_its_budget_is_planned_again_with_fewer_scenarios(
        monkeypatch: pytest.MonkeyPatch) -> None:
    planned_scenarios: list[tuple[int, int]] = []

    def plan_at_most_two_scenarios(present: Present, future: Future, *args: Any, **kwargs: Any) -> Plan | None:
        scenarios = args[2]
        planned_scenarios.append((scenarios, int(future.scenario.max()) + 1))
        return None if scenarios > 2 else relaxed_plan(present, future, *args, **kwargs)

    monkeypatch.setattr(solver, "relaxed_plan", plan_at_most_two_scenarios)
    params = SolverParams(time_limit_s=10.0, mechanism="dynamic", expected_arrivals=1, scenarios=8)
    planned = solve(accessible_pool(), params)
    assert planned_scenarios == [(8, 8), (4, 4), (2, 2)]  # each try sees only its own scenarios' phantoms
    assert [(p.name, p.status) for p in planned.phases if p.name.startswith("dynamic:relaxed_plan")] == [
        ("dynamic:relaxed_plan:8_scenarios", "NOT_SOLVED"), ("dynamic:relaxed_plan:4_scenarios", "NOT_SOLVED"),
        ("dynamic:relaxed_plan:2_scenarios", "OPTIMAL")]
    assert "dynamic: the relaxed plan was solved with 2 of 8 scenarios" in planned.warnings
    assert planned.assignments["e"] == "b"  # two scenarios of the mix still keep the accessible unit

    monkeypatch.setattr(solver, "relaxed_plan", lambda *args, **kwargs: None)
    unplanned = solve(accessible_pool(), params)
    assert [p.name for p in unplanned.phases if p.name.startswith("dynamic:relaxed_plan")] == [
        f"dynamic:relaxed_plan:{n}_scenarios" for n in (8, 4, 2, 1)]
    assert "dynamic: the relaxed plan was not solved; placed as the welfare mode places" in unplanned.warnings
    assert unplanned.assignments == solve(accessible_pool(), WELFARE).assignments


def test_no_smaller_plan_is_prepared_once_the_wall_stop_has_passed() -> None:
    """Past the wall stop no plan is solved (future.relaxed_plan), so halving the scenarios again would
    only prepare each smaller plan's arrays: one try, then the welfare mode's placements."""
    params = SolverParams(time_limit_s=10.0, wall_time_limit_s=1e-9, mechanism="dynamic", expected_arrivals=1,
                          scenarios=8)
    late = solve(accessible_pool(), params)
    assert [(p.name, p.status) for p in late.phases if p.name.startswith("dynamic:relaxed_plan")] == [
        ("dynamic:relaxed_plan:8_scenarios", "NOT_SOLVED")]
    assert "dynamic: the relaxed plan was not solved; placed as the welfare mode places" in late.warnings


def test_a_plan_too_big_for_its_budget_is_not_handed_to_glop(monkeypatch: pytest.MonkeyPatch) -> None:
    planned_scenarios: list[int] = []

    def plan(present: Present, future: Future, *args: Any, **kwargs: Any) -> Plan | None:
        planned_scenarios.append(args[2])
        return relaxed_plan(present, future, *args, **kwargs)

    monkeypatch.setattr(solver, "relaxed_plan", plan)
    monkeypatch.setattr(solver, "PLAN_SIZE_PER_UNIT", 0)  # every plan is too big but the one-scenario plan
    params = SolverParams(time_limit_s=10.0, mechanism="dynamic", expected_arrivals=1, scenarios=8)
    planned = solve(accessible_pool(), params)
    assert planned_scenarios == [1]
    assert [(p.name, p.status) for p in planned.phases if p.name.startswith("dynamic:relaxed_plan")] == [
        ("dynamic:relaxed_plan:8_scenarios", "TOO_BIG_FOR_BUDGET"),
        ("dynamic:relaxed_plan:4_scenarios", "TOO_BIG_FOR_BUDGET"),
        ("dynamic:relaxed_plan:2_scenarios", "TOO_BIG_FOR_BUDGET"), ("dynamic:relaxed_plan:1_scenarios", "OPTIMAL")]
    assert "dynamic: the relaxed plan was solved with 1 of 8 scenarios" in planned.warnings

    monkeypatch.setattr(solver, "PLAN_SIZE_PER_UNIT", 10**9)
    planned_scenarios.clear()
    solve(accessible_pool(), params)
    assert planned_scenarios == [8]


def test_dynamic_mode_is_deterministic_and_recorded() -> None:
    snapshot = accessible_pool()
    params = SolverParams(time_limit_s=10.0, mechanism="dynamic", expected_arrivals=2, scenarios=3, seed=7)
    first, again = solve(snapshot, params), solve(snapshot, params)
    assert first.assignments == again.assignments and first.objective == again.objective
    assert first.inputs_digest == again.inputs_digest
    digests = {inputs_digest(snapshot, p) for p in (
        params, dataclasses.replace(params, expected_arrivals=3), dataclasses.replace(params, scenarios=4),
        dataclasses.replace(params, arrival_history=5), dataclasses.replace(params, mechanism="welfare"),
        dataclasses.replace(params, mechanism="stable"))}
    assert len(digests) == 6
    assert json.dumps(first.to_dict(), allow_nan=False)
    # no expected arrivals: the dynamic mode is the welfare mode
    none = solve(snapshot, dataclasses.replace(params, expected_arrivals=0))
    assert none.assignments == solve(snapshot, dataclasses.replace(params, mechanism="welfare")).assignments


def test_unknown_mechanism_and_bad_dynamic_parameters_are_rejected() -> None:
    with pytest.raises(ValueError):
        SolverParams(mechanism="fair")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SolverParams(expected_arrivals=-1)
    with pytest.raises(ValueError):
        SolverParams(scenarios=0)

