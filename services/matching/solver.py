"""The matching solver: one CP-SAT model per pool, protection first, then welfare.

How a run works
---------------
1. **Candidates.** Cases and hosts are sorted by id (so the tuple order of the snapshot never
   matters). For every case, the compatible, non-forbidden hosts that still have room after the
   fixed matches are scored (vectorised twin of ``model.py``'s scores, :class:`PoolScores`) and only
   the ``top_k`` best by potential welfare are kept, plus the ``top_k / 3`` other compatible hosts
   with the most room left, plus the case's pending host. *Pruning note:* this keeps the model
   ~1.33 K x cases variables instead of cases x hosts (K=30: 40 instead of 2,000 per case on a
   pool of 2,000 hosts), at a price: a case whose candidates are all taken by others stays
   unplaced even if a pruned host had room. Pruning by score alone concentrates every case on the
   same popular hosts: measured on 2,000 cases x 200 hosts, K=10 by score alone placed 858 cases,
   K=10 plus 3 roomiest hosts 1,609, K=30 1,649-1,650. Raise ``top_k`` for very scarce pools.
   Linked cases form one *unit* that takes one host together (candidates: hosts compatible with
   every member); when a member is already fixed, the others can only join that host. The link is
   symmetric whichever side names it; ids of cases not in the pool are ignored.
2. **Model.** One boolean ``x[unit, host]`` per candidate; at most one host per unit; for every
   host and every capacity dimension (people, beds, accessible units, school places, study places,
   open jobs per occupation) the new placements plus the fixed ones stay within capacity (fixed
   usage is subtracted first). Jobs and study places are optional offers: ``job[case, host, o]``
   and ``study[case, host]`` booleans can only be true where the case is placed, and earn the
   prospects share they stand for.
3. **Protection, lexicographic.** Levels, in this order: number of emergency cases placed, urgent
   cases placed, vulnerable cases placed, all cases placed, then the arrival seniority of the
   placed cases (sum of ``n - rank`` in arrival order; cases holding a pending proposal rank
   first, so the tie-break never withdraws a proposal under review). Each level is maximised and
   its optimum added as a constraint (``level >= optimum``) before the next, so no number of
   urgent placements can ever buy out one emergency placement, and so on - lexicographic by
   construction. A level whose bound (every unit with a candidate host placed) is already reached
   by the current solution is fixed without a solve; levels are solved with no gap, and if the
   budget ends before one is proven, the best value found is fixed (the run reports FEASIBLE).
   (One weighted objective ``sum W_k * level_k``
   with ``W_k > sum_{j>k} W_j * bound_j`` is equivalent, but its huge coefficients made CP-SAT's LP
   far slower; separate solves with hints were measured to be faster.) A greedy start in the same
   order is the first hint. So *who* gets a place is decided by protection and arrival order only,
   never by fit or prospects.
4. **Welfare.** The set of units placed by the protection phase is fixed (each placed unit gets
   exactly one host, the others none) and the sum of integer-scaled pair scores (beneficiary
   preference, host preference, prospects, ties; ``SCORE_SCALE`` = 1000 per score unit) minus
   ``disruption_cost`` for every pending proposal that is moved or dropped is maximised. That
   decides *where* people go. Fixing the set implies every protection level and gives CP-SAT a
   tight assignment relaxation; the price is that welfare cannot swap two equally-ranked cases.

Budget: ``time_limit_s`` deterministic units in all; the protection levels share at most half of
it (each level an equal share of what is left), the welfare phase gets the rest.

Determinism: a fixed seed and a deterministic time budget (``max_deterministic_time``; with
``workers`` > 1 the interleaved search) make the same snapshot and parameters give the same
proposals on every machine running the same OR-Tools version (recorded as ``solver_version``).

Approved matches that exceed a host's capacity (capacity was lowered after approval) are kept;
the host simply has no room left in that dimension, and the result carries a warning.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from ortools.sat.python import cp_model

from services.matching.explanation import Alternative, AlternativeReason, Explanation
from services.matching.model import (
    HOST_TYPES,
    LANGUAGE_SHARE,
    PLACE_SHARE,
    STUDY_SHARE,
    SUPPORTED_LANGUAGE_FIT,
    WORK_SHARE,
    Case,
    Host,
    PoolSnapshot,
    SolverParams,
    Weights,
    beneficiary_preference,
    compatible,
    host_preference,
    inputs_digest,
    prospects_denominator,
    prospects_parts,
    ties,
)

#: Scores are floats in configuration and integers in CP-SAT: 1 score unit = SCORE_SCALE.
SCORE_SCALE: Final = 1000
#: Share of the deterministic budget the protection phases may use; welfare gets the rest.
PROTECTION_BUDGET_SHARE: Final = 0.5
#: Besides its top-K hosts by score, a case keeps top-K / ROOM_SHARE compatible hosts with the most
#: room left (people), so popular hosts cannot fill every case's whole candidate list.
ROOM_SHARE: Final = 3
#: Cases scored at once (rows x hosts matrices; bounds memory on big pools).
CHUNK: Final = 256
#: Capacity dimensions a household always uses (optional offers - jobs, study - are separate).
DEMAND_DIMENSIONS: Final = ("people", "beds", "accessible_units", "school_places")
PROTECTION_RULE: Final = (
    "protection first: placed emergency cases, then urgent, then vulnerable, then all cases, then "
    "earlier arrivals are maximised in this order before any welfare criterion is considered"
)
_SOLVER_VERSION: Final = f"ortools {importlib.metadata.version('ortools')}"

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


# --------------------------------------------------------------------------------------------------
# Vectorised scores
# --------------------------------------------------------------------------------------------------


def _demand(case: Case) -> tuple[int, int, int, int]:
    return (case.people, case.beds, 1 if case.needs_accessible else 0, case.school_places)


def _host_capacity(host: Host) -> tuple[int, int, int, int]:
    cap = host.capacity
    return (cap.people, cap.beds, cap.accessible_units, cap.school_places)


@dataclass(frozen=True, slots=True)
class ScoreRows:
    """Scores of some cases (rows) against every host of the pool (columns)."""

    allowed: BoolArray  # compatible and not forbidden
    beneficiary_preference: FloatArray
    host_preference: FloatArray
    ties: FloatArray
    language: FloatArray  # normalised prospects share from language
    work_open: BoolArray  # host offers a job in a member's occupation
    study_open: BoolArray  # case wants study and host offers study places
    work_share: FloatArray  # per case (column vector): prospects share of a job
    study_share: FloatArray  # per case (column vector): prospects share of a study place
    score: FloatArray  # weighted welfare, assuming the offered job / study place is taken


class PoolScores:
    """Vectorised twin of ``model.compatible`` and the ``model`` scores for one pool.

    Why: a pool of 20,000 cases x 2,000 hosts has 40 million pairs, far too many for per-pair Python
    calls. Rows are computed with the same floating point operations in the same order as the
    scalar functions, so the results are identical (a property test checks this).
    """

    def __init__(self, cases: Sequence[Case], hosts: Sequence[Host], pool_id: str,
                 forbidden: frozenset[tuple[str, str]], weights: Weights) -> None:
        self.cases = cases
        self.hosts = hosts
        self.pool_id = pool_id
        self.weights = weights
        n_hosts = len(hosts)
        self.host_index = {h.host_id: j for j, h in enumerate(hosts)}
        case_index = {c.case_id: i for i, c in enumerate(cases)}

        languages = sorted(set().union(*(c.languages for c in cases),
                                       *(h.languages | h.preferred_languages for h in hosts)))
        self._language_of = {x: k for k, x in enumerate(languages)}
        needs = sorted(set().union(*(c.medical_needs for c in cases)))
        self._need_of = {x: k for k, x in enumerate(needs)}
        occupations = sorted(set().union(*(c.occupations for c in cases)))
        self._occupation_of = {x: k for k, x in enumerate(occupations)}
        places = sorted({h.place for h in hosts})
        self._place_of = {x: k for k, x in enumerate(places)}
        self._type_of: dict[str, int] = {x: k for k, x in enumerate(HOST_TYPES)}

        self.capacity: IntArray = np.array([_host_capacity(h) for h in hosts], dtype=np.int64).reshape(
            n_hosts, len(DEMAND_DIMENSIONS))
        big = np.iinfo(np.int64).max
        self._max_household = np.array(
            [big if h.max_household_size is None else h.max_household_size for h in hosts], dtype=np.int64)
        self._language_support = np.array([h.language_support for h in hosts], dtype=bool)
        self._host_in_pool = np.array([h.pool_id == pool_id for h in hosts], dtype=bool)
        self._host_place = np.array([self._place_of[h.place] for h in hosts], dtype=np.int64)
        self._host_type = np.array([self._type_of[h.host_type] for h in hosts], dtype=np.int64)
        self._host_languages = np.zeros((n_hosts, len(languages)), dtype=np.float32)
        self._host_preferred = np.zeros((n_hosts, len(languages)), dtype=np.float32)
        self._host_lacks = np.ones((n_hosts, len(needs)), dtype=np.float32)
        self._host_jobs_open = np.zeros((n_hosts, len(occupations)), dtype=np.float32)
        for j, h in enumerate(hosts):
            for x in h.languages:
                self._host_languages[j, self._language_of[x]] = 1.0
            for x in h.preferred_languages:
                self._host_preferred[j, self._language_of[x]] = 1.0
            for x in h.medical_services:
                if x in self._need_of:
                    self._host_lacks[j, self._need_of[x]] = 0.0
            for x, count in h.capacity.jobs.items():
                if count > 0 and x in self._occupation_of:
                    self._host_jobs_open[j, self._occupation_of[x]] = 1.0
        self._host_has_preference = np.array([bool(h.preferred_languages) for h in hosts], dtype=bool)
        self._host_study_open = np.array([h.capacity.study_places > 0 for h in hosts], dtype=bool)

        blocked: dict[int, list[int]] = defaultdict(list)
        for j, h in enumerate(hosts):
            for case_id in h.excluded_case_ids:
                if case_id in case_index:
                    blocked[case_index[case_id]].append(j)
        for case_id, host_id in forbidden:
            if case_id in case_index and host_id in self.host_index:
                blocked[case_index[case_id]].append(self.host_index[host_id])
        self._blocked = dict(blocked)

    def rows(self, case_rows: Sequence[int]) -> ScoreRows:
        """Compatibility and scores of the given cases (indices into ``cases``) against all hosts."""
        cs = [self.cases[i] for i in case_rows]
        n_cases = len(cs)
        demand = np.array([_demand(c) for c in cs], dtype=np.int64).reshape(n_cases, 4)
        people, beds, accessible, school = (demand[:, k:k + 1] for k in range(4))
        needs_support = np.array([c.needs_language_support for c in cs], dtype=bool)[:, None]
        in_pool = np.array([c.pool_id == self.pool_id for c in cs], dtype=bool)[:, None]
        cap = self.capacity
        allowed = (in_pool & self._host_in_pool[None, :]
                   & (people <= self._max_household[None, :]) & (people <= cap[None, :, 0])
                   & (beds <= cap[None, :, 1]) & ((accessible == 0) | (cap[None, :, 2] >= 1))
                   & (school <= cap[None, :, 3]) & (~needs_support | self._language_support[None, :]))

        case_languages = np.zeros((n_cases, len(self._language_of)), dtype=np.float32)
        case_needs = np.zeros((n_cases, len(self._need_of)), dtype=np.float32)
        case_occupations = np.zeros((n_cases, len(self._occupation_of)), dtype=np.float32)
        place_score = np.zeros((n_cases, len(self._place_of)), dtype=np.float64)
        type_score = np.zeros((n_cases, len(HOST_TYPES)), dtype=np.float64)
        tie_place = np.zeros((n_cases, len(self._place_of)), dtype=np.float64)
        for r, c in enumerate(cs):
            for x in c.languages:
                case_languages[r, self._language_of[x]] = 1.0
            for x in c.medical_needs:
                case_needs[r, self._need_of[x]] = 1.0
            for x in c.occupations:
                case_occupations[r, self._occupation_of[x]] = 1.0
            _fill_rank(place_score[r], c.preferred_places, self._place_of)
            _fill_rank(type_score[r], c.preferred_host_types, self._type_of)
            for x in c.tie_places:
                if x in self._place_of:
                    tie_place[r, self._place_of[x]] = 1.0
        for r, i in enumerate(case_rows):
            for j in self._blocked.get(i, ()):
                allowed[r, j] = False
        if self._need_of:
            allowed &= (case_needs @ self._host_lacks.T) == 0

        bp = PLACE_SHARE * place_score[:, self._host_place] + (1.0 - PLACE_SHARE) * type_score[:, self._host_type]
        matches_wish = (case_languages @ self._host_preferred.T) > 0
        hp = np.where(self._host_has_preference[None, :], np.where(matches_wish, 1.0, 0.0), 1.0)
        tie = tie_place[:, self._host_place]
        shared = (case_languages @ self._host_languages.T) > 0
        language_fit = np.where(shared, 1.0, np.where(self._language_support[None, :], SUPPORTED_LANGUAGE_FIT, 0.0))
        denominator = np.array([prospects_denominator(c) for c in cs], dtype=np.float64)[:, None]
        work_open = (case_occupations @ self._host_jobs_open.T) > 0
        wants_study = np.array([c.wants_study for c in cs], dtype=bool)[:, None]
        study_open = wants_study & self._host_study_open[None, :]
        language = LANGUAGE_SHARE * language_fit / denominator
        work = WORK_SHARE * work_open.astype(np.float64) / denominator
        study = STUDY_SHARE * study_open.astype(np.float64) / denominator
        w = self.weights
        score = (w.beneficiary_preference * bp + w.host_preference * hp
                 + w.prospects * (language + work + study) + w.ties * tie)
        return ScoreRows(
            allowed=allowed, beneficiary_preference=bp, host_preference=hp, ties=tie, language=language,
            work_open=work_open, study_open=study_open,
            work_share=WORK_SHARE * 1.0 / denominator, study_share=STUDY_SHARE * 1.0 / denominator,
            score=score,
        )

    def integer_rows(self, rows: ScoreRows) -> tuple[IntArray, IntArray, IntArray]:
        """Integer-scaled (base, job bonus per case, study bonus per case) welfare for CP-SAT."""
        w = self.weights
        base = np.rint(SCORE_SCALE * (w.beneficiary_preference * rows.beneficiary_preference
                                      + w.host_preference * rows.host_preference
                                      + w.prospects * rows.language + w.ties * rows.ties)).astype(np.int64)
        job = np.rint(SCORE_SCALE * w.prospects * rows.work_share[:, 0]).astype(np.int64)
        study = np.rint(SCORE_SCALE * w.prospects * rows.study_share[:, 0]).astype(np.int64)
        return base, job, study


def _fill_rank(out: FloatArray, ranked: tuple[str, ...], index: Mapping[str, int]) -> None:
    """Vectorised ``model.rank_score``: first occurrence wins; empty list = no preference = 1."""
    if not ranked:
        out[:] = 1.0
        return
    seen: set[str] = set()
    for k, item in enumerate(ranked):
        if item in seen:
            continue
        seen.add(item)
        if item in index:
            out[index[item]] = 1.0 - k / len(ranked)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhaseRecord:
    """One step of a run, for the audit record (what was optimised and how far it got)."""

    name: str
    status: str
    objective: float | None
    bound: float | None
    deterministic_time: float
    wall_time_s: float


@dataclass(frozen=True, slots=True)
class SolveResult:
    """What a solver run proposes, and everything an auditor needs to re-run and compare it."""

    assignments: dict[str, str]
    new_proposals: dict[str, str]
    withdrawn: dict[str, str]
    jobs: dict[str, str]
    study_places: tuple[str, ...]
    unplaced: tuple[str, ...]
    objective: float
    bound: float
    gap: float
    status: str
    duration_s: float
    solver_version: str
    inputs_digest: str
    protected_placed: dict[str, int]
    explanations: dict[str, Explanation]
    phases: tuple[PhaseRecord, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for events and the audit stream."""
        return {
            "assignments": dict(self.assignments), "new_proposals": dict(self.new_proposals),
            "withdrawn": dict(self.withdrawn), "jobs": dict(self.jobs),
            "study_places": list(self.study_places), "unplaced": list(self.unplaced),
            "objective": self.objective, "bound": self.bound, "gap": self.gap, "status": self.status,
            "duration_s": self.duration_s, "solver_version": self.solver_version,
            "inputs_digest": self.inputs_digest, "protected_placed": dict(self.protected_placed),
            "explanations": {k: v.to_dict() for k, v in self.explanations.items()},
            "phases": [
                {"name": p.name, "status": p.status, "objective": p.objective, "bound": p.bound,
                 "deterministic_time": p.deterministic_time, "wall_time_s": p.wall_time_s}
                for p in self.phases
            ],
            "warnings": list(self.warnings),
        }


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Unit:
    """Cases that take one host together (a single case, or the free members of a linked group)."""

    members: tuple[int, ...]
    hosts: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    gains: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True, slots=True)
