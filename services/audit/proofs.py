"""Inclusion and consistency proofs against signed checkpoints, for auditors and partners.

The paths are RFC 6962's (§2.1.1 and §2.1.2), the same as ``merkle.inclusion_proof`` and
``merkle.consistency_proof``, which need every leaf in memory. Here each hash on a path is a subtree root
read from the stored tree (``tree.py``), so a proof costs O(log n) small reads whatever the log's size.
Every proof is checked against the signed roots before it is handed out: a proof that does not verify
means the stored records or subtrees no longer match what was signed, and is refused with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.audit import store
from services.audit.checkpoint import SignedCheckpoint
from services.audit.merkle import verify_consistency, verify_inclusion
from services.audit.tree import MissingSubtrees, StoredTree, split


class ProofUnavailable(Exception):
    """The proof asked for cannot be given: no such checkpoint or record (``missing``), or a broken store."""

    def __init__(self, reason: str, *, missing: bool) -> None:
        super().__init__(reason)
        self.missing = missing


def inclusion_path(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots make up PATH(index, D[size]), bottom first."""
    if not 0 <= index < size:
        raise ValueError(f"need 0 <= index < size, got index={index}, size={size}")
    ranges: list[tuple[int, int]] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = split(end - start)
        if m < k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m = start + k, m - k
    ranges.reverse()
    return ranges


def consistency_path(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose roots make up PROOF(old_size, D[new_size]), in the RFC's order."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"need 0 <= old_size <= new_size, got {old_size}, {new_size}")
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    start, end, m, whole = 0, new_size, old_size, True
    while m != end - start:
        k = split(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Record ``seq`` is leaf ``seq - 1`` of the tree the checkpoint signed."""

    seq: int
    record_hash: str
    checkpoint: SignedCheckpoint
    path: list[bytes]

    def to_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "leaf_index": self.seq - 1,
            "size": self.checkpoint.checkpoint.size,
            "record_hash": self.record_hash,
            "proof": [node.hex() for node in self.path],
            "checkpoint": self.checkpoint.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """The tree the new checkpoint signed extends the tree the old one signed."""

    old: SignedCheckpoint
    new: SignedCheckpoint
    path: list[bytes]

    def to_dict(self) -> dict[str, object]:
        return {
            "old_size": self.old.checkpoint.size,
            "new_size": self.new.checkpoint.size,
            "proof": [node.hex() for node in self.path],
            "old_checkpoint": self.old.to_dict(),
            "new_checkpoint": self.new.to_dict(),
        }


async def _checkpoint(connection: asyncpg.Connection, size: int | None) -> SignedCheckpoint:
    if size is None:
        latest = await store.latest_checkpoint(connection)
        if latest is None:
            raise ProofUnavailable("no checkpoint has been sealed yet", missing=True)
        return latest[0]
    signed = await store.checkpoint_at(connection, size)
    if signed is None:
        raise ProofUnavailable(f"no checkpoint of size {size}; GET /audit/checkpoints lists them", missing=True)
    return signed


async def _roots(connection: asyncpg.Connection, ranges: list[tuple[int, int]]) -> list[bytes]:
    tree = StoredTree(connection)
    try:
        return [await tree.range_root(start, end) for start, end in ranges]
    except MissingSubtrees as missing:
        raise ProofUnavailable(f"{missing}: run verify", missing=False) from missing


async def prove_inclusion(connection: asyncpg.Connection, seq: int, size: int | None = None) -> InclusionProof:
    """An inclusion proof of record ``seq`` in the checkpoint of ``size`` records (default: the latest)."""
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        signed = await _checkpoint(connection, size)
        size = signed.checkpoint.size
        if not 1 <= seq <= size:
            raise ProofUnavailable(f"record {seq} is not among the {size} records of this checkpoint", missing=True)
        record = await store.record_at(connection, seq)
        if record is None:
            raise ProofUnavailable(f"record {seq} is missing from the log: run verify", missing=False)
        path = await _roots(connection, inclusion_path(seq - 1, size))
    if not verify_inclusion(bytes.fromhex(record.record_hash), seq - 1, size, path,
                            bytes.fromhex(signed.checkpoint.root_hash)):
        raise ProofUnavailable(f"the stored log no longer matches the checkpoint of size {size}: run verify",
                               missing=False)
    return InclusionProof(seq, record.record_hash, signed, path)


async def prove_consistency(connection: asyncpg.Connection, old_size: int, new_size: int) -> ConsistencyProof:
    """A consistency proof between two sealed checkpoints."""
    if old_size > new_size:
        raise ProofUnavailable("old must not be larger than new", missing=True)
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        old, new = await _checkpoint(connection, old_size), await _checkpoint(connection, new_size)
        path = await _roots(connection, consistency_path(old_size, new_size))
    if not verify_consistency(old_size, new_size, bytes.fromhex(old.checkpoint.root_hash),
                              bytes.fromhex(new.checkpoint.root_hash), path):
        raise ProofUnavailable(f"the stored log no longer matches the checkpoints of size {old_size} and "
                               f"{new_size}: run verify", missing=False)
    return ConsistencyProof(old, new, path)
