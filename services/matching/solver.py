"""The matching solver: one CP-SAT model per pool, protection first, then welfare.

How a run works
---------------
1. **Candidates.** Cases and hosts are sorted by id (so the tuple order of the snapshot never
   matters). Approved/accepted (fixed) cases only use capacity; every other case - waiting, or
   holding a pending proposal - is movable. For every movable case, the compatible, non-forbidden
   hosts that still have room after the fixed matches are scored (vectorised twin of ``model.py``'s
   scores, :class:`scores.PoolScores`) and only the K best by potential welfare are kept, plus K / 3 other
   compatible hosts, plus the case's pending host. Equal scores are broken by a deterministic
   per-(case, host) hash (``_spread``), never by host id: with the id tie-break every case that
   ranked a place first saw the same lowest-id hosts of that place, and a pool of 20,000 x 2,000
   placed 2,810 cases where first-come-first-served placed 12,218 (now 12,645). K is ``top_k``
   (default 30), shrunk on very big pools so that all candidates together stay within
   ``CANDIDATE_BUDGET`` (20,000 waiting cases: K = 9), never below ``MIN_TOP_K``.
   *Pruning note:* a case whose candidates are all taken by others stays unplaced even if a pruned
   host had room; raise ``top_k`` for very scarce pools.
   Linked cases form one *unit* that takes one host together (candidates: hosts compatible with
   every member); when a member is already fixed, the others can only join that host. The link is
   symmetric whichever side names it; ids of cases not in the pool are ignored.
2. **Models.** One boolean ``x[unit, host]`` per candidate; at most one host per unit; for every
   host and every capacity dimension (people, beds, accessible units, school places) the new
   placements plus the fixed ones stay within capacity (fixed usage is subtracted first). Models are
   built from arrays (``cpsat_model.ArrayModel``), 3-5 times faster than call by call.
3. **Protection, lexicographic.** Levels, in this order: number of emergency cases placed, urgent
   cases placed, vulnerable cases placed, then "placed, then arrival": the number of cases placed
   and, among equal numbers, the arrival seniority of the placed cases (sum of ``n - rank`` in
   arrival order; cases holding a pending proposal rank first, so the tie-break never withdraws a
   proposal under review). That last level is one objective with exact lexicographic weights
   ``W * placed + seniority`` with ``W`` = total seniority + 1: one more placed case always
   outweighs any seniority, and since one case's seniority is tiny next to W the coefficients stay
   nearly equal, so the LP has none of the trouble huge weights cause. Each level is maximised and
   its optimum added as a constraint (``level >= optimum``) before the next, so no number of
   urgent placements can ever buy out one emergency placement, and so on - lexicographic by
   construction (``tests/unit/matching/test_protection.py`` checks the levels against enumeration
   of every assignment). A level's model holds only the units that count in it or in an earlier
   level (emergency: the units with an emergency case), since the others can always stay unplaced
   without lowering it; units left out are then placed greedily around the result. A level whose
   bound (every unit with a candidate placed) is already reached is fixed without a solve; levels
   are solved with no gap, and if the budget ends before one is proven, the best value found is
   fixed (the run reports FEASIBLE, and the phase records hold each level's bound). The first hint
   is the better of two greedy passes in protection order (arrival; smallest household first).
   After a search that leaves a level unproven, its unplaced units try to take a candidate host by
   moving the households placed there to another of their hosts (``relocation.py``, phase
   ``protect:<level>:make_room``); a level that reaches its bound so is proven. A level of more than
   ``PROTECTION_SEARCH_MAX_POSITIONS`` candidate positions gets only those moves (``NOT_SEARCHED``:
   on the biggest pools CP-SAT found nothing more there and took the welfare phase's time).
   So *who* gets a place is decided by protection and arrival order only, never by fit or prospects.
4. **Welfare.** The set of units placed by the protection phase is fixed (each placed unit gets
   exactly one host, the others none) and the sum of integer-scaled pair scores (beneficiary
   preference, host preference, prospects, ties; ``SCORE_SCALE`` = 1000 per score unit) minus
   ``disruption_cost`` for every pending proposal that is moved or dropped is maximised. That
   decides *where* people go. Jobs and study places are optional offers in this model only:
   ``job[case, host, o]`` and ``study[case, host]`` booleans can only be true where the case is
   placed, within open jobs per occupation and study places, and earn the prospects share they
   stand for. CP-SAT's presolve turns each "offer only with its placement" into an implication,
   which its default LP leaves out; models with offers are therefore solved with the LP that keeps
   them (linearization level 2), up to ``OFFERS_LP_MAX_VARIABLES``; when that LP is not solved
   within the budget, a whole-pool solve reports the bound of the same LP solved alone by GLOP
   (``_welfare_lp_bound``). Fixing the set implies every
   protection level and gives CP-SAT a tight assignment
   relaxation; the price is that welfare cannot swap two equally-ranked cases. The hint is first
   improved by exchanges among households of equal demand (``exchange.py``), which CP-SAT's own
   search did not find within the budget on tightly packed pools.
5. **Scope.** ``SolverParams.scope = "changes"`` first keeps, as if approved, the pending proposals
   that no change touched (``neighbourhood.py``), so a re-solve after one event models only what the
   event can reach; ``"pool"`` (default) searches everything.

Mechanisms (``SolverParams.mechanism``)
---------------------------------------
* **welfare** (default): steps 1-4 above.
* **stable**: no case and host should both rather be matched to each other than to what they got.
  Under capacities in several dimensions a pairwise-stable matching may not exist, so the mode
  *minimises* the number of blocking pairs and says how close it came. Order: the protection levels
  (emergency, urgent, vulnerable, number placed - unchanged, never traded for stability; stability
  is sought among the solutions that keep them), then the fewest blocking pairs, then arrival
  seniority (after stability here: a host's justified wish outranks the arrival tie-break), then
  welfare with the placed set fixed and no more blocking pairs than found. A swap repair
  (``_swap_wanted_in``) gives the exact model its hint. The blocking indicators are exact: one per
  compatible (case, host) pair counted as :func:`blocking_pairs` counts it (see ``_add_blocking``),
  minimised by CP-SAT; the better of the repair and the model by the exact count is kept. Why
  CP-SAT and not deferred acceptance: with capacity in several dimensions, linked households and
  protection levels to keep, deferred acceptance has no stability guarantee and would need a repair
  step anyway, while the exact model proves the fewest blocking pairs on pools of tens of cases
  (``blocking_pairs_bound``; when it is above zero and proven, the result says that no stable
  matching keeps the protection levels) and lowers them on hundreds. On pools of thousands of cases
  the stability phase may end at its budget without improving on the protection solution; the
  result then says the minimum is not proven. Last, the protection solution exchanged within
  classes towards welfare (where the welfare mode starts), or that exchanged again towards what
  hosts want, replaces the stability path's result when it comes first in this order
  (``prefer_exchanged``), so the stable mode never ends with more blocking pairs than those
  exchanges leave. Candidates are pruned as in step 1,
  so claims hold over the candidate hosts (the result says so when pruning removed any).
* **dynamic** (Annie MOORE style: Ahani, Gölz, Procaccia, Teytelboym, Trapp): cases arrive over a
  period whose capacity is set, so a place taken now by a case that did not need it is missing for
  a later case that does. After protection (real cases only, unchanged), a two-stage sample-average
  plan (future.py): ``scenarios`` samples of the future, each ``min(expected_arrivals,
  FUTURE_SAMPLE)`` phantom cases drawn (seeded) from the attributes of the pool's
  ``arrival_history`` latest arrivals, each standing for an equal share of the expected arrivals.
  Real placements are shared by all scenarios; each scenario's phantoms compete for what the real
  cases leave, and the place of a phantom that protection would ask to place (emergency, urgent or
  vulnerable) is worth ``PROTECTED_ARRIVAL_WEIGHT`` largest gains more, so the plan keeps room for
  the protected arrivals to come rather than spend it on welfare. Its linear relaxation is solved
  exactly (GLOP), and the welfare phase then places the real cases as the plan does, welfare
  breaking its ties and rounding its fractions. A case with no emergency, urgent or vulnerable
  member and no pending proposal may be held back: when the plan
  gives its place to expected arrivals that gain more from it, it stays unplaced in this run
  (``SolveResult.held_back``) and is planned again in the next. Only real cases are proposed; the
  objective is their welfare.

Every result reports its blocking pairs (``SolveResult.blocking_pairs``) and a sentence on
stability (``SolveResult.stability``), in every mode.

Budget: ``time_limit_s`` deterministic units in all; the protection levels share at most half of
it (each level an equal share of what is left), the welfare phase gets the rest. A protection
level that its search, started from the hint, leaves unproven is searched once more without the hint
in a whole-pool solve, with another such share if that share is at least ``MIN_RETRY_SHARE``; the
better solution is kept.

Determinism: a fixed seed and a deterministic time budget (``max_deterministic_time``; with
``workers`` > 1 the interleaved search) make the same snapshot and parameters give the same
proposals on every machine running the same OR-Tools version and the same engine code (both recorded
as ``solver_version``: the engine as a fingerprint of the modules that decide proposals).

Approved matches that exceed a host's capacity (capacity was lowered after approval) are kept;
the host simply has no room left in that dimension, and the result carries a warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import math
import time
import zlib
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from services.matching.cpsat_model import ArrayModel, Solved
from services.matching.exchange import Candidates, better_hosts, positions_of
from services.matching.explanation import Alternative, AlternativeReason, Explanation
from services.matching.future import Future, Offers, Plan, Present, relaxed_plan, welfare_bound
from services.matching.model import (
    STUDY_SHARE,
    WORK_SHARE,
    Case,
    Mechanism,
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
from services.matching.neighbourhood import kept_proposals
from services.matching.offers import best_offers
from services.matching.relocation import make_room
from services.matching.scores import (
    DEMAND_DIMENSIONS,
    SCORE_SCALE,
    BoolArray,
    FloatArray,
    IntArray,
    PoolScores,
    ScoreRows,
    capacity_of,
    demand_of,
)
from services.matching.stability import BlockingPairs

#: Share of the deterministic budget the protection phases may use; welfare gets the rest.
PROTECTION_BUDGET_SHARE: Final = 0.5
#: Besides its top-K hosts by score, a case keeps top-K / ROOM_SHARE compatible hosts with the most
#: room left (people), so popular hosts cannot fill every case's whole candidate list.
ROOM_SHARE: Final = 3
#: Candidate positions a model may hold in all (x top-K per unit): on a pool of 20,000 waiting cases
#: the top-K shrinks to keep the models small enough to build and solve within a minute; below
#: CANDIDATE_BUDGET / top_k units (6,000 with the defaults) nothing changes. Never below MIN_TOP_K.
CANDIDATE_BUDGET: Final = 180_000
MIN_TOP_K: Final = 9
#: Dynamic mode: phantom cases per scenario at most; each then stands for several expected arrivals
#: (an integer count per host), which keeps the plan's model small however many are expected.
FUTURE_SAMPLE: Final = 60
#: Stable mode: passes of the swap repair before the exact model.
SWAP_PASSES: Final = 3
#: Stable mode, last step: moves tried per deterministic unit of the run's budget (each is judged by
#: recounting the rows and columns it touches), and the pools it runs on at most (cases x hosts: it
#: keeps three such matrices).
MOVES_PER_UNIT: Final = 2_000
MOVES_MAX_PAIRS: Final = 4_000_000
#: Stable mode: the exact model (one indicator per compatible pair) is not searched on pools of more
#: cases x hosts than this. On 2,000 x 200 (400,000) it never found fewer blocking pairs than its
#: hint, and with the arrival and welfare phases bound by it took 43 of a 75 s run, while the
#: exchanges and moves that follow reach far fewer (docs/matching.md).
STABLE_MODEL_MAX_PAIRS: Final = 100_000
#: Dynamic mode: a position's gain is raised by its share in the plan times this many largest gains,
#: so that following the plan outweighs any difference in welfare.
PLAN_WEIGHT: Final = 10
#: Dynamic mode: the gain of an emergency, urgent or vulnerable phantom is raised by this many largest
#: gains, so the plan keeps room for the protected arrivals it expects (protection before welfare, as
#: for present cases). Measured on the dynamic benchmark's labour pools (12 runs): 736 emergency or
#: urgent cases placed without it, 744 with it for emergency and urgent phantoms, 748 (hindsight's) with
#: vulnerable ones too; the mean share of hindsight fell by 0.1 points (docs/matching.md).
PROTECTED_ARRIVAL_WEIGHT: Final = 10
#: Dynamic mode: a plan whose size (variables, each offer counting PLAN_OFFER_WEIGHT times) is above
#: this many per deterministic unit of its budget is not given to GLOP, which would spend the budget
#: and fail (the plan is tried with half the scenarios instead). Measured on 400-case pools: municipal
#: plans of 33,600 variables and labour plans of 13,700 variables with 2,800 offers were solved
#: within 1 unit, labour plans of 25,300 with 5,500 offers within 2 units but not 1, and labour plans
#: of 42,800 with 8,300 offers not within 2 (failing after 3-5 s). With the service's 1 unit and 4 s
#: wall stop, the failed tries of a labour pool used up the wall time, so no plan was ever solved.
PLAN_SIZE_PER_UNIT: Final = 36_000
PLAN_OFFER_WEIGHT: Final = 5
#: A protection level left unproven is searched again without the hint only when its share of the
#: budget is at least this many deterministic units: on a live 3,000 x 300 pool with the service's
#: 1-unit budget, a hint-free search of "placed, then arrival" found no solution in its 0.34 units and
#: took 1.9 s, after which the welfare phase ran into the 4 s wall stop in every re-solve.
MIN_RETRY_SHARE: Final = 1.0
#: A protection level whose model has more candidate positions than this is not searched by CP-SAT:
#: moving households to make room (relocation.py) is what raises it there. Measured on municipal pools
#: (seed 1), each search ending at its hint's value: 2,000 x 200, "placed, then arrival" (77,484
#: positions) with budgets of 1, 10 and 20 units; 20,000 x 2,000, the vulnerable level (75,960) in 5
#: units and 13-15 s, where making room places all 3,955 vulnerable households in 0.1 s, and "placed,
#: then arrival" (240,000) in 10 units and 36 s; 5,000 x 500 and 10,000 x 1,000, "placed, then
#: arrival", 10 units and 13-23 s. The welfare phase of 20,000 x 2,000, left with less time, ended at
#: a gap of 1.11 % with the vulnerable level searched, 0.95 % without. Levels of labour pools of 400 x
#: 130 (about 12,000), where the search does place more (see MIN_RETRY_SHARE), are searched.
PROTECTION_SEARCH_MAX_POSITIONS: Final = 50_000
#: Welfare models with offers (jobs, study places) of at most this many variables are solved with
#: CP-SAT's linearization level 2, whose LP keeps the implications "offer -> its position". Measured on
#: labour pools of 400 x 130 (seeds 1, 2; 17,842 and 19,085 variables): level 1 stayed at its hint, 877.0
#: and 867.2, with bounds 1108.9 and 1175.4; level 2 reached 917.2 and 966.4 with bounds 925.3 and
#: 973.2 in 1.3 and 4.2 deterministic units (exact optima by HiGHS: 922.8 and ~972.2). On 2,000 x 650
#: (104,572 variables) level 2 never finished its root LP (bound 9202.7 against level 1's 5460.3, the
#: exact LP 4599.0) and ran 3 times slower per deterministic unit; on 1,000 x 325 (50,090) it gained
#: 0.6 % without a useful bound; on 800 x 260 (38,741) 1790.6 against 1758.4 (bound 1841.7 against
#: 2214.3), in less wall time. Bigger models keep level 1.
OFFERS_LP_MAX_VARIABLES: Final = 40_000
#: Cases scored at once (rows x hosts matrices; bounds memory on big pools).
CHUNK: Final = 256
PROTECTION_RULE: Final = (
    "protection first: placed emergency cases, then urgent, then vulnerable, then all cases, then "
    "earlier arrivals are maximised in this order before any welfare criterion is considered"
)
#: The modules whose code decides a run's proposals from its snapshot and parameters.
ENGINE_MODULES: Final = ("cpsat_model", "exchange", "explanation", "future", "model", "neighbourhood", "offers",
                         "relocation", "scores", "solver", "stability")


def engine_fingerprint(sources: Sequence[Path]) -> str:
    """A short digest of the engine's source files: a replay that differs can then say whether the engine
    itself changed since the run (any edit changes it, comments included)."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:12]


