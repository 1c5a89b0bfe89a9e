"""The event contract of the matching centre: one pydantic model per versioned event type.

Every event is immutable once published. A breaking change is a new type (``...v2``) beside the old one,
never an edit of a published model; ``tests/contract`` fails when a committed JSON Schema changes in a
way that would break an existing consumer.

Events carry pseudonymous attributes only. Identifying data (names, dates of birth, documents,
contacts) travels, where it must travel at all, as a ``SealedIdentity``: ciphertext under the case's own
key, so that erasing the key makes every copy unreadable.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9._:\-]+$")]
#: free text: no NUL character, which PostgreSQL cannot store in text or jsonb (found by the API fuzz test)
Label = Annotated[str, StringConstraints(min_length=1, max_length=80, strip_whitespace=True, pattern=r"^[^\x00]+$")]
LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]

HostType = Literal["sponsor_group", "municipality", "employer", "education_institution"]
Urgency = Literal["emergency", "urgent", "normal"]
AgeBand = Literal["0-4", "5-11", "12-17", "18-29", "30-49", "50-64", "65+"]
ConsentPurpose = Literal["matching", "share_with_host", "share_with_partner", "monitoring"]

SCHOOL_AGE_BANDS: frozenset[str] = frozenset({"5-11", "12-17"})


class Contract(BaseModel):
    """Base of every model in the contract: immutable, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(Contract):
    """An event type of the contract. ``type`` is its CloudEvents type, ``key_field`` names its Kafka key."""

    type: ClassVar[str]
    key_field: ClassVar[str]

    def key(self) -> str:
        """The Kafka key: the id of the aggregate whose order this event belongs to."""
        return str(getattr(self, self.key_field))


# --- Cases and hosts -------------------------------------------------------------------------------


class HouseholdMember(Contract):
    """One person of a household, pseudonymous: every member counts, not only the main applicant."""

    age_band: AgeBand
    sex: Literal["female", "male", "other", "unknown"]
    relationship: Label = "member"


class Needs(Contract):
    medical: list[Label] = Field(default_factory=list, max_length=20)
    accessible: bool = False
    language_support: bool = False


class CaseProfile(Contract):
    """What matching may know about a household: no names, no nationality, no religion."""

    members: list[HouseholdMember] = Field(min_length=1, max_length=30)
    needs: Needs = Needs()
    languages: list[LanguageCode] = Field(default_factory=list, max_length=10)
    occupations: list[Label] = Field(default_factory=list, max_length=20)
    wants_study: bool = False
    preferred_places: list[Label] = Field(default_factory=list, max_length=10)
    preferred_host_types: list[HostType] = Field(default_factory=list, max_length=4)
    tie_places: list[Label] = Field(default_factory=list, max_length=10)
    linked_case_ids: list[Identifier] = Field(default_factory=list, max_length=10)
    urgency: Urgency = "normal"
    vulnerabilities: list[Label] = Field(default_factory=list, max_length=10)

    @property
    def people(self) -> int:
        return len(self.members)

    @property
    def school_places(self) -> int:
        return sum(1 for m in self.members if m.age_band in SCHOOL_AGE_BANDS)


class SealedIdentity(Contract):
    """Identifying fields encrypted with the case's own AES-GCM key (see services/runtime/sealing.py)."""

    key_id: Identifier
    nonce: str
    ciphertext: str


class Capacity(Contract):
    """Absolute capacity of a host in every dimension matching respects."""

    people: int = Field(ge=0, le=100_000)
    beds: int = Field(ge=0, le=100_000)
    accessible_units: int = Field(default=0, ge=0, le=100_000)
    school_places: int = Field(default=0, ge=0, le=100_000)
    jobs: dict[Label, Annotated[int, Field(ge=0, le=100_000)]] = Field(default_factory=dict)
    study_places: int = Field(default=0, ge=0, le=100_000)


class HostProfile(Contract):
    host_type: HostType
    place: Label
    capacity: Capacity
    medical_services: list[Label] = Field(default_factory=list, max_length=30)
    language_support: bool = False
    languages: list[LanguageCode] = Field(default_factory=list, max_length=20)
    communities: list[Label] = Field(default_factory=list, max_length=20)
    max_household_size: int | None = Field(default=None, ge=1, le=30)
    preferred_languages: list[LanguageCode] = Field(default_factory=list, max_length=10)
    excluded_case_ids: list[Identifier] = Field(default_factory=list, max_length=100)


