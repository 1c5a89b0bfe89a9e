"""How good and how fast the matching engine is, on synthetic surge pools; prints one table.

    .venv/bin/python benchmarks/matching_benchmark.py [--skip-big] [--resolves 20] [--exact-instances 30]
        [--only quality,stability,optimality,dynamic,speed]

Not a test: the figures depend on the machine and on what else runs on it (docs/matching.md quotes a
run and says on what). Every pool comes from ``deploy/local/synthetic.py`` (documented distributions,
fixed seeds) through ``services/matching/pool.py`` (see ``benchmarks/matching_pools.py``).

* quality: the engine against (a) first-come-first-served as a manual desk places, (b) a greedy that
  takes the best-scoring (case, host) pair first; welfare (sum of pair scores), emergency+urgent and
  vulnerable cases placed, cases placed, share placed in one of their top-3 preferred places (of
  those who stated any), mean predicted prospects, blocking pairs; and the engine's stable mode;
* stability: the welfare and the stable mode side by side on pools whose hosts state language wishes
  (blocking pairs, the proven fewest, what protection and welfare look like);
* dynamic arrivals: the cases of a pool arrive in 10 batches, each placed and fixed before the next;
  the realised welfare (``realised_welfare``) of greedy, the plain re-solve and the dynamic mode, as a
  share of the engine's with every case known at once (hindsight), on six municipal and three labour
  pools, the engine's methods with two solver seeds each; and the dynamic mode in a later period of
  the same pool, whose arrival history also holds the previous period's cases (placed then);
* optimality: on small pools, the engine's protection levels and welfare against an independent
  formulation solved exactly by SciPy's HiGHS MILP (every compatible pair, no pruning);
* speed: a full solve of 2,000 x 200 and of 20,000 x 2,000 (unless --skip-big), re-solves of a live
  pool of 3,000 x 300 after one capacity update (median and p95, with the service's own settings), peak
  memory. How a burst of events is coalesced is measured in the running centre
  (``live_resolve_benchmark.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import numpy as np

from benchmarks.matching_pools import (
    first_come_first_served,
    previous_period,
    synthetic_pool,
    with_capacity,
    with_host_wishes,
    with_previous_period,
)
from services.matching.model import (
    PoolSnapshot,
    Scope,
    SolverParams,
    Weights,
    beneficiary_preference,
    compatible,
    host_preference,
    pair_score,
    prospects,
    prospects_parts,
    ties,
)
from services.matching.resolver import MatchingSettings
from services.matching.scores import PoolScores
from services.matching.solver import SolveResult, blocking_pairs, solve

FULL = SolverParams(time_limit_s=10.0, wall_time_limit_s=60.0, relative_gap=0.01)
#: the wall stop leaves room for what follows the search (explanations, blocking pairs: ~12 s at this size)
BIG = SolverParams(time_limit_s=20.0, wall_time_limit_s=45.0, relative_gap=0.01)
STABLE = dataclasses.replace(FULL, mechanism="stable")
#: dynamic arrivals: (program, cases, hosts, batches, pool seeds), one pool per seed, each run with two
#: solver seeds (they seed the sampled futures too): one pool and one seed move the dynamic mode's share
#: by up to 0.4 points, as much as the distance to its aim. Labour pools (employers with jobs) joined
#: once the hindsight solve's welfare phase ended within 1.6 % of its bound on them (12 % before the
#: exchanges counted jobs; docs/matching.md, "Labour pools"); their plans are bigger, so most of their
#: batches plan 8 of the 16 scenarios
DYNAMIC_POOLS = (("municipal", 400, 100, 10, (1, 2, 3, 4, 5, 6)), ("labour", 400, 130, 10, (1, 2, 3)))
DYNAMIC_SOLVER_SEEDS = (0, 1)
HINDSIGHT = SolverParams(time_limit_s=20.0, wall_time_limit_s=120.0, relative_gap=0.001)
BATCH = SolverParams(time_limit_s=2.0, wall_time_limit_s=30.0, relative_gap=0.005)
DYNAMIC = dataclasses.replace(BATCH, mechanism="dynamic")
PARTS = ("quality", "stability", "optimality", "dynamic", "speed")
Row = tuple[str, ...]


# --------------------------------------------------------------------------------------------------
# Baselines and measures
# --------------------------------------------------------------------------------------------------


def _demand(case: Any) -> tuple[int, int, int, int]:
    return (case.people, case.beds, int(case.needs_accessible), case.school_places)


def greedy_best_score(snapshot: PoolSnapshot, weights: Weights,
                      start: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every compatible pair by descending score (ties: case id, host id); take it if both are free
    enough: the case is unplaced and the host still has room in every dimension. ``start`` holds
    matches already made (they keep their host and use its capacity)."""
    cases = sorted(snapshot.cases, key=lambda c: c.case_id)
    hosts = sorted(snapshot.hosts, key=lambda h: h.host_id)
    scores = PoolScores(cases, hosts, snapshot.pool_id, snapshot.forbidden, weights)
    rows = scores.rows(list(range(len(cases))))
    score = np.where(rows.allowed, rows.score, -np.inf)
    order = np.lexsort((np.tile(np.arange(len(hosts)), len(cases)), np.repeat(np.arange(len(cases)), len(hosts)),
                        -score.ravel()))
    left = scores.capacity.copy()
    assignments: dict[str, str] = dict(start or {})
    by_id = {c.case_id: c for c in cases}
    for case_id, host_id in assignments.items():
        left[scores.host_index[host_id]] -= np.array(_demand(by_id[case_id]))
    for flat in order:
        i, j = divmod(int(flat), len(hosts))
        if not np.isfinite(score[i, j]):
            break
        if cases[i].case_id in assignments:
            continue
        demand = np.array(_demand(cases[i]))
        if (demand <= left[j]).all():
            left[j] -= demand
            assignments[cases[i].case_id] = hosts[j].host_id
    return assignments


