"""A CP-SAT model built from arrays, for the matching solver's large boolean assignment models.

Why not ``cp_model.CpModel`` call by call: a pool of 20,000 cases keeps ~40 candidate hosts per case,
so a model has ~800,000 booleans; creating them one Python call at a time took 4-8 s on the 2-core
machine, more than the solve of a re-solve. Here the variables come from one text-format parse and
each constraint is one proto message filled with whole lists, which is 3-5 times faster. The model
is the same CP-SAT proto either way, so the solver, its determinism and its answers do not change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ortools.sat.python import cp_model

IntArray = npt.NDArray[np.int64]
#: variable numbers or coefficients: a list, a range or an integer array
Ints = Sequence[int] | npt.NDArray[np.integer]


@dataclass(frozen=True, slots=True)
class Solved:
    """What one CP-SAT solve returned (``values`` is None when it found no solution)."""

    status: str
    objective: float | None
    bound: float | None
    values: IntArray | None
    deterministic_time: float
    wall_time_s: float
    wall_limit_hit: bool


class ArrayModel:
    """``n`` boolean variables numbered 0..n-1 (more booleans and integers can be added), linear
    constraints and one objective to maximise."""

    def __init__(self, n: int) -> None:
        self.model = cp_model.CpModel()
        self.proto = self.model.proto
        self.n = n
        if n:
            self.proto.merge_text_format("variables { domain: [0, 1] }\n" * n)

    def new_bools(self, count: int) -> range:
        """``count`` more boolean variables, numbered after the existing ones."""
        first = self.n
        if count:
            self.proto.merge_text_format("variables { domain: [0, 1] }\n" * count)
            self.n += count
        return range(first, first + count)

    def new_ints(self, uppers: Sequence[int]) -> range:
        """Integer variables in [0, upper], one per entry of ``uppers``, numbered after the existing ones."""
        first = self.n
        if len(uppers):
            self.proto.merge_text_format("".join(f"variables {{ domain: [0, {int(u)}] }}\n" for u in uppers))
            self.n += len(uppers)
        return range(first, first + len(uppers))

    def bool_or(self, literals: Ints) -> None:
        """At least one literal true; literal ``-v - 1`` is the negation of variable ``v``."""
        self.proto.constraints.add().bool_or.literals.extend([int(v) for v in literals])

    def at_most_one(self, variables: Ints) -> None:
        if len(variables) > 1:
            self.proto.constraints.add().at_most_one.literals.extend([int(v) for v in variables])

    def exactly_one(self, variables: Ints) -> None:
        self.proto.constraints.add().exactly_one.literals.extend([int(v) for v in variables])

    def linear(self, variables: Ints, coefficients: Ints, low: int, high: int, only_if: int | None = None) -> None:
        """``low <= sum(coefficients * variables) <= high`` (only when variable ``only_if`` is true, if given)."""
        constraint = self.proto.constraints.add()
        if only_if is not None:
            constraint.enforcement_literal.append(int(only_if))
        linear = constraint.linear
        linear.vars.extend([int(v) for v in variables])
        linear.coeffs.extend([int(c) for c in coefficients])
        linear.domain.extend([int(low), int(high)])

    def maximize(self, variables: Ints, coefficients: Ints, offset: int = 0) -> None:
        """Maximise ``sum(coefficients * variables) + offset`` (CP-SAT minimises the negation)."""
        objective = self.proto.objective
        objective.vars.extend([int(v) for v in variables])
        objective.coeffs.extend([-int(c) for c in coefficients])
        objective.offset = -float(offset)
        objective.scaling_factor = -1.0

    def hint(self, values: IntArray) -> None:
        """Hint the first ``len(values)`` variables."""
        hint = self.proto.solution_hint
        hint.vars.extend(range(len(values)))
        hint.values.extend(np.asarray(values, dtype=np.int64).tolist())

    def solve(self, *, deterministic_s: float, wall_s: float | None, seed: int, workers: int,
              relative_gap: float, linearization_level: int | None = None) -> Solved:
        """Solve with a deterministic budget (replayable) and an optional wall-clock stop;
        ``linearization_level`` overrides CP-SAT's (1) where given. Past the stop (``wall_s`` <= 0)
        no search starts: measured on 20,000 x 2,000, CP-SAT took 0.9-1.6 s to load each model that it
        then stopped at once."""
        if wall_s is not None and wall_s <= 0:
            return Solved("UNKNOWN", None, None, None, 0.0, 0.0, True)
        solver = cp_model.CpSolver()
        p = solver.parameters
        p.num_workers = workers
        p.random_seed = seed
        p.max_deterministic_time = max(deterministic_s, 1e-3)
        p.relative_gap_limit = relative_gap
        if wall_s is not None:
            p.max_time_in_seconds = max(wall_s, 0.01)
        # measured on 2,000 cases x 200 hosts: these presolve steps took most of each solve's budget
        # (the big-overlap search ~1 deterministic second, probing ~3 wall seconds) for no gain
        p.find_big_linear_overlap = False
        p.cp_model_probing_level = 0
        p.symmetry_level = 0
        # on re-solves of 3,000 cases, repeated presolve rounds took seconds of wall time that the
        # deterministic clock does not count; one round keeps what matters (the welfare LP's bound)
        p.max_presolve_iterations = 1
        if linearization_level is not None:
            p.linearization_level = linearization_level
        if workers > 1:
            p.interleave_search = True  # deterministic whatever the number of workers
        status = solver.solve(self.model)
        name = solver.status_name(status)
        if name == "MODEL_INVALID":
            raise RuntimeError(f"matching model invalid: {self.model.validate()}")
        found = name in ("OPTIMAL", "FEASIBLE")
        values = np.asarray(solver.response_proto.solution, dtype=np.int64) if found else None
        # Unproven and short of the deterministic budget: only the wall clock stops a search there (a gap
        # limit reached reports OPTIMAL). Comparing elapsed time with the limit instead missed stops that
        # CP-SAT's own clock made a little early on a loaded machine.
        wall_limit_hit = (wall_s is not None and name not in ("OPTIMAL", "INFEASIBLE")
                          and solver.deterministic_time < 0.99 * p.max_deterministic_time)
        return Solved(name, solver.objective_value if found else None,
                      solver.best_objective_bound if found else None, values,
                      solver.deterministic_time, solver.wall_time, wall_limit_hit)
