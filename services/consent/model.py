r"""The approval workflow of one proposal as a state machine, and the requests that drive it.

    proposed --review--> reviewed --decide(approved)--> approved --both accept--> placed
        |                  |    \---decide(rejected)--> rejected     |--either declines--> declined
        |                  |                                         \--expire (respond_by passed)--> declined
        |                  \--escalate (decide_by passed: once; it stays reviewed)
        \-- withdrawn <----/   (matching withdraws a proposal nobody has approved yet)

A human reviews every proposal (caseworker), another human decides it (approver: four-eyes), and the
beneficiary and the host each have the final say. Deadlines come from the ``DeadlinePolicy``: a review
sets the time by which the decision is due (by the case's urgency), an approval the time by which both
sides must answer. A decision not made in time is escalated once; an offer not answered in time expires,
which counts as a decline. An impossible step is refused with the reason, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from pydantic import Field

from schemas.events import (
    ApprovalDecidedV2,
    BeneficiaryResponded,
    ConsentObtained,
    ConsentPurpose,
    Contract,
    DecisionOverdue,
    Event,
    HostResponded,
    Identifier,
    Label,
    LanguageCode,
    PlacementConfirmed,
    ProposalReviewedV2,
    ResponseExpired,
    Urgency,
)

State = Literal["proposed", "reviewed", "approved", "rejected", "placed", "declined", "withdrawn"]
OPEN_STATES: frozenset[str] = frozenset({"proposed", "reviewed"})


class TransitionRefused(Exception):
    """A step the workflow does not allow from the proposal's current state; the message says why."""


@dataclass(frozen=True, slots=True)
class DeadlinePolicy:
    """How long a decision and an answer may take (``CONSENT_DECISION_HOURS``, ``CONSENT_RESPONSE_DAYS``).

    ``decision_hours`` by urgency, counted from the review; an urgency it does not name gets ``normal``'s.
    ``response_days`` counted from the approval, the same for the beneficiary and the host. ``escalate_to``
    names the desk an overdue decision goes to (``{pool_id}`` is filled in).
    """

    decision_hours: Mapping[str, float] = field(
        default_factory=lambda: {"emergency": 24.0, "urgent": 72.0, "normal": 240.0}
    )
    response_days: float = 7.0
    escalate_to: str = "desk:{pool_id}"

    def decide_by(self, reviewed_at: datetime, urgency: str) -> datetime:
        hours = self.decision_hours.get(urgency, self.decision_hours.get("normal", 240.0))
        return reviewed_at + timedelta(hours=hours)

    def respond_by(self, approved_at: datetime) -> datetime:
        return approved_at + timedelta(days=self.response_days)

    def escalation_desk(self, pool_id: str) -> str:
        return self.escalate_to.replace("{pool_id}", pool_id)


