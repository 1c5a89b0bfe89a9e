"""The proof paths the service assembles from stored subtrees are exactly RFC 6962's (merkle.py's)."""

from __future__ import annotations

import hashlib

from services.audit.merkle import consistency_proof, inclusion_proof, leaf_hash, root
from services.audit.proofs import consistency_path, inclusion_path
from services.audit.tree import FANOUT, subtree_root

LEAVES = [hashlib.sha256(str(i).encode()).digest() for i in range(70)]


def roots(ranges: list[tuple[int, int]]) -> list[bytes]:
    return [root(LEAVES[start:end]) for start, end in ranges]


def test_inclusion_paths_name_the_subtrees_of_rfc_6962() -> None:
    for size in range(1, len(LEAVES) + 1):
        for index in range(size):
            assert roots(inclusion_path(index, size)) == inclusion_proof(index, size, LEAVES)


def test_consistency_paths_name_the_subtrees_of_rfc_6962() -> None:
    for new in range(len(LEAVES) + 1):
        for old in range(new + 1):
            assert roots(consistency_path(old, new)) == consistency_proof(old, new, LEAVES)


def test_every_subtree_on_a_path_is_aligned_so_stored_subtrees_can_build_it() -> None:
    paths = [inclusion_path(index, size) for size in range(1, 300) for index in range(size)]
    paths += [consistency_path(old, new) for new in range(300) for old in range(new + 1)]
    for path in paths:
        for start, end in path:
            # Each starts at a multiple of the smallest power of two that holds it, so every complete subtree
            # inside it is aligned as the stored ones are.
            assert start % (1 << (end - start - 1).bit_length()) == 0


def test_a_subtree_root_from_its_halves_is_the_root_of_its_leaves() -> None:
    leaves = [hashlib.sha256(bytes([i % 256, i // 256])).digest() for i in range(FANOUT * 2)]
    halves = [subtree_root([leaf_hash(leaf) for leaf in leaves[:FANOUT]]),
              subtree_root([leaf_hash(leaf) for leaf in leaves[FANOUT:]])]
    assert subtree_root(halves) == root(leaves)
