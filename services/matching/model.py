"""The pure domain model of one matching pool (program x region).

Everything here is a value: frozen dataclasses and functions without I/O, so the solver, the service
that wires it to Kafka and the auditor who replays a run years later all see exactly the same inputs.

Scores
------
Every score is a transparent, hand-written rule in [0, 1]; the weights that combine them live in
:class:`Weights` (configuration), never in code paths:

* :func:`beneficiary_preference` - how highly the case ranked the host's place and type;
* :func:`host_preference` - whether the host's stated wishes (languages) are met;
* :func:`prospects` - language fit, an open job in a household member's occupation, a study place;
* :func:`ties` - relatives or community at the host's place.

None of them reads nationality, ethnicity, religion or any attribute that stands in for them: the
model does not even carry such fields. Languages are used only as *spoken languages* (can the
household communicate at the host), which is what a caseworker would check by hand.

Urgency and vulnerability are not scores: with the number placed and arrival order they decide
*who* is placed (lexicographically, in the solver), and are never traded against fit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

Urgency = Literal["emergency", "urgent", "normal"]
Mechanism = Literal["welfare", "stable", "dynamic"]
HostType = Literal["sponsor_group", "municipality", "employer", "education_institution"]

URGENCIES: Final[tuple[Urgency, ...]] = get_args(Urgency)
MECHANISMS: Final[tuple[Mechanism, ...]] = get_args(Mechanism)
#: What a run searches: the whole pool, or only what the changes since the pending proposals touch
#: (see ``neighbourhood.py``).
Scope = Literal["pool", "changes"]
SCOPES: Final[tuple[Scope, ...]] = get_args(Scope)
HOST_TYPES: Final[tuple[HostType, ...]] = get_args(HostType)

#: Share of :func:`beneficiary_preference` that comes from the ranked places (the rest: host types).
PLACE_SHARE: Final = 0.75
#: Shares of the prospects components. A component the household does not ask for (no one seeks
#: work, no one wants to study) is left out of the denominator, so a household without job seekers
#: can reach the same prospects score as one with them: the score never favours "employable" cases.
LANGUAGE_SHARE: Final = 0.4
WORK_SHARE: Final = 0.4
STUDY_SHARE: Final = 0.2
#: Language fit when no language is shared but the host offers language support.
SUPPORTED_LANGUAGE_FIT: Final = 0.5

#: v2: the mechanism and the dynamic-mode parameters joined the parameters
DIGEST_VERSION: Final = "matching-inputs-v2"


def _counts(values: Mapping[str, int], what: str) -> dict[str, int]:
    """Copy a count mapping in sorted order, rejecting negative counts (fail at the boundary)."""
    out = dict(sorted(values.items()))
    for key, count in out.items():
        if count < 0:
            raise ValueError(f"{what}[{key!r}] must be >= 0, got {count}")
    return out


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a host can take, in every dimension the matching must respect.

    ``jobs`` maps an occupation to the number of open jobs in it; jobs and study places are offers a
    case may take, not conditions of being placed.
    """

    people: int = 0
    beds: int = 0
    accessible_units: int = 0
    school_places: int = 0
    jobs: Mapping[str, int] = field(default_factory=dict)
    study_places: int = 0

    def __post_init__(self) -> None:
        for name in ("people", "beds", "accessible_units", "school_places", "study_places"):
            if getattr(self, name) < 0:
                raise ValueError(f"capacity {name} must be >= 0")
        object.__setattr__(self, "jobs", _counts(self.jobs, "jobs"))

    def __hash__(self) -> int:
        return hash((self.people, self.beds, self.accessible_units, self.school_places,
                     tuple(self.jobs.items()), self.study_places))


