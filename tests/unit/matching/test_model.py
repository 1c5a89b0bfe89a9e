"""The matching domain model: hard-fact compatibility, transparent scores, and the inputs digest."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.model import (
    Capacity,
    Case,
    Host,
    PoolSnapshot,
    SolverParams,
    Weights,
    beneficiary_preference,
    compatible,
    host_preference,
    inputs_digest,
    pair_score,
    prospects,
    rank_score,
    ties,
)
from tests.unit.matching.pools import POOL, cases, hosts, pools

BASE_CASE = Case(case_id="c", pool_id=POOL, people=3, beds=3, school_places=1)
BASE_HOST = Host(host_id="h", pool_id=POOL, host_type="municipality", place="north",
                 capacity=Capacity(people=4, beds=4, accessible_units=1, school_places=2))


@pytest.mark.parametrize(
    ("case_change", "host_change", "reason"),
    [
        ({}, {}, None),
        ({"pool_id": "other"}, {}, "different pool"),
        ({}, {"excluded_case_ids": frozenset({"c"})}, "excluded by host"),
        ({}, {"max_household_size": 2}, "household larger than host accepts (3 > 2)"),
        ({"people": 5, "beds": 3}, {}, "capacity people (5 > 4)"),
        ({"beds": 5}, {}, "capacity beds (5 > 4)"),
        ({"needs_accessible": True}, {"capacity": Capacity(people=4, beds=4, school_places=2)}, "no accessible unit"),
        ({"school_places": 3}, {}, "capacity school places (3 > 2)"),
        ({"medical_needs": frozenset({"dialysis", "insulin"})}, {"medical_services": frozenset({"insulin"})},
         "medical need dialysis not served"),
        ({"needs_language_support": True}, {}, "no language support"),
        ({"needs_language_support": True, "medical_needs": frozenset({"insulin"})},
         {"language_support": True, "medical_services": frozenset({"insulin", "dialysis"})}, None),
    ],
)
def test_compatibility_gives_a_readable_reason(case_change: dict[str, object], host_change: dict[str, object],
                                              reason: str | None) -> None:
    c = dataclasses.replace(BASE_CASE, **case_change)  # type: ignore[arg-type]
    h = dataclasses.replace(BASE_HOST, **host_change)  # type: ignore[arg-type]
    assert compatible(c, h) == reason


def test_rank_score_is_one_for_the_first_choice_and_zero_when_unranked() -> None:
    assert rank_score(("a", "b", "c", "d"), "a") == 1.0
    assert rank_score(("a", "b", "c", "d"), "d") == 0.25
    assert rank_score(("a", "b"), "z") == 0.0
    assert rank_score((), "z") == 1.0  # no stated preference: every option is as wished


def test_scores_follow_the_stated_wishes() -> None:
    c = dataclasses.replace(BASE_CASE, preferred_places=("south", "north"), preferred_host_types=("municipality",),
                            languages=frozenset({"ar"}), tie_places=frozenset({"north"}))
    assert beneficiary_preference(c, BASE_HOST) == 0.75 * 0.5 + 0.25 * 1.0
    assert host_preference(c, BASE_HOST) == 1.0  # no wishes stated
    assert host_preference(c, dataclasses.replace(BASE_HOST, preferred_languages=frozenset({"uk"}))) == 0.0
    assert ties(c, BASE_HOST) == 1.0
    assert pair_score(c, BASE_HOST, Weights()) == pytest.approx(
        1.0 * 0.625 + 0.5 * 1.0 + 1.0 * prospects(c, BASE_HOST) + 0.5 * 1.0)


def test_prospects_credit_work_study_and_language() -> None:
    employer = dataclasses.replace(BASE_HOST, host_type="employer", languages=frozenset({"ar"}),
                                   capacity=Capacity(people=4, beds=4, jobs={"nurse": 2, "cook": 0}, study_places=1))
    nurse = dataclasses.replace(BASE_CASE, languages=frozenset({"ar"}), occupations=frozenset({"nurse"}))
    cook = dataclasses.replace(nurse, occupations=frozenset({"cook"}))
    assert prospects(nurse, employer) == 1.0
    assert prospects(cook, employer) == pytest.approx(0.5)  # language 0.4 of 0.8; no open cook job
    # a household without job seekers is not ranked below an "employable" one
    no_job_seekers = dataclasses.replace(nurse, occupations=frozenset())
    assert prospects(no_job_seekers, employer) == 1.0
    student = dataclasses.replace(no_job_seekers, wants_study=True)
    assert prospects(student, employer) == 1.0
    supported = dataclasses.replace(employer, languages=frozenset(), language_support=True)
    assert prospects(no_job_seekers, supported) == 0.5


@settings(max_examples=60, deadline=None)
@given(cases("c1", 0), cases("c2", 7), hosts("h", ["c1", "c2"]))
def test_prospects_use_only_languages_occupations_and_study(first: Case, second: Case, h: Host) -> None:
    """Prospects must not shift with anything but what the rule names: urgency, vulnerability, family
    size, medical needs, wishes or identity never change them (and the model has no nationality,
    ethnicity or religion fields that could)."""
    value = prospects(first, h)
    assert 0.0 <= value <= 1.0
    twin = dataclasses.replace(second, languages=first.languages, occupations=first.occupations,
                               wants_study=first.wants_study)
    assert prospects(twin, h) == value
    for name in ("beneficiary_preference", "host_preference", "ties"):
        assert 0.0 <= globals()[name](first, h) <= 1.0


@settings(max_examples=40, deadline=None)
@given(pools(), st.randoms(use_true_random=False))
def test_digest_ignores_order_but_not_content(snapshot: PoolSnapshot, rnd: random.Random) -> None:
    params = SolverParams()
    shuffled_cases = [dataclasses.replace(c, languages=frozenset(sorted(c.languages, reverse=True)))
                      for c in snapshot.cases]
    shuffled_hosts = list(snapshot.hosts)
    rnd.shuffle(shuffled_cases)
    rnd.shuffle(shuffled_hosts)
    reordered = PoolSnapshot(pool_id=snapshot.pool_id, cases=tuple(shuffled_cases), hosts=tuple(shuffled_hosts),
                             fixed=dict(reversed(list(snapshot.fixed.items()))),
                             pending=dict(reversed(list(snapshot.pending.items()))), forbidden=snapshot.forbidden)
    digest = inputs_digest(snapshot, params)
    assert len(digest) == 64
    assert inputs_digest(reordered, params) == digest
    assert inputs_digest(snapshot, dataclasses.replace(params, seed=1)) != digest
    assert inputs_digest(snapshot, dataclasses.replace(params, weights=Weights(ties=0.6))) != digest
    if snapshot.cases:
        first = snapshot.cases[0]
        changed = dataclasses.replace(first, arrived_seq=first.arrived_seq + 1)
        other = dataclasses.replace(snapshot, cases=(changed, *snapshot.cases[1:]))
        assert inputs_digest(other, params) != digest


def test_ranked_preferences_are_content_not_order_noise() -> None:
    a = dataclasses.replace(BASE_CASE, preferred_places=("north", "south"))
    b = dataclasses.replace(BASE_CASE, preferred_places=("south", "north"))
    params = SolverParams()
    assert inputs_digest(PoolSnapshot(POOL, (a,), (BASE_HOST,)), params) != inputs_digest(
        PoolSnapshot(POOL, (b,), (BASE_HOST,)), params)


def test_invalid_values_are_refused_at_the_boundary() -> None:
    with pytest.raises(ValueError):
        Case(case_id="c", pool_id=POOL, people=0, beds=0)
    with pytest.raises(ValueError):
        Capacity(people=-1)
    with pytest.raises(ValueError):
        Capacity(jobs={"cook": -1})
    with pytest.raises(ValueError):
        Weights(ties=-0.1)
    with pytest.raises(ValueError):
        SolverParams(top_k=0)
    with pytest.raises(ValueError):
        PoolSnapshot(POOL, (BASE_CASE, BASE_CASE), ())


def test_model_values_are_frozen_and_hashable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        BASE_CASE.people = 2  # type: ignore[misc]
    assert hash(BASE_HOST) == hash(dataclasses.replace(BASE_HOST))
    assert Capacity(jobs={"a": 1, "b": 2}) == Capacity(jobs={"b": 2, "a": 1})