def quality(snapshot: PoolSnapshot, assignments: Mapping[str, str], weights: Weights) -> dict[str, float]:
    """The measures of the quality table for one set of assignments."""
    cases = {c.case_id: c for c in snapshot.cases}
    hosts = {h.host_id: h for h in snapshot.hosts}
    pairs = [(cases[c], hosts[h]) for c, h in assignments.items()]
    stated = [(c, h) for c, h in pairs if c.preferred_places]
    return {
        "welfare": sum(pair_score(c, h, weights) for c, h in pairs),
        "protected": sum(c.urgency in ("emergency", "urgent") for c, _ in pairs),
        "vulnerable": sum(c.vulnerable for c, _ in pairs),
        "placed": len(pairs),
        "top3": sum(h.place in c.preferred_places[:3] for c, h in stated) / max(len(stated), 1),
        "prospects": sum(prospects(c, h) for c, h in pairs) / max(len(pairs), 1),
        "blocking": blocking_pairs(snapshot, assignments),
    }


# --------------------------------------------------------------------------------------------------
# The independent exact solver (SciPy / HiGHS)
# --------------------------------------------------------------------------------------------------


def exact_levels(snapshot: PoolSnapshot, weights: Weights) -> tuple[list[int], float] | None:
    """Protection levels and welfare of the lexicographic optimum, formulated from the model's
    definitions (not the solver's code) over every compatible pair, and solved exactly by HiGHS.
    For fresh pools (no fixed, pending or linked cases). None when SciPy is not installed."""
    try:
        from scipy.optimize import Bounds, LinearConstraint, milp
        from scipy.sparse import lil_matrix
    except ImportError:
        return None
    cases = sorted(snapshot.cases, key=lambda c: c.case_id)
    hosts = sorted(snapshot.hosts, key=lambda h: h.host_id)
    pairs = [(i, j) for i, c in enumerate(cases) for j, h in enumerate(hosts)
             if compatible(c, h) is None and (c.case_id, h.host_id) not in snapshot.forbidden]
    # variables: x per pair, then a job per (pair, occupation the host offers), a study place per pair
    jobs = [(p, o) for p, (i, j) in enumerate(pairs) for o in sorted(cases[i].occupations)
            if hosts[j].capacity.jobs.get(o, 0) > 0]
    study = [p for p, (i, j) in enumerate(pairs) if cases[i].wants_study and hosts[j].capacity.study_places > 0]
    nx, nj = len(pairs), len(jobs)
    n = nx + nj + len(study)
    if not pairs:
        return [0, 0, 0, 0, 0], 0.0
    rows: list[tuple[dict[int, float], float, float]] = []
    for i in range(len(cases)):
        rows.append(({p: 1.0 for p, (a, _) in enumerate(pairs) if a == i}, -np.inf, 1.0))
    for j, h in enumerate(hosts):
        cap = h.capacity
        for d, limit in enumerate((cap.people, cap.beds, cap.accessible_units, cap.school_places)):
            rows.append(({p: float(_demand(cases[a])[d]) for p, (a, b) in enumerate(pairs) if b == j}, -np.inf, limit))
        for o, limit in cap.jobs.items():
            rows.append(({nx + q: 1.0 for q, (p, oo) in enumerate(jobs) if oo == o and pairs[p][1] == j},
                         -np.inf, limit))
        rows.append(({nx + nj + q: 1.0 for q, p in enumerate(study) if pairs[p][1] == j}, -np.inf, cap.study_places))
    for p in range(nx):  # at most one job per placed case, a study place only where placed
        rows.append(({**{nx + q: 1.0 for q, (pp, _) in enumerate(jobs) if pp == p}, p: -1.0}, -np.inf, 0.0))
    for q, p in enumerate(study):
        rows.append(({nx + nj + q: 1.0, p: -1.0}, -np.inf, 0.0))

    seniority = {c.case_id: len(cases) - r for r, c in enumerate(sorted(cases, key=lambda c: (c.arrived_seq,
                                                                                               c.case_id)))}
    per_case = [
        [int(c.urgency == "emergency") for c in cases], [int(c.urgency == "urgent") for c in cases],
        [int(c.vulnerable) for c in cases], [1 for _ in cases], [seniority[c.case_id] for c in cases],
    ]
    level_objectives = [np.array([level[i] for i, _ in pairs] + [0.0] * (n - nx)) for level in per_case]
    welfare = np.zeros(n)
    for p, (i, j) in enumerate(pairs):
        c, h = cases[i], hosts[j]
        welfare[p] = (weights.beneficiary_preference * beneficiary_preference(c, h)
                      + weights.host_preference * host_preference(c, h)
                      + weights.prospects * prospects_parts(c, h).language + weights.ties * ties(c, h))
    for q, (p, _) in enumerate(jobs):
        i, j = pairs[p]
        welfare[nx + q] = weights.prospects * prospects_parts(cases[i], hosts[j]).work
    for q, p in enumerate(study):
        i, j = pairs[p]
        welfare[nx + nj + q] = weights.prospects * prospects_parts(cases[i], hosts[j]).study

    values: list[int] = []
    optimum = 0.0
    for objective in [*level_objectives, welfare]:
        matrix = lil_matrix((len(rows), n))
        low, high = [], []
        for r, (coefficients, lo, hi) in enumerate(rows):
            for v, a in coefficients.items():
                matrix[r, v] = a
            low.append(lo)
            high.append(hi)
        result = milp(-objective, constraints=LinearConstraint(matrix.tocsr(), low, high),
                      integrality=np.ones(n), bounds=Bounds(0, 1))
        if result.status != 0:
            raise RuntimeError(f"HiGHS: {result.message}")
        optimum = -result.fun
        if objective is not welfare:
            values.append(round(optimum))
            rows.append(({v: a for v, a in enumerate(objective) if a}, round(optimum), np.inf))
    return values, optimum