@dataclass(frozen=True, slots=True)
class Case:
    """One household waiting for a place; every member counts in the demands.

    ``occupations`` are the occupations of *all* members seeking work (not only the main applicant's);
    a case takes at most one job, in one of them, where the host offers one.
    ``linked_case_ids`` are households that must be placed with the same host, or all stay unplaced.
    """

    case_id: str
    pool_id: str
    people: int
    beds: int
    needs_accessible: bool = False
    medical_needs: frozenset[str] = frozenset()
    school_places: int = 0
    needs_language_support: bool = False
    languages: frozenset[str] = frozenset()
    occupations: frozenset[str] = frozenset()
    wants_study: bool = False
    preferred_places: tuple[str, ...] = ()
    preferred_host_types: tuple[str, ...] = ()
    tie_places: frozenset[str] = frozenset()
    linked_case_ids: frozenset[str] = frozenset()
    urgency: Urgency = "normal"
    vulnerable: bool = False
    arrived_seq: int = 0

    def __post_init__(self) -> None:
        if self.people < 1:
            raise ValueError(f"case {self.case_id}: people must be >= 1")
        if self.beds < 0 or self.school_places < 0:
            raise ValueError(f"case {self.case_id}: beds and school places must be >= 0")
        if self.urgency not in URGENCIES:
            raise ValueError(f"case {self.case_id}: unknown urgency {self.urgency!r}")


@dataclass(frozen=True, slots=True)
class Host:
    """A sponsor group, municipality, employer or education institution offering places."""

    host_id: str
    pool_id: str
    host_type: HostType
    place: str
    capacity: Capacity
    medical_services: frozenset[str] = frozenset()
    language_support: bool = False
    languages: frozenset[str] = frozenset()
    max_household_size: int | None = None
    preferred_languages: frozenset[str] = frozenset()
    excluded_case_ids: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.host_type not in HOST_TYPES:
            raise ValueError(f"host {self.host_id}: unknown host type {self.host_type!r}")
        if self.max_household_size is not None and self.max_household_size < 1:
            raise ValueError(f"host {self.host_id}: max_household_size must be >= 1 or None")


@dataclass(frozen=True, slots=True)
class Weights:
    """Weights of the welfare criteria; all live in configuration so that they can be published.

    The criteria scores are in [0, 1], so a pair's welfare is at most the sum of the four criterion
    weights (3.0 by default). Defaults: the beneficiary's own ranking and their prospects count
    most; the host's wishes and family/community ties count half as much (ties are also honoured
    through the beneficiary's own ranking). ``disruption_cost`` is what moving or dropping one
    pending proposal costs, in the same units: a pending proposal is only changed when the new
    solution gains more than this.
    """

    beneficiary_preference: float = 1.0
    host_preference: float = 0.5
    prospects: float = 1.0
    ties: float = 0.5
    disruption_cost: float = 0.25

    def __post_init__(self) -> None:
        for name in ("beneficiary_preference", "host_preference", "prospects", "ties", "disruption_cost"):
            if getattr(self, name) < 0:
                raise ValueError(f"weight {name} must be >= 0")