_SOLVER_VERSION: Final = (f"ortools {importlib.metadata.version('ortools')}; engine "
                          f"{engine_fingerprint([Path(__file__).with_name(f'{m}.py') for m in ENGINE_MODULES])}")



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
    #: "welfare", "stable" or "dynamic" (``SolverParams.mechanism``)
    mechanism: Mechanism = "welfare"
    #: blocking pairs of this solution (``blocking_pairs``), in every mode
    blocking_pairs: int = 0
    #: stable mode: proven lower bound on the blocking pairs of any solution that keeps the protection
    #: levels (over the candidate hosts); None in the other modes
    blocking_pairs_bound: int | None = None
    #: one sentence on stability: stable, how close it came, whether a stable matching can exist
    stability: str = ""
    #: dynamic mode: the mean number of phantom future cases the plan placed per scenario
    future_placed: float | None = None
    #: dynamic mode: cases protection placed that the plan left unplaced for the arrivals still expected
    held_back: tuple[str, ...] = ()
    #: a phase stopped on the wall clock rather than its deterministic budget: a re-run may differ
    wall_limit_hit: bool = False

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
            "warnings": list(self.warnings), "mechanism": self.mechanism,
            "blocking_pairs": self.blocking_pairs, "blocking_pairs_bound": self.blocking_pairs_bound,
            "stability": self.stability, "future_placed": self.future_placed, "held_back": list(self.held_back),
            "wall_limit_hit": self.wall_limit_hit,
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
    units: IntArray  # the units a solve of this level needs (the others cannot change any level so far)


@dataclass(frozen=True, slots=True)
class _Definition:
    """How an auxiliary variable of the stable mode follows from the placements (for complete hints):
    ``at_least``: sum(coefficients * x[positions]) >= need; ``any``: some x[positions]; ``clauses``:
    true when every literal of some clause is false (a blocking indicator)."""

    var: int
    kind: str
    positions: list[int] = field(default_factory=list)
    coefficients: list[int] = field(default_factory=list)
    need: int = 0
    clauses: list[list[int]] = field(default_factory=list)


def _complete(definitions: Sequence[_Definition], values: IntArray) -> None:
    """Fill in the auxiliary variables of ``values`` from its placements, in definition order."""
    def literal(v: int) -> int:
        return int(values[v]) if v >= 0 else 1 - int(values[-v - 1])

    for d in definitions:
        if d.kind == "at_least":
            values[d.var] = int(sum(c * values[p] for c, p in zip(d.coefficients, d.positions, strict=True)) >= d.need)
        elif d.kind == "any":
            values[d.var] = int(any(values[p] for p in d.positions))
        else:
            values[d.var] = int(any(not any(literal(v) for v in clause) for clause in d.clauses))


def _spread(case_keys: IntArray, host_keys: IntArray) -> IntArray:
    """A deterministic pseudo-random number in [0, 2^20) per (case, host): the tie-break among equal
    hosts. Why: breaking ties by host id sent every case to the same few hosts (all cases that rank
    a place first see its hosts as equal), which left most hosts without candidates."""
    with np.errstate(over="ignore"):
        x = (case_keys.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ host_keys.astype(np.uint64)
        x = (x ^ (x >> np.uint64(31))) * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(29))
    return (x & np.uint64(0xFFFFF)).astype(np.int64)