def engine_levels(snapshot: PoolSnapshot, result: SolveResult) -> list[int]:
    cases = {c.case_id: c for c in snapshot.cases}
    ranked = sorted(snapshot.cases, key=lambda c: (c.arrived_seq, c.case_id))
    seniority = {c.case_id: len(ranked) - r for r, c in enumerate(ranked)}
    placed = [cases[c] for c in result.assignments]
    return [sum(c.urgency == "emergency" for c in placed), sum(c.urgency == "urgent" for c in placed),
            sum(c.vulnerable for c in placed), len(placed), sum(seniority[c.case_id] for c in placed)]


# --------------------------------------------------------------------------------------------------
# Dynamic arrivals against hindsight
# --------------------------------------------------------------------------------------------------


def realised_welfare(snapshot: PoolSnapshot, assignments: Mapping[str, str], weights: Weights) -> float:
    """The objective of the dynamic comparison, from the host assignment alone, the same for every
    method: the sum over placed cases of the weighted beneficiary preference, host preference, ties
    and language prospects, plus the work (study) prospects share of every case that gets an open job
    in a member's occupation (a study place) at its host. Jobs and study places at a host go to its
    cases in arrival order, as they would when people arrive (Annie MOORE's objective is employment;
    this is its analogue with the engine's whole welfare)."""
    cases = {c.case_id: c for c in snapshot.cases}
    hosts = {h.host_id: h for h in snapshot.hosts}
    jobs_left = {h.host_id: dict(h.capacity.jobs) for h in snapshot.hosts}
    study_left = {h.host_id: h.capacity.study_places for h in snapshot.hosts}
    total = 0.0
    for case_id in sorted(assignments, key=lambda c: (cases[c].arrived_seq, c)):
        c, h = cases[case_id], hosts[assignments[case_id]]
        parts = prospects_parts(c, h)
        total += (weights.beneficiary_preference * beneficiary_preference(c, h)
                  + weights.host_preference * host_preference(c, h) + weights.ties * ties(c, h)
                  + weights.prospects * parts.language)
        job = next((o for o in sorted(c.occupations) if jobs_left[h.host_id].get(o, 0) > 0), None)
        if job is not None:
            jobs_left[h.host_id][job] -= 1
            total += weights.prospects * parts.work
        if c.wants_study and study_left[h.host_id] > 0:
            study_left[h.host_id] -= 1
            total += weights.prospects * parts.study
    return total


