"""What intake accepts: the requests that register cases and hosts and update capacity."""

from __future__ import annotations

from datetime import date

from pydantic import EmailStr, Field

from schemas.events import Capacity, CaseProfile, Contract, HostProfile, Identifier, Label, LanguageCode


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


class Withdrawal(Contract):
    reason: Label


class Registered(Contract):
    id: Identifier
    created: bool
