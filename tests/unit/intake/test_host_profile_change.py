"""What ``PUT /hosts/{id}/profile`` accepts: the whole profile without capacity, and the next version."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.events import HostAttributes, HostProfile, HostUpdated
from services.intake.model import HostProfileChange

PROFILE = {"host_type": "sponsor_group", "place": "riverside", "medical_services": ["diabetes"],
           "languages": ["en", "uk"], "max_household_size": 4, "excluded_case_ids": ["case-1"]}


def test_a_profile_without_capacity_and_a_next_version_is_accepted() -> None:
    change = HostProfileChange.model_validate({"version": 2, "profile": PROFILE})
    assert change.profile.medical_services == ["diabetes"] and change.profile.max_household_size == 4
    event = HostUpdated(host_id="host-1", pool_id="pool-1", version=change.version, profile=change.profile)
    assert event.key() == "host-1" and event.type == "centre.host.updated.v1"


def test_a_capacity_in_the_profile_is_refused_with_the_route_that_changes_it() -> None:
    with pytest.raises(ValidationError) as refused:
        HostProfileChange.model_validate({"version": 2, "profile": {**PROFILE, "capacity": {"people": 3, "beds": 3}}})
    assert "PUT /hosts/{id}/capacity" in str(refused.value)


@pytest.mark.parametrize("body", [
    {"version": 1, "profile": PROFILE},  # registration is version 1: a change is at least 2
    {"version": 2**31, "profile": PROFILE},  # beyond the database column
    {"profile": PROFILE},
    {"version": 2, "profile": {**PROFILE, "max_household_size": 0}},
    {"version": 2, "profile": {**PROFILE, "host_type": "hotel"}},
    {"version": 2, "profile": {**PROFILE, "languages": ["English"]}},
    {"version": 2, "profile": {"place": "riverside"}},
    {"version": 2, "profile": PROFILE, "organisation_id": "org-other"},
])
def test_bad_changes_are_refused(body: dict) -> None:
    with pytest.raises(ValidationError):
        HostProfileChange.model_validate(body)


def test_the_attributes_are_the_host_profile_but_for_capacity() -> None:
    """The two models must not drift apart: a field added to one belongs in the other too."""
    assert set(HostAttributes.model_fields) == set(HostProfile.model_fields) - {"capacity"}
    for name, field in HostAttributes.model_fields.items():
        assert field.annotation == HostProfile.model_fields[name].annotation, name
        assert field.metadata == HostProfile.model_fields[name].metadata, name
