"""The stored Merkle tree: roots of aligned subtrees of 2^8, 2^16, ... records, written as checkpoints seal.

The tree over the log is RFC 6962's (``merkle.py``). Proofs need the roots of subtrees anywhere in it;
computing one from its records costs a hash per record, so the sealer stores the root of every aligned,
complete subtree whose height is a multiple of 8 (one row per 256 records in all). Any subtree root is
then assembled from at most 255 stored roots or record hashes per 8 levels. Nothing stored here is
trusted: a proof built from a wrong row does not verify against the signed root, and ``proofs.py`` checks
every proof before it serves it.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.audit import store
from services.audit.merkle import MerkleBuilder, leaf_hash, node_hash

TILE_HEIGHT = 8
FANOUT = 1 << TILE_HEIGHT


class MissingSubtrees(Exception):
    """A stored subtree root that should be there is not (the log was sealed by an older version, or tampered)."""


def subtree_root(children: Sequence[bytes]) -> bytes:
    """The root over a power-of-two run of subtree roots (or leaf hashes) of equal height."""
    builder = MerkleBuilder()
    for child in children:
        builder.append_leaf_hash(child)
    return builder.root()


def split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2): where RFC 6962 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


async def store_subtrees(connection: asyncpg.Connection, start: int, leaves: Sequence[bytes]) -> None:
    """Store the roots of the aligned subtrees of 2^8, 2^16, ... records that ``leaves`` complete.

    ``leaves`` are the record hashes of records ``start + 1``..``start + len(leaves)``; every subtree that
    ended at or before ``start`` must already be stored.
    """
    end = start + len(leaves)
    height = TILE_HEIGHT
    while (span := 1 << height) <= end:
        first, last = start // span, end // span  # the subtrees first..last-1 end within (start, end]
        if first < last:
            nodes = [(index, subtree_root(await _children(connection, height, index, start, leaves)))
                     for index in range(first, last)]
            await store.insert_subtrees(connection, height, nodes)
        height += TILE_HEIGHT


async def _children(
    connection: asyncpg.Connection, height: int, index: int, start: int, leaves: Sequence[bytes]
) -> list[bytes]:
    if height == TILE_HEIGHT:
        begin = index * FANOUT
        known = await store.record_hashes(connection, begin, start) if begin < start else []
        fresh = leaves[max(begin - start, 0):begin + FANOUT - start]
        return [leaf_hash(leaf) for leaf in (*known, *fresh)]
    # The level below was stored a moment ago in this transaction, or by earlier seals.
    children = await store.subtrees(connection, height - TILE_HEIGHT, index * FANOUT, FANOUT)
    if len(children) != FANOUT:
        raise MissingSubtrees(f"subtrees of height {height - TILE_HEIGHT} under subtree {index} are missing")
    return children


class StoredTree:
    """Roots of any RFC 6962 subtree of the log, read from the stored subtrees and records."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.reads = 0

    async def range_root(self, start: int, end: int) -> bytes:
        """MTH of the leaves ``start``..``end - 1`` (0-based: leaf i is record i + 1)."""
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return await self.perfect_root(start, n.bit_length() - 1)
        k = split(n)
        return node_hash(await self.range_root(start, start + k), await self.range_root(start + k, end))

    async def perfect_root(self, start: int, height: int) -> bytes:
        """Root of the aligned, complete subtree of 2^height leaves from leaf ``start``."""
        self.reads += 1
        stored = height - height % TILE_HEIGHT
        if stored == 0:
            leaves = await store.record_hashes(self.connection, start, start + (1 << height))
            if len(leaves) != 1 << height:
                raise MissingSubtrees(f"records {start + 1}..{start + (1 << height)} are not all there")
            return subtree_root([leaf_hash(leaf) for leaf in leaves])
        count = 1 << (height - stored)
        nodes = await store.subtrees(self.connection, stored, start >> stored, count)
        if len(nodes) != count:
            raise MissingSubtrees(f"stored subtrees of height {stored} from leaf {start} are missing")
        return subtree_root(nodes)
