"""Every (case, host) pair's scores at once, as arrays: the numbers the solver's models are built from.

The model's own functions (``model.py``: ``beneficiary_preference``, ``host_preference``, ``ties``,
``prospects_parts``) score one pair and define what each criterion means; here the same criteria are
computed for many cases against every host of a pool in vectorised form, because a pool of 20,000 cases
and 2,000 hosts has 40 million pairs. ``tests/unit/matching/test_solver.py`` checks that both agree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from services.matching.model import (
    HOST_TYPES,
    LANGUAGE_SHARE,
    PLACE_SHARE,
    STUDY_SHARE,
    SUPPORTED_LANGUAGE_FIT,
    WORK_SHARE,
    Case,
    Host,
    Weights,
    prospects_denominator,
)

#: Scores are floats in configuration and integers in CP-SAT: 1 score unit = SCORE_SCALE.
SCORE_SCALE: Final = 1000
#: Capacity dimensions a household always uses (optional offers - jobs, study - are separate).
DEMAND_DIMENSIONS: Final = ("people", "beds", "accessible_units", "school_places")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def demand_of(case: Case) -> tuple[int, int, int, int]:
    return (case.people, case.beds, 1 if case.needs_accessible else 0, case.school_places)


def capacity_of(host: Host) -> tuple[int, int, int, int]:
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

        self.capacity: IntArray = np.array([capacity_of(h) for h in hosts], dtype=np.int64).reshape(
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
        demand = np.array([demand_of(c) for c in cs], dtype=np.int64).reshape(n_cases, 4)
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
