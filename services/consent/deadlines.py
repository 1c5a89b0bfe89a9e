"""The deadline sweep: escalate overdue decisions once, expire offers nobody answered in time.

Nothing happens by itself when a deadline passes, so a background task of the consent service looks for
passed deadlines every ``CONSENT_DEADLINE_SWEEP_S``. Each finding is a state machine step (``escalate``,
``expire`` in model.py) saved with its event through the outbox in one transaction. Rows are claimed with
``FOR UPDATE SKIP LOCKED``: two sweeps running at once (two instances of the service) never take the same
proposal, and one that comes later sees it escalated or declined already, so every deadline has exactly
one consequence.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog

from services.consent import store
from services.consent.model import DeadlinePolicy
from services.consent.settings import ConsentSettings, consent_settings
from services.runtime.outbox import record_event
from services.runtime.service import ServiceContext

log = structlog.get_logger(__name__)

SWEEP_BATCH = 200


@dataclass(frozen=True, slots=True)
class SweepResult:
    escalated: int = 0
    expired: int = 0


async def sweep_deadlines(pool: asyncpg.Pool, *, source: str, policy: DeadlinePolicy,
                          now: datetime | None = None, batch: int = SWEEP_BATCH) -> SweepResult:
    """One sweep: everything due at ``now`` (default: the clock), in batches of one transaction each."""
    now = now or datetime.now(UTC)
    escalated = expired = 0
    while True:
        async with pool.acquire() as connection, connection.transaction():
            overdue = await store.overdue_decisions(connection, now, batch)
            for proposal in overdue:
                after, events = proposal.escalate(now=now, policy=policy)
                await store.save_proposal(connection, after)
                for event in events:
                    await record_event(connection, event, source=source)
            offers = await store.expired_offers(connection, now, batch)
            for proposal in offers:
                after, events = proposal.expire(now=now)
                await store.save_proposal(connection, after)
                for event in events:
                    await record_event(connection, event, source=source)
        escalated += len(overdue)
        expired += len(offers)
        if len(overdue) < batch and len(offers) < batch:
            break
    if escalated or expired:
        log.info("deadlines passed", escalated=escalated, expired=expired)
    return SweepResult(escalated, expired)


async def watch_deadlines(context: ServiceContext, settings: ConsentSettings | None = None) -> None:
    """The background task: sweep every ``CONSENT_DEADLINE_SWEEP_S``; a failed sweep is tried at the next."""
    settings = settings or consent_settings()
    while True:
        try:
            await sweep_deadlines(context.pool, source=context.source, policy=settings.deadline_policy)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("deadline sweep failed; trying again at the next sweep")
        await asyncio.sleep(settings.consent_deadline_sweep_s)