class _Level:
    name: str
    weights: IntArray  # per unit
    bound: int  # the value if every unit with a candidate host were placed


class _Run:
    """State of one ``solve`` call; split into steps so that each stays readable."""

    def __init__(self, snapshot: PoolSnapshot, params: SolverParams) -> None:
        self.snapshot = snapshot
        self.params = params
        self.started = time.perf_counter()
        self.cases = tuple(sorted(snapshot.cases, key=lambda c: c.case_id))
        self.hosts = tuple(sorted(snapshot.hosts, key=lambda h: h.host_id))
        self.case_index = {c.case_id: i for i, c in enumerate(self.cases)}
        self.scores = PoolScores(self.cases, self.hosts, snapshot.pool_id, snapshot.forbidden, params.weights)
        self.host_index = self.scores.host_index
        self.warnings: list[str] = []
        self.phases: list[PhaseRecord] = []
        self.disruption = round(SCORE_SCALE * params.weights.disruption_cost)
        self.det_budget = params.time_limit_s
        self.det_used = 0.0
        self.proven = True

    # -- capacity left after the fixed matches ----------------------------------------------------

    def fixed_usage(self) -> None:
        """Count what approved/accepted matches already use, so new proposals only get the rest."""
        n_hosts = len(self.hosts)
        self.used = np.zeros((n_hosts, len(DEMAND_DIMENSIONS)), dtype=np.int64)
        self.study_used = np.zeros(n_hosts, dtype=np.int64)
        self.jobs_used: list[dict[str, int]] = [defaultdict(int) for _ in self.hosts]
        self.job_of: dict[str, str] = {}
        self.study_of: set[str] = set()
        for case_id, host_id in self.snapshot.fixed.items():
            i, j = self.case_index.get(case_id), self.host_index.get(host_id)
            if i is None or j is None:
                self.warnings.append(f"fixed match {case_id}->{host_id} names an unknown case or host; "
                                     "kept, but its capacity use is unknown")
                continue
            self._take(i, j)
        self.remaining = np.maximum(self.scores.capacity - self.used, 0)
        for over in np.flatnonzero((self.used > self.scores.capacity).any(axis=1)):
            self.warnings.append(f"host {self.hosts[int(over)].host_id}: fixed matches exceed its capacity")
        self.jobs_left = [{o: n - self.jobs_used[j].get(o, 0) for o, n in h.capacity.jobs.items()
                           if n - self.jobs_used[j].get(o, 0) > 0} for j, h in enumerate(self.hosts)]
        self.study_left = np.array([h.capacity.study_places for h in self.hosts], dtype=np.int64) - self.study_used

    def _take(self, i: int, j: int, job: str | None = None, study: bool | None = None) -> None:
        """Record case ``i`` at host ``j``. For fixed matches (job/study None) assume the case holds a
        job in its first occupation the host still has open, and a study place if it wants one."""
        case, host = self.cases[i], self.hosts[j]
        self.used[j] += _demand(case)
        if job is None and study is None:
            for o in sorted(case.occupations):
                if host.capacity.jobs.get(o, 0) - self.jobs_used[j][o] > 0:
                    job = o
                    break
            study = case.wants_study and host.capacity.study_places - self.study_used[j] > 0
        if job is not None:
            self.jobs_used[j][job] += 1
            self.job_of[case.case_id] = job
        if study:
            self.study_used[j] += 1
            self.study_of.add(case.case_id)

    # -- units and candidates ---------------------------------------------------------------------

    def build_units(self) -> None:
        """Group linked cases, then keep each unit's top-K candidate hosts (see module docstring)."""
        n = len(self.cases)
        parent = list(range(n))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i, c in enumerate(self.cases):
            for other in c.linked_case_ids:
                k = self.case_index.get(other)
                if k is not None:
                    a, b = root(i), root(k)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
        groups: dict[int, list[int]] = defaultdict(list)
        for k in range(n):
            groups[root(k)].append(k)

        fixed = self.snapshot.fixed
        self.pending_host = np.full(n, -1, dtype=np.int64)
        for case_id, host_id in self.snapshot.pending.items():
            pending_case, pending_host = self.case_index.get(case_id), self.host_index.get(host_id)
            if pending_case is not None and pending_host is not None and case_id not in fixed:
                self.pending_host[pending_case] = pending_host
        singles: list[int] = []
        self.units: list[_Unit] = []
        for members in groups.values():
            free = [i for i in members if self.cases[i].case_id not in fixed]
            if not free:
                continue
            if len(members) == 1:
                singles.append(free[0])
                continue
            fixed_hosts = {fixed[self.cases[i].case_id] for i in members if self.cases[i].case_id in fixed}
            self._group_unit(tuple(free), fixed_hosts)
        for start in range(0, len(singles), CHUNK):
            self._single_units(singles[start:start + CHUNK])
        self.units.sort(key=lambda u: u.members)
        self.job_bonus = np.zeros(n, dtype=np.int64)
        self.study_bonus = np.zeros(n, dtype=np.int64)
        w = self.params.weights
        for i, c in enumerate(self.cases):
            denominator = prospects_denominator(c)
            self.job_bonus[i] = round(SCORE_SCALE * w.prospects * (WORK_SHARE * 1.0 / denominator))
            self.study_bonus[i] = round(SCORE_SCALE * w.prospects * (STUDY_SHARE * 1.0 / denominator))

    def _fits(self, demand: IntArray) -> BoolArray:
        """Hosts (columns) with room left for each demand row after the fixed matches."""
        return (demand[:, None, :] <= self.remaining[None, :, :]).all(axis=2)

    def _top(self, allowed: BoolArray, potential: IntArray, pending: Sequence[int]) -> IntArray:
        """Best ``top_k`` allowed hosts by potential welfare (ties: lower host index), then the
        ``top_k / ROOM_SHARE`` other allowed hosts with the most room, then the pending host."""
        n_hosts = len(self.hosts)
        key = np.where(allowed, potential * n_hosts + (n_hosts - 1 - np.arange(n_hosts)), -1)
        k = min(self.params.top_k, n_hosts)
        chosen = np.argpartition(-key, k - 1)[:k] if n_hosts > k else np.arange(n_hosts)
        chosen = chosen[key[chosen] >= 0]
        chosen = chosen[np.argsort(-key[chosen], kind="stable")]
        spare = max(self.params.top_k // ROOM_SHARE, 1)
        if n_hosts > k:
            room = np.where(allowed, self.remaining[:, 0] * n_hosts + (n_hosts - 1 - np.arange(n_hosts)), -1)
            room[chosen] = -1
            roomy = np.argpartition(-room, spare - 1)[:spare] if n_hosts > spare else np.arange(n_hosts)
            roomy = roomy[room[roomy] >= 0]
            chosen = np.concatenate([chosen, roomy[np.argsort(-room[roomy], kind="stable")]])
        extra = [j for j in dict.fromkeys(pending) if j >= 0 and allowed[j] and j not in set(chosen.tolist())]
        return np.concatenate([chosen, np.array(extra, dtype=np.int64)]).astype(np.int64)

    def _single_units(self, chunk: Sequence[int]) -> None:
        rows = self.scores.rows(chunk)
        base, job, study = self.scores.integer_rows(rows)
        potential = base + job[:, None] * rows.work_open + study[:, None] * rows.study_open
        demand = np.array([_demand(self.cases[i]) for i in chunk], dtype=np.int64).reshape(len(chunk), 4)
        allowed = rows.allowed & self._fits(demand)
        for r, i in enumerate(chunk):
            pending = int(self.pending_host[i])
            hosts = self._top(allowed[r], potential[r], [pending])
            gains = base[r, hosts] + self.disruption * (hosts == pending)
            self.units.append(_Unit((i,), hosts, gains.astype(np.int64)))

    def _group_unit(self, members: tuple[int, ...], fixed_hosts: set[str]) -> None:
        rows = self.scores.rows(members)
        base, job, study = self.scores.integer_rows(rows)
        potential = (base + job[:, None] * rows.work_open + study[:, None] * rows.study_open).sum(axis=0)
        demand = np.array([_demand(self.cases[i]) for i in members], dtype=np.int64).sum(axis=0)
        allowed = rows.allowed.all(axis=0) & self._fits(demand[None, :])[0]
        if fixed_hosts:
            only = np.zeros(len(self.hosts), dtype=bool)
            if len(fixed_hosts) == 1 and (j := self.host_index.get(next(iter(fixed_hosts)))) is not None:
                only[j] = True
            allowed &= only
        pending = [int(self.pending_host[i]) for i in members]
        hosts = self._top(allowed, potential, pending)
        gains = base[:, hosts].sum(axis=0)
        for p in pending:
            gains = gains + self.disruption * (hosts == p)
        self.units.append(_Unit(members, hosts, gains.astype(np.int64)))

    # -- the CP-SAT model -------------------------------------------------------------------------

    def build_model(self) -> None:
        """Create the variables and hard constraints with compact loops (one pass per kind)."""
        model = self.model = cp_model.CpModel()
        self.x_vars: list[cp_model.IntVar] = []
        sizes = []
        for unit in self.units:
            lits = [model.new_bool_var("") for _ in range(len(unit.hosts))]
            if len(lits) > 1:
                model.add_at_most_one(lits)
            self.x_vars.extend(lits)
            sizes.append(len(lits))
        self.x_unit = np.repeat(np.arange(len(self.units)), sizes).astype(np.int64)
        empty = np.zeros(0, dtype=np.int64)
        self.x_host = np.concatenate([u.hosts for u in self.units] or [empty])
        self.x_gain = np.concatenate([u.gains for u in self.units] or [empty])
        self.unit_demand = np.array(
            [np.sum([_demand(self.cases[i]) for i in u.members], axis=0) for u in self.units],
            dtype=np.int64).reshape(len(self.units), 4)

        order = np.argsort(self.x_host, kind="stable")
        bounds = np.searchsorted(self.x_host[order], np.arange(len(self.hosts) + 1))
        for j in range(len(self.hosts)):
            positions = order[bounds[j]:bounds[j + 1]]
            if not len(positions):
                continue
            demand = self.unit_demand[self.x_unit[positions]]
            lits = [self.x_vars[p] for p in positions]
            for d in range(len(DEMAND_DIMENSIONS)):
                if demand[:, d].sum() > self.remaining[j, d]:
                    used = cp_model.LinearExpr.weighted_sum(lits, demand[:, d].tolist())
                    model.add(used <= int(self.remaining[j, d]))

        # optional offers: a job in one of the case's occupations, a study place. The offer variables
        # are numbered after the x variables; x_offers[p] lists those that depend on x position p.
        self.offers: list[tuple[int, int, str | None]] = []  # (case, host, occupation or None = study)
        self.x_offers: list[list[int]] = [[] for _ in self.x_vars]
        offer_vars: list[cp_model.IntVar] = []
        by_job: dict[tuple[int, str], list[cp_model.IntVar]] = defaultdict(list)
        by_study: dict[int, list[cp_model.IntVar]] = defaultdict(list)
        occupations = [sorted(c.occupations) for c in self.cases]
        for p, x in enumerate(self.x_vars):
            j = int(self.x_host[p])
            jobs_left = self.jobs_left[j]
            for i in self.units[self.x_unit[p]].members:
                if jobs_left and occupations[i] and self.job_bonus[i] > 0:
                    lits = []
                    for o in occupations[i]:
                        if o in jobs_left:
                            lit = model.new_bool_var("")
                            lits.append(lit)
                            by_job[(j, o)].append(lit)
                            self.x_offers[p].append(len(self.offers))
                            self.offers.append((i, j, o))
                            offer_vars.append(lit)
                    if len(lits) == 1:
                        model.add_implication(lits[0], x)
                    elif lits:
                        model.add(cp_model.LinearExpr.sum(lits) <= x)
                if self.cases[i].wants_study and self.study_left[j] > 0 and self.study_bonus[i] > 0:
                    lit = model.new_bool_var("")
                    model.add_implication(lit, x)
                    by_study[j].append(lit)
                    self.x_offers[p].append(len(self.offers))
                    self.offers.append((i, j, None))
                    offer_vars.append(lit)
        for (j, o), lits in by_job.items():
            if len(lits) > self.jobs_left[j][o]:
                model.add(cp_model.LinearExpr.sum(lits) <= self.jobs_left[j][o])
        for j, lits in by_study.items():
            if len(lits) > self.study_left[j]:
                model.add(cp_model.LinearExpr.sum(lits) <= int(self.study_left[j]))

        self.all_vars = self.x_vars + offer_vars
        self.var_index = np.array([v.index for v in self.all_vars], dtype=np.int64)
        self.all_gains = np.concatenate([
            self.x_gain,
            np.array([self.job_bonus[i] if o is not None else self.study_bonus[i] for i, _, o in self.offers],
                     dtype=np.int64)])
        self.greedy = self.greedy_start()
        self.solution: IntArray = self.greedy  # always the best feasible solution known so far
        self._hint(self.greedy)

    def greedy_start(self) -> IntArray:
        """A feasible first solution: units in protection order (emergency, urgent, vulnerable, then
        arrival) take their pending host if it still fits, else their best candidate with room.

        Why: CP-SAT starts from it (solution hint), and where capacity is ample it already reaches
        every protection bound, so those levels need no search at all.
        """
        values = np.zeros(len(self.all_vars), dtype=np.int64)
        left = self.remaining.tolist()
        jobs_left = [dict(d) for d in self.jobs_left]
        study_left = self.study_left.tolist()
        start = np.concatenate([[0], np.cumsum([len(u.hosts) for u in self.units])]).astype(np.int64)
        cases = self.cases

        def priority(u: int) -> tuple[int, int, int, int, str]:
            members = [cases[i] for i in self.units[u].members]
            return (-sum(c.urgency == "emergency" for c in members), -sum(c.urgency == "urgent" for c in members),
                    -sum(c.vulnerable for c in members), min(c.arrived_seq for c in members), members[0].case_id)

        nx = len(self.x_vars)
        for u in sorted(range(len(self.units)), key=priority):
            unit = self.units[u]
            demand = self.unit_demand[u].tolist()
            pending = int(self.pending_host[unit.members[0]])
            order = sorted(range(len(unit.hosts)), key=lambda k: (int(unit.hosts[k]) != pending, k))
            for k in order:
                room = left[int(unit.hosts[k])]
                if all(d <= r for d, r in zip(demand, room, strict=True)):
                    for d in range(len(demand)):
                        room[d] -= demand[d]
                    p = int(start[u]) + k
                    values[p] = 1
                    taken: set[int] = set()
                    for q in self.x_offers[p]:
                        i, j, o = self.offers[q]
                        if o is None and study_left[j] > 0:
                            study_left[j] -= 1
                            values[nx + q] = 1
                        elif o is not None and i not in taken and jobs_left[j].get(o, 0) > 0:
                            jobs_left[j][o] -= 1
                            taken.add(i)
                            values[nx + q] = 1
                    break
        return values

    def _hint(self, values: IntArray) -> None:
        proto = self.model.proto
        proto.clear_solution_hint()
        proto.solution_hint.vars.extend(self.var_index.tolist())
        proto.solution_hint.values.extend(values.tolist())

    def _solve(self, name: str, budget: float, gap: float, scale: int) -> tuple[str, cp_model.CpSolver]:
        solver = cp_model.CpSolver()
        p = solver.parameters
        p.num_workers = self.params.workers
        p.random_seed = self.params.seed
        p.max_deterministic_time = max(budget, 1e-3)
        p.relative_gap_limit = gap
        if self.params.wall_time_limit_s is not None:
            p.max_time_in_seconds = max(self.params.wall_time_limit_s - (time.perf_counter() - self.started), 0.01)
        # measured on 2,000 cases x 200 hosts: these presolve steps took most of each solve's budget
        # (the big-overlap search ~1 deterministic second, probing ~3 wall seconds) for no gain
        p.find_big_linear_overlap = False
        p.cp_model_probing_level = 0
        if self.params.workers > 1:
            p.interleave_search = True  # deterministic whatever the number of workers
        status = solver.solve(self.model)
        status_name = solver.status_name(status)
        if status_name == "MODEL_INVALID":
            raise RuntimeError(f"matching model invalid: {self.model.validate()}")
        self.det_used += solver.deterministic_time
        has_solution = status_name in ("OPTIMAL", "FEASIBLE")
        self.phases.append(PhaseRecord(
            name=name, status=status_name,
            objective=solver.objective_value / scale if has_solution else None,
            bound=solver.best_objective_bound / scale if has_solution else None,
            deterministic_time=solver.deterministic_time, wall_time_s=solver.wall_time))
        if status_name != "OPTIMAL":
            self.proven = False
        if self.params.wall_time_limit_s is not None and solver.wall_time >= 0.99 * p.max_time_in_seconds \
                and solver.deterministic_time < 0.99 * p.max_deterministic_time:
            self.warnings.append(f"{name}: wall time limit reached; this run may not be reproducible")
        if has_solution:
            values = np.asarray(solver.response_proto.solution, dtype=np.int64)[self.var_index]
            self.solution = values
            self._hint(values)
        return status_name, solver

    # -- phase 1: protection ------------------------------------------------------------------------

    def levels(self) -> list[_Level]:
        """Protection levels in lexicographic order, as per-unit integer weights (empty ones dropped)."""
        # cases holding a pending proposal count as earliest, so that arrival order (a tie-break)
        # never withdraws a proposal that is under review
        free = sorted({i for u in self.units for i in u.members},
                      key=lambda i: (self.pending_host[i] < 0, self.cases[i].arrived_seq, self.cases[i].case_id))
        seniority = np.zeros(len(self.cases), dtype=np.int64)
        for rank, i in enumerate(free):
            seniority[i] = len(free) - rank
        emergency = np.array([c.urgency == "emergency" for c in self.cases], dtype=np.int64)
        urgent = np.array([c.urgency == "urgent" for c in self.cases], dtype=np.int64)
        vulnerable = np.array([c.vulnerable for c in self.cases], dtype=np.int64)
        placed = np.ones(len(self.cases), dtype=np.int64)
        has_candidates = np.array([len(u.hosts) > 0 for u in self.units], dtype=bool)
        levels = []
        for name, per_case in (("emergency", emergency), ("urgent", urgent), ("vulnerable", vulnerable),
                               ("placed", placed), ("arrival", seniority)):
            weights = np.array([int(per_case[list(u.members)].sum()) for u in self.units], dtype=np.int64)
            weights = np.where(has_candidates, weights, 0)
            if weights.any():
                levels.append(_Level(name, weights, int(weights.sum())))
        return levels

    def protect(self) -> None:
        """Maximise the protection levels in order, fixing each optimum before the next."""
        budget = self.det_budget * PROTECTION_BUDGET_SHARE
        self.level_constraints: list[cp_model.Constraint] = []
        levels = self.levels()
        for k, level in enumerate(levels):
            coefficients = level.weights[self.x_unit]
            expression = cp_model.LinearExpr.weighted_sum(self.x_vars, coefficients.tolist())
            name = f"protect:{level.name}"
            value = int(coefficients @ self.solution[: len(self.x_vars)])
            if value == level.bound:
                self.level_constraints.append(self.model.add(expression >= value))
                self.phases.append(PhaseRecord(name, "ATTAINED", value, level.bound, 0.0, 0.0))
                continue
            self.model.maximize(expression)
            # an equal share of what is left, so that one hard level cannot starve the later ones
            status, solver = self._solve(name, (budget - self.det_used) / (len(levels) - k), 0.0, 1)
            if status in ("OPTIMAL", "FEASIBLE"):
                value = round(solver.objective_value)
            # without a new solution (budget gone) the last solution's value is kept as the floor
            self.level_constraints.append(self.model.add(expression >= value))

    # -- phase 2: welfare ---------------------------------------------------------------------------

    def welfare(self) -> tuple[float, float, str]:
        """Maximise weighted welfare minus disruption, with protection fixed. Returns objective, bound, status."""
        # protection decided *who* is placed: fix that set, so welfare only decides *where*. This
        # implies every protection level, whose (large-coefficient) constraints are then dropped;
        # the welfare LP is a tight assignment relaxation instead of a loose knapsack one.
        nx = len(self.x_vars)
        start = np.concatenate([[0], np.cumsum([len(u.hosts) for u in self.units])]).astype(np.int64)
        placed = np.bincount(self.x_unit, weights=self.solution[:nx], minlength=len(self.units)).astype(np.int64)
        variables = self.model.proto.variables
        for u in range(len(self.units)):
            lits = self.x_vars[start[u]:start[u + 1]]
            if not lits:
                continue
            if placed[u]:
                self.model.add_exactly_one(lits)
            else:
                for index in self.var_index[start[u]:start[u + 1]]:
                    variables[int(index)].domain[1] = 0  # domain [0, 1] becomes [0, 0]
        for constraint in self.level_constraints:
            constraint.proto.clear_linear()
        n_pending = int((self.pending_host >= 0).sum())
        offset = self.disruption * n_pending
        self.model.maximize(cp_model.LinearExpr.weighted_sum(self.all_vars, self.all_gains.tolist()) - offset)
        budget = max(self.det_budget - self.det_used, self.det_budget * (1.0 - PROTECTION_BUDGET_SHARE))
        status, solver = self._solve("welfare", budget,
                                     self.params.relative_gap, SCORE_SCALE)
        if status in ("OPTIMAL", "FEASIBLE"):
            return solver.objective_value / SCORE_SCALE, solver.best_objective_bound / SCORE_SCALE, status
        # no welfare solution within the budget: keep the protection solution (or place nobody new)
        # bound without search: every placed unit at its best candidate, taking every offer there
        nx = len(self.x_vars)
        best = self.x_gain.copy()
        np.add.at(best, np.repeat(np.arange(nx), [len(q) for q in self.x_offers]),
                  self.all_gains[nx:][np.concatenate([np.asarray(q, dtype=np.int64) for q in self.x_offers])])
        unit_best = np.zeros(len(self.units), dtype=np.int64)
        np.maximum.at(unit_best, self.x_unit, best)
        ceiling = int(unit_best[placed > 0].sum())
        value = float(self.all_gains @ self.solution - offset) / SCORE_SCALE
        return value, (ceiling - offset) / SCORE_SCALE, status

    # -- result -------------------------------------------------------------------------------------

    def result(self, objective: float, bound: float, status: str, digest: str) -> SolveResult:
        """Turn the solution into proposals, counts and explanations."""
        solution = self.solution
        assignments = dict(self.snapshot.fixed)
        new_host: dict[int, int] = {}
        nx = len(self.x_vars)
        for p in np.flatnonzero(solution[:nx]):
            for i in self.units[self.x_unit[p]].members:
                new_host[i] = int(self.x_host[p])
        job_taken: dict[int, str] = {}
        study_taken: set[int] = set()
        for q in np.flatnonzero(solution[nx:]):
            i, _, o = self.offers[q]
            if o is None:
                study_taken.add(i)
            else:
                job_taken[i] = o
        for i in sorted(new_host):
            self._take(i, new_host[i], job=job_taken.get(i), study=i in study_taken)
            assignments[self.cases[i].case_id] = self.hosts[new_host[i]].host_id
        assignments = dict(sorted(assignments.items()))

        pending = self.snapshot.pending
        fixed = self.snapshot.fixed
        new_proposals = {c: h for c, h in assignments.items() if c not in fixed and pending.get(c) != h}
        withdrawn = {c: h for c, h in pending.items() if c not in fixed and assignments.get(c) != h}
        placed = [c for c in self.cases if c.case_id in assignments]
        protected = {
            "emergency": sum(c.urgency == "emergency" for c in placed),
            "urgent": sum(c.urgency == "urgent" for c in placed),
            "vulnerable": sum(c.vulnerable for c in placed),
            "total": len(placed),
        }
        if status == "OPTIMAL" and not self.proven:
            status = "FEASIBLE"  # an earlier protection level was not proven optimal
        elif status not in ("OPTIMAL", "FEASIBLE"):
            status = "FEASIBLE"  # welfare found nothing: the last feasible solution is kept
        gap = abs(bound - objective) / max(1.0, abs(objective))
        return SolveResult(
            assignments=assignments, new_proposals=new_proposals, withdrawn=withdrawn,
            jobs=dict(sorted(self.job_of.items())), study_places=tuple(sorted(self.study_of)),
            unplaced=tuple(c.case_id for c in self.cases if c.case_id not in assignments),
            objective=objective, bound=bound, gap=gap, status=status,
            duration_s=time.perf_counter() - self.started, solver_version=_SOLVER_VERSION,
            inputs_digest=digest, protected_placed=protected, explanations=self.explain(assignments),
            phases=tuple(self.phases), warnings=tuple(self.warnings),
        )

    def explain(self, assignments: Mapping[str, str]) -> dict[str, Explanation]:
        """One explanation per placed case (see explanation.py)."""
        placed = [(self.case_index[c], self.host_index[h]) for c, h in assignments.items()
                  if c in self.case_index and h in self.host_index]
        unit_of = {i: u for u in self.units for i in u.members}
        out: dict[str, Explanation] = {}
        for start in range(0, len(placed), CHUNK):
            chunk = placed[start:start + CHUNK]
            rows = self.scores.rows([i for i, _ in chunk])
            for r, (i, j) in enumerate(chunk):
                out[self.cases[i].case_id] = self._explain_one(i, j, rows, r, unit_of.get(i))
        return dict(sorted(out.items()))

    def _achievable(self, i: int, j: int, rows: ScoreRows, r: int) -> float:
        """Potential score minus the job / study share that is no longer available at host ``j``."""
        w = self.params.weights
        score = float(rows.score[r, j])
        case, host = self.cases[i], self.hosts[j]
        if rows.work_open[r, j] and not any(
                host.capacity.jobs.get(o, 0) - self.jobs_used[j].get(o, 0) > 0 for o in case.occupations):
            score -= w.prospects * float(rows.work_share[r, 0])
        if rows.study_open[r, j] and host.capacity.study_places - self.study_used[j] <= 0:
            score -= w.prospects * float(rows.study_share[r, 0])
        return score

    def _explain_one(self, i: int, j: int, rows: ScoreRows, r: int, unit: _Unit | None) -> Explanation:
        case, host = self.cases[i], self.hosts[j]
        w = self.params.weights
        parts = prospects_parts(case, host)
        job = self.job_of.get(case.case_id)
        study = case.case_id in self.study_of
        contributions = {
            "beneficiary_preference": w.beneficiary_preference * beneficiary_preference(case, host),
            "host_preference": w.host_preference * host_preference(case, host),
            "prospects": w.prospects * (parts.language + (parts.work if job else 0.0)
                                        + (parts.study if study else 0.0)),
            "ties": w.ties * ties(case, host),
        }
        score = sum(contributions.values())
        fixed = case.case_id in self.snapshot.fixed
        kept = not fixed and self.snapshot.pending.get(case.case_id) == host.host_id

        cap = host.capacity
        binding = [d for d, used, total in zip(DEMAND_DIMENSIONS, self.used[j], _host_capacity(host), strict=True)
                   if total > 0 and used >= total]
        if cap.study_places > 0 and self.study_used[j] >= cap.study_places:
            binding.append("study_places")
        binding += [f"jobs:{o}" for o, n in cap.jobs.items() if n > 0 and self.jobs_used[j].get(o, 0) >= n]

        # the 3 best other hosts by potential score (ties: host id), whatever their compatibility
        row = rows.score[r]
        others = np.flatnonzero(np.arange(len(self.hosts)) != j)
        if len(others) > 3:
            threshold = np.partition(row[others], len(others) - 3)[len(others) - 3]
            others = others[row[others] >= threshold]
        others = others[np.lexsort((others, -row[others]))][:3]
        members = unit.members if unit is not None else (i,)
        demand = np.sum([_demand(self.cases[m]) for m in members], axis=0)
        alternatives = tuple(self._alternative(i, int(a), rows, r, score, demand, unit, kept, fixed)
                             for a in others)
        return Explanation(
            case_id=case.case_id, host_id=host.host_id, fixed=fixed, kept_pending=kept, score=score,
            contributions=contributions,
            priority={"urgency": case.urgency, "vulnerable": case.vulnerable,
                      "arrived_seq": case.arrived_seq, "rule": PROTECTION_RULE},
            binding=tuple(binding), job=job, study_place=study, alternatives=alternatives,
        )

    def _alternative(self, i: int, a: int, rows: ScoreRows, r: int, chosen: float, demand: IntArray,
                     unit: _Unit | None, kept: bool, fixed: bool) -> Alternative:
        case, host = self.cases[i], self.hosts[a]
        achievable = self._achievable(i, a, rows, r)

        def alternative(reason: AlternativeReason, detail: str) -> Alternative:
            return Alternative(host.host_id, achievable, reason, detail)

        if (case.case_id, host.host_id) in self.snapshot.forbidden:
            return alternative("declined", "declined or rejected earlier; never proposed again")
        if (why := compatible(case, host)) is not None:
            return alternative("incompatible", why)
        if fixed:
            return alternative("fixed", "the approved/accepted match is kept exactly")
        left = self.scores.capacity[a] - self.used[a]
        short = [f"{d} ({max(int(n), 0)} left, needs {int(k)})"
                 for d, n, k in zip(DEMAND_DIMENSIONS, left, demand, strict=True) if k > n]
        if short:
            return alternative("capacity", "capacity taken: " + ", ".join(short))
        difference = chosen - achievable
        if difference > 1e-9:
            return alternative("lower_score", f"lower score by {difference:.3f}")
        if unit is not None and len(unit.members) > 1:
            return alternative("linked", "linked cases must share one host; the group fits better elsewhere")
        if unit is not None and a not in set(unit.hosts.tolist()):
            return alternative("not_candidate", f"not among the case's top {self.params.top_k} candidate hosts")
        if kept and -difference <= self.params.weights.disruption_cost:
            return alternative("disruption", f"moving the pending proposal would gain {-difference:.3f}, "
                               f"not more than the disruption cost {self.params.weights.disruption_cost}")
        if abs(difference) <= 1e-9:
            return alternative("tie", "equal score; the deterministic tie-break chose the other host")
        return alternative("search_limit", "the solver stopped (time budget or gap) before finding this move")


def solve(snapshot: PoolSnapshot, params: SolverParams | None = None) -> SolveResult:
    """Propose placements for one pool: protection first, then welfare (see the module docstring).

    Pure and deterministic: the same snapshot and parameters (and OR-Tools version) give the same
    assignments, so the audit service can re-run any recorded run and compare.
    """
    params = params or SolverParams()
    digest = inputs_digest(snapshot, params)
    run = _Run(snapshot, params)
    run.fixed_usage()
    run.build_units()
    run.build_model()
    if run.x_vars:
        run.protect()
        objective, bound, status = run.welfare()
    else:
        objective = bound = -run.disruption * int((run.pending_host >= 0).sum()) / SCORE_SCALE
        status = "OPTIMAL"
    return run.result(objective, bound, status, digest)


def blocking_pairs(snapshot: PoolSnapshot, assignments: Mapping[str, str]) -> int:
    """Count (case, host) pairs that would rather be matched with each other than keep ``assignments``.

    Why: under capacities in several dimensions a pairwise-stable matching may not exist, so
    instead of promising stability we report how far a solution is from it. A pair counts when it
    is compatible and not declined, the case is not already with that host, the case *prefers* the
    host by its own stated ranking (``beneficiary_preference``; an unplaced case prefers any
    compatible host), and the host either still has room for the household in people, beds,
    accessible units and school places, or *prefers* the case (``host_preference``) to at least one
    of the cases it has. Simplification: swapping one case out is assumed to make room.
    """
    cases = tuple(sorted(snapshot.cases, key=lambda c: c.case_id))
    hosts = tuple(sorted(snapshot.hosts, key=lambda h: h.host_id))
    if not cases or not hosts:
        return 0
    scores = PoolScores(cases, hosts, snapshot.pool_id, snapshot.forbidden, Weights())
    n_hosts = len(hosts)
    assigned = np.full(len(cases), -1, dtype=np.int64)
    current = np.full(len(cases), -np.inf)
    used = np.zeros((n_hosts, len(DEMAND_DIMENSIONS)), dtype=np.int64)
    least_wanted = np.full(n_hosts, np.inf)
    for i, case in enumerate(cases):
        j = scores.host_index.get(assignments.get(case.case_id, ""), -1)
        if j < 0:
            continue
        assigned[i] = j
        current[i] = beneficiary_preference(case, hosts[j])
        used[j] += _demand(case)
        least_wanted[j] = min(least_wanted[j], host_preference(case, hosts[j]))
    left = scores.capacity - used
    count = 0
    for start in range(0, len(cases), CHUNK):
        chunk = list(range(start, min(start + CHUNK, len(cases))))
        rows = scores.rows(chunk)
        demand = np.array([_demand(cases[i]) for i in chunk], dtype=np.int64)
        room = (demand[:, None, :] <= left[None, :, :]).all(axis=2)
        wants = rows.host_preference > least_wanted[None, :]
        prefers = rows.beneficiary_preference > current[chunk][:, None]
        elsewhere = np.arange(n_hosts)[None, :] != assigned[chunk][:, None]
        count += int((rows.allowed & prefers & elsewhere & (room | wants)).sum())
    return count