class HostAttributes(Contract):
    """A host's profile without its capacity: what the partner that owns the host may change as a whole.

    Capacity stays out on purpose: it changes only through its own absolute, versioned updates
    (``centre.host.capacity-updated.v1``), so a profile change can never undo or race a capacity change.
    The fields are ``HostProfile``'s, but for ``capacity``.
    """

    host_type: HostType
    place: Label
    medical_services: list[Label] = Field(default_factory=list, max_length=30)
    language_support: bool = False
    languages: list[LanguageCode] = Field(default_factory=list, max_length=20)
    communities: list[Label] = Field(default_factory=list, max_length=20)
    max_household_size: int | None = Field(default=None, ge=1, le=30)
    preferred_languages: list[LanguageCode] = Field(default_factory=list, max_length=10)
    excluded_case_ids: list[Identifier] = Field(default_factory=list, max_length=100)


class CaseRegistered(Event):
    type: ClassVar[str] = "centre.case.registered.v1"
    key_field: ClassVar[str] = "case_id"

    case_id: Identifier
    pool_id: Identifier
    organisation_id: Identifier
    external_ref: Identifier | None = None
    language: LanguageCode = "en"
    profile: CaseProfile
    identity: SealedIdentity | None = None


class CaseUpdated(Event):
    type: ClassVar[str] = "centre.case.updated.v1"
    key_field: ClassVar[str] = "case_id"

    case_id: Identifier
    pool_id: Identifier
    version: int = Field(ge=1)
    profile: CaseProfile


class CaseWithdrawn(Event):
    type: ClassVar[str] = "centre.case.withdrawn.v1"
    key_field: ClassVar[str] = "case_id"

    case_id: Identifier
    reason: Label


# The identifying fields a case may hold (sealed); an identity read names which of them it disclosed.
IdentityField = Literal["full_name", "date_of_birth", "document_number", "phone", "email"]


class CaseErased(Event):
    """A case's identifying data was erased: its own key is deleted (crypto-shredding).

    Every sealed copy of the identity (in intake, in events, in the audit stream) stays where it is and can
    no longer be opened; every service that holds anything about the person in clear drops it on this event.
    """

    type: ClassVar[str] = "centre.case.erased.v1"
    key_field: ClassVar[str] = "case_id"

    case_id: Identifier
    reason: Literal["person_request", "retention_expired"]
    erased_by: Identifier = Field(description="The token subject who erased it, or the retention sweep.")
    erased_at: datetime


class IdentityRead(Event):
    """Someone read a case's identifying fields in clear through the API: who, when, which fields, why."""

    type: ClassVar[str] = "centre.case.identity-read.v1"
    key_field: ClassVar[str] = "case_id"

    case_id: Identifier
    read_by: Identifier = Field(description="The subject of the reader's token.")
    role: Literal["caseworker", "approver", "admin"]
    fields: list[IdentityField] = Field(min_length=1, max_length=5)
    purpose: Label
    read_at: datetime


class HostRegistered(Event):
    type: ClassVar[str] = "centre.host.registered.v1"
    key_field: ClassVar[str] = "host_id"

    host_id: Identifier
    pool_id: Identifier
    organisation_id: Identifier
    external_ref: Identifier | None = None
    profile: HostProfile


class CapacityUpdated(Event):
    """Absolute values with a version: a replayed or reordered update can never corrupt capacity."""

    type: ClassVar[str] = "centre.host.capacity-updated.v1"
    key_field: ClassVar[str] = "host_id"

    host_id: Identifier
    pool_id: Identifier
    version: int = Field(ge=1)
    capacity: Capacity


class HostUpdated(Event):
    """A host's profile (all but its capacity) replaced by the partner that owns it, as a whole.

    ``version`` counts the profile's changes (registration is version 1) and is apart from the capacity's
    own version; a consumer applies a version only above the one it holds, so a replay changes nothing.
    """

    type: ClassVar[str] = "centre.host.updated.v1"
    key_field: ClassVar[str] = "host_id"

    host_id: Identifier
    pool_id: Identifier
    version: int = Field(ge=2)
    profile: HostAttributes


