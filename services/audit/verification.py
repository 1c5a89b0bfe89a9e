"""Verify the stored log: the whole chain and every checkpoint, in one snapshot, naming the first bad record.

What each check catches, for changes made directly in the database by someone who disabled its guards:

* a changed field, a deleted, inserted, duplicated or reordered record: the chain, at that record;
* records rewritten with every hash after them recomputed: the first checkpoint sealed over them, whose
  Merkle root and last record hash no longer match; the first bad record then lies between that
  checkpoint and the last one that still matches, and is reported as that range;
* a cut-off tail: a checkpoint larger than what is left;
* a changed checkpoint: its signature.

What it cannot catch from the database alone: a rewrite of records no checkpoint covers yet
(``unsealed_records`` says how many), and checkpoints deleted together with the records they covered.
Auditors close that gap by keeping checkpoints they fetched earlier and passing them in
(``extra_checkpoints``), and by pinning the key the centre published instead of trusting the stored one.

Speed. A record is hashed over its stored bytes, the payload taken as stored (``chain.stored_record_hash``)
rather than parsed and re-encoded, which is most of the cost of a million records. That checks every
byte; what it does not check is that the payload text is canonical JSON, and it need not for sealed
records: the sealer checked exactly that (``verify_chain``) before it signed them, and any later change
to their bytes changes their hashes and so the signed root. Records after the last checkpoint have
nothing signed over them, so they are checked the full way, parsed and re-encoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit import store
from services.audit.chain import GENESIS_HASH, record_hash_of, stored_record_hash
from services.audit.checkpoint import SignedCheckpoint, key_id, load_public_key_pem, verify_checkpoint
from services.audit.merkle import MerkleBuilder
from services.audit.streaming import walk


@dataclass(frozen=True, slots=True)
class StoredLogVerdict:
    """The outcome of verifying the stored log.

    ``first_bad_seq`` names the first bad record when the chain itself shows it; when only a checkpoint
    shows a change (a rewrite with recomputed hashes), ``bad_range`` holds the records it must lie in.
    """

    ok: bool
    records_checked: int
    checkpoints_checked: int
    first_bad_seq: int | None = None
    bad_range: tuple[int, int] | None = None
    reason: str | None = None
    key_ids: tuple[str, ...] = ()
    unsealed_records: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records_checked": self.records_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "first_bad_seq": self.first_bad_seq,
            "bad_range": list(self.bad_range) if self.bad_range else None,
            "reason": self.reason,
            "key_ids": list(self.key_ids),
            "unsealed_records": self.unsealed_records,
        }

    def where(self) -> str:
        """The first bad record in words."""
        if self.first_bad_seq is not None:
            return f"record {self.first_bad_seq}"
        if self.bad_range is not None:
            return f"a record in {self.bad_range[0]}..{self.bad_range[1]}"
        return "a checkpoint"


async def verify_stored_log(
    connection: asyncpg.Connection,
    *,
    pinned_keys: Sequence[Ed25519PublicKey] = (),
    extra_checkpoints: Sequence[SignedCheckpoint] = (),
) -> StoredLogVerdict:
    """Walk the whole chain and check every checkpoint (stored and ``extra``) against it, in one pass.

    With ``pinned_keys`` every checkpoint must be signed by one of them; without, by a key registered in
    the log's ``signing_keys`` (which only shows that the log agrees with itself: compare the key ids
    reported with those the centre published).
    """
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        checkpoints = _distinct([*await store.checkpoints(connection), *extra_checkpoints])
        if pinned_keys:
            keys = {key_id(key): key for key in pinned_keys}
        else:
            registered = await store.public_keys(connection)
            keys = {kid: load_public_key_pem(pem.encode()) for kid, pem in registered.items()}
        refused = _check_signatures(checkpoints, keys, pinned=bool(pinned_keys))
        if refused is not None:
            return refused
        total = await store.max_seq(connection)
        walker = LogWalk(checkpoints)
        verdict = await walk(store.row_chunks(connection), walker.run)
    return StoredLogVerdict(**{**verdict, "key_ids": tuple(sorted({c.checkpoint.key_id for c in checkpoints})),
                               "unsealed_records": max(total - walker.sealed, 0)})


def _distinct(checkpoints: Iterable[SignedCheckpoint]) -> list[SignedCheckpoint]:
    seen: dict[tuple[int, str], SignedCheckpoint] = {}
    for signed in checkpoints:
        seen.setdefault((signed.checkpoint.size, signed.signature), signed)
    return sorted(seen.values(), key=lambda signed: signed.checkpoint.size)


def _check_signatures(
    checkpoints: Sequence[SignedCheckpoint], keys: dict[str, Ed25519PublicKey], *, pinned: bool
) -> StoredLogVerdict | None:
    for signed in checkpoints:
        size, kid = signed.checkpoint.size, signed.checkpoint.key_id
        key = keys.get(kid)
        if key is None:
            known = "a pinned key" if pinned else "a key registered in the log"
            return StoredLogVerdict(False, 0, 0, reason=f"checkpoint of size {size} is signed by key {kid}, "
                                                        f"which is not {known}", key_ids=(kid,))
        if not verify_checkpoint(signed, key):
            return StoredLogVerdict(False, 0, 0, reason=f"checkpoint of size {size}: signature does not verify "
                                                        "(the checkpoint was altered)", key_ids=(kid,))
    return None


class LogWalk:
    """One pass over the stored rows in seq order: seqs, links, hashes, and the roots the checkpoints signed.

    The checkpoints' signatures are checked before the walk; here each is held against the records.
    """

    def __init__(self, checkpoints: Sequence[SignedCheckpoint]) -> None:
        self.checkpoints = sorted(checkpoints, key=lambda signed: signed.checkpoint.size)
        self.sealed = max((signed.checkpoint.size for signed in self.checkpoints), default=0)

    def run(self, rows: Iterable[Any]) -> dict[str, Any]:
        """The verdict's fields (ok, records_checked, checkpoints_checked, first_bad_seq, bad_range, reason)."""
        pending, index, matched, last_good = self.checkpoints, 0, 0, 0
        builder = MerkleBuilder()
        expected, last_hash = 1, GENESIS_HASH

        def bad(reason: str) -> dict[str, Any]:
            return {"ok": False, "records_checked": expected - 1, "checkpoints_checked": matched,
                    "first_bad_seq": expected, "reason": reason}

        def held(position: int) -> dict[str, Any] | None:
            nonlocal index, matched, last_good
            while index < len(pending) and pending[index].checkpoint.size == position:
                checkpoint = pending[index].checkpoint
                index += 1
                if checkpoint.last_record_hash != last_hash:
                    what = f"its last_record_hash is not the hash of record {position}"
                elif checkpoint.root_hash != builder.root().hex():
                    what = f"its Merkle root is not the root of records 1..{position}"
                else:
                    matched, last_good = matched + 1, position
                    continue
                still = f" (the checkpoint of size {last_good} still matches)" if last_good else ""
                return {"ok": False, "records_checked": position, "checkpoints_checked": matched,
                        "bad_range": (last_good + 1, position),
                        "reason": f"checkpoint of size {position}: {what}: records {last_good + 1}..{position} "
                                  f"were rewritten after it was signed{still}"}
            return None

        if failure := held(0):
            return failure
        for row in rows:
            seq, prev_hash, record_hash = row[0], row[11], row[12]
            if seq != expected:
                if seq > expected:
                    return bad(f"expected seq {expected}, found {seq}: record(s) {expected}..{seq - 1} missing "
                               "or out of order")
                return bad(f"expected seq {expected}, found {seq}: record inserted, duplicated or out of order")
            if prev_hash != last_hash:
                return bad(f"seq {seq}: prev_hash does not match the record_hash of the record before it")
            try:
                digest = stored_record_hash(*row[:12]) if seq <= self.sealed else record_hash_of(store.record_of(row))
            except ValueError as error:
                return bad(f"seq {seq}: contents have no canonical form ({error})")
            if digest != record_hash:
                return bad(f"seq {seq}: record_hash does not match the record's contents")
            last_hash = digest
            builder.append(bytes.fromhex(digest))
            if failure := held(seq):
                return failure
            expected += 1
        if index < len(pending):
            size, last = pending[index].checkpoint.size, expected - 1
            return {"ok": False, "records_checked": last, "checkpoints_checked": matched, "first_bad_seq": last + 1,
                    "reason": f"checkpoint of size {size} reaches past the last record (seq {last}): "
                              f"records {last + 1}..{size} are missing"}
        return {"ok": True, "records_checked": expected - 1, "checkpoints_checked": matched}
