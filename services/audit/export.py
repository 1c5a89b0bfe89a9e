"""Export a period of the log for an auditor: the files ``standalone_verifier.py`` checks offline.

An export holds records ``first..last`` as stored, every checkpoint the records reach (signed by the key
of the latest of them, whose public key goes along), and, for a period that does not start at the first
record, the Merkle frontier of the records before it: with it the verifier recomputes every signed root
from the period's records alone. The frontier comes from the last checkpoint before the period (checked
against its signed root) plus the record hashes between, so an export costs O(period), not O(log).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg

from services.audit import store
from services.audit.checkpoint import write_export
from services.audit.merkle import MerkleBuilder
from services.audit.streaming import walk


class ExportRefused(Exception):
    """The export cannot be written as asked (bad period, or the stored frontier does not match)."""


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a period: a seq, or a time (records recorded at or after / before it)."""

    seq: int | None = None
    time: datetime | None = None

    @classmethod
    def parse(cls, text: str) -> Bound:
        """``1234`` is a seq; ``2026-03-01`` or ``2026-03-01T12:00:00+00:00`` a time (UTC if no offset)."""
        if text.isdigit():
            return cls(seq=int(text))
        try:
            moment = datetime.fromisoformat(text) if "T" in text or " " in text else \
                datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError as error:
            raise ExportRefused(f"{text!r} is neither a seq nor an ISO-8601 date or time") from error
        return cls(time=moment if moment.tzinfo else moment.replace(tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What was exported: the manifest written, the key, and checkpoints left out (signed by other keys)."""

    manifest: dict[str, Any]
    key_id: str
    checkpoints: int
    checkpoints_left_out: int


async def export_period(
    connection: asyncpg.Connection, directory: Path, start: Bound | None = None, end: Bound | None = None
) -> ExportSummary:
    """Write the export of records from ``start`` to ``end`` (seqs: inclusive; times: from, and before)."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        last_stored = await store.max_seq(connection)
        first_seq, last_seq = await store.seq_range_recorded(
            connection, start.time if start else None, end.time if end else None)
        if start is not None and start.seq is not None:
            first_seq = max(start.seq, 1)
        if end is not None and end.seq is not None:
            last_seq = min(end.seq, last_stored)
        if first_seq > last_seq + 1:
            raise ExportRefused(f"the period holds no records (seq {first_seq}..{last_seq})")
        frontier, prev_hash = None, None
        if first_seq > 1:
            frontier = await _frontier_before(connection, first_seq)
            before = await store.record_at(connection, first_seq - 1)
            prev_hash = before.record_hash if before is not None else None
        reached = await store.checkpoints(connection, upto_size=last_seq)
        key_id = reached[-1].checkpoint.key_id if reached else await store.current_key_id(connection)
        keys = await store.public_keys(connection)
        if key_id is None or key_id not in keys:
            raise ExportRefused("the log has no signing key yet: no checkpoint was ever sealed")
        signed_by_key = [signed for signed in reached if signed.checkpoint.key_id == key_id]

        def write(records: Any) -> dict[str, Any]:
            return write_export(directory, records, signed_by_key, keys[key_id].encode(),
                                first_seq=first_seq, prev_hash=prev_hash, merkle_frontier=frontier)

        try:
            manifest = await walk(store.record_chunks(connection, first_seq, last_seq), write)
        except ValueError as error:
            raise ExportRefused(f"the log does not fit together at the start of the period ({error}): "
                                "run verify") from error
    return ExportSummary(manifest, key_id, len(signed_by_key), len(reached) - len(signed_by_key))


async def _frontier_before(connection: asyncpg.Connection, first_seq: int) -> list[bytes]:
    """The Merkle frontier of records 1..first_seq-1, from the last checkpoint at or before it."""
    size = first_seq - 1
    builder = MerkleBuilder()
    anchor = await store.latest_checkpoint(connection, upto_size=size)
    if anchor is not None:
        signed, frontier = anchor
        builder = MerkleBuilder.from_frontier(signed.checkpoint.size, frontier)
        if builder.root().hex() != signed.checkpoint.root_hash:
            raise ExportRefused(f"the stored frontier of checkpoint {signed.checkpoint.size} is not its signed "
                                "root: run verify")
    leaves = await store.record_hashes(connection, builder.size, size)
    # Off the event loop: this may hash up to a checkpoint interval of records.
    await asyncio.to_thread(builder.extend, leaves)
    return builder.frontier()