# --- Partner submissions (inbound, validated by intake) --------------------------------------------


class CaseSubmitted(Event):
    """A partner organisation's request to register a case; intake validates it and registers it."""

    type: ClassVar[str] = "centre.partner.case-submitted.v1"
    key_field: ClassVar[str] = "external_ref"

    organisation_id: Identifier
    external_ref: Identifier
    pool_id: Identifier
    language: LanguageCode = "en"
    profile: CaseProfile


class HostSubmitted(Event):
    type: ClassVar[str] = "centre.partner.host-submitted.v1"
    key_field: ClassVar[str] = "external_ref"

    organisation_id: Identifier
    external_ref: Identifier
    pool_id: Identifier
    profile: HostProfile


class CapacitySubmitted(Event):
    type: ClassVar[str] = "centre.partner.capacity-submitted.v1"
    key_field: ClassVar[str] = "host_id"

    organisation_id: Identifier
    host_id: Identifier
    version: int = Field(ge=1)
    capacity: Capacity


# --- Consent ---------------------------------------------------------------------------------------


class ConsentObtained(Contract):
    """How consent was obtained, so that an auditor can judge whether it was informed."""

    information_language: LanguageCode
    interpreter: bool = False
    obtained_on: date
    recorded_by: Identifier


class DataUseConsentRecorded(Event):
    type: ClassVar[str] = "centre.consent.recorded.v1"
    key_field: ClassVar[str] = "case_id"

    consent_id: Identifier
    case_id: Identifier
    purpose: ConsentPurpose
    partner_id: Identifier | None = None
    obtained: ConsentObtained
    expires_on: date | None = None


class DataUseConsentWithdrawn(Event):
    type: ClassVar[str] = "centre.consent.withdrawn.v1"
    key_field: ClassVar[str] = "case_id"

    consent_id: Identifier
    case_id: Identifier
    purpose: ConsentPurpose
    partner_id: Identifier | None = None
    withdrawn_by: Identifier


# --- Matching --------------------------------------------------------------------------------------


class MatchProposed(Event):
    type: ClassVar[str] = "centre.match.proposed.v1"
    key_field: ClassVar[str] = "case_id"

    proposal_id: Identifier
    case_id: Identifier
    host_id: Identifier
    pool_id: Identifier
    run_id: Identifier
    urgency: Urgency = "normal"
    score: float
    explanation: dict[str, object] = Field(default_factory=dict)


class ProposalWithdrawn(Event):
    type: ClassVar[str] = "centre.match.proposal-withdrawn.v1"
    key_field: ClassVar[str] = "case_id"

    proposal_id: Identifier
    case_id: Identifier
    host_id: Identifier
    reason: Label
    run_id: Identifier | None = None


class SolverRunRecorded(Event):
    """Everything needed to re-run a solve and get the same proposals."""

    type: ClassVar[str] = "centre.match.solver-run-recorded.v1"
    key_field: ClassVar[str] = "pool_id"

    run_id: Identifier
    pool_id: Identifier
    inputs_digest: str
    inputs: dict[str, object]
    parameters: dict[str, object]
    solver_version: Label
    seed: int
    status: Label
    objective: float
    bound: float
    gap: float
    duration_s: float
    proposals: int
    withdrawals: int


class SolverRunRecordedV2(SolverRunRecorded):
    """A solver run as v1 records it, and how far its result is from stability, in every mode.

    Replaces ``centre.match.solver-run-recorded.v1``, which did not carry the mechanism or the blocking
    pairs; old v1 events stay readable, and a reader of v1 fields reads them here unchanged.
    """

    type: ClassVar[str] = "centre.match.solver-run-recorded.v2"

    mechanism: Literal["welfare", "stable", "dynamic"]
    blocking_pairs: int = Field(ge=0, description="Compatible (case, host) pairs that would both rather be "
                                "matched to each other than keep the result (docs/matching.md).")
    blocking_pairs_bound: int | None = Field(
        default=None, ge=0, description="Stable mode: the fewest blocking pairs any result keeping the "
        "protection levels can have, as far as the run proved it.")
    stability: Annotated[str, StringConstraints(min_length=1, max_length=400)] = Field(
        description="One sentence on stability: what this result is, and what was proven.")