@dataclass(frozen=True, slots=True)
class SolverParams:
    """Everything besides the pool that determines a solver run (recorded in the inputs digest).

    ``time_limit_s`` is a *deterministic* budget (CP-SAT deterministic time units), so a replay with
    the same inputs stops at the same point and yields the same proposals; a wall clock limit would
    not. One unit is not one second: measured on the 2-core CI machine, a unit took 1-4 wall seconds
    on pools of 200-2,000 cases (more on bigger models). ``wall_time_limit_s`` is an optional hard
    stop for operations; when it is hit, the run may no longer be reproducible (the result's
    warnings say so). ``workers`` > 1 runs CP-SAT's interleaved search, which stays deterministic
    whatever the number of workers. ``top_k`` bounds the candidate hosts per case (see the
    solver's pruning notes). ``relative_gap`` lets the welfare phase stop early; protection levels
    are always solved without a gap.

    ``mechanism`` (see the solver's module docstring): ``"welfare"`` (default) maximises welfare
    after protection; ``"stable"`` minimises the number of blocking pairs after protection, then
    welfare; ``"dynamic"`` plans for ``expected_arrivals`` cases still expected in the period,
    sampled ``scenarios`` times (seeded by ``seed``) from the attribute mix of the pool's
    ``arrival_history`` most recent arrivals, as phantom cases that compete for capacity in a relaxed
    plan that the welfare phase follows (proposals are made for real cases only).

    ``scope``: ``"pool"`` (default) searches the whole pool; ``"changes"`` keeps the pending
    proposals that nothing has touched as they are and searches the rest (``neighbourhood.py``), which
    is how the service re-solves between its periodic whole-pool solves.
    """

    weights: Weights = field(default_factory=Weights)
    time_limit_s: float = 30.0
    seed: int = 0
    workers: int = 1
    relative_gap: float = 0.0
    top_k: int = 30
    wall_time_limit_s: float | None = None
    mechanism: Mechanism = "welfare"
    expected_arrivals: int = 0
    scenarios: int = 16
    arrival_history: int = 200
    scope: Scope = "pool"

    def __post_init__(self) -> None:
        if self.time_limit_s <= 0 or self.workers < 1 or self.top_k < 1 or self.relative_gap < 0:
            raise ValueError("time_limit_s > 0, workers >= 1, top_k >= 1 and relative_gap >= 0 required")
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"unknown mechanism {self.mechanism!r}; one of {', '.join(MECHANISMS)}")
        if self.scope not in SCOPES:
            raise ValueError(f"unknown scope {self.scope!r}; one of {', '.join(SCOPES)}")
        if self.expected_arrivals < 0 or self.scenarios < 1 or self.arrival_history < 1:
            raise ValueError("expected_arrivals >= 0, scenarios >= 1 and arrival_history >= 1 required")

    def to_record(self) -> dict[str, Any]:
        """Every parameter but the seed (a run records it beside them), JSON-ready: the one place that
        says what a run records, what the inputs digest covers and what a replay reads back."""
        record = dataclasses.asdict(self)
        del record["seed"]
        return record


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """The state of one pool that a solver run starts from.

    ``fixed``: approved or accepted matches, kept exactly. ``pending``: proposals awaiting review or
    consent, kept unless a change gains more than the disruption cost. ``forbidden``: (case, host)
    pairs that were declined or rejected and are never proposed again.
    """

    pool_id: str
    cases: tuple[Case, ...] = ()
    hosts: tuple[Host, ...] = ()
    fixed: Mapping[str, str] = field(default_factory=dict)
    pending: Mapping[str, str] = field(default_factory=dict)
    forbidden: frozenset[tuple[str, str]] = frozenset()

    def __post_init__(self) -> None:
        case_ids = [c.case_id for c in self.cases]
        host_ids = [h.host_id for h in self.hosts]
        if len(set(case_ids)) != len(case_ids):
            raise ValueError(f"pool {self.pool_id}: duplicate case ids")
        if len(set(host_ids)) != len(host_ids):
            raise ValueError(f"pool {self.pool_id}: duplicate host ids")
        object.__setattr__(self, "fixed", dict(sorted(self.fixed.items())))
        object.__setattr__(self, "pending", dict(sorted(self.pending.items())))
        object.__setattr__(self, "forbidden", frozenset(self.forbidden))


# --------------------------------------------------------------------------------------------------
# Compatibility: hard facts
# --------------------------------------------------------------------------------------------------