def arrive_in_batches(pool: PoolSnapshot, batches: int,
                      place: Callable[[PoolSnapshot, dict[str, str], int], dict[str, str]]) -> dict[str, str]:
    """The cases of ``pool`` arrive in ``batches`` equal batches in arrival order; after each, ``place``
    (the pool so far, with every earlier placement fixed, and the number of cases still to come)
    returns the assignments, which are fixed before the next batch arrives. Cases left unplaced wait
    and may be placed with a later batch."""
    cases = sorted(pool.cases, key=lambda c: (c.arrived_seq, c.case_id))
    placed: dict[str, str] = {}
    for b in range(batches):
        arrived = cases[: len(cases) * (b + 1) // batches]
        snapshot = dataclasses.replace(pool, cases=tuple(arrived), fixed=dict(placed))
        placed = dict(place(snapshot, placed, len(cases) - len(arrived)))
    return placed


def each_batch(place: Callable[[PoolSnapshot, int, int], dict[str, str]],
               solver_seed: int) -> Callable[[PoolSnapshot, dict[str, str], int], dict[str, str]]:
    """``place`` (the pool so far, the number of cases still to come, a solver seed) as
    ``arrive_in_batches`` calls it."""
    return lambda snapshot, _, left: place(snapshot, left, solver_seed)


def dynamic_comparison(program: str, n_cases: int, n_hosts: int, batches: int, seed: int,
                       hindsight_params: SolverParams, params: SolverParams, dynamic: SolverParams,
                       solver_seeds: tuple[int, ...], weights: Weights) -> tuple[list[Row], dict[str, float], str]:
    """Hindsight (every case known at once), then greedy, and the plain re-solve and the dynamic mode with
    each solver seed, with the cases arriving one batch at a time: realised welfare, its share of
    hindsight, cases placed. Also returns each method's share of hindsight."""
    pool = synthetic_pool(n_cases, n_hosts, seed=seed, program=program)
    began = time.perf_counter()
    hindsight = solve(pool, hindsight_params)
    hindsight_s = time.perf_counter() - began
    best = realised_welfare(pool, hindsight.assignments, weights)
    planned: list[int] = []  # the scenarios of the plan of every dynamic batch with arrivals to come

    def plain(snapshot: PoolSnapshot, left: int, solver_seed: int) -> dict[str, str]:
        return solve(snapshot, dataclasses.replace(params, seed=solver_seed)).assignments

    def plan_ahead(snapshot: PoolSnapshot, left: int, solver_seed: int) -> dict[str, str]:
        result = solve(snapshot, dataclasses.replace(dynamic, expected_arrivals=left, seed=solver_seed))
        if left:
            planned.append(planned_scenarios(result))
        return result.assignments

    previous = previous_period(n_cases, seed, program)
    earlier = {c.case_id for c in previous}

    def in_a_later_period(snapshot: PoolSnapshot, left: int, solver_seed: int) -> dict[str, str]:
        assignments = plan_ahead(with_previous_period(snapshot, previous), left, solver_seed)
        return {case_id: host_id for case_id, host_id in assignments.items() if case_id not in earlier}

    methods: dict[str, Callable[[PoolSnapshot, dict[str, str], int], dict[str, str]]] = {
        "greedy best score, each batch": lambda s, placed, _: greedy_best_score(s, weights, placed)}
    for label, strategy in (("plain re-solve (welfare mode)", plain),
                            (f"dynamic mode ({dynamic.scenarios} scenarios)", plan_ahead),
                            ("dynamic mode, a later period", in_a_later_period)):
        for solver_seed in solver_seeds:
            methods[f"{label}, each batch, solver seed {solver_seed}"] = each_batch(strategy, solver_seed)
    rows: list[Row] = [("method", "realised welfare", "share of hindsight", "placed", "emergency+urgent placed",
                        "vulnerable placed", "jobs taken", "seconds")]
    rows.append(("hindsight: all cases known at once (engine)", f"{best:.1f}", "100.0 %",
                 str(len(hindsight.assignments)), str(urgent_placed(pool, hindsight.assignments)),
                 str(vulnerable_placed(pool, hindsight.assignments)),
                 str(jobs_taken(pool, hindsight.assignments)), f"{hindsight_s:.1f}"))
    shares: dict[str, float] = {}
    for name, place in methods.items():
        began = time.perf_counter()
        assignments = arrive_in_batches(pool, batches, place)
        seconds = time.perf_counter() - began
        value = realised_welfare(pool, assignments, weights)
        shares[name] = 100 * value / best
        rows.append((name, f"{value:.1f}", f"{shares[name]:.1f} %", str(len(assignments)),
                     str(urgent_placed(pool, assignments)), str(vulnerable_placed(pool, assignments)),
                     str(jobs_taken(pool, assignments)), f"{seconds:.1f}"))
    note = (f"hindsight run: {hindsight.status}, gap {100 * hindsight.gap:.2f} % on its own welfare objective; "
            "dynamic batches with arrivals to come, by the scenarios their plan was solved with: "
            + ", ".join(f"{n}: {planned.count(n)}" for n in sorted(set(planned), reverse=True)))
    return rows, shares, note


def planned_scenarios(result: SolveResult) -> int:
    """How many scenarios a dynamic run's relaxed plan was solved with (0: none, placed as the welfare
    mode places)."""
    solved = [p.name for p in result.phases if p.name.startswith("dynamic:relaxed_plan:") and p.status == "OPTIMAL"]
    return int(solved[-1].split(":")[-1].removesuffix("_scenarios")) if solved else 0


def share_summary(shares: Mapping[int, Mapping[str, float]]) -> list[Row]:
    """Each method's share of hindsight on every seed's pool, the mean, and the lowest; then each
    method over its solver seeds together."""
    seeds = sorted(shares)
    rows: list[Row] = [("method", *(f"pool {seed}" for seed in seeds), "mean", "lowest")]
    methods: dict[str, list[float]] = {}
    for name in shares[seeds[0]]:
        values = [shares[seed][name] for seed in seeds]
        methods.setdefault(name.split(", solver seed")[0], []).extend(values)
        rows.append((name, *(f"{v:.1f} %" for v in values), f"{statistics.fmean(values):.1f} %",
                     f"{min(values):.1f} %"))
    for name, values in methods.items():
        if len(values) > len(seeds):
            rows.append((f"{name}, every solver seed", *("" for _ in seeds), f"{statistics.fmean(values):.1f} %",
                         f"{min(values):.1f} %"))
    return rows


def urgent_placed(snapshot: PoolSnapshot, assignments: Mapping[str, str]) -> int:
    return sum(c.urgency in ("emergency", "urgent") for c in snapshot.cases if c.case_id in assignments)


def vulnerable_placed(snapshot: PoolSnapshot, assignments: Mapping[str, str]) -> int:
    return sum(c.vulnerable for c in snapshot.cases if c.case_id in assignments)


def jobs_taken(snapshot: PoolSnapshot, assignments: Mapping[str, str]) -> int:
    """Cases that get a job at their host, jobs going to the host's cases in arrival order."""
    cases = {c.case_id: c for c in snapshot.cases}
    jobs_left = {h.host_id: dict(h.capacity.jobs) for h in snapshot.hosts}
    taken = 0
    for case_id in sorted(assignments, key=lambda c: (cases[c].arrived_seq, c)):
        left = jobs_left[assignments[case_id]]
        job = next((o for o in sorted(cases[case_id].occupations) if left.get(o, 0) > 0), None)
        if job is not None:
            left[job] -= 1
            taken += 1
    return taken


# --------------------------------------------------------------------------------------------------
# Speed
# --------------------------------------------------------------------------------------------------


def timed(work: Callable[[], SolveResult]) -> tuple[float, SolveResult]:
    began = time.perf_counter()
    result = work()
    return time.perf_counter() - began, result


def live(n_cases: int, n_hosts: int, seed: int = 1) -> PoolSnapshot:
    """A pool mid-surge, made by the engine itself: the first 85 % of the cases were solved (60 % of
    the placed approved, the rest pending), the last 15 % arrived since, and a catch-up solve ran."""
    snapshot = synthetic_pool(n_cases, n_hosts, seed)
    early = dataclasses.replace(snapshot, cases=snapshot.cases[: int(0.85 * n_cases)])
    first = solve(early, FULL)
    rng = random.Random(seed + 6)
    fixed: dict[str, str] = {}
    pending: dict[str, str] = {}
    for case_id, host_id in first.assignments.items():
        (fixed if rng.random() < 0.6 else pending)[case_id] = host_id
    state = dataclasses.replace(snapshot, fixed=fixed, pending=pending)
    caught_up = solve(state, FULL)
    return dataclasses.replace(state, pending={c: h for c, h in caught_up.assignments.items() if c not in fixed})


def resolves(snapshot: PoolSnapshot, params: SolverParams, count: int, seed: int = 3) -> tuple[list[float],
                                                                                               list[SolveResult]]:
    """Re-solve after ``count`` successive capacity updates of one random host each (+-1..3 people and
    beds); each re-solve's proposals become the next one's pending state, as in the service."""
    rng = random.Random(seed)
    times, results = [], []
    for _ in range(count):
        host = rng.choice(snapshot.hosts)
        people = max(0, host.capacity.people + rng.choice([-3, -2, -1, 1, 2, 3]))
        changed = with_capacity(snapshot, host.host_id, people=people, beds=people)
        seconds, result = timed(lambda s=changed: solve(s, params))  # type: ignore[misc]
        times.append(seconds)
        results.append(result)
        snapshot = dataclasses.replace(changed, pending={c: h for c, h in result.assignments.items()
                                                         if c not in changed.fixed})
    return times, results


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(np.ceil(0.95 * len(ordered))) - 1)]