class SolverPhase(Contract):
    """One step of a solver run: what it optimised and how far it got (docs/matching.md, How a solve works)."""

    name: Label
    status: Label
    objective: float | None = Field(allow_inf_nan=False, description="The step's value, where it has one (a "
                                    "protection level's count, a welfare objective, the cases it held back).")
    bound: float | None = Field(allow_inf_nan=False,
                                description="The best value the step proved possible, where it proved one.")
    deterministic_time: float = Field(ge=0, allow_inf_nan=False)
    wall_time_s: float = Field(ge=0, allow_inf_nan=False)


#: The warnings a solver run's record carries at most (a run with more keeps the first and counts the rest).
MOST_RUN_WARNINGS = 100


class SolverRunRecordedV3(SolverRunRecordedV2):
    """A solver run as v2 records it, with the cases it held back and the steps it took.

    Replaces ``centre.match.solver-run-recorded.v2``: a run in dynamic mode may leave a case that no
    protection level asks to place unplaced for the arrivals it expects, a decision v2 did not record; and
    whether each protection level was proven was in no record at all. Readers of v2 fields read them here
    unchanged.
    """

    type: ClassVar[str] = "centre.match.solver-run-recorded.v3"

    held_back: list[Identifier] = Field(
        max_length=100_000, description="Dynamic mode: the cases the run left unplaced though they fit, since the "
        "arrivals it expects gain more from their places; they wait in the pool and are planned again by the next "
        "run. Never an emergency, urgent or vulnerable case, nor one holding a pending proposal.")
    phases: list[SolverPhase] = Field(max_length=200)
    warnings: list[Annotated[str, StringConstraints(min_length=1, max_length=400)]] = Field(
        max_length=MOST_RUN_WARNINGS, description="What the run warns of (a wall-clock stop, fixed matches over a "
        "host's capacity, a plan solved with fewer scenarios); at most 100, the last then saying how many more.")


# --- Approval, responses, placement --------------------------------------------------------------


class ProposalReviewed(Event):
    """A caseworker's review: the first pair of eyes."""

    type: ClassVar[str] = "centre.approval.reviewed.v1"
    key_field: ClassVar[str] = "case_id"

    proposal_id: Identifier
    case_id: Identifier
    host_id: Identifier
    reviewed_by: Identifier
    recommendation: Literal["approve", "reject"]
    note: Label | None = None


class ApprovalDecided(Event):
    """An approver's decision: the second pair of eyes, never the reviewer's own."""

    type: ClassVar[str] = "centre.approval.decided.v1"
    key_field: ClassVar[str] = "case_id"

    proposal_id: Identifier
    case_id: Identifier
    host_id: Identifier
    decision: Literal["approved", "rejected"]
    decided_by: Identifier
    reviewed_by: Identifier
    reason: Label | None = None


class BeneficiaryResponded(Event):
    """The beneficiary's final say on a specific match."""

    type: ClassVar[str] = "centre.response.beneficiary.v1"
    key_field: ClassVar[str] = "case_id"

    proposal_id: Identifier
    case_id: Identifier
    host_id: Identifier
    accepted: bool
    reason: Label | None = None
    recorded_by: Identifier


class HostResponded(Event):
    type: ClassVar[str] = "centre.response.host.v1"
    key_field: ClassVar[str] = "case_id"

    proposal_id: Identifier
    case_id: Identifier
    host_id: Identifier
    accepted: bool
    reason: Label | None = None
    recorded_by: Identifier


class PlacementConfirmed(Event):
    type: ClassVar[str] = "centre.placement.confirmed.v1"
    key_field: ClassVar[str] = "case_id"

    placement_id: Identifier
    proposal_id: Identifier
    case_id: Identifier
    host_id: Identifier
    pool_id: Identifier


# --- Deadlines: the consent service sets them, escalates and expires ------------------------------


class ProposalReviewedV2(Event):
    """A caseworker's review, with the time by which an approver must decide (by the case's urgency).

    Replaces ``centre.approval.reviewed.v1``, which carried no deadline; old v1 events stay readable.
    """

    type: ClassVar[str] = "centre.approval.reviewed.v2"
    key_field: ClassVar[str] = "case_id"

    proposal_id: Identifier
    case_id: Identifier
    host_id: Identifier
    pool_id: Identifier
    urgency: Urgency
    reviewed_by: Identifier
    recommendation: Literal["approve", "reject"]
    note: Label | None = None
    decide_by: datetime = Field(description="When the decision is due; past it, the proposal is escalated.")


