r"""The approval workflow of one proposal as a state machine, and the requests that drive it.

    proposed --review--> reviewed --decide(approved)--> approved --both accept--> placed
        |                    |      \-decide(rejected)-> rejected       \--either declines--> declined
        \---- withdrawn <----/   (matching withdraws a proposal nobody has approved yet)

A human reviews every proposal (caseworker), another human decides it (approver: four-eyes), and the
beneficiary and the host each have the final say. An impossible step is refused with the reason, and
nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from pydantic import Field

from schemas.events import (
    ApprovalDecided,
    BeneficiaryResponded,
    ConsentObtained,
    ConsentPurpose,
    Contract,
    Event,
    HostResponded,
    Identifier,
    Label,
    LanguageCode,
    PlacementConfirmed,
    ProposalReviewed,
)

State = Literal["proposed", "reviewed", "approved", "rejected", "placed", "declined", "withdrawn"]
OPEN_STATES: frozenset[str] = frozenset({"proposed", "reviewed"})


class TransitionRefused(Exception):
    """A step the workflow does not allow from the proposal's current state; the message says why."""


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

    def review(self, reviewed_by: str, recommendation: Literal["approve", "reject"], note: str | None) -> tuple[
        Proposal, list[Event]
    ]:
        if self.state != "proposed":
            raise TransitionRefused(f"proposal {self.proposal_id} is {self.state}; only a proposed one is reviewed")
        event = ProposalReviewed(
            proposal_id=self.proposal_id,
            case_id=self.case_id,
            host_id=self.host_id,
            reviewed_by=reviewed_by,
            recommendation=recommendation,
            note=note,
        )
        return replace(self, state="reviewed", reviewed_by=reviewed_by, recommendation=recommendation), [event]

    def decide(
        self, decided_by: str, decision: Literal["approved", "rejected"], reason: str | None
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
        event = ApprovalDecided(
            proposal_id=self.proposal_id,
            case_id=self.case_id,
            host_id=self.host_id,
            decision=decision,
            decided_by=decided_by,
            reviewed_by=self.reviewed_by or "",
            reason=reason,
        )
        return replace(self, state=decision, decided_by=decided_by), [event]

    def respond(
        self,
        party: Literal["beneficiary", "host"],
        accepted: bool,
        reason: str | None,
        recorded_by: str,
        placement_id: str,
    ) -> tuple[Proposal, list[Event]]:
        if self.state != "approved":
            raise TransitionRefused(
                f"proposal {self.proposal_id} is {self.state}; only an approved match is offered for a response"
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