# --------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def stability_rows(sizes: list[tuple[int, int]]) -> list[Row]:
    """Welfare and stable mode side by side on pools whose hosts state language wishes."""
    rows: list[Row] = [("pool (host language wishes)", "mode", "blocking pairs", "proven fewest >=", "placed",
                        "emergency+urgent", "vulnerable", "welfare", "seconds", "stability")]
    for n_cases, n_hosts in sizes:
        pool = with_host_wishes(synthetic_pool(n_cases, n_hosts, seed=1))
        for params in (FULL, STABLE):
            seconds, result = timed(lambda s=pool, p=params: solve(s, p))  # type: ignore[misc]
            protected = result.protected_placed
            rows.append((f"{n_cases:,} x {n_hosts:,}", params.mechanism, str(result.blocking_pairs),
                         "" if result.blocking_pairs_bound is None else str(result.blocking_pairs_bound),
                         str(len(result.assignments)), str(protected["emergency"] + protected["urgent"]),
                         str(protected["vulnerable"]), f"{result.objective:.1f}", f"{seconds:.1f}",
                         result.stability))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-big", action="store_true", help="skip the 20,000 x 2,000 full solve")
    parser.add_argument("--resolves", type=int, default=20, help="capacity updates re-solved on the live pool")
    parser.add_argument("--exact-instances", type=int, default=30, help="small pools checked against HiGHS")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    weights = Weights()
    service = MatchingSettings().solver_params()

    if "dynamic" in parts:
        for program, n_cases, n_hosts, batches, seeds in DYNAMIC_POOLS:
            shares: dict[int, dict[str, float]] = {}
            for seed in seeds:
                print(f"dynamic arrivals: {program} pool, {n_cases} cases x {n_hosts} hosts, seed {seed}, "
                      f"{batches} batches in arrival order; hindsight = the engine with every case known at once "
                      f"({HINDSIGHT.time_limit_s:g} det. units); batches {BATCH.time_limit_s:g} det. units each; "
                      f"dynamic: {DYNAMIC.scenarios} scenarios, expected arrivals = cases still to come; a later "
                      f"period: the pool's previous {n_cases} cases (the generator with another seed) placed "
                      "and in the arrival history", flush=True)
                dynamic_rows, shares[seed], note = dynamic_comparison(program, n_cases, n_hosts, batches, seed,
                                                                      HINDSIGHT, BATCH, DYNAMIC,
                                                                      DYNAMIC_SOLVER_SEEDS, weights)
                print(table(dynamic_rows), f"\n{note}\n", flush=True)
            print(f"dynamic arrivals: share of hindsight on each {program} pool", flush=True)
            print(table(share_summary(shares)), "\n", flush=True)

    if "stability" in parts:
        print("stability: welfare and stable mode on municipal pools whose hosts wish for their first language, "
              "seed 1", flush=True)
        print(table(stability_rows([(60, 6), (300, 30), (2000, 200)])), "\n", flush=True)

    if parts & {"quality", "speed"}:
        quality_and_speed(args, parts, weights, service)


