"""What intake accepts: the requests that register cases and hosts and update capacity."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import EmailStr, Field, model_validator

from schemas.events import (
    Capacity,
    CaseProfile,
    Contract,
    HostAttributes,
    HostProfile,
    Identifier,
    IdentityField,
    Label,
    LanguageCode,
)


class Identity(Contract):
    """Identifying fields of a household's main contact. Sealed on arrival; never in an event in clear."""

    full_name: Label
    date_of_birth: date | None = None
    document_number: Label | None = None
    phone: Label | None = None
    email: EmailStr | None = None


class CaseRegistration(Contract):
    organisation_id: Identifier
    external_ref: Identifier | None = Field(
        default=None, description="The submitter's own reference; registering it twice returns the same case."
    )
    pool_id: Identifier
    language: LanguageCode = "en"
    profile: CaseProfile
    identity: Identity | None = None


class HostRegistration(Contract):
    organisation_id: Identifier
    external_ref: Identifier | None = None
    pool_id: Identifier
    profile: HostProfile


class CapacityChange(Contract):
    # Bounded by the database column (integer): a larger number is bad input, not a server error.
    version: int = Field(ge=1, le=2**31 - 1, description="Strictly greater than the host's current capacity version.")
    capacity: Capacity


class ProfileChange(Contract):
    """A case's corrected or updated pseudonymous profile (needs, household, preferences), as a whole."""

    version: int = Field(ge=2, le=2**31 - 1, description="The case's current version plus one.")
    profile: CaseProfile


class HostProfileChange(Contract):
    """A host's profile as the partner that owns it wants it now, as a whole, without its capacity.

    Capacity is not part of it: it changes only through ``PUT /hosts/{id}/capacity`` (absolute values with a
    version of their own). A body that names a ``capacity`` here is refused (422) rather than half-applied.
    """

    version: int = Field(ge=2, le=2**31 - 1, description="The host's current profile version plus one "
                         "(registration is version 1; capacity changes do not count).")
    profile: HostAttributes

    @model_validator(mode="before")
    @classmethod
    def _capacity_has_its_own_route(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("profile"), dict) and "capacity" in data["profile"]:
            raise ValueError("a host's capacity is not part of its profile change: change it with"
                             " PUT /hosts/{id}/capacity (absolute values with a version of their own),"
                             " and send the profile here without it")
        return data


class Withdrawal(Contract):
    reason: Label


class Registered(Contract):
    id: Identifier
    created: bool


class ErasureRequest(Contract):
    """Why a case's identifying data is erased: the person asked, or the retention period ended."""

    reason: Literal["person_request", "retention_expired"] = "person_request"


class ErasureReceipt(Contract):
    case_id: Identifier
    reason: Literal["person_request", "retention_expired"]
    erased_at: datetime
    already_erased: bool = Field(description="True when the case had been erased before this request.")


class IdentityDisclosure(Contract):
    """A case's identifying fields in clear, and the record of this read (it is on the audit stream)."""

    case_id: Identifier
    fields: dict[IdentityField, str]
    read_by: Identifier
    purpose: Label
    read_at: datetime
