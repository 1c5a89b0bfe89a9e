"""From what matching stores to what the solver reads: one pool's snapshot, pseudonymous by construction."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.events import SCHOOL_AGE_BANDS
from services.matching.model import Capacity, Case, Host, PoolSnapshot

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def arrival_seq(event_time: datetime) -> int:
    """A case's place in arrival order: the time of the event that first brought it to matching, in whole
    microseconds since 1970 (a time without an offset is UTC). Derived from the event itself, not from the
    order in which matching happened to read its partitions, so an auditor rebuilds it from the audit stream
    exactly (services/matching/replay.py). Equal times are ordered by case id."""
    aware = event_time if event_time.tzinfo else event_time.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1)


def case_from_profile(case_id: str, pool_id: str, profile: Mapping[str, Any], arrived_seq: int) -> Case:
    """A solver case from a case profile (every household member counts, not only the applicant)."""
    members = profile["members"]
    needs = profile.get("needs", {})
    return Case(
        case_id=case_id,
        pool_id=pool_id,
        people=len(members),
        beds=len(members),
        needs_accessible=bool(needs.get("accessible")),
        medical_needs=frozenset(needs.get("medical", ())),
        school_places=sum(1 for member in members if member["age_band"] in SCHOOL_AGE_BANDS),
        needs_language_support=bool(needs.get("language_support")),
        languages=frozenset(profile.get("languages", ())),
        occupations=frozenset(profile.get("occupations", ())),
        wants_study=bool(profile.get("wants_study")),
        preferred_places=tuple(profile.get("preferred_places", ())),
        preferred_host_types=tuple(profile.get("preferred_host_types", ())),
        tie_places=frozenset(profile.get("tie_places", ())),
        linked_case_ids=frozenset(profile.get("linked_case_ids", ())),
        urgency=profile.get("urgency", "normal"),
        vulnerable=bool(profile.get("vulnerabilities")),
        arrived_seq=arrived_seq,
    )


def capacity_from(values: Mapping[str, Any]) -> Capacity:
    return Capacity(
        people=values["people"],
        beds=values["beds"],
        accessible_units=values.get("accessible_units", 0),
        school_places=values.get("school_places", 0),
        jobs=dict(values.get("jobs", {})),
        study_places=values.get("study_places", 0),
    )


def host_from_profile(host_id: str, pool_id: str, profile: Mapping[str, Any], capacity: Mapping[str, Any]) -> Host:
    """A solver host from a host profile, with its current (absolute) capacity."""
    return Host(
        host_id=host_id,
        pool_id=pool_id,
        host_type=profile["host_type"],
        place=profile["place"],
        capacity=capacity_from(capacity),
        medical_services=frozenset(profile.get("medical_services", ())),
        language_support=bool(profile.get("language_support")),
        languages=frozenset(profile.get("languages", ())),
        max_household_size=profile.get("max_household_size"),
        preferred_languages=frozenset(profile.get("preferred_languages", ())),
        excluded_case_ids=frozenset(profile.get("excluded_case_ids", ())),
    )


def snapshot_from_rows(pool_id: str, rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[
    PoolSnapshot, dict[str, str]
]:
    """The solver's view of a pool, and the id of each case's current pending proposal."""
    cases = tuple(
        case_from_profile(row["case_id"], pool_id, _json(row["profile"]), row["arrived_seq"]) for row in rows["cases"]
    )
    hosts = tuple(
        host_from_profile(row["host_id"], pool_id, _json(row["profile"]), _json(row["capacity"]))
        for row in rows["hosts"]
    )
    known_cases = {case.case_id for case in cases}
    known_hosts = {host.host_id for host in hosts}
    fixed: dict[str, str] = {}
    pending: dict[str, str] = {}
    pending_ids: dict[str, str] = {}
    for row in rows["proposals"]:
        if row["case_id"] not in known_cases or row["host_id"] not in known_hosts:
            continue
        if row["status"] == "pending":
            pending[row["case_id"]] = row["host_id"]
            pending_ids[row["case_id"]] = row["proposal_id"]
        else:
            fixed[row["case_id"]] = row["host_id"]
    forbidden = frozenset((row["case_id"], row["host_id"]) for row in rows["forbidden"])
    return PoolSnapshot(pool_id=pool_id, cases=cases, hosts=hosts, fixed=fixed, pending=pending,
                        forbidden=forbidden), pending_ids