def quality_and_speed(args: argparse.Namespace, parts: set[str], weights: Weights, service: SolverParams) -> None:
    """The quality table (with the stable mode's row), the optimality check and the speed table."""
    print("quality: municipal pool, 2,000 cases x 200 hosts, seed 1", flush=True)
    pool = synthetic_pool(2000, 200, seed=1)
    seconds, engine = timed(lambda: solve(pool, FULL))
    tracemalloc.start()  # a second, identical solve: tracing slows Python down, so it is not timed
    solve(pool, FULL)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    stable = solve(pool, STABLE)
    methods = {"first come, first served (desk)": first_come_first_served(pool),
               "greedy best score": greedy_best_score(pool, weights),
               "engine (protection first, then welfare)": engine.assignments,
               "engine, stable mode (protection, fewest blocking pairs, welfare)": stable.assignments}
    rows: list[Row] = [("method", "welfare", "emergency+urgent placed", "vulnerable placed", "placed",
                        "top-3 place", "mean prospects", "blocking pairs")]
    for name, assignments in methods.items():
        q = quality(pool, assignments, weights)
        rows.append((name, f"{q['welfare']:.1f}", str(int(q["protected"])), str(int(q["vulnerable"])),
                     str(int(q["placed"])), f"{100 * q['top3']:.1f} %", f"{q['prospects']:.3f}",
                     str(int(q["blocking"]))))
    print(table(rows), "\n", flush=True)

    if "optimality" in parts:
        print(f"optimality: {args.exact_instances} small pools (8-18 cases, 2-4 hosts) against SciPy HiGHS",
              flush=True)
    agree_levels = agree_welfare = checked = 0
    worst = 0.0
    for seed in range(args.exact_instances if "optimality" in parts else 0):
        rng = random.Random(seed)
        small = synthetic_pool(rng.randint(8, 18), rng.randint(2, 4), seed=100 + seed)
        exact = exact_levels(small, weights)
        if exact is None:
            print("SciPy is not installed: skipped")
            break
        result = solve(small, SolverParams(time_limit_s=10.0))
        levels, optimum = exact
        checked += 1
        agree_levels += engine_levels(small, result) == levels
        agree_welfare += abs(result.objective - optimum) <= 0.01
        worst = max(worst, optimum - result.objective)
    if checked:
        print(table([("instances", "same protection levels", "same welfare (within 0.01)",
                      "largest welfare shortfall"),
                     (str(checked), str(agree_levels), str(agree_welfare), f"{worst:.4f}")]), "\n", flush=True)

    if "speed" not in parts:
        return
    print("speed (2 shared cores; wall-clock seconds)", flush=True)
    speed: list[Row] = [("what", "seconds", "status", "gap", "placed", "notes")]
    speed.append(("full solve 2,000 x 200", f"{seconds:.1f}", engine.status, f"{100 * engine.gap:.2f} %",
                  str(len(engine.assignments)), f"{FULL.time_limit_s:g} det. units; tracemalloc peak "
                  f"{traced_peak / 2**20:.0f} MiB (Python objects)"))
    if not args.skip_big:
        big = synthetic_pool(20000, 2000, seed=1)
        big_seconds, big_result = timed(lambda: solve(big, BIG))
        speed.append(("full solve 20,000 x 2,000", f"{big_seconds:.1f}", big_result.status,
                      f"{100 * big_result.gap:.2f} %", str(len(big_result.assignments)),
                      f"{BIG.time_limit_s:g} det. units, wall stop {BIG.wall_time_limit_s:g} s; FCFS places "
                      f"{len(first_come_first_served(big))}"))
    state = live(3000, 300)
    every = MatchingSettings().matching_full_solve_every
    scopes: tuple[tuple[Scope, str], ...] = (
        ("changes", f"around the changes (the service's re-solve; {every - 1} runs in {every})"),
        ("pool", f"of the whole pool (the service's 1 run in {every})"))
    for scope, what in scopes:
        times, results = resolves(state, dataclasses.replace(service, scope=scope), args.resolves)
        moved = [len(r.withdrawn) for r in results]
        speed.append((f"re-solve {what} after one capacity update, live 3,000 x 300 ({len(state.fixed)} fixed, "
                      f"{len(state.pending)} pending), n={len(times)}",
                      f"median {statistics.median(times):.2f}, p95 {p95(times):.2f}",
                      "/".join(sorted({r.status for r in results})),
                      f"median {100 * statistics.median([r.gap for r in results]):.2f} %",
                      str(len(results[-1].assignments)),
                      f"service settings ({service.time_limit_s:g} det. units, wall stop "
                      f"{service.wall_time_limit_s:g} s); withdrawals per re-solve median "
                      f"{statistics.median(moved):g}"))
    speed.append(("peak memory (whole process)", "", "", "", "",
                  f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"))
    print(table(speed), flush=True)


if __name__ == "__main__":
    main()
