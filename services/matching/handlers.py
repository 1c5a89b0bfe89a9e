"""What each event means for matching: one function per event type, each marking its pool for a re-solve."""

from __future__ import annotations

from collections.abc import Mapping

from schemas.events import (
    ApprovalDecided,
    ApprovalDecidedV2,
    BeneficiaryResponded,
    CapacityUpdated,
    CaseRegistered,
    CaseUpdated,
    CaseWithdrawn,
    DataUseConsentRecorded,
    DataUseConsentWithdrawn,
    Event,
    HostRegistered,
    HostResponded,
    HostUpdated,
    PlacementConfirmed,
    ProposalWithdrawn,
    ResponseExpired,
)
from services.matching import store
from services.matching.pool import arrival_seq
from services.runtime.consumer import Delivery, Handler


def positioned(handlers: Mapping[type[Event], Handler]) -> dict[type[Event], Handler]:
    """Each handler also raises its partition's watermark, in the same savepoint as its effects: a solve then
    knows exactly which input records its pool reflects (``store.input_positions``, the run's watermark)."""

    def wrap(handler: Handler) -> Handler:
        async def handle(event: Event, delivery: Delivery) -> None:
            origin = delivery.origin
            await store.record_input_position(delivery.connection, origin.topic, origin.partition, origin.offset)
            await handler(event, delivery)

        handle.__name__ = getattr(handler, "__name__", "handle")
        return handle

    return {event_type: wrap(handler) for event_type, handler in handlers.items()}


async def withdraw_pending(delivery: Delivery, case_id: str, reason: str) -> None:
    """Withdraw the case's pending proposal, if it has one, and say so."""
    for row in await store.pending_proposals_of_case(delivery.connection, case_id):
        await store.set_proposal_status(delivery.connection, row["proposal_id"], "withdrawn")
        await delivery.publish(ProposalWithdrawn(
            proposal_id=row["proposal_id"], case_id=case_id, host_id=row["host_id"], reason=reason
        ))


async def on_case_registered(event: CaseRegistered, delivery: Delivery) -> None:
    await store.upsert_case(delivery.connection, event.case_id, event.pool_id, event.profile.model_dump(mode="json"),
                            traceparent=delivery.envelope.traceparent,
                            arrived_seq=arrival_seq(delivery.envelope.time))
    await store.mark_dirty(delivery.connection, event.pool_id)


async def on_case_updated(event: CaseUpdated, delivery: Delivery) -> None:
    await store.upsert_case(delivery.connection, event.case_id, event.pool_id,
                            event.profile.model_dump(mode="json"), event.version,
                            arrived_seq=arrival_seq(delivery.envelope.time))
    await store.mark_dirty(delivery.connection, event.pool_id)


async def on_case_withdrawn(event: CaseWithdrawn, delivery: Delivery) -> None:
    await store.withdraw_case(delivery.connection, event.case_id)
    await withdraw_pending(delivery, event.case_id, "case withdrawn")
    await store.mark_case_pool_dirty(delivery.connection, event.case_id)


async def on_consent_recorded(event: DataUseConsentRecorded, delivery: Delivery) -> None:
    if event.purpose != "matching":
        return
    await store.record_consent(delivery.connection, event.consent_id, event.case_id, event.expires_on)
    await store.mark_case_pool_dirty(delivery.connection, event.case_id)


async def on_consent_withdrawn(event: DataUseConsentWithdrawn, delivery: Delivery) -> None:
    if event.purpose != "matching":
        return
    await store.withdraw_consent(delivery.connection, event.consent_id)
    if not await store.has_consent_in_force(delivery.connection, event.case_id):
        await withdraw_pending(delivery, event.case_id, "consent for matching withdrawn")
    await store.mark_case_pool_dirty(delivery.connection, event.case_id)


async def on_host_registered(event: HostRegistered, delivery: Delivery) -> None:
    await store.upsert_host(delivery.connection, event.host_id, event.pool_id, event.profile.model_dump(mode="json"))
    await store.mark_dirty(delivery.connection, event.pool_id)


async def on_capacity_updated(event: CapacityUpdated, delivery: Delivery) -> None:
    if await store.set_capacity(delivery.connection, event.host_id, event.version,
                                event.capacity.model_dump(mode="json")):
        await store.mark_dirty(delivery.connection, event.pool_id)


async def on_host_updated(event: HostUpdated, delivery: Delivery) -> None:
    """The host's profile changed (its capacity did not): the pool is solved again with it, and a pending
    proposal the host can no longer take (a service gone, the household now too large, the case excluded)
    is withdrawn by that re-solve and its case proposed elsewhere."""
    if await store.set_host_profile(delivery.connection, event.host_id, event.version,
                                    event.profile.model_dump(mode="json")):
        await store.mark_dirty(delivery.connection, event.pool_id)


async def on_approval_decided(event: ApprovalDecided | ApprovalDecidedV2, delivery: Delivery) -> None:
    """v1 and v2 mean the same here; v2 only adds the response deadline, which is consent's to watch."""
    proposal = await store.proposal(delivery.connection, event.proposal_id)
    if proposal is None:
        return
    if event.decision == "approved":
        # A human approval stands even if a re-solve withdrew the proposal meanwhile; any newer pending
        # proposal for the same case gives way to it.
        if proposal["status"] == "withdrawn":
            if await store.has_approved_match(delivery.connection, event.case_id):
                return  # consent approves one match per case; this approval lost the race to another
            await withdraw_pending(delivery, event.case_id, "an earlier proposal was approved")
        await store.set_proposal_status(delivery.connection, event.proposal_id, "approved", ("pending", "withdrawn"))
    else:
        await store.set_proposal_status(delivery.connection, event.proposal_id, "rejected")
        await store.forbid_pair(delivery.connection, event.case_id, event.host_id, "rejected by approver")
    await store.mark_dirty(delivery.connection, proposal["pool_id"])


async def on_response(event: BeneficiaryResponded | HostResponded, delivery: Delivery) -> None:
    if event.accepted:
        return
    proposal = await store.proposal(delivery.connection, event.proposal_id)
    if proposal is None:
        return
    party = "beneficiary" if isinstance(event, BeneficiaryResponded) else "host"
    await store.set_proposal_status(delivery.connection, event.proposal_id, "declined")
    await store.forbid_pair(delivery.connection, event.case_id, event.host_id, f"declined by {party}")
    await store.mark_dirty(delivery.connection, proposal["pool_id"])


async def on_response_expired(event: ResponseExpired, delivery: Delivery) -> None:
    """An offer nobody answered in time is a decline: the pair is excluded and the case re-matched."""
    proposal = await store.proposal(delivery.connection, event.proposal_id)
    if proposal is None:
        return
    await store.set_proposal_status(delivery.connection, event.proposal_id, "declined")
    await store.forbid_pair(delivery.connection, event.case_id, event.host_id, event.reason)
    await store.mark_dirty(delivery.connection, proposal["pool_id"])


async def on_placement_confirmed(event: PlacementConfirmed, delivery: Delivery) -> None:
    await store.set_proposal_status(delivery.connection, event.proposal_id, "placed")