def compatible(case: Case, host: Host) -> str | None:
    """Return why ``case`` can never be placed with ``host`` (a readable reason), or None if it can.

    Only static facts are checked (the host's total capacity, services, exclusions); whether room is
    left after other placements is the solver's business. The reason is shown to caseworkers and
    beneficiaries, so that they can correct wrong data or contest a proposal.
    """
    cap = host.capacity
    if case.pool_id != host.pool_id:
        return "different pool"
    if case.case_id in host.excluded_case_ids:
        return "excluded by host"
    if host.max_household_size is not None and case.people > host.max_household_size:
        return f"household larger than host accepts ({case.people} > {host.max_household_size})"
    if case.people > cap.people:
        return f"capacity people ({case.people} > {cap.people})"
    if case.beds > cap.beds:
        return f"capacity beds ({case.beds} > {cap.beds})"
    if case.needs_accessible and cap.accessible_units < 1:
        return "no accessible unit"
    if case.school_places > cap.school_places:
        return f"capacity school places ({case.school_places} > {cap.school_places})"
    missing = sorted(case.medical_needs - host.medical_services)
    if missing:
        return f"medical need {missing[0]} not served"
    if case.needs_language_support and not host.language_support:
        return "no language support"
    return None


# --------------------------------------------------------------------------------------------------
# Scores (each in [0, 1]); the solver's vectorised twin must compute the same floats in the same order
# --------------------------------------------------------------------------------------------------


def rank_score(ranked: tuple[str, ...], item: str) -> float:
    """Score of ``item`` in a best-first list: 1 for the first, 1/n for the last, 0 if absent.

    An empty list means "no preference", which scores 1: every option is as good as the case wished.
    """
    if not ranked:
        return 1.0
    try:
        return 1.0 - ranked.index(item) / len(ranked)
    except ValueError:
        return 0.0


def beneficiary_preference(case: Case, host: Host) -> float:
    """How well the host matches the case's own ranked wishes (places, then host types)."""
    place = rank_score(case.preferred_places, host.place)
    host_type = rank_score(case.preferred_host_types, host.host_type)
    return PLACE_SHARE * place + (1.0 - PLACE_SHARE) * host_type


def host_preference(case: Case, host: Host) -> float:
    """Whether the host's stated wishes are met: a preferred language is spoken by the household.

    A host without stated wishes is content with every case (1.0).
    """
    if not host.preferred_languages:
        return 1.0
    return 1.0 if case.languages & host.preferred_languages else 0.0


def ties(case: Case, host: Host) -> float:
    """1 when the case has relatives or community at the host's place, else 0."""
    return 1.0 if host.place in case.tie_places else 0.0


@dataclass(frozen=True, slots=True)
class ProspectsParts:
    """The prospects score split by source, each already normalised (they sum to :func:`prospects`).

    ``work`` and ``study`` are what the case gains *if* it gets an open job / study place there;
    the solver credits them only when it actually assigns one.
    """

    language: float
    work: float
    study: float


def prospects_denominator(case: Case) -> float:
    """Sum of the shares of the components this household asks for (language always counts)."""
    return (LANGUAGE_SHARE + (WORK_SHARE if case.occupations else 0.0)
            + (STUDY_SHARE if case.wants_study else 0.0))


def prospects_parts(case: Case, host: Host) -> ProspectsParts:
    """Transparent prospects rule, split by component; see :func:`prospects`."""
    denominator = prospects_denominator(case)
    if case.languages & host.languages:
        language = 1.0
    elif host.language_support:
        language = SUPPORTED_LANGUAGE_FIT
    else:
        language = 0.0
    work = 1.0 if any(host.capacity.jobs.get(o, 0) > 0 for o in case.occupations) else 0.0
    study = 1.0 if case.wants_study and host.capacity.study_places > 0 else 0.0
    return ProspectsParts(
        language=LANGUAGE_SHARE * language / denominator,
        work=WORK_SHARE * work / denominator,
        study=STUDY_SHARE * study / denominator,
    )


def prospects(case: Case, host: Host) -> float:
    """Default prospects score in [0, 1]: a transparent rule, not a trained predictor.

    Components (shares in brackets): a shared spoken language, or language support at the host
    (0.4); an open job in the occupation of *any* household member seeking work (0.4, only for
    households with job seekers); a study place for a case that wants one (0.2, only if wanted).
    Components a household does not ask for drop out of the normalisation, so households without
    job seekers are not ranked below "employable" ones. It uses no nationality, ethnicity, religion
    or proxy for them (the model carries no such fields; languages count only as a means to
    communicate).
    """
    parts = prospects_parts(case, host)
    return parts.language + parts.work + parts.study