class ApprovalDecidedV2(Event):
    """An approver's decision, with the time by which the beneficiary and the host must answer an approval.

    Replaces ``centre.approval.decided.v1``, which carried no deadline; old v1 events stay readable.
    """

    type: ClassVar[str] = "centre.approval.decided.v2"
    key_field: ClassVar[str] = "case_id"

    proposal_id: Identifier
    case_id: Identifier
    host_id: Identifier
    pool_id: Identifier
    decision: Literal["approved", "rejected"]
    decided_by: Identifier
    reviewed_by: Identifier
    reason: Label | None = None
    respond_by: datetime | None = Field(
        default=None, description="Set when approved: past it, an offer not answered by both sides expires."
    )


class DecisionOverdue(Event):
    """A reviewed proposal's decision was not made by its deadline: escalated, once."""

    type: ClassVar[str] = "centre.approval.overdue.v1"
    key_field: ClassVar[str] = "case_id"

    proposal_id: Identifier
    case_id: Identifier
    host_id: Identifier
    pool_id: Identifier
    urgency: Urgency
    reviewed_by: Identifier
    decide_by: datetime
    escalated_to: Identifier = Field(description="The approvers' desk the decision is escalated to.")


class ResponseExpired(Event):
    """An approved match that the beneficiary or the host did not answer by its deadline: a decline.

    The proposal is declined; matching excludes the pair and re-matches the case, as after any decline.
    """

    type: ClassVar[str] = "centre.response.expired.v1"
    key_field: ClassVar[str] = "case_id"

    proposal_id: Identifier
    case_id: Identifier
    host_id: Identifier
    pool_id: Identifier
    respond_by: datetime
    unanswered: list[Literal["beneficiary", "host"]] = Field(min_length=1, max_length=2)
    reason: Label = "no answer by deadline"


# --- Notifications ---------------------------------------------------------------------------------


class Recipient(Contract):
    kind: Literal["caseworker", "approver", "beneficiary", "host", "partner"]
    ref: Identifier


class NotificationRequested(Event):
    type: ClassVar[str] = "centre.notification.requested.v1"
    key_field: ClassVar[str] = "notification_id"

    notification_id: Identifier
    rule: Label
    recipient: Recipient
    channel: Literal["log", "email", "webhook"]
    language: LanguageCode
    case_id: Identifier | None = None
    cause_event_id: Identifier


class NotificationDelivered(Event):
    type: ClassVar[str] = "centre.notification.delivered.v1"
    key_field: ClassVar[str] = "notification_id"

    notification_id: Identifier
    channel: Literal["log", "email", "webhook"]
    delivered_at: datetime


class NotificationFailed(Event):
    type: ClassVar[str] = "centre.notification.failed.v1"
    key_field: ClassVar[str] = "notification_id"

    notification_id: Identifier
    channel: Literal["log", "email", "webhook"]
    attempt: int = Field(ge=1)
    reason: Label
    final: bool


# --- Audit and dead letters ------------------------------------------------------------------------


class AuditRecorded(Event):
    """One record of the append-only audit stream, as partners and auditors can follow it."""

    type: ClassVar[str] = "centre.audit.recorded.v1"
    key_field: ClassVar[str] = "stream"

    stream: Literal["audit"] = "audit"
    seq: int = Field(ge=1)
    event_id: str
    event_type: str
    origin_topic: str
    origin_partition: int
    origin_offset: int
    prev_hash: str
    record_hash: str


class DeadLettered(Event):
    """A message a consumer could not handle, with why and where it came from. Nothing is dropped."""

    type: ClassVar[str] = "centre.deadletter.recorded.v1"
    key_field: ClassVar[str] = "origin_topic"

    consumer: Identifier
    reason_kind: Literal["unparseable", "schema_violation", "unknown_type", "handler_error"]
    reason: str
    origin_topic: str
    origin_partition: int
    origin_offset: int
    original_headers: dict[str, str]
    original_value_b64: str
