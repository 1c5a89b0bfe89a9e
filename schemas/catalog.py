"""Which event type travels on which topic. The one table producers, consumers and the docs share."""

from __future__ import annotations

from typing import Final

from schemas import events as e
from schemas import topics as t

TOPIC_OF: Final[dict[type[e.Event], str]] = {
    e.CaseSubmitted: t.PARTNER_SUBMISSIONS,
    e.HostSubmitted: t.PARTNER_SUBMISSIONS,
    e.CapacitySubmitted: t.PARTNER_SUBMISSIONS,
    e.CaseRegistered: t.CASES,
    e.CaseUpdated: t.CASES,
    e.CaseWithdrawn: t.CASES,
    e.CaseErased: t.CASES,
    e.IdentityRead: t.CASES,
    e.HostRegistered: t.HOSTS,
    e.CapacityUpdated: t.HOSTS,
    e.HostUpdated: t.HOSTS,
    e.DataUseConsentRecorded: t.CONSENTS,
    e.DataUseConsentWithdrawn: t.CONSENTS,
    e.MatchProposed: t.PROPOSALS,
    e.ProposalWithdrawn: t.PROPOSALS,
    e.SolverRunRecorded: t.SOLVER_RUNS,
    e.SolverRunRecordedV2: t.SOLVER_RUNS,
    e.SolverRunRecordedV3: t.SOLVER_RUNS,
    e.ProposalReviewed: t.DECISIONS,
    e.ApprovalDecided: t.DECISIONS,
    e.BeneficiaryResponded: t.DECISIONS,
    e.HostResponded: t.DECISIONS,
    e.PlacementConfirmed: t.DECISIONS,
    e.ProposalReviewedV2: t.DECISIONS,
    e.ApprovalDecidedV2: t.DECISIONS,
    e.DecisionOverdue: t.DECISIONS,
    e.ResponseExpired: t.DECISIONS,
    e.NotificationRequested: t.NOTIFICATIONS,
    e.NotificationDelivered: t.NOTIFICATIONS,
    e.NotificationFailed: t.NOTIFICATIONS,
    e.AuditRecorded: t.AUDIT,
    e.DeadLettered: t.DEAD_LETTERS,
}

EVENT_TYPES: Final[dict[str, type[e.Event]]] = {model.type: model for model in TOPIC_OF}


def topic_of(event: e.Event) -> str:
    """The topic an event is published on."""
    return TOPIC_OF[type(event)]


def events_on(topic: str) -> list[type[e.Event]]:
    """The event types a topic carries, in the catalog's order."""
    return [model for model, its_topic in TOPIC_OF.items() if its_topic == topic]
