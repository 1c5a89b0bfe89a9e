"""RFC 6962 / RFC 9162 Merkle tree hashes over the audit stream's record hashes.

The hash chain proves order, but checking one record against it means walking from the start. A Merkle
tree over the same records gives short proofs instead: that record i is in the log a checkpoint signed
(inclusion proof, log2(n) hashes), and that a later checkpoint extends an earlier one without rewriting
it (consistency proof). The tree is exactly the Certificate Transparency one, so existing tooling and
the RFC's worked examples can be used to check it.

Leaves are the raw 32-byte record hashes (``bytes.fromhex(record.record_hash)``).
leaf hash = sha256(0x00 || leaf), node hash = sha256(0x01 || left || right); the 0x00/0x01 prefixes keep
a leaf from being passed off as an inner node (second-preimage attack).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_SIZE = 32


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 6962 hash of one leaf: sha256(0x00 || leaf)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 hash of an inner node: sha256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below n (n >= 2): where RFC 6962 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleBuilder:
    """Appends leaves one at a time, keeping only the roots of the perfect subtrees (a compact range).

    The roots held are those of the complete subtrees that the binary digits of ``size`` describe, left
    to right and largest first, so memory is O(log n) and appending is amortised O(1) hashes. That lets a
    verifier compute the root of a million-record stream while streaming it, and read off the root at
    every checkpoint size on the way.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> MerkleBuilder:
        """Resume from the subtree roots of the first ``size`` leaves (as returned by ``frontier()``).

        This lets an export that starts in the middle of the stream still reproduce signed roots: the
        frontier is not trusted on its own, but a wrong one cannot yield a root that matches a signature.
        """
        if size < 0 or len(frontier) != size.bit_count():
            raise ValueError(f"a frontier for {size} leaves has {max(size, 0).bit_count()} hashes")
        if any(len(h) != HASH_SIZE for h in frontier):
            raise ValueError("frontier hashes must be 32 bytes")
        builder = cls()
        builder._size = size
        builder._stack = list(frontier)
        return builder

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf: bytes) -> None:
        """Add the next leaf (its data, not its hash)."""
        self.append_leaf_hash(hashlib.sha256(b"\x00" + leaf).digest())

    def append_leaf_hash(self, hashed: bytes) -> None:
        """Add the next leaf given its RFC 6962 leaf hash."""
        stack = self._stack
        n = self._size
        # Each trailing 1 bit of the old size is a perfect subtree of the same height as the new one:
        # merge them, as a binary counter carries.
        while n & 1:
            hashed = hashlib.sha256(b"\x01" + stack.pop() + hashed).digest()
            n >>= 1
        stack.append(hashed)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append many leaves; the loop is inlined because this is the hot path for whole-log roots."""
        sha256 = hashlib.sha256
        stack = self._stack
        size = self._size
        for leaf in leaves:
            hashed = sha256(b"\x00" + leaf).digest()
            n = size
            while n & 1:
                hashed = sha256(b"\x01" + stack.pop() + hashed).digest()
                n >>= 1
            stack.append(hashed)
            size += 1
        self._size = size

    def frontier(self) -> list[bytes]:
        """The subtree roots held, largest (leftmost) first: enough to resume with ``from_frontier``."""
        return list(self._stack)

    def root(self) -> bytes:
        """MTH of the leaves so far. Folding right to left reproduces RFC 6962's split at powers of two."""
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        result = stack[-1]
        for left in reversed(stack[:-1]):
            result = node_hash(left, result)
        return result


def root(leaves: Iterable[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 §2.1, in O(n) time and O(log n) memory (leaves may be a stream)."""
    builder = MerkleBuilder()
    builder.extend(leaves)
    return builder.root()


def _subtree_root(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    builder = MerkleBuilder()
    builder.extend(leaves[i] for i in range(start, end))
    return builder.root()


def inclusion_proof(index: int, size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 §2.1.1: the sibling hashes from leaf ``index`` up to the root of the first
    ``size`` leaves, bottom first. It lets anyone holding a signed root confirm one record is in the log
    without the other records."""
    if not 0 <= index < size <= len(leaves):
        raise ValueError(f"need 0 <= index < size <= {len(leaves)}, got index={index}, size={size}")
    path: list[bytes] = []
    start, end, m = 0, size, index
    # Descend from the root, remembering the sibling subtree at each split; the RFC lists them bottom first.
    while end - start > 1:
        k = _split(end - start)
        if m < k:
            path.append(_subtree_root(leaves, start + k, end))
            end = start + k
        else:
            path.append(_subtree_root(leaves, start, start + k))
            start, m = start + k, m - k
    path.reverse()
    return path


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root_hash: bytes) -> bool:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` leaves whose root is ``root_hash``.

    The algorithm of RFC 9162 §2.1.3.2, step by step; any proof of the wrong length fails.
    """
    if not 0 <= index < size or any(len(p) != HASH_SIZE for p in proof):
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def consistency_proof(old_size: int, new_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 §2.1.2: the hashes showing the tree of ``old_size`` leaves is a prefix of
    the tree of ``new_size`` leaves. Auditors keep an old signed root and ask for this to check that the
    log was only appended to. Empty when the sizes are equal or the old tree is empty."""
    if not 0 <= old_size <= new_size <= len(leaves):
        raise ValueError(f"need 0 <= old_size <= new_size <= {len(leaves)}, got {old_size}, {new_size}")
    if old_size in (0, new_size):
        return []
    path: list[bytes] = []
    # SUBPROOF(m, D[start:end], b) unrolled: b stays true while m sits on the left edge of the subtree.
    start, end, m, whole = 0, new_size, old_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            path.append(_subtree_root(leaves, start + k, end))
            end = start + k
        else:
            path.append(_subtree_root(leaves, start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        path.append(_subtree_root(leaves, start, end))
    path.reverse()
    return path


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check that the tree (``new_size``, ``new_root``) extends the tree (``old_size``, ``old_root``).

    RFC 9162 §2.1.4.2 step by step for 0 < old_size < new_size; equal sizes need equal roots and an empty
    proof, and the empty tree is a prefix of every tree.
    """
    if not 0 <= old_size <= new_size or any(len(p) != HASH_SIZE for p in proof):
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root