DEFAULT_POLICY = DeadlinePolicy()


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Proposal:
    proposal_id: str
    case_id: str
    host_id: str
    pool_id: str
    state: State = "proposed"
    reviewed_by: str | None = None
    recommendation: str | None = None
    decided_by: str | None = None
    beneficiary_accepted: bool | None = None
    host_accepted: bool | None = None
    urgency: Urgency = "normal"
    decide_by: datetime | None = None
    respond_by: datetime | None = None
    escalated_at: datetime | None = None

    def review(self, reviewed_by: str, recommendation: Literal["approve", "reject"], note: str | None, *,
               now: datetime | None = None, policy: DeadlinePolicy = DEFAULT_POLICY) -> tuple[Proposal, list[Event]]:
        if self.state != "proposed":
            raise TransitionRefused(f"proposal {self.proposal_id} is {self.state}; only a proposed one is reviewed")
        decide_by = policy.decide_by(_now(now), self.urgency)
        event = ProposalReviewedV2(
            proposal_id=self.proposal_id,
            case_id=self.case_id,
            host_id=self.host_id,
            pool_id=self.pool_id,
            urgency=self.urgency,
            reviewed_by=reviewed_by,
            recommendation=recommendation,
            note=note,
            decide_by=decide_by,
        )
        after = replace(self, state="reviewed", reviewed_by=reviewed_by, recommendation=recommendation,
                        decide_by=decide_by)
        return after, [event]

    def decide(
        self, decided_by: str, decision: Literal["approved", "rejected"], reason: str | None, *,
        now: datetime | None = None, policy: DeadlinePolicy = DEFAULT_POLICY,
    ) -> tuple[Proposal, list[Event]]:
        if self.state == "proposed":
            raise TransitionRefused(f"proposal {self.proposal_id} has not been reviewed by a caseworker yet")
        if self.state != "reviewed":
            raise TransitionRefused(f"proposal {self.proposal_id} is {self.state}; it cannot be decided")
        if decided_by == self.reviewed_by:
            raise TransitionRefused(
                f"{decided_by} reviewed proposal {self.proposal_id}; another approver must decide it (four-eyes)"
            )
        if decision == "rejected" and not reason:
            raise TransitionRefused("a rejection needs a reason")
        respond_by = policy.respond_by(_now(now)) if decision == "approved" else None
        event = ApprovalDecidedV2(
            proposal_id=self.proposal_id,
            case_id=self.case_id,
            host_id=self.host_id,
            pool_id=self.pool_id,
            decision=decision,
            decided_by=decided_by,
            reviewed_by=self.reviewed_by or "",
            reason=reason,
            respond_by=respond_by,
        )
        return replace(self, state=decision, decided_by=decided_by, respond_by=respond_by), [event]

    def escalate(self, *, now: datetime | None = None,
                 policy: DeadlinePolicy = DEFAULT_POLICY) -> tuple[Proposal, list[Event]]:
        """The decision is overdue: say so once, to the approvers' desk. The proposal stays reviewed."""
        at = _now(now)
        if self.state != "reviewed":
            raise TransitionRefused(f"proposal {self.proposal_id} is {self.state}; only a reviewed one is escalated")
        if self.decide_by is None or self.decide_by > at:
            raise TransitionRefused(f"the decision on proposal {self.proposal_id} is not overdue")
        if self.escalated_at is not None:
            raise TransitionRefused(f"the decision on proposal {self.proposal_id} has already been escalated")
        event = DecisionOverdue(
            proposal_id=self.proposal_id,
            case_id=self.case_id,
            host_id=self.host_id,
            pool_id=self.pool_id,
            urgency=self.urgency,
            reviewed_by=self.reviewed_by or "",
            decide_by=self.decide_by,
            escalated_to=policy.escalation_desk(self.pool_id),
        )
        return replace(self, escalated_at=at), [event]

    def expire(self, *, now: datetime | None = None) -> tuple[Proposal, list[Event]]:
        """Nobody (or only one side) answered the offer in time: it is declined, like any other decline."""
        if self.state != "approved":
            raise TransitionRefused(f"proposal {self.proposal_id} is {self.state}; only an approved offer expires")
        if self.respond_by is None or self.respond_by > _now(now):
            raise TransitionRefused(f"the offer of proposal {self.proposal_id} has not expired")
        unanswered: list[Literal["beneficiary", "host"]] = []
        if self.beneficiary_accepted is None:
            unanswered.append("beneficiary")
        if self.host_accepted is None:
            unanswered.append("host")
        event = ResponseExpired(
            proposal_id=self.proposal_id,
            case_id=self.case_id,
            host_id=self.host_id,
            pool_id=self.pool_id,
            respond_by=self.respond_by,
            unanswered=unanswered,
        )
        return replace(self, state="declined"), [event]

    def respond(
        self,
        party: Literal["beneficiary", "host"],
        accepted: bool,
        reason: str | None,
        recorded_by: str,
        placement_id: str,
        *,
        now: datetime | None = None,
    ) -> tuple[Proposal, list[Event]]:
        if self.state != "approved":
            raise TransitionRefused(
                f"proposal {self.proposal_id} is {self.state}; only an approved match is offered for a response"
            )
        if self.respond_by is not None and self.respond_by <= _now(now):
            raise TransitionRefused(
                f"the offer of proposal {self.proposal_id} had to be answered by {self.respond_by.isoformat()};"
                " it has expired"
            )
        already = self.beneficiary_accepted if party == "beneficiary" else self.host_accepted
        if already is not None:
            raise TransitionRefused(f"the {party} has already responded to proposal {self.proposal_id}")
        response_type = BeneficiaryResponded if party == "beneficiary" else HostResponded
        events: list[Event] = [
            response_type(proposal_id=self.proposal_id, case_id=self.case_id, host_id=self.host_id,
                          accepted=accepted, reason=reason, recorded_by=recorded_by)
        ]
        if party == "beneficiary":
            after = replace(self, beneficiary_accepted=accepted)
        else:
            after = replace(self, host_accepted=accepted)
        if not accepted:
            return replace(after, state="declined"), events
        if after.beneficiary_accepted and after.host_accepted:
            events.append(
                PlacementConfirmed(
                    placement_id=placement_id,
                    proposal_id=self.proposal_id,
                    case_id=self.case_id,
                    host_id=self.host_id,
                    pool_id=self.pool_id,
                )
            )
            return replace(after, state="placed"), events
        return after, events

    def withdraw(self) -> Proposal | None:
        """Matching withdraws a proposal; once a human has approved it, the approval stands."""
        return replace(self, state="withdrawn") if self.state in OPEN_STATES else None


# The requests below carry no "who": the acting person is the subject of the caller's token, so nobody can
# review, decide or record in someone else's name.


class HowObtained(Contract):
    """How consent was obtained; who recorded it is the caller."""

    information_language: LanguageCode
    interpreter: bool = False
    obtained_on: date

    def recorded_by(self, subject: str) -> ConsentObtained:
        return ConsentObtained(**self.model_dump(), recorded_by=subject)


class ConsentRequest(Contract):
    purpose: ConsentPurpose
    partner_id: Identifier | None = Field(default=None, description="Required when purpose is share_with_partner.")
    obtained: HowObtained
    expires_on: date | None = None


class Review(Contract):
    recommendation: Literal["approve", "reject"]
    note: Label | None = None


class Decision(Contract):
    decision: Literal["approved", "rejected"]
    reason: Label | None = None


class Response(Contract):
    party: Literal["beneficiary", "host"]
    accepted: bool
    reason: Label | None = None
