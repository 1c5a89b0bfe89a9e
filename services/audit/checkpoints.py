"""Sealing checkpoints: every N seconds or M records, sign the Merkle root of the whole log so far.

A seal costs O(new records), not O(all records): it resumes the Merkle tree from the frontier stored with
the previous checkpoint, after checking that the frontier reproduces that checkpoint's signed root and
that the signature holds. It verifies the new records' chain from the previous checkpoint's last record
hash before it signs anything, because a signed checkpoint over a tampered record would vouch for it.
On the way it stores the roots of the aligned 2^8, 2^16, ... record subtrees the new records complete, so
that proofs need not rehash the log (``tree.py``).

Several instances may seal at once: checkpoints are keyed by size, and a seal whose size another instance
stored first is simply dropped, since both describe the same records.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import asyncpg
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit import store
from services.audit.chain import GENESIS_HASH, verify_chain
from services.audit.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    key_id,
    load_public_key_pem,
    public_key_to_pem,
    sign_checkpoint,
    verify_checkpoint,
)
from services.audit.merkle import MerkleBuilder
from services.audit.settings import AuditSettings
from services.audit.signing_key import load_signing_key
from services.audit.tree import MissingSubtrees, store_subtrees
from services.runtime.service import ServiceContext

log = structlog.get_logger(__name__)


class BrokenLog(Exception):
    """The log or its last checkpoint does not verify: sealing stops, since it would vouch for a change."""


async def seal_checkpoint(
    connection: asyncpg.Connection,
    private_key: Ed25519PrivateKey,
    *,
    max_records: int,
    writer_role: str | None = None,
    sealed_at: str | None = None,
) -> SignedCheckpoint | None:
    """Seal a checkpoint over the log so far, taking in at most ``max_records`` new records.

    Returns the new checkpoint; None when there was nothing new, or another instance sealed the same size
    first. Raises BrokenLog when the previous checkpoint or the new records do not verify.
    """
    public_key = private_key.public_key()
    own_key_id = key_id(public_key)
    # One snapshot: the records seen form a prefix of the log (appends are serialised by the append lock).
    async with connection.transaction(isolation="repeatable_read"):
        await store.become(connection, writer_role)
        previous = await store.latest_checkpoint(connection)
        start, prev_hash, builder = 0, GENESIS_HASH, MerkleBuilder()
        if previous is not None:
            signed, frontier = previous
            await _check_previous(connection, signed, frontier)
            start, prev_hash = signed.checkpoint.size, signed.checkpoint.last_record_hash
            builder = MerkleBuilder.from_frontier(start, frontier)
        end = min(await store.max_seq(connection), start + max_records)
        if end <= start:
            return None
        try:
            records = await store.records_between(connection, start + 1, end)
        except ValueError as error:  # a payload that is no longer JSON
            raise BrokenLog(f"refusing to seal: a record after {start} cannot be read ({error})") from error
        verdict = verify_chain(records, first_seq=start + 1, prev_hash=prev_hash)
        if not verdict.ok or verdict.records_checked != end - start:
            raise BrokenLog(f"refusing to seal: record {verdict.first_bad_seq} does not verify ({verdict.reason})")
        leaves = [bytes.fromhex(record.record_hash) for record in records]
        await store_subtrees(connection, start, leaves)
        builder.extend(leaves)
        checkpoint = Checkpoint(
            size=end,
            root_hash=builder.root().hex(),
            last_record_hash=verdict.last_hash,
            sealed_at=sealed_at or datetime.now(UTC).isoformat(timespec="microseconds"),
            key_id=own_key_id,
        )
        sealed = sign_checkpoint(checkpoint, private_key)
        await store.register_key(connection, own_key_id, public_key_to_pem(public_key).decode())
        if not await store.insert_checkpoint(connection, sealed, builder.frontier()):
            return None
    return sealed


async def _check_previous(connection: asyncpg.Connection, signed: SignedCheckpoint, frontier: list[bytes]) -> None:
    size = signed.checkpoint.size
    pem = (await store.public_keys(connection)).get(signed.checkpoint.key_id)
    if pem is None or not verify_checkpoint(signed, load_public_key_pem(pem.encode())):
        raise BrokenLog(f"refusing to seal: the checkpoint of size {size} is not validly signed")
    try:
        resumed = MerkleBuilder.from_frontier(size, frontier)
    except ValueError as error:
        raise BrokenLog(f"refusing to seal: the stored frontier of checkpoint {size} is malformed") from error
    if resumed.root().hex() != signed.checkpoint.root_hash:
        raise BrokenLog(f"refusing to seal: the stored frontier of checkpoint {size} is not its signed root")


async def seal_periodically(context: ServiceContext) -> None:
    """Background task: seal a checkpoint when M records are unsealed, or N seconds after the last seal."""
    settings = AuditSettings()
    private_key = load_signing_key(settings)
    log.info("sealing checkpoints", key_id=key_id(private_key.public_key()),
             every_records=settings.audit_checkpoint_records, every_s=settings.audit_checkpoint_interval_s)
    last_seal = time.monotonic()
    poll_s = min(1.0, settings.audit_checkpoint_interval_s)
    while True:
        catching_up = False
        try:
            async with context.pool.acquire() as connection:
                unsealed = await store.unsealed_records(connection)
                due = unsealed >= settings.audit_checkpoint_records or (
                    unsealed > 0 and time.monotonic() - last_seal >= settings.audit_checkpoint_interval_s)
                if due:
                    sealed = await seal_checkpoint(connection, private_key,
                                                   max_records=settings.audit_checkpoint_records,
                                                   writer_role=settings.writer_role)
                    last_seal = time.monotonic()
                    catching_up = unsealed > settings.audit_checkpoint_records
                    if sealed is not None:
                        log.info("checkpoint sealed", size=sealed.checkpoint.size, key_id=sealed.checkpoint.key_id)
        except (BrokenLog, MissingSubtrees) as broken:
            # Loud and repeated: this needs a person, and sealing over it would hide it.
            log.error("checkpoint not sealed", reason=str(broken))
            last_seal = time.monotonic()
            await asyncio.sleep(settings.audit_checkpoint_interval_s)
            continue
        except asyncpg.exceptions.SerializationError:
            pass  # another instance sealed the same records a moment ago
        if not catching_up:
            await asyncio.sleep(poll_s)
