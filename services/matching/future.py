"""Dynamic mode: where the present cases should go, given the arrivals still expected.

Cases arrive over a period whose capacity is set, so a place taken now by a case that fits it only a
little is missing for a later case that fits it well. Annie MOORE's dynamic allocation (Ahani, Gölz,
Procaccia, Teytelboym, Trapp) plans for sampled future arrivals: a two-stage sample average in which
the present cases' placements are shared by every scenario, and each scenario's future cases compete,
with their own copy of the capacity, for what the present cases leave. The objective is the present
cases' welfare plus the mean over scenarios of the future cases' welfare. A present case that
protection does not require to be placed may be held back: the plan leaves it unplaced when the
expected arrivals gain more from its place than it does (it waits for a later run).

This module solves that plan's linear relaxation with GLOP and returns the present cases' share of
each candidate position. Why the relaxation and not the integer plan: CP-SAT left the integer plan
(integer counts of future cases per host) at gaps of 7 % and more within a re-solve's budget, and
bigger samples did worse; GLOP solves the relaxation exactly in a second. Why the plan's placements
and not its capacity prices (the dual values, as in Annie MOORE's "potentials"): the capacity rows of
one host are degenerate (people and accessible units bind together), so the dual solution may price
the dimension a present case does not use, and the case takes the place the plan kept.

Jobs and study places are in the plan as in the welfare phase: optional offers that come with a
placement, one job per person, within the jobs and study places each host has left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ortools.linear_solver import pywraplp

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Offers:
    """Jobs and study places that come with placements: for each offer, the position it comes with,
    its group (offers of one group exclude each other: one job per person), the slot it uses (an
    index into the plan's ``slots_left``: one host's jobs in one occupation, or its study places)
    and its gain."""

    position: IntArray
    group: IntArray
    slot: IntArray
    gain: IntArray

    @staticmethod
    def none() -> Offers:
        empty = np.zeros(0, dtype=np.int64)
        return Offers(empty, empty, empty, empty)


@dataclass(frozen=True, slots=True)
class Present:
    """The present cases' candidate positions: owning unit, host, demand row and gain of each, and
    their offers. Every unit is placed at exactly one of its positions (protection decided who is
    placed), but those in ``may_hold_back``, which the plan may leave unplaced for the arrivals
    still expected."""

    unit: IntArray
    host: IntArray
    demand: IntArray
    gain: IntArray
    offers: Offers
    may_hold_back: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Future:
    """Sampled future cases' candidate positions: the sampled case, its scenario, how many expected
    arrivals it stands for (placed at most that many times in all), host, demand row and gain, and
    their offers."""

    case: IntArray
    scenario: IntArray
    count: IntArray
    host: IntArray
    demand: IntArray
    gain: IntArray
    offers: Offers


@dataclass(frozen=True, slots=True)
class Plan:
    """The relaxed plan: each present position's share (0..1), the future cases placed per scenario,
    and its objective (with no future cases, a bound on the welfare phase's: see ``welfare_bound``)."""

    present: FloatArray
    future_placed: float
    objective: float


def relaxed_plan(present: Present, future: Future, remaining: IntArray, slots_left: IntArray, scenarios: int,
                 *, deterministic_s: float, wall_s: float | None) -> Plan | None:
    """The linear relaxation of the two-stage plan over ``remaining`` capacity (hosts x dimensions)
    and ``slots_left`` jobs and study places; None when GLOP does not prove an optimum within its
    deterministic budget or the wall-clock stop (the caller then solves as the welfare mode does).
    Past the stop (``wall_s`` <= 0) the LP is not built: as with CP-SAT (cpsat_model), building a plan
    of tens of thousands of variables only for GLOP to stop at once is time the run no longer has."""
    if wall_s is not None and wall_s <= 0:
        return None
    solver = pywraplp.Solver.CreateSolver("GLOP")
    if solver is None:  # pragma: no cover - GLOP ships with every OR-Tools wheel
        raise RuntimeError("OR-Tools GLOP is not available")
    # measured on a 32-scenario plan of 73,000 variables: the dual simplex took 3.8 s, the primal 11.5 s
    solver.SetSolverSpecificParametersAsString(
        f"use_dual_simplex: true max_deterministic_time: {max(deterministic_s, 1e-3)!r}")
    if wall_s is not None:
        solver.SetTimeLimit(max(int(wall_s * 1000), 10))
    x = [solver.NumVar(0.0, 1.0, "") for _ in range(len(present.host))]
    y = [solver.NumVar(0.0, float(n), "") for n in future.count.tolist()]
    _sum_rows(solver, x, present.unit, lambda unit: (0.0 if unit in present.may_hold_back else 1.0, 1.0))
    count_of = dict(zip(future.case.tolist(), future.count.tolist(), strict=True))
    _sum_rows(solver, y, future.case, lambda case: (0.0, float(count_of[case])))
    n_hosts, n_dimensions = remaining.shape
    present_at = _groups(present.host, n_hosts)
    future_at = _groups(future.host * scenarios + future.scenario, n_hosts * scenarios)
    for j in range(n_hosts):
        here = present_at[j]
        for s in range(scenarios):
            there = future_at[j * scenarios + s]
            for d in range(n_dimensions):
                use, future_use = present.demand[here, d], future.demand[there, d]
                if use.sum() + (future_use * future.count[there]).sum() <= remaining[j, d]:
                    continue  # cannot bind
                row = solver.Constraint(-solver.infinity(), float(remaining[j, d]))
                for variables, positions, amounts in ((x, here, use), (y, there, future_use)):
                    for p, a in zip(positions.tolist(), amounts.tolist(), strict=True):
                        if a:
                            row.SetCoefficient(variables[p], float(a))
    # offers: each within its position (a future position's up to its count), one per group, and
    # each scenario's within the slots left
    present_offers = [solver.NumVar(0.0, 1.0, "") for _ in range(len(present.offers.gain))]
    future_offers = [solver.NumVar(0.0, float(future.count[q]), "") for q in future.offers.position.tolist()]
    for variables, places, offers in ((present_offers, x, present.offers), (future_offers, y, future.offers)):
        for group in _groups(offers.group, int(offers.group.max(initial=-1)) + 1):
            if len(group):
                row = solver.Constraint(-solver.infinity(), 0.0)
                row.SetCoefficient(places[int(offers.position[group[0]])], -1.0)
                for o in group.tolist():
                    row.SetCoefficient(variables[o], 1.0)
    future_offer_scenario = future.scenario[future.offers.position]
    for slot, left in enumerate(slots_left.tolist()):
        here = np.flatnonzero(present.offers.slot == slot)
        for s in range(scenarios):
            there = np.flatnonzero((future.offers.slot == slot) & (future_offer_scenario == s))
            if len(here) + future.count[future.offers.position[there]].sum() <= left:
                continue  # cannot bind
            row = solver.Constraint(-solver.infinity(), float(left))
            for o in here.tolist():
                row.SetCoefficient(present_offers[o], 1.0)
            for o in there.tolist():
                row.SetCoefficient(future_offers[o], 1.0)
    objective = solver.Objective()
    for variables, gains, weight in ((x, present.gain, 1.0), (y, future.gain, 1.0 / scenarios),
                                     (present_offers, present.offers.gain, 1.0),
                                     (future_offers, future.offers.gain, 1.0 / scenarios)):
        for variable, g in zip(variables, gains.tolist(), strict=True):
            objective.SetCoefficient(variable, float(g) * weight)
    objective.SetMaximization()
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        return None
    return Plan(present=np.array([v.solution_value() for v in x], dtype=np.float64),
                future_placed=sum(v.solution_value() for v in y) / scenarios, objective=objective.Value())


def welfare_bound(present: Present, remaining: IntArray, slots_left: IntArray, *, deterministic_s: float,
                  wall_s: float | None) -> float | None:
    """The welfare phase's linear relaxation (the plan without future cases), solved by GLOP: a bound
    on the welfare of any placement of the present units; None when not solved within the budget."""
    empty = np.zeros(0, dtype=np.int64)
    no_future = Future(empty, empty, empty, empty, np.zeros((0, remaining.shape[1]), dtype=np.int64), empty,
                       Offers.none())
    plan = relaxed_plan(present, no_future, remaining, slots_left, 1, deterministic_s=deterministic_s, wall_s=wall_s)
    return None if plan is None else plan.objective


def _sum_rows(solver: pywraplp.Solver, variables: list[pywraplp.Variable], owner: IntArray,
              bounds: Callable[[int], tuple[float, float]]) -> None:
    """One row per owner: the sum of its variables within ``bounds(owner)``."""
    for key, group in enumerate(_groups(owner, int(owner.max(initial=-1)) + 1)):
        if len(group):
            row = solver.Constraint(*bounds(key))
            for p in group.tolist():
                row.SetCoefficient(variables[p], 1.0)


def _groups(keys: IntArray, n_keys: int) -> list[IntArray]:
    """For every key 0..n_keys-1, the indices holding it, in order."""
    order = np.argsort(keys, kind="stable")
    return np.split(order, np.searchsorted(keys[order], np.arange(1, n_keys)))