def pair_score(case: Case, host: Host, weights: Weights) -> float:
    """Weighted welfare of placing ``case`` with ``host`` (assuming it takes an offered job/study place)."""
    return (weights.beneficiary_preference * beneficiary_preference(case, host)
            + weights.host_preference * host_preference(case, host)
            + weights.prospects * prospects(case, host)
            + weights.ties * ties(case, host))


# --------------------------------------------------------------------------------------------------
# Inputs digest
# --------------------------------------------------------------------------------------------------


def _case_record(case: Case) -> dict[str, Any]:
    return {
        "case_id": case.case_id, "pool_id": case.pool_id, "people": case.people, "beds": case.beds,
        "needs_accessible": case.needs_accessible, "medical_needs": sorted(case.medical_needs),
        "school_places": case.school_places, "needs_language_support": case.needs_language_support,
        "languages": sorted(case.languages), "occupations": sorted(case.occupations),
        "wants_study": case.wants_study,
        # ranked lists keep their order: it is information, not an accident of encoding
        "preferred_places": list(case.preferred_places),
        "preferred_host_types": list(case.preferred_host_types),
        "tie_places": sorted(case.tie_places), "linked_case_ids": sorted(case.linked_case_ids),
        "urgency": case.urgency, "vulnerable": case.vulnerable, "arrived_seq": case.arrived_seq,
    }


def _host_record(host: Host) -> dict[str, Any]:
    cap = host.capacity
    return {
        "host_id": host.host_id, "pool_id": host.pool_id, "host_type": host.host_type,
        "place": host.place,
        "capacity": {"people": cap.people, "beds": cap.beds, "accessible_units": cap.accessible_units,
                     "school_places": cap.school_places, "jobs": dict(sorted(cap.jobs.items())),
                     "study_places": cap.study_places},
        "medical_services": sorted(host.medical_services), "language_support": host.language_support,
        "languages": sorted(host.languages), "max_household_size": host.max_household_size,
        "preferred_languages": sorted(host.preferred_languages),
        "excluded_case_ids": sorted(host.excluded_case_ids),
    }


def canonical_inputs(snapshot: PoolSnapshot, params: SolverParams) -> dict[str, Any]:
    """The canonical, JSON-ready form of a run's inputs (sets and unordered tuples sorted)."""
    return {
        "version": DIGEST_VERSION,
        "pool_id": snapshot.pool_id,
        "cases": [_case_record(c) for c in sorted(snapshot.cases, key=lambda c: c.case_id)],
        "hosts": [_host_record(h) for h in sorted(snapshot.hosts, key=lambda h: h.host_id)],
        "fixed": sorted(snapshot.fixed.items()),
        "pending": sorted(snapshot.pending.items()),
        "forbidden": sorted(snapshot.forbidden),
        "params": {**params.to_record(), "seed": params.seed},
    }


def inputs_digest(snapshot: PoolSnapshot, params: SolverParams) -> str:
    """SHA-256 (hex) of the canonical inputs, so an auditor can prove a replay used the same inputs.

    The order of cases, hosts and set members does not change the digest; the order of a case's
    ranked preferences does (it is part of what the case said).
    """
    encoded = json.dumps(canonical_inputs(snapshot, params), sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def inputs_part_digests(snapshot: PoolSnapshot, params: SolverParams) -> dict[str, str]:
    """SHA-256 (hex) of each part of the canonical inputs (cases, hosts, fixed, pending, forbidden, params):
    recorded with a run, they let a replay whose inputs differ say which part differs."""
    canonical = canonical_inputs(snapshot, params)
    return {
        part: hashlib.sha256(json.dumps(canonical[part], sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                        allow_nan=False).encode("utf-8")).hexdigest()
        for part in ("cases", "hosts", "fixed", "pending", "forbidden", "params")
    }