def _key(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


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
        self.host_keys = np.array([_key(h.host_id) for h in self.hosts], dtype=np.int64)
        self.warnings: list[str] = []
        self.wall_limit_hit = False
        self.phases: list[PhaseRecord] = []
        self.disruption = round(SCORE_SCALE * params.weights.disruption_cost)
        self.det_budget = params.time_limit_s
        self.det_used = 0.0
        self.proven = True
        #: a case lost an allowed host with room to top-K pruning (stability claims then hold over candidates)
        self.pruned = False
        #: pending proposals kept as they are by a re-solve around the changes (claims hold given them)
        self.kept = 0
        #: stable mode: the fewest blocking pairs found, its proven lower bound, and whether it is proven
        self.blocking_found: int | None = None
        self.blocking_lower: int | None = None
        #: stable mode: whether the exact model was searched (not on big pools: STABLE_MODEL_MAX_PAIRS)
        self.stable_model_searched = True
        #: dynamic mode: the units the plan held back
        self.held_back = np.zeros(0, dtype=np.int64)

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
        self.used[j] += demand_of(case)
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
        free_units = sum(1 for members in groups.values() if any(self.cases[i].case_id not in fixed for i in members))
        #: candidates per unit: ``top_k``, fewer on very big pools (see CANDIDATE_BUDGET)
        self.k = min(self.params.top_k, max(MIN_TOP_K, CANDIDATE_BUDGET // max(free_units, 1)))
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
        self._index_candidates()

    def disruption_offset(self) -> int:
        """The disruption cost of every pending proposal, which the welfare objective subtracts whatever
        the solution (a position at its pending host earns it back in its gain)."""
        return self.disruption * int((self.pending_host >= 0).sum())

    def _fits(self, demand: IntArray) -> BoolArray:
        """Hosts (columns) with room left for each demand row after the fixed matches."""
        return (demand[:, None, :] <= self.remaining[None, :, :]).all(axis=2)

    def _top(self, allowed: BoolArray, potential: IntArray, pending: IntArray,
             case_keys: IntArray) -> list[IntArray]:
        """Per row: the best ``k`` allowed hosts by potential welfare (ties: a per-case spread, see
        ``_spread``), then ``k / ROOM_SHARE`` other allowed hosts picked by the spread, then the
        row's pending host if it is allowed and not yet in."""
        n_rows, n_hosts = allowed.shape
        spread = _spread(case_keys[:, None], self.host_keys[None, :])
        key = np.where(allowed, (potential << 20) + spread, -1)
        k = min(self.k, n_hosts)
        spare = max(self.k // ROOM_SHARE, 1)
        best = np.argpartition(-key, k - 1, axis=1)[:, :k] if n_hosts > k else np.tile(np.arange(n_hosts), (n_rows, 1))
        out = []
        for r in range(n_rows):
            chosen = best[r][key[r, best[r]] >= 0]
            chosen = chosen[np.lexsort((chosen, -key[r, chosen]))]
            if n_hosts > k:
                other = np.where(allowed[r], spread[r], -1)
                other[chosen] = -1
                extra = np.argpartition(-other, spare - 1)[:spare] if n_hosts > spare else np.arange(n_hosts)
                extra = extra[other[extra] >= 0]
                chosen = np.concatenate([chosen, extra[np.lexsort((extra, -other[extra]))]])
            if int(allowed[r].sum()) > len(chosen):
                self.pruned = True
            p = int(pending[r])
            if p >= 0 and allowed[r, p] and p not in set(chosen.tolist()):
                chosen = np.concatenate([chosen, [p]])
            out.append(chosen.astype(np.int64))
        return out

    def _single_units(self, chunk: Sequence[int]) -> None:
        rows = self.scores.rows(chunk)
        base, job, study = self.scores.integer_rows(rows)
        potential = base + job[:, None] * rows.work_open + study[:, None] * rows.study_open
        demand = np.array([demand_of(self.cases[i]) for i in chunk], dtype=np.int64).reshape(len(chunk), 4)
        allowed = rows.allowed & self._fits(demand)
        pending = self.pending_host[list(chunk)]
        keys = np.array([_key(self.cases[i].case_id) for i in chunk], dtype=np.int64)
        for r, (i, hosts) in enumerate(zip(chunk, self._top(allowed, potential, pending, keys), strict=True)):
            gains = base[r, hosts] + self.disruption * (hosts == pending[r])
            self.units.append(_Unit((i,), hosts, gains.astype(np.int64)))

    def _group_unit(self, members: tuple[int, ...], fixed_hosts: set[str]) -> None:
        rows = self.scores.rows(members)
        base, job, study = self.scores.integer_rows(rows)
        potential = (base + job[:, None] * rows.work_open + study[:, None] * rows.study_open).sum(axis=0)
        demand = np.array([demand_of(self.cases[i]) for i in members], dtype=np.int64).sum(axis=0)
        allowed = rows.allowed.all(axis=0) & self._fits(demand[None, :])[0]
        if fixed_hosts:
            only = np.zeros(len(self.hosts), dtype=bool)
            if len(fixed_hosts) == 1 and (j := self.host_index.get(next(iter(fixed_hosts)))) is not None:
                only[j] = True
            allowed &= only
        pending = [int(self.pending_host[i]) for i in members]
        # a group keeps every member's pending host: the first through _top, the others here
        (hosts,) = self._top(allowed[None, :], potential[None, :], np.array(pending[:1]),
                             np.array([_key(self.cases[members[0]].case_id)], dtype=np.int64))
        known = set(hosts.tolist())
        more = [j for j in dict.fromkeys(pending[1:]) if j >= 0 and allowed[j] and j not in known]
        hosts = np.concatenate([hosts, np.array(more, dtype=np.int64)]).astype(np.int64)
        gains = base[:, hosts].sum(axis=0)
        for p in pending:
            gains = gains + self.disruption * (hosts == p)
        self.units.append(_Unit(members, hosts, gains.astype(np.int64)))

    def _index_candidates(self) -> None:
        """Flat arrays over all (unit, candidate host) positions, the numbering every model uses."""
        empty = np.zeros(0, dtype=np.int64)
        sizes = np.array([len(u.hosts) for u in self.units], dtype=np.int64)
        self.start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.x_unit = np.repeat(np.arange(len(self.units)), sizes).astype(np.int64)
        self.x_host = np.concatenate([u.hosts for u in self.units] or [empty]).astype(np.int64)
        self.x_gain = np.concatenate([u.gains for u in self.units] or [empty]).astype(np.int64)
        self.unit_demand = np.array(
            [np.sum([demand_of(self.cases[i]) for i in u.members], axis=0) for u in self.units],
            dtype=np.int64).reshape(len(self.units), 4)
        self.unit_pending = np.array([int(self.pending_host[u.members[0]]) for u in self.units], dtype=np.int64)
        #: the solution: per unit, the flat position of its chosen candidate, or -1 (unplaced)
        self.choice = np.full(len(self.units), -1, dtype=np.int64)

    # -- greedy placement ---------------------------------------------------------------------------

    def _fill(self, choice: IntArray, todo: Sequence[int]) -> IntArray:
        """Place the units of ``todo``, in that order, on top of ``choice`` (the others keep theirs):
        each keeps its position in ``choice`` if it still fits, else takes its pending host, else its
        first candidate (best first) with room. Returns the new choice; always feasible."""
        choice = choice.copy()
        todo_list = list(todo)
        choice[todo_list] = np.where(choice[todo_list] >= 0, -2 - choice[todo_list], -1)  # -2 - p: wished p
        placed = np.flatnonzero(choice >= 0)
        used = np.zeros_like(self.remaining)
        np.add.at(used, self.x_host[choice[placed]], self.unit_demand[placed])
        left = (self.remaining - used).tolist()
        hosts = self.x_host.tolist()
        for u in todo_list:
            wished = -2 - int(choice[u])
            choice[u] = -1
            demand = self.unit_demand[u].tolist()
            first, last = int(self.start[u]), int(self.start[u + 1])
            pending = int(self.unit_pending[u])
            order = list(range(first, last))
            if pending >= 0:
                order.sort(key=lambda p: hosts[p] != pending)
            if wished >= 0:
                order = [wished, *order]
            for p in order:
                room = left[hosts[p]]
                if demand[0] <= room[0] and demand[1] <= room[1] and demand[2] <= room[2] and demand[3] <= room[3]:
                    for d in range(4):
                        room[d] -= demand[d]
                    choice[u] = p
                    break
        return choice

    def _priority(self, smallest_first: bool) -> list[int]:
        """Units in protection order (emergency, urgent, vulnerable members first), then holders of a
        pending proposal, then arrival (or, with ``smallest_first``, the smallest households first)."""
        cases = self.cases

        def key(u: int) -> tuple[int, ...]:
            members = [cases[i] for i in self.units[u].members]
            return (-sum(c.urgency == "emergency" for c in members), -sum(c.urgency == "urgent" for c in members),
                    -sum(c.vulnerable for c in members), int(self.unit_pending[u] < 0),
                    int(self.unit_demand[u, 0]) if smallest_first else 0,
                    min(c.arrived_seq for c in members), u)

        return sorted(range(len(self.units)), key=key)

    def greedy_start(self, levels: Sequence[_Level]) -> None:
        """A feasible first solution: units in protection order take their pending host if it still
        fits, else their best candidate with room. Two orders are tried for the unprotected units
        (arrival; smallest household first) and the lexicographically better one is kept.

        Why: CP-SAT starts from it (solution hint), and where capacity is ample it already reaches
        every protection bound, so those levels need no search at all.
        """
        empty = np.full(len(self.units), -1, dtype=np.int64)
        best, best_values = empty, None
        for smallest_first in (False, True):
            choice = self._fill(empty, self._priority(smallest_first))
            values = self._values(levels, choice)
            if best_values is None or values > best_values:
                best, best_values = choice, values
        self.choice = best

    def _candidates(self) -> Candidates:
        return Candidates(self.start, self.x_host, self.unit_demand, self.remaining)

    def _largest_gain(self) -> int:
        """The largest gain of any candidate position: the unit in which weights that must outweigh
        every welfare difference are counted."""
        return int(np.abs(self.x_gain).max(initial=0))

    def _values(self, levels: Sequence[_Level], choice: IntArray) -> list[int]:
        placed = choice >= 0
        return [int(level.weights[placed].sum()) for level in levels]

    # -- solving ------------------------------------------------------------------------------------

    def _wall_left(self) -> float | None:
        if self.params.wall_time_limit_s is None:
            return None
        return self.params.wall_time_limit_s - (time.perf_counter() - self.started)

    def _past_wall_stop(self) -> bool:
        wall = self._wall_left()
        return wall is not None and wall <= 0

    def _run_model(self, name: str, model: ArrayModel, budget: float, gap: float, scale: int,
                   linearization_level: int | None = None) -> Solved:
        solved = model.solve(deterministic_s=budget, wall_s=self._wall_left(), seed=self.params.seed,
                             workers=self.params.workers, relative_gap=gap, linearization_level=linearization_level)
        self.det_used += solved.deterministic_time
        found = solved.values is not None
        self.phases.append(PhaseRecord(
            name=name, status=solved.status,
            objective=solved.objective / scale if found and solved.objective is not None else None,
            bound=solved.bound / scale if found and solved.bound is not None else None,
            deterministic_time=solved.deterministic_time, wall_time_s=solved.wall_time_s))
        if solved.status != "OPTIMAL":
            self.proven = False
        if solved.wall_limit_hit:
            self.wall_limit_hit = True
            self.warnings.append(f"{name}: wall time limit reached; this run may not be reproducible")
        return solved

    def _positions(self, units: IntArray) -> IntArray:
        """Flat candidate positions of ``units`` (in unit order)."""
        return positions_of(self.start, units)[0]

    def _assignment_model(self, units: IntArray, exactly: bool,
                          n_extra: int = 0) -> tuple[ArrayModel, IntArray, IntArray]:
        """Booleans for the candidate positions of ``units`` (numbered first, in order), one host per
        unit (at most or exactly), and every host's remaining capacity in every dimension. Returns the
        model, the positions and, for each position, the index of its unit in ``units``."""
        positions, owner = positions_of(self.start, units)
        model = ArrayModel(len(positions) + n_extra)
        sizes = (self.start[units + 1] - self.start[units]).tolist()
        offset = 0
        for size in sizes:
            lits = range(offset, offset + size)
            if exactly:
                model.exactly_one(lits)
            else:
                model.at_most_one(lits)
            offset += size
        hosts = self.x_host[positions]
        demand = self.unit_demand[self.x_unit[positions]]
        order = np.argsort(hosts, kind="stable")
        bounds = np.searchsorted(hosts[order], np.arange(len(self.hosts) + 1))
        for j in np.flatnonzero(bounds[1:] > bounds[:-1]):
            local = order[bounds[j]:bounds[j + 1]]
            for d in range(len(DEMAND_DIMENSIONS)):
                coefficients = demand[local, d]
                if coefficients.sum() > self.remaining[j, d]:
                    keep = coefficients > 0
                    model.linear(local[keep], coefficients[keep], 0, int(self.remaining[j, d]))
        return model, positions, owner

    # -- phase 1: protection ------------------------------------------------------------------------

    def levels(self) -> list[_Level]:
        """Protection levels in lexicographic order, as per-unit integer weights (empty ones dropped).

        In stable mode the last level is the number placed alone: arrival seniority is then sought
        after stability (see the module docstring), and its per-unit weights are kept in
        ``self.unit_seniority``."""
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
        # "placed, then arrival" is one level with exact lexicographic weights: every placed case is
        # worth more than the seniority of all cases together (W), plus its own seniority. Since the
        # seniority of one unit is tiny next to W, the coefficients stay nearly equal (no numerical
        # trouble for the LP), and one solve replaces two.
        big = int(seniority.sum()) + 1
        placed_then_arrival = placed * big + seniority
        self.unit_seniority = np.array([int(seniority[list(u.members)].sum()) for u in self.units], dtype=np.int64)
        last = (("placed", placed) if self.params.mechanism == "stable"
                else ("placed_then_arrival", placed_then_arrival))
        levels = []
        relevant = np.zeros(len(self.units), dtype=bool)
        for name, per_case in (("emergency", emergency), ("urgent", urgent), ("vulnerable", vulnerable), last):
            weights = np.array([int(per_case[list(u.members)].sum()) for u in self.units], dtype=np.int64)
            weights = np.where(has_candidates, weights, 0)
            # a level's optimum only depends on the units that count in it or in an earlier level:
            # the others can always stay unplaced, so its model leaves them out
            relevant |= weights > 0
            if weights.any():
                levels.append(_Level(name, weights, int(weights.sum()), np.flatnonzero(relevant)))
        return levels

    def protect(self) -> None:
        """Maximise the protection levels in order, fixing each optimum before the next."""
        budget = self.det_budget * PROTECTION_BUDGET_SHARE
        levels = self.levels()
        self.greedy_start(levels)
        floors: list[int] = []
        self.protection = (levels, floors)
        for k, level in enumerate(levels):
            value = self._values([level], self.choice)[0]
            name = f"protect:{level.name}"
            if value == level.bound:
                self.phases.append(PhaseRecord(name, "ATTAINED", value, level.bound, 0.0, 0.0))
                floors.append(value)
                continue
            units = level.units
            if int((self.start[units + 1] - self.start[units]).sum()) > PROTECTION_SEARCH_MAX_POSITIONS:
                value = self._relocate(level, value)
                if value < level.bound:
                    self.phases.append(PhaseRecord(name, "NOT_SEARCHED", value, level.bound, 0.0, 0.0))
                    self.proven = False
                floors.append(value)
                continue
            model, positions, local_unit = self._assignment_model(units, exactly=False)
            for earlier, floor in zip(levels[:k], floors, strict=True):
                coefficients = earlier.weights[units][local_unit]
                keep = np.flatnonzero(coefficients)
                model.linear(keep, coefficients[keep], floor, int(coefficients.sum()))
            coefficients = level.weights[units][local_unit]
            keep = np.flatnonzero(coefficients)
            model.maximize(keep, coefficients[keep])
            model.hint((self.choice[units][local_unit] == positions).astype(np.int64))
            # an equal share of what is left, so that one hard level cannot starve the later ones
            share = (budget - self.det_used) / (len(levels) - k)
            proven = self.proven
            solved = self._run_model(name, model, share, 0.0, 1)
            adopted = self._adopt(level, solved, positions, local_unit, at_least=value)
            value = value if adopted is None else adopted
            if solved.status != "OPTIMAL":
                value = self._relocate(level, value)
                if value == level.bound:
                    self.proven = proven
            if value < level.bound and solved.status != "OPTIMAL" and self.params.scope == "pool" and (
                    share >= MIN_RETRY_SHARE):
                # the hint can hold the search: measured on 2,000 x 200 (seed 0), CP-SAT stayed at the
                # hint's 391 vulnerable households for its whole share where 412 fit, and on a 400 x 130
                # labour pool at 376 households placed where 399 fit; without the hint it found them
                # within the same share. Later levels share what is left, as before. Re-solves around
                # the changes do not search twice, to keep the path from an update to new proposals
                # short; the periodic whole-pool solve searches again for them. (Making room now
                # places those 412 before this; the labour pool's households it does not.)
                model.proto.clear_solution_hint()
                again = self._run_model(f"{name}:without_hint", model, share, 0.0, 1)
                # only a better solution replaces what the first search and the moves reached
                adopted = self._adopt(level, again, positions, local_unit, at_least=value + 1)
                value = value if adopted is None else adopted
                if again.status == "OPTIMAL":
                    self.proven = proven
            # without a better solution (budget gone) the current solution's value is the floor
            floors.append(value)

    def _adopt(self, level: _Level, solved: Solved, positions: IntArray, local_unit: IntArray, *,
               at_least: int) -> int | None:
        """Take a level's solution if its value is ``at_least`` that: its units where it puts them, the
        units left out of its model where they still fit (in protection order). Returns its value, or
        None when it was not taken."""
        if solved.values is None or solved.objective is None or round(solved.objective) < at_least:
            return None
        units = level.units
        on = np.flatnonzero(solved.values[: len(positions)])
        choice = np.full(len(self.units), -1, dtype=np.int64)
        choice[units[local_unit[on]]] = positions[on]
        self._keep_others(choice, units)
        return round(solved.objective)

    def _relocate(self, level: _Level, value: int) -> int:
        """Make room for the level's unplaced units by moving placed ones (relocation.py), recorded
        as a phase when it places any. Returns the level's value now."""
        began = time.perf_counter()
        choice = make_room(self.choice, self._candidates(), level.weights, level.units)
        relocated = self._values([level], choice)[0]
        if relocated <= value:
            return value
        self._keep_others(choice, level.units)
        self.phases.append(PhaseRecord(f"protect:{level.name}:make_room",
                                       "ATTAINED" if relocated == level.bound else "IMPROVED", relocated,
                                       level.bound, 0.0, time.perf_counter() - began))
        return relocated

    def _keep_others(self, choice: IntArray, units: IntArray) -> None:
        """The new solution: ``choice`` for ``units``; every other unit keeps its place where it still
        fits, else takes another, in protection order."""
        others = np.ones(len(self.units), dtype=bool)
        others[units] = False
        choice = choice.copy()
        choice[others] = self.choice[others]
        self.choice = self._fill(choice, [u for u in self._priority(False) if others[u]])

    # -- phase 2: welfare ---------------------------------------------------------------------------

    def _offers(self, positions: IntArray, first_var: int) -> None:
        """The optional offers (a job in one of a member's occupations, a study place) at the given
        positions: ``self.offers[q] = (case, host, occupation or None for study)``, variable
        ``first_var + q``; ``self.position_offers[local position]`` lists the offers it enables."""
        self.offers: list[tuple[int, int, str | None]] = []
        self.offer_gain: list[int] = []
        self.position_offers: list[list[int]] = []
        occupations = [sorted(c.occupations) for c in self.cases]
        for p in positions.tolist():
            j = int(self.x_host[p])
            jobs_left = self.jobs_left[j]
            mine: list[int] = []
            for i in self.units[self.x_unit[p]].members:
                if jobs_left and occupations[i] and self.job_bonus[i] > 0:
                    for o in occupations[i]:
                        if o in jobs_left:
                            mine.append(len(self.offers))
                            self.offers.append((i, j, o))
                            self.offer_gain.append(int(self.job_bonus[i]))
                if self.cases[i].wants_study and self.study_left[j] > 0 and self.study_bonus[i] > 0:
                    mine.append(len(self.offers))
                    self.offers.append((i, j, None))
                    self.offer_gain.append(int(self.study_bonus[i]))
            self.position_offers.append(mine)
        self.first_offer_var = first_var
        self.offer_slots = self._offer_slots()

    def _offer_slots(self) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """Each offer's group (its person's jobs, or their study place: one of each at most), slot (its
        host's jobs in its occupation, or the host's study places) and gain; and what is left in each slot."""
        groups: dict[tuple[int, bool], int] = {}
        slots: dict[tuple[int, str | None], int] = {}
        group = np.zeros(len(self.offers), dtype=np.int64)
        slot = np.zeros(len(self.offers), dtype=np.int64)
        for q, (i, j, o) in enumerate(self.offers):
            group[q] = groups.setdefault((i, o is None), len(groups))
            slot[q] = slots.setdefault((j, o), len(slots))
        left = np.asarray([self._slot_left(j, o) for j, o in slots], dtype=np.int64)
        return group, slot, np.asarray(self.offer_gain, dtype=np.int64), left

    def _slot_left(self, host: int, occupation: str | None) -> int:
        """Jobs in ``occupation`` (study places for None) that ``host`` has left."""
        return int(self.study_left[host]) if occupation is None else self.jobs_left[host][occupation]

    def _best_offers(self, x: IntArray) -> IntArray:
        """The best offers where ``x`` places a unit (offers.py): the hint's, and the fallback's."""
        on = np.array([q for local in np.flatnonzero(x).tolist() for q in self.position_offers[local]],
                      dtype=np.int64)
        taken = np.zeros(len(self.offers), dtype=np.int64)
        if len(on):
            group, slot, gain, left = self.offer_slots
            taken[on] = best_offers(group[on], slot[on], gain[on], left)
        return taken

    def _offer_potential(self) -> IntArray:
        """Per welfare position: the most its offers could add (each member's best job and study place
        there), as if no one else at the host wanted them."""
        group, _, gain, _ = self.offer_slots
        n_groups, n_positions = int(group.max(initial=-1)) + 1, len(self.position_offers)
        best = np.zeros(n_groups, dtype=np.int64)
        np.maximum.at(best, group, gain)
        # offers were made position by position, so their positions come in order
        position = np.repeat(np.arange(n_positions), [len(mine) for mine in self.position_offers])
        pairs = np.unique(position * n_groups + group)  # each member's group once per position
        return np.bincount(pairs // max(n_groups, 1), weights=best[pairs % max(n_groups, 1)],
                           minlength=n_positions).astype(np.int64)

    def welfare(self, budget: float | None = None, phase: str = "welfare", relative_gap: float | None = None,
                bonus: IntArray | None = None) -> tuple[float, float, str]:
        """Maximise weighted welfare minus disruption, with protection fixed, each position's gain raised
        by ``bonus`` where given (the dynamic mode's plan). Returns objective, bound, status."""
        gain = self.x_gain if bonus is None else self.x_gain + bonus
        # protection decided *who* is placed: fix that set, so welfare only decides *where*. This
        # implies every protection level; the welfare LP is a tight assignment relaxation.
        placed_units = np.flatnonzero(self.choice >= 0)
        positions = self._positions(placed_units)
        self._offers(positions, len(positions))
        self.welfare_positions = positions
        model, _, _ = self._assignment_model(placed_units, exactly=True, n_extra=len(self.offers))
        by_job: dict[tuple[int, str], list[int]] = defaultdict(list)
        by_study: dict[int, list[int]] = defaultdict(list)
        for local, mine in enumerate(self.position_offers):
            per_case: dict[int, list[int]] = defaultdict(list)
            for q in mine:
                i, j, o = self.offers[q]
                var = self.first_offer_var + q
                if o is None:
                    by_study[j].append(var)
                    model.linear([var, local], [1, -1], -1, 0)
                else:
                    by_job[(j, o)].append(var)
                    per_case[i].append(var)
            for lits in per_case.values():
                model.linear([*lits, local], [1] * len(lits) + [-1], -1, 0)
        for (j, o), lits in by_job.items():
            if len(lits) > self.jobs_left[j][o]:
                model.linear(lits, [1] * len(lits), 0, self.jobs_left[j][o])
        for j, lits in by_study.items():
            if len(lits) > self.study_left[j]:
                model.linear(lits, [1] * len(lits), 0, int(self.study_left[j]))
        offset = self.disruption_offset()
        gains = np.concatenate([gain[positions], np.asarray(self.offer_gain, dtype=np.int64)])
        model.maximize(range(len(gains)), gains.tolist(), -offset)
        if self.blocking_found is not None:
            # stable mode: no more blocking pairs than the stability phase found
            indicators, constant, definitions = self._add_blocking(model, placed_units, positions)
            model.linear(indicators, [1] * len(indicators), 0, max(self.blocking_found - constant, 0))
        x_hint = (self.choice[self.x_unit[positions]] == positions).astype(np.int64)
        offers_hint = self._best_offers(x_hint)
        if self.blocking_found is None:
            # exchanges within classes first (see exchange.py), once on the positions' own gains and, with
            # offers, once more with each position's offers counted in full (so households move to the
            # jobs and study places they can take, though the flow may send more of them than there are
            # places); each result, with its best offers, is kept only if it comes out better. Why this
            # and not an exact flow through each host's jobs left: measured in docs/matching.md
            exchange_gains = [gain]
            if self.offers:
                with_offers = gain.copy()
                with_offers[positions] += self._offer_potential()
                exchange_gains.append(with_offers)
            candidates = self._candidates()
            for exchange_gain in exchange_gains:
                exchanged = better_hosts(self.choice, candidates, exchange_gain)
                x_new = (exchanged[self.x_unit[positions]] == positions).astype(np.int64)
                offers_new = self._best_offers(x_new)
                if gains @ np.concatenate([x_new, offers_new]) > gains @ np.concatenate([x_hint, offers_hint]):
                    self.choice, x_hint, offers_hint = exchanged, x_new, offers_new
        full_hint = np.zeros(model.n, dtype=np.int64)
        full_hint[: len(positions) + len(offers_hint)] = np.concatenate([x_hint, offers_hint])
        if self.blocking_found is not None:
            _complete(definitions, full_hint)
        model.hint(full_hint)
        if budget is None:
            budget = max(self.det_budget - self.det_used, self.det_budget * (1.0 - PROTECTION_BUDGET_SHARE))
        if self.blocking_found is not None:
            budget = max(self.det_budget - self.det_used, self.det_budget * 0.1)
        gap = self.params.relative_gap if relative_gap is None else relative_gap
        # offers: presolve turns each "offer <= its position" (two terms) into an implication, which
        # CP-SAT's default LP (linearization level 1) leaves out, so its bound lets every offer be taken
        # unplaced and the search stays at the hint (see OFFERS_LP_MAX_VARIABLES)
        full_lp = bool(self.offers) and model.n <= OFFERS_LP_MAX_VARIABLES
        solved = self._run_model(phase, model, budget, gap, SCORE_SCALE, linearization_level=2 if full_lp else None)
        if solved.values is not None and solved.objective is not None and solved.bound is not None:
            x = solved.values[: len(positions)]
            self.offer_taken = solved.values[len(positions):len(positions) + len(self.offers)]
            on = np.flatnonzero(x)
            self.choice[self.x_unit[positions[on]]] = positions[on]
            objective, bound = solved.objective, solved.bound
        else:
            # no welfare solution within the budget: keep the protection solution, its best offers
            self.offer_taken = offers_hint
            objective = float(gains @ np.concatenate([x_hint, offers_hint]) - offset)
            bound = self._ceiling(placed_units, positions, gain) - offset
        if full_lp and bonus is None and self.blocking_found is None and self.params.scope == "pool" and (
                bound - objective > gap * max(1.0, abs(objective))):
            bound = min(bound, self._welfare_lp_bound(positions, gain, offset, budget))
        return objective / SCORE_SCALE, max(bound, objective) / SCORE_SCALE, solved.status

    def _welfare_lp_bound(self, positions: IntArray, gain: IntArray, offset: int, budget: float) -> float:
        """The welfare phase's linear relaxation solved by GLOP (future.welfare_bound), recorded as a
        phase; infinite when not solved. Why: with offers, CP-SAT's full LP (linearization level 2,
        up to ``OFFERS_LP_MAX_VARIABLES``) may not be solved within the budget, and its bound then
        stays far above what it found (an education pool of 400 x 130: 892.1 against 725.5 after 10
        units), while GLOP solves the LP alone in 1.6 s (775.9). Only in whole-pool solves that end
        above their gap, to keep re-solves around the changes short; and not above that size, where
        GLOP did not finish either (labour 1,000 x 325: not solved in 3.6 s)."""
        began = time.perf_counter()
        no_phantoms = np.zeros(0, dtype=np.int64)
        present_offers, _, slots_left = self._plan_offers(no_phantoms, no_phantoms, no_phantoms, no_phantoms)
        value = welfare_bound(self._present(positions, gain, present_offers), self.remaining, slots_left,
                              deterministic_s=budget, wall_s=self._wall_left())
        if value is None:
            self.phases.append(PhaseRecord("welfare:lp_bound", "NOT_SOLVED", None, None, 0.0,
                                           time.perf_counter() - began))
            return math.inf
        # welfare is whole in SCORE_SCALE units, so the LP's optimum rounds down (with room for GLOP's
        # tolerance)
        bound = math.floor(value - offset + 1e-6 * max(1.0, abs(value)))
        self.phases.append(PhaseRecord("welfare:lp_bound", "OPTIMAL", None, bound / SCORE_SCALE, 0.0,
                                       time.perf_counter() - began))
        return bound

    def _ceiling(self, placed_units: IntArray, positions: IntArray, gain: IntArray) -> int:
        """A welfare bound without search for the placed units: each at its best candidate among
        ``positions``, taking every offer there."""
        potential = gain[positions].copy()
        for local, mine in enumerate(self.position_offers):
            potential[local] += sum(self.offer_gain[q] for q in mine)
        unit_best = np.zeros(len(self.units), dtype=np.int64)
        np.maximum.at(unit_best, self.x_unit[positions], potential)
        return int(unit_best[placed_units].sum())

    def _exchange_candidates(self) -> None:
        """Stable mode, before the stability phase: the protection solution exchanged within classes
        towards welfare (where the welfare mode starts), and that exchanged again towards what hosts
        want (``host_preference`` first, welfare second), for ``prefer_exchanged``. Why the second:
        most blocking pairs on big pools are a host that would let go of cases it wants less for an
        unplaced case (9,892 of 10,383 on 2,000 x 200 with host wishes), and moving the cases hosts
        want to those hosts leaves fewer (9,618)."""
        candidates = self._candidates()
        towards_welfare = better_hosts(self.choice, candidates, self.x_gain)
        wish = np.array([min(host_preference(self.cases[i], self.hosts[j]) for i in self.units[u].members)
                         for u, j in zip(self.x_unit.tolist(), self.x_host.tolist(), strict=True)])
        wish_first = np.rint(wish * SCORE_SCALE).astype(np.int64) * (10 * self._largest_gain() + 1)
        self.exchanged = {"welfare": towards_welfare,
                          "host_wishes": better_hosts(towards_welfare, candidates, wish_first + self.x_gain)}

    def prefer_exchanged(self, objective: float, bound: float, status: str) -> tuple[float, float, str]:
        """Stable mode, last: an exchanged protection solution (``_exchange_candidates``) replaces the
        stability path's result when it comes first in the stable mode's own order: fewer blocking
        pairs, then more arrival seniority, then more welfare. It keeps its best offers and the bound
        without search for its placed set. Why: on 2,000 x 200 the stability phase improves nothing
        within its budget, and the stable mode ended with 19,558 blocking pairs where the welfare
        mode's exchanges leave 13,293 (as pairs were counted before a host had to make room by letting
        go of cases it wants less); without host wishes, with no pair blocking either way, its
        welfare was 2145.6 against the welfare mode's 2414.7. Offering the exchanged solution to the
        stability phase instead (as its hint or as one more candidate) cost 300 x 30 16-21 pairs
        through the phases that follow (docs/matching.md)."""
        began = time.perf_counter()
        kept = (self.offers, self.offer_gain, self.position_offers, self.first_offer_var, self.offer_slots,
                self.offer_taken, self.welfare_positions)

        def rank(choice: IntArray) -> tuple[int, int]:
            return (blocking_pairs(self.snapshot, self._assignments(choice)),
                    -int(self.unit_seniority[choice >= 0].sum()))

        ranks = {name: rank(choice) for name, choice in self.exchanged.items()}
        best: tuple[tuple[int, int], float] = (rank(self.choice), -objective)  # lower is better
        preferred, preferred_bound = None, bound
        for name, key in ranks.items():
            if key <= best[0]:  # only then can welfare decide
                value, ceiling = self._welfare_of(self.exchanged[name])
                if (key, -value) < best:
                    best, preferred, preferred_bound = (key, -value), name, ceiling
        for name, (count, _) in ranks.items():
            # objective: the candidate's blocking pairs (the result has the stability path's when kept)
            self.phases.append(PhaseRecord(f"stable:exchanged:{name}",
                                           "PREFERRED" if name == preferred else "NOT_PREFERRED", count, None, 0.0,
                                           time.perf_counter() - began))
        if preferred is None:
            (self.offers, self.offer_gain, self.position_offers, self.first_offer_var, self.offer_slots,
             self.offer_taken, self.welfare_positions) = kept
            return objective, bound, status
        self.choice, self.blocking_found = self.exchanged[preferred], best[0][0]
        self._welfare_of(self.choice)  # its offers become the run's
        return -best[1], preferred_bound, "FEASIBLE"

    def fewer_blocking_by_moves(self, objective: float, bound: float, status: str) -> tuple[float, float, str]:
        """Stable mode, after ``prefer_exchanged``: single households move, each move kept only if it
        lowers the exact number of blocking pairs (``stability.BlockingPairs``), within
        ``MOVES_PER_UNIT`` moves weighed per deterministic unit of the run's budget. Three kinds, each
        keeping every protection level: a placed household into the room another of its candidate hosts
        has; an unplaced one in place of a placed one of the same protection class (the same weight in
        every level) where it fits once the other leaves; two placed ones trading hosts where each fits
        once the other leaves. Households linked to others do not move here. The phases record the
        count before and after, and how many moves of each kind were kept. Why: the exchanges of step 5
        move households only among those of one size, and on big pools the stability phase improves
        nothing within its budget; with these moves the 2,000 x 200 benchmark pool ends with
        4,874 blocking pairs instead of 9,618 (docs/matching.md)."""
        began = time.perf_counter()
        if len(self.cases) * len(self.hosts) > MOVES_MAX_PAIRS:
            self.phases.append(PhaseRecord("stable:moves", "NOT_SEARCHED", None, None, 0.0, 0.0))
            return objective, bound, status
        pairs = self._blocking_pairs_of(self.choice)
        start, tries = pairs.count, int(MOVES_PER_UNIT * self.params.time_limit_s)
        if not start:
            return objective, bound, status
        choice = self.choice.copy()
        levels, _ = self.protection
        linked = {i for i, case in enumerate(self.cases) if case.linked_case_ids} | {
            self.case_index[other] for case in self.cases for other in case.linked_case_ids if other in self.case_index}
        single = [u for u, unit in enumerate(self.units)
                  if len(unit.members) == 1 and unit.members[0] not in linked and len(unit.hosts)]
        kind = {u: tuple(int(level.weights[u]) for level in levels) for u in single}
        used = np.zeros_like(self.remaining)
        for u in np.flatnonzero(choice >= 0).tolist():
            used[self.x_host[choice[u]]] += self.unit_demand[u]
        at: dict[int, list[int]] = defaultdict(list)  # host -> placed single units
        for u in single:
            if choice[u] >= 0:
                at[int(self.x_host[choice[u]])].append(u)

        position_at = {(u, int(self.x_host[p])): p
                       for u in single for p in range(int(self.start[u]), int(self.start[u + 1]))}

        def place(u: int, p: int) -> None:
            """Unit ``u`` from where it is to position ``p`` (-1: unplaced), in ``choice``, ``used`` and ``at``."""
            if choice[u] >= 0:
                old = int(self.x_host[choice[u]])
                used[old] -= self.unit_demand[u]
                at[old].remove(u)
            if p >= 0:
                j = int(self.x_host[p])
                used[j] += self.unit_demand[u]
                at[j].append(u)
            choice[u] = p

        kept: dict[str, int] = {"into_room": 0, "in_place": 0, "exchange": 0}

        def moved(kind_of_move: str, *steps: tuple[int, int]) -> bool:
            """Each unit of ``steps`` to its position (-1: unplaced), if that lowers the count."""
            nonlocal tries
            if tries <= 0:
                return False
            tries -= 1
            moves = {self.units[u].members[0]: int(self.x_host[p]) if p >= 0 else -1 for u, p in steps}
            if pairs.change(moves) >= 0:
                return False
            pairs.move(moves)
            for u, _ in steps:  # all leave first, so a host's room and units are right when they arrive
                place(u, -1)
            for u, p in steps:
                place(u, p)
            kept[kind_of_move] += 1
            return True

        def fits(j: int, leaving: int | None, coming: int) -> bool:
            out = self.unit_demand[leaving] if leaving is not None else 0
            return bool((used[j] - out + self.unit_demand[coming] <= self.remaining[j]).all())

        def candidates(u: int) -> Iterator[tuple[int, int]]:
            for p in range(int(self.start[u]), int(self.start[u + 1])):
                yield p, int(self.x_host[p])

        def into_room(u: int) -> bool:
            """Placed ``u`` into the room another of its candidate hosts has."""
            here = int(self.x_host[choice[u]])
            return any(j != here and fits(j, None, u) and moved("into_room", (u, p)) for p, j in candidates(u))

        def in_place(u: int) -> bool:
            """Unplaced ``u`` in place of a placed household of its protection class."""
            return any(kind[m] == kind[u] and fits(j, m, u) and moved("in_place", (m, -1), (u, p))
                       for p, j in candidates(u) for m in list(at[j]))

        def exchange(u: int) -> bool:
            """Placed ``u`` and a household at another of its candidate hosts trade hosts."""
            here = int(self.x_host[choice[u]])
            return any(j != here and (v, here) in position_at and fits(j, v, u) and fits(here, u, v)
                       and moved("exchange", (u, p), (v, position_at[(v, here)]))
                       for p, j in candidates(u) for v in list(at[j]))

        improved = True
        while improved and tries > 0 and not self._past_wall_stop():
            improved = False
            for step, placed in ((into_room, True), (in_place, False), (exchange, True)):
                for u in single:
                    if tries <= 0:
                        break
                    if (choice[u] >= 0) == placed and step(u):
                        improved = True
        if self._past_wall_stop():
            self.wall_limit_hit = True
        self.phases.append(PhaseRecord("stable:moves", "IMPROVED" if pairs.count < start else "NOT_IMPROVED",
                                       pairs.count, start, 0.0, time.perf_counter() - began))
        self.phases.extend(PhaseRecord(f"stable:moves:{name}", "KEPT", count, None, 0.0, 0.0)
                           for name, count in kept.items())
        if pairs.count >= start:
            return objective, bound, status
        self.choice, self.blocking_found = choice, pairs.count
        value, ceiling = self._welfare_of(choice)
        return value, ceiling, "FEASIBLE"

    def _blocking_pairs_of(self, choice: IntArray) -> BlockingPairs:
        """The blocking pairs of ``choice`` (and the fixed matches), kept up to date as cases move."""
        shape = (len(self.cases), len(self.hosts))
        allowed, prefers, wishes = np.zeros(shape, dtype=bool), np.zeros(shape), np.zeros(shape)
        for start in range(0, len(self.cases), CHUNK):
            chunk = list(range(start, min(start + CHUNK, len(self.cases))))
            rows = self.scores.rows(chunk)
            allowed[chunk], prefers[chunk], wishes[chunk] = (rows.allowed, rows.beneficiary_preference,
                                                             rows.host_preference)
        host_of = np.full(len(self.cases), -1, dtype=np.int64)
        for case_id, host_id in self._assignments(choice).items():
            if case_id in self.case_index and host_id in self.host_index:
                host_of[self.case_index[case_id]] = self.host_index[host_id]
        demand = np.array([demand_of(case) for case in self.cases], dtype=np.int64).reshape(
            len(self.cases), len(DEMAND_DIMENSIONS))
        return BlockingPairs(allowed, prefers, wishes, demand, self.scores.capacity, host_of)

    def _welfare_of(self, choice: IntArray) -> tuple[float, float]:
        """The welfare of ``choice`` with its best offers (which become the run's offers), and the
        bound without search for its placed set."""
        placed_units = np.flatnonzero(choice >= 0)
        positions = self._positions(placed_units)
        self._offers(positions, len(positions))
        self.welfare_positions = positions
        x = (choice[self.x_unit[positions]] == positions).astype(np.int64)
        self.offer_taken = self._best_offers(x)
        offset = self.disruption_offset()
        value = int(self.x_gain[positions] @ x) + int(np.asarray(self.offer_gain, dtype=np.int64) @ self.offer_taken)
        ceiling = self._ceiling(placed_units, positions, self.x_gain)
        return (value - offset) / SCORE_SCALE, (ceiling - offset) / SCORE_SCALE

    # -- stable mode: fewest blocking pairs, then arrival, then welfare ---------------------------------

    def _add_blocking(self, model: ArrayModel, units: IntArray,
                      positions: IntArray) -> tuple[list[int], int, list[_Definition]]:
        """Blocking indicators for ``model``, whose first ``len(positions)`` variables place ``units``
        (every other unit keeps ``self.choice``, fixed matches stay). Returns the indicator variables
        and the number of pairs that block whatever the model decides.

        A pair (case i, host j) counts exactly as :func:`blocking_pairs` counts it: compatible and not
        declined, i is not at j and prefers j (``beneficiary_preference``; unplaced prefers any), and j
        would take i in by letting go of the cases it wants less than i (``host_preference``): i fits
        beside the cases j holds that it wants at least as much. With ``a[i, v]`` = "i sits at a host it
        likes at least v" and ``f[j, w, d, t]`` = "the cases j holds that it wants at least w need at
        least t in dimension d", the pair's indicator ``b`` must be true when ``not a and not any f``
        (for w the host's wish for i and t one more than leaves room for i): one clause. Minimising the
        sum of the ``b`` makes each one exactly the pair's blocking status; ``a`` and ``f`` are only
        allowed to be true when what they say holds. The definitions are returned too, so that
        ``_complete`` can turn a hint of the placements into a full hint.
        """
        definitions: list[_Definition] = []
        cases, hosts = self.cases, self.hosts
        in_model = np.zeros(len(self.units), dtype=bool)
        in_model[units] = True
        unit_of = np.full(len(cases), -1, dtype=np.int64)
        for u, unit in enumerate(self.units):
            unit_of[list(unit.members)] = u
        # what does not depend on the model: fixed matches and units outside it
        const_host = np.full(len(cases), -1, dtype=np.int64)
        for case_id, host_id in self.snapshot.fixed.items():
            i, j = self.case_index.get(case_id), self.host_index.get(host_id)
            if i is not None and j is not None:
                const_host[i] = j
        for u in np.flatnonzero(~in_model & (self.choice >= 0)).tolist():
            const_host[list(self.units[u].members)] = int(self.x_host[self.choice[u]])
        const_cases = np.flatnonzero(const_host >= 0)
        const_wish = np.array([host_preference(cases[i], hosts[int(const_host[i])]) for i in const_cases.tolist()])
        case_demand = np.array([demand_of(case) for case in cases], dtype=np.int64).reshape(
            len(cases), len(DEMAND_DIMENSIONS))
        # the model's positions: host, and each member's wish and demand
        pos_host = self.x_host[positions]
        pos_members = [self.units[int(self.x_unit[q])].members for q in positions.tolist()]
        pos_wish = [[host_preference(cases[i], hosts[int(pos_host[p])]) for i in members]
                    for p, members in enumerate(pos_members)]
        at_host: dict[int, list[int]] = defaultdict(list)
        for p, j in enumerate(pos_host.tolist()):
            at_host[j].append(p)
        local_of_unit = {int(u): k for k, u in enumerate(units.tolist())}
        unit_first = np.concatenate([[0], np.cumsum(self.start[units + 1] - self.start[units])]).astype(np.int64)
        capacity = self.scores.capacity
        kept_loads: dict[float, tuple[IntArray, IntArray, IntArray]] = {}

        def kept(wish: float) -> tuple[IntArray, IntArray, IntArray]:
            """For the cases each host wants at least ``wish``: their load that the model cannot change,
            the most it can reach, and each position's share of it."""
            if wish not in kept_loads:
                const_load = np.zeros_like(capacity)
                counted = const_cases[const_wish >= wish]
                np.add.at(const_load, const_host[counted], case_demand[counted])
                pos_demand = np.array([case_demand[[i for i, w in zip(members, wishes, strict=True) if w >= wish]]
                                       .sum(axis=0) for members, wishes in zip(pos_members, pos_wish, strict=True)],
                                      dtype=np.int64).reshape(len(positions), len(DEMAND_DIMENSIONS))
                max_load = const_load.copy()
                np.add.at(max_load, pos_host, pos_demand)
                kept_loads[wish] = (const_load, max_load, pos_demand)
            return kept_loads[wish]

        TRUE, FALSE = -1, -2  # constant literals
        full_var: dict[tuple[int, float, int, int], int] = {}
        liked_var: dict[tuple[int, float], int] = {}

        def full(j: int, wish: float, d: int, t: int) -> int:
            """Literal "the cases host j wants at least ``wish`` need at least t in dimension d"."""
            const_load, max_load, pos_demand = kept(wish)
            if t <= const_load[j, d]:
                return TRUE
            if t > max_load[j, d]:
                return FALSE
            key = (j, wish, d, t)
            if key not in full_var:
                (var,) = model.new_bools(1)
                mine = [p for p in at_host[j] if pos_demand[p, d] > 0]
                need = int(t - const_load[j, d])
                model.linear(mine, pos_demand[mine, d], need, int(max_load[j, d] - const_load[j, d]), only_if=var)
                definitions.append(_Definition(var, "at_least", mine, pos_demand[mine, d].tolist(), need))
                full_var[key] = var
            return full_var[key]

        def liked(i: int, v: float, bp_row: FloatArray) -> int:
            """Literal "case i (of a unit in the model) sits at a host it likes at least v"."""
            key = (i, v)
            if key not in liked_var:
                u = local_of_unit[int(unit_of[i])]
                local = np.arange(unit_first[u], unit_first[u + 1])
                mine = local[bp_row[pos_host[local]] >= v]
                if not len(mine):
                    liked_var[key] = FALSE
                else:
                    (var,) = model.new_bools(1)
                    model.linear([*mine.tolist(), var], [1] * len(mine) + [-1], 0, len(mine))
                    definitions.append(_Definition(var, "any", mine.tolist()))
                    liked_var[key] = var
            return liked_var[key]

        indicators: list[int] = []
        constant = 0
        for start in range(0, len(cases), CHUNK):
            chunk = list(range(start, min(start + CHUNK, len(cases))))
            rows = self.scores.rows(chunk)
            for r, i in enumerate(chunk):
                free = unit_of[i] >= 0 and in_model[unit_of[i]]
                now = int(const_host[i])
                bp_row = rows.beneficiary_preference[r]
                demand = case_demand[i]
                for j in np.flatnonzero(rows.allowed[r]).tolist():
                    v = float(bp_row[j])
                    if free:
                        a = liked(i, v, bp_row)
                        if a == TRUE:
                            continue
                        stay = [] if a == FALSE else [a]
                    else:
                        if now == j or (now >= 0 and v <= bp_row[now]):
                            continue
                        stay = []
                    wish = float(rows.host_preference[r, j])
                    fulls = [full(j, wish, d, int(capacity[j, d]) - int(demand[d]) + 1)
                             for d in range(len(DEMAND_DIMENSIONS))]
                    if TRUE in fulls:
                        continue  # j cannot take i in without letting go of a case it wants as much
                    if not stay and all(f == FALSE for f in fulls):
                        constant += 1
                        continue
                    (b,) = model.new_bools(1)
                    indicators.append(b)
                    clause = [*stay, *(f for f in fulls if f != FALSE)]
                    model.bool_or([b, *clause])
                    definitions.append(_Definition(b, "clauses", clauses=[clause]))
        return indicators, constant, definitions

    def _assignments(self, choice: IntArray) -> dict[str, str]:
        out = dict(self.snapshot.fixed)
        for u in np.flatnonzero(choice >= 0).tolist():
            for i in self.units[u].members:
                out[self.cases[i].case_id] = self.hosts[int(self.x_host[choice[u]])].host_id
        return out

    def _swap_wanted_in(self) -> None:
        """A repair pass before the exact model, whose search alone gets nowhere on big pools: while a
        host holds a single-case unit it wants less (``host_preference``) than an unplaced single case
        of the same urgency and vulnerability that has the host among its candidates and fits once
        the other leaves, swap them (every protection level stays). Kept only if it lowers the exact
        number of blocking pairs; it is then the model's hint."""
        before = blocking_pairs(self.snapshot, self._assignments(self.choice))
        if not before:
            return
        choice = self.choice.copy()
        single = np.array([len(u.members) == 1 for u in self.units], dtype=bool)
        used = np.zeros_like(self.remaining)
        placed = np.flatnonzero(choice >= 0)
        np.add.at(used, self.x_host[choice[placed]], self.unit_demand[placed])
        wish = {}  # (unit, host) -> host preference, for single units
        for u in np.flatnonzero(single).tolist():
            case = self.cases[self.units[u].members[0]]
            for p in range(int(self.start[u]), int(self.start[u + 1])):
                wish[(u, int(self.x_host[p]))] = (host_preference(case, self.hosts[int(self.x_host[p])]), p)

        def kind(u: int) -> tuple[str, bool]:
            case = self.cases[self.units[u].members[0]]
            return case.urgency, case.vulnerable

        at: dict[int, set[int]] = defaultdict(set)  # host -> placed single units
        for m in np.flatnonzero((choice >= 0) & single).tolist():
            at[int(self.x_host[choice[m]])].add(m)

        for _ in range(SWAP_PASSES):
            swapped = False
            waiting = [u for u in np.flatnonzero(single & (choice < 0)).tolist() if self.start[u + 1] > self.start[u]]
            for u in waiting:
                best: tuple[float, int, int] | None = None
                for p in range(int(self.start[u]), int(self.start[u + 1])):
                    j = int(self.x_host[p])
                    wanted = wish[(u, j)][0]
                    for m in sorted(at[j]):
                        if kind(m) != kind(u):
                            continue
                        gain = wanted - wish[(m, j)][0]
                        room = self.remaining[j] - used[j] + self.unit_demand[m] - self.unit_demand[u]
                        if gain > 0 and (room >= 0).all() and (best is None or gain > best[0]):
                            best = (gain, m, p)
                if best is not None:
                    _, m, p = best
                    j = int(self.x_host[p])
                    used[j] += self.unit_demand[u] - self.unit_demand[m]
                    choice[u], choice[m] = p, -1
                    at[j].discard(m)
                    at[j].add(u)
                    swapped = True
            if not swapped:
                break
        if blocking_pairs(self.snapshot, self._assignments(choice)) < before:
            self.choice = choice

    def stabilise(self) -> None:
        """Stable mode, after protection: minimise the number of blocking pairs among the solutions
        that keep every protection level, then maximise arrival seniority among those, so that the
        welfare phase starts from the placed set found here."""
        levels, floors = self.protection
        self._exchange_candidates()
        if len(self.cases) * len(self.hosts) > STABLE_MODEL_MAX_PAIRS:
            self.stable_model_searched = False
            self.phases.append(PhaseRecord("stable:blocking_pairs", "NOT_SEARCHED", None, None, 0.0, 0.0))
            return
        self._swap_wanted_in()
        units = np.flatnonzero(np.array([len(u.hosts) > 0 for u in self.units], dtype=bool))
        model, positions, local_unit = self._assignment_model(units, exactly=False)
        for level, floor in zip(levels, floors, strict=True):
            coefficients = level.weights[units][local_unit]
            keep = np.flatnonzero(coefficients)
            model.linear(keep, coefficients[keep], floor, int(coefficients.sum()))
        indicators, constant, definitions = self._add_blocking(model, units, positions)

        def full_hint(choice: IntArray) -> IntArray:
            values = np.zeros(model.n, dtype=np.int64)
            values[: len(positions)] = choice[units][local_unit] == positions
            _complete(definitions, values)
            return values

        def choice_of(values: IntArray) -> IntArray:
            choice = np.full(len(self.units), -1, dtype=np.int64)
            on = np.flatnonzero(values[: len(positions)])
            choice[units[local_unit[on]]] = positions[on]
            return choice

        model.maximize(indicators, [-1] * len(indicators), -constant)
        model.hint(full_hint(self.choice))
        solved = self._run_model("stable:blocking_pairs", model, (self.det_budget - self.det_used) / 3, 0.0, 1)
        # the fewest found: the solver's solution or its hint, by the exact count (in a solution that
        # is not proven optimal, indicators may be true without need)
        best, fewest = self.choice, blocking_pairs(self.snapshot, self._assignments(self.choice))
        if solved.values is not None:
            found = choice_of(solved.values)
            count = blocking_pairs(self.snapshot, self._assignments(found))
            if count < fewest:
                best, fewest = found, count
        self.blocking_found = fewest
        self.blocking_lower = max(0, -round(solved.bound)) if solved.bound is not None else 0
        self.choice = best
        # among the solutions with that few blocking pairs: arrival seniority, as protection does
        model.linear(indicators, [1] * len(indicators), 0, max(fewest - constant, 0))
        model.proto.clear_objective()
        model.proto.clear_solution_hint()
        seniority = self.unit_seniority[units][local_unit]
        keep = np.flatnonzero(seniority)
        model.maximize(keep, seniority[keep])
        model.hint(full_hint(best))
        again = self._run_model("stable:arrival", model, (self.det_budget - self.det_used) / 2, 0.0, 1)
        if again.values is not None:
            self.choice = choice_of(again.values)

    # -- dynamic mode: plan for the arrivals still expected -------------------------------------------

    def sample_future(self) -> None:
        """Phantom future cases, per scenario: ``min(expected_arrivals, FUTURE_SAMPLE)`` cases drawn
        with replacement (seeded) from the ``arrival_history`` latest arrivals of the pool, fixed ones
        included. Each keeps everything of the case it copies but its id and links, and stands for
        ``self.future_count[k]`` future cases (the expected arrivals shared out evenly), so the plan
        has integer counts per (phantom, host) instead of one variable per expected case."""
        params = self.params
        history = sorted(self.cases, key=lambda c: (c.arrived_seq, c.case_id))[-params.arrival_history:]
        self.future: list[Case] = []
        self.future_scenario: list[int] = []
        self.future_count: list[int] = []
        if not history or not params.expected_arrivals:
            return
        rng = np.random.default_rng(params.seed)
        last = max(c.arrived_seq for c in history)
        sample = min(params.expected_arrivals, FUTURE_SAMPLE)
        share, extra = divmod(params.expected_arrivals, sample)
        for s in range(params.scenarios):
            for k, drawn in enumerate(rng.integers(0, len(history), size=sample).tolist()):
                template = history[drawn]
                self.future.append(dataclasses.replace(template, case_id=f"~future-{s}-{k:06d}",
                                                       linked_case_ids=frozenset(), arrived_seq=last + 1 + k))
                self.future_scenario.append(s)
                self.future_count.append(share + (1 if k < extra else 0))

    def _future_candidates(self) -> tuple[list[IntArray], list[IntArray], IntArray, IntArray]:
        """Candidate hosts and integer gains of every phantom case, as for a present case
        (``_single_units``), and each phantom's job and study bonus."""
        scores = PoolScores(tuple(self.future), self.hosts, self.snapshot.pool_id, frozenset(), self.params.weights)
        hosts_of: list[IntArray] = []
        gains_of: list[IntArray] = []
        job = np.zeros(len(self.future), dtype=np.int64)
        study = np.zeros(len(self.future), dtype=np.int64)
        pruned = self.pruned
        for start in range(0, len(self.future), CHUNK):
            chunk = list(range(start, min(start + CHUNK, len(self.future))))
            rows = scores.rows(chunk)
            base, job[chunk], study[chunk] = scores.integer_rows(rows)
            potential = base + job[chunk][:, None] * rows.work_open + study[chunk][:, None] * rows.study_open
            demand = np.array([demand_of(self.future[k]) for k in chunk], dtype=np.int64).reshape(len(chunk), 4)
            keys = np.array([_key(self.future[k].case_id) for k in chunk], dtype=np.int64)
            pending = np.full(len(chunk), -1, dtype=np.int64)
            for r, chosen in enumerate(self._top(rows.allowed & self._fits(demand), potential, pending, keys)):
                hosts_of.append(chosen)
                gains_of.append(base[r, chosen].astype(np.int64))
        self.pruned = pruned  # phantoms' pruning says nothing about real cases
        protected_bonus = PROTECTED_ARRIVAL_WEIGHT * self._largest_gain()
        for k, phantom in enumerate(self.future):
            if phantom.urgency in ("emergency", "urgent") or phantom.vulnerable:
                gains_of[k] = gains_of[k] + protected_bonus
        return hosts_of, gains_of, job, study

    def _plan_offers(self, f_case: IntArray, f_host: IntArray, job: IntArray,
                     study: IntArray) -> tuple[Offers, Offers, IntArray]:
        """The present positions' offers (``self.offers``, as ``_offers`` made them), the phantoms', and
        the jobs and study places left in each slot they use."""
        slot_of: dict[tuple[int, str | None], int] = {}
        groups: dict[tuple[int, int, bool], int] = {}

        def add(offers: list[list[int]], position: int, person: int, host: int, occupation: str | None,
                gain: int) -> None:
            slot = slot_of.setdefault((host, occupation), len(slot_of))
            group = groups.setdefault((position, person, occupation is None), len(groups))
            for column, value in zip(offers, (position, group, slot, gain), strict=True):
                column.append(value)

        present: list[list[int]] = [[], [], [], []]
        for local, mine in enumerate(self.position_offers):
            for q in mine:
                i, j, occupation = self.offers[q]
                add(present, local, i, j, occupation, self.offer_gain[q])
        groups.clear()
        future: list[list[int]] = [[], [], [], []]
        for q, (k, j) in enumerate(zip(f_case.tolist(), f_host.tolist(), strict=True)):
            phantom = self.future[k]
            if job[k] > 0:
                for occupation in sorted(phantom.occupations):
                    if occupation in self.jobs_left[j]:
                        add(future, q, k, j, occupation, int(job[k]))
            if phantom.wants_study and self.study_left[j] > 0 and study[k] > 0:
                add(future, q, k, j, None, int(study[k]))
        left = [self._slot_left(j, o) for j, o in slot_of]

        def offers(columns: list[list[int]]) -> Offers:
            return Offers(*(np.asarray(column, dtype=np.int64) for column in columns))

        return offers(present), offers(future), np.asarray(left, dtype=np.int64)

    def _present(self, positions: IntArray, gain: IntArray, offers: Offers) -> Present:
        """The placed units' candidate ``positions`` as future.py takes them, with ``offers`` there."""
        units = self.x_unit[positions]
        return Present(unit=units, host=self.x_host[positions], demand=self.unit_demand[units],
                       gain=gain[positions], offers=offers)

    def _may_hold_back(self, units: IntArray) -> frozenset[int]:
        """Those of ``units`` whose placement no protection level asks for (no emergency, urgent or
        vulnerable member) and that hold no pending proposal (a proposal under review is not withdrawn
        for arrivals that may not come)."""
        levels, _ = self.protection
        protected = sum((level.weights for level in levels if level.name in ("emergency", "urgent", "vulnerable")),
                        np.zeros(len(self.units), dtype=np.int64))
        return frozenset(u for u in units.tolist()
                         if not protected[u] and all(self.pending_host[i] < 0 for i in self.units[u].members))

    def _relaxed_plan(self, positions: IntArray, may_hold_back: frozenset[int], scenarios: int, budget: float,
                      candidates: tuple[list[IntArray], list[IntArray], IntArray, IntArray]) -> Plan | None:
        """The relaxed plan for the present ``positions`` (leaving ``may_hold_back`` units unplaced if
        it gains) and the phantoms of the first ``scenarios`` scenarios (the first of the phantoms'
        ``candidates``), recorded as a phase."""
        began = time.perf_counter()
        kept = len(self.future)
        hosts_of, gains_of, job, study = (candidates[0][:kept], candidates[1][:kept], candidates[2][:kept],
                                          candidates[3][:kept])
        f_case = np.repeat(np.arange(len(self.future)), [len(h) for h in hosts_of]).astype(np.int64)
        f_host = np.concatenate([*hosts_of, np.zeros(0, dtype=np.int64)]).astype(np.int64)
        self._offers(positions, 0)
        present_offers, future_offers, slots_left = self._plan_offers(f_case, f_host, job, study)
        future = Future(
            case=f_case, scenario=np.asarray(self.future_scenario, dtype=np.int64)[f_case],
            count=np.asarray(self.future_count, dtype=np.int64)[f_case], host=f_host,
            demand=np.array([demand_of(self.future[k]) for k in f_case.tolist()],
                            dtype=np.int64).reshape(len(f_case), len(DEMAND_DIMENSIONS)),
            gain=np.concatenate([*gains_of, np.zeros(0, dtype=np.int64)]).astype(np.int64), offers=future_offers)
        present = dataclasses.replace(self._present(positions, self.x_gain, present_offers),
                                      may_hold_back=may_hold_back)
        offers = len(present.offers.gain) + len(future.offers.gain)
        size = len(present.host) + len(future.host) + PLAN_OFFER_WEIGHT * offers
        too_big = scenarios > 1 and size > PLAN_SIZE_PER_UNIT * budget
        plan = None if too_big else relaxed_plan(present, future, self.remaining, slots_left, scenarios,
                                                 deterministic_s=budget, wall_s=self._wall_left())
        self.phases.append(PhaseRecord(
            f"dynamic:relaxed_plan:{scenarios}_scenarios",
            "TOO_BIG_FOR_BUDGET" if too_big else "OPTIMAL" if plan else "NOT_SOLVED",
            None if plan is None else float(plan.present @ present.gain) / SCORE_SCALE, None, 0.0,
            time.perf_counter() - began))
        return plan

    def dynamic_welfare(self) -> tuple[float, float, str]:
        """The placed cases where the relaxed two-stage plan puts them (see future.py), rounded by the
        welfare phase: each position's gain is raised by its share in the plan times more than any
        welfare difference, so the plan decides and welfare breaks its ties and rounds its fractions.
        A unit the plan may hold back and places less than half is held back (the dynamic benchmark's
        labour pools: 96.3 % of hindsight with it, 95.3 % without; see docs/matching.md).
        A plan that GLOP does not solve within its budget is tried again with the first half of the
        scenarios (measured: 32 scenarios of a 400 x 100 pool were not solved in the first batches, and
        placing those as the welfare mode does cost 1.7 points of the share of hindsight), unless the
        wall stop has passed; the welfare mode places the cases when no plan is solved.
        Returns the proposals' own welfare, and a bound as far above it as the rounding phase's."""
        placed_units = np.flatnonzero(self.choice >= 0)
        positions = self._positions(placed_units)
        # the plan may use what is left of the budget, as the welfare phase would; GLOP's
        # deterministic time is not counted as CP-SAT's, so the rounding gets the same again
        budget = max(self.det_budget - self.det_used, self.det_budget * (1.0 - PROTECTION_BUDGET_SHARE))
        scenarios = self.params.scenarios
        candidates = self._future_candidates()  # scored once: a retry plans for a prefix of the phantoms
        may_hold_back = self._may_hold_back(placed_units)
        while (plan := self._relaxed_plan(positions, may_hold_back, scenarios, budget, candidates)) is None and (
                scenarios > 1) and not self._past_wall_stop():
            scenarios //= 2
            # phantoms were drawn scenario by scenario, so the first scenarios are a prefix
            kept = sum(1 for s in self.future_scenario if s < scenarios)
            self.future, self.future_scenario = self.future[:kept], self.future_scenario[:kept]
            self.future_count = self.future_count[:kept]
        if plan is None:
            self.warnings.append("dynamic: the relaxed plan was not solved; placed as the welfare mode places")
            return self.welfare()
        if scenarios < self.params.scenarios:
            self.warnings.append(f"dynamic: the relaxed plan was solved with {scenarios} of "
                                 f"{self.params.scenarios} scenarios")
        self.future_placed = plan.future_placed
        share = np.zeros(len(self.units))
        np.add.at(share, self.x_unit[positions], plan.present)
        self.held_back = placed_units[share[placed_units] < 0.5]
        self.choice[self.held_back] = -1
        self.phases.append(PhaseRecord("dynamic:held_back", "HELD", len(self.held_back), None, 0.0, 0.0))
        placed_units = np.flatnonzero(self.choice >= 0)
        follow = np.zeros_like(self.x_gain)
        follow[positions] = np.rint(plan.present * (PLAN_WEIGHT * self._largest_gain() + 1))
        # no gap limit: the plan's weight inflates the objective, so a relative gap on it would leave
        # welfare unoptimised
        objective, bound, status = self.welfare(budget, phase="dynamic:follow_plan", relative_gap=0.0,
                                                bonus=follow)
        followed = float(follow[self.choice[placed_units]].sum()) / SCORE_SCALE
        return objective - followed, bound - followed, status

    # -- result -------------------------------------------------------------------------------------

    def result(self, objective: float, bound: float, status: str, digest: str) -> SolveResult:
        """Turn the solution into proposals, counts and explanations."""
        assignments = dict(self.snapshot.fixed)
        new_host: dict[int, int] = {}
        for u in np.flatnonzero(self.choice >= 0):
            for i in self.units[u].members:
                new_host[i] = int(self.x_host[self.choice[u]])
        job_taken: dict[int, str] = {}
        study_taken: set[int] = set()
        offers = getattr(self, "offers", [])
        taken = getattr(self, "offer_taken", np.zeros(0, dtype=np.int64))
        for q in np.flatnonzero(taken):
            i, _, o = offers[q]
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
        explanations, blocking = self._explain_and_count(assignments)
        if self.params.mechanism == "stable" and not len(self.x_host):
            self.blocking_found = self.blocking_lower = blocking  # nothing can move: the only solution
        stability = self._stability(blocking)
        if self.params.mechanism == "stable" and blocking:
            self.warnings.append(stability)
        return SolveResult(
            assignments=assignments, new_proposals=new_proposals, withdrawn=withdrawn,
            jobs=dict(sorted(self.job_of.items())), study_places=tuple(sorted(self.study_of)),
            unplaced=tuple(c.case_id for c in self.cases if c.case_id not in assignments),
            objective=objective, bound=bound, gap=gap, status=status,
            duration_s=time.perf_counter() - self.started, solver_version=_SOLVER_VERSION,
            inputs_digest=digest, protected_placed=protected, explanations=explanations,
            phases=tuple(self.phases), warnings=tuple(self.warnings), wall_limit_hit=self.wall_limit_hit,
            mechanism=self.params.mechanism,
            blocking_pairs=blocking,
            blocking_pairs_bound=self.blocking_lower if self.params.mechanism == "stable" else None,
            stability=stability, future_placed=getattr(self, "future_placed", None),
            held_back=tuple(sorted(self.cases[i].case_id for u in self.held_back.tolist()
                                   for i in self.units[u].members)),
        )

    def _stability(self, blocking: int) -> str:
        """The sentence a run reports about stability (see ``SolveResult.stability``)."""
        if blocking == 0:
            return "stable: no case and host would both rather be matched to each other"
        if self.params.mechanism != "stable":
            return f"{blocking} blocking pairs ({self.params.mechanism} mode does not seek stability)"
        over = " over the candidate hosts" if self.pruned else ""
        if self.kept:
            over += f" given the {self.kept} pending proposals kept by this re-solve"
        if not self.stable_model_searched:
            return (f"{blocking} blocking pairs; whether a stable matching keeps the protection levels is not "
                    "known (the exact model is not searched on a pool this big)")
        if self.blocking_found is None or self.blocking_lower is None:
            return f"{blocking} blocking pairs: the stability phase found no solution within its budget"
        if self.blocking_lower > 0:
            return (f"no stable matching keeps the protection levels{over}: every such matching has at "
                    f"least {self.blocking_lower} blocking pairs; this one has {blocking}")
        return (f"{blocking} blocking pairs; whether a stable matching keeps the protection levels is not "
                "proven (the stability phase ended at its budget)")

    def _explain_and_count(self, assignments: Mapping[str, str]) -> tuple[dict[str, Explanation], int]:
        """One explanation per placed case (see explanation.py), and the blocking pairs of
        ``assignments``, from one pass over the pairs' scores: on 20,000 x 2,000, scoring the pairs
        once for each took 10.7 s of a 64 s solve on a slow machine."""
        placed = {self.case_index[c]: self.host_index[h] for c, h in assignments.items()
                  if c in self.case_index and h in self.host_index}
        unit_of = {i: u for u in self.units for i in u.members}
        blocking = _BlockingCount(self.cases, self.scores, assignments)
        out: dict[str, Explanation] = {}
        count = 0
        for start in range(0, len(self.cases), CHUNK):
            chunk = list(range(start, min(start + CHUNK, len(self.cases))))
            rows = self.scores.rows(chunk)
            count += blocking.count(chunk, rows)
            for r, i in enumerate(chunk):
                if i in placed:
                    out[self.cases[i].case_id] = self._explain_one(i, placed[i], rows, r, unit_of.get(i))
        return dict(sorted(out.items())), count

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
        binding = [d for d, used, total in zip(DEMAND_DIMENSIONS, self.used[j], capacity_of(host), strict=True)
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
        demand = np.sum([demand_of(self.cases[m]) for m in members], axis=0)
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
    began = time.perf_counter()
    kept: frozenset[str] = frozenset()
    if params.scope == "changes" and snapshot.pending:
        # proposals nothing touched stay as they are, as if approved (neighbourhood.py)
        kept = kept_proposals(snapshot, params.weights)
        snapshot = dataclasses.replace(
            snapshot, fixed={**snapshot.fixed, **{c: snapshot.pending[c] for c in kept}},
            pending={c: h for c, h in snapshot.pending.items() if c not in kept})
    run = _Run(snapshot, params)
    run.started = began
    run.kept = len(kept)
    if params.scope == "changes":
        run.phases.append(PhaseRecord("kept_pending", "KEPT", len(kept), len(kept) + len(snapshot.pending),
                                      0.0, time.perf_counter() - began))
    run.fixed_usage()
    run.build_units()
    if len(run.x_host):
        run.protect()
        if params.mechanism == "stable":
            run.stabilise()
        if params.mechanism == "dynamic" and params.expected_arrivals:
            run.sample_future()
            objective, bound, status = run.dynamic_welfare()
        else:
            objective, bound, status = run.welfare()
        if params.mechanism == "stable":
            objective, bound, status = run.prefer_exchanged(objective, bound, status)
            objective, bound, status = run.fewer_blocking_by_moves(objective, bound, status)
    else:
        objective = bound = -run.disruption_offset() / SCORE_SCALE
        status = "OPTIMAL"
    return run.result(objective, bound, status, digest)


def blocking_pairs(snapshot: PoolSnapshot, assignments: Mapping[str, str]) -> int:
    """Count (case, host) pairs that would rather be matched with each other than keep ``assignments``.

    Why: under capacities in several dimensions a pairwise-stable matching may not exist, so
    instead of promising stability we report how far a solution is from it. A pair counts when it
    is compatible and not declined, the case is not already with that host, the case *prefers* the
    host by its own stated ranking (``beneficiary_preference``; an unplaced case prefers any
    compatible host), and the host would take the household in, in people, beds, accessible units
    and school places, by letting go of the cases it wants less (``host_preference``): room left as
    it is, or made by those cases. A host that would have to let go of a case it wants as much or
    more would not rather be matched with this one, so that pair does not block.
    """
    cases = tuple(sorted(snapshot.cases, key=lambda c: c.case_id))
    hosts = tuple(sorted(snapshot.hosts, key=lambda h: h.host_id))
    if not cases or not hosts:
        return 0
    scores = PoolScores(cases, hosts, snapshot.pool_id, snapshot.forbidden, Weights())
    blocking = _BlockingCount(cases, scores, assignments)
    chunks = (list(range(start, min(start + CHUNK, len(cases)))) for start in range(0, len(cases), CHUNK))
    return sum(blocking.count(chunk, scores.rows(chunk)) for chunk in chunks)


class _BlockingCount:
    """``blocking_pairs``, counted chunk by chunk of cases (indices into ``cases``, sorted by id) on
    rows of ``scores``, so that a caller who scores the pairs anyway need not score them again."""

    def __init__(self, cases: Sequence[Case], scores: PoolScores, assignments: Mapping[str, str]) -> None:
        hosts = scores.hosts
        self.cases = cases
        self.capacity = scores.capacity
        self.assigned = np.full(len(cases), -1, dtype=np.int64)
        self.current = np.full(len(cases), -np.inf)
        held = [(i, scores.host_index.get(assignments.get(case.case_id, ""), -1)) for i, case in enumerate(cases)]
        held = [(i, j) for i, j in held if j >= 0]
        for i, j in held:
            self.assigned[i] = j
            self.current[i] = beneficiary_preference(cases[i], hosts[j])
        self.held_host = np.array([j for _, j in held], dtype=np.int64)
        self.held_wish = np.array([host_preference(cases[i], hosts[j]) for i, j in held], dtype=np.float64)
        self.held_demand = np.array([demand_of(cases[i]) for i, _ in held], dtype=np.int64).reshape(
            len(held), len(DEMAND_DIMENSIONS))
        self.left: dict[float, IntArray] = {}

    def _left_keeping(self, wish: float) -> IntArray:
        """Each host's capacity left beside the cases it holds that it wants at least ``wish``."""
        if wish not in self.left:
            kept = self.held_wish >= wish
            load = np.zeros_like(self.capacity)
            np.add.at(load, self.held_host[kept], self.held_demand[kept])
            self.left[wish] = self.capacity - load
        return self.left[wish]

    def count(self, chunk: list[int], rows: ScoreRows) -> int:
        demand = np.array([demand_of(self.cases[i]) for i in chunk], dtype=np.int64)
        takes = np.zeros(rows.allowed.shape, dtype=bool)
        for wish in np.unique(rows.host_preference[rows.allowed]).tolist():
            fits = (demand[:, None, :] <= self._left_keeping(wish)[None, :, :]).all(axis=2)
            takes |= (rows.host_preference == wish) & fits
        prefers = rows.beneficiary_preference > self.current[chunk][:, None]
        elsewhere = np.arange(len(self.capacity))[None, :] != self.assigned[chunk][:, None]
        return int((rows.allowed & prefers & elsewhere & takes).sum())
