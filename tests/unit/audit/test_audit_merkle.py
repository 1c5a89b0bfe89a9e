"""RFC 6962 Merkle tree: known answers, a reference written from the RFC text, proofs and their forgeries."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit.merkle import (
    EMPTY_ROOT,
    MerkleBuilder,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The certificate-transparency reference test vectors (leaf inputs, roots of the first n leaves, proofs).
CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (5, 8): ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
}
CT_CONSISTENCY = {
    (1, 8): ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"],
    (6, 8): ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"],
    (2, 5): ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
             "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"],
}


# A direct transcription of RFC 6962 §2.1 (recursive, quadratic), to check the fast code against.
def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def rfc_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + rfc_mth(d[:k]) + rfc_mth(d[k:])).digest()


def rfc_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*rfc_path(m, d[:k]), rfc_mth(d[k:])]
    return [*rfc_path(m - k, d[k:]), rfc_mth(d[:k])]


def rfc_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [rfc_mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*rfc_subproof(m, d[:k], b), rfc_mth(d[k:])]
    return [*rfc_subproof(m - k, d[k:], False), rfc_mth(d[:k])]


def leaves_of(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


LEAVES_64 = leaves_of(64)
ROOTS_64 = [root(LEAVES_64[:n]) for n in range(65)]


def flip_bit(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8 % len(changed)] ^= 1 << (bit % 8)
    return bytes(changed)


# --- known answers -----------------------------------------------------------------------------------


def test_roots_match_the_certificate_transparency_vectors() -> None:
    for n, expected in enumerate(CT_ROOTS):
        assert root(CT_LEAVES[:n]).hex() == expected
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]


@pytest.mark.parametrize(("index", "size"), list(CT_INCLUSION))
def test_inclusion_proofs_match_the_vectors(index: int, size: int) -> None:
    proof = inclusion_proof(index, size, CT_LEAVES)
    assert [p.hex() for p in proof] == CT_INCLUSION[(index, size)]
    assert verify_inclusion(CT_LEAVES[index], index, size, proof, bytes.fromhex(CT_ROOTS[size]))


@pytest.mark.parametrize(("old", "new"), list(CT_CONSISTENCY))
def test_consistency_proofs_match_the_vectors(old: int, new: int) -> None:
    proof = consistency_proof(old, new, CT_LEAVES)
    assert [p.hex() for p in proof] == CT_CONSISTENCY[(old, new)]
    assert verify_consistency(old, new, bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new]), proof)


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = b"\x11" * 32, b"\x22" * 32
    assert leaf_hash(a) == hashlib.sha256(b"\x00" + a).digest()
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert leaf_hash(a + b) != node_hash(a, b)


# --- the builder -------------------------------------------------------------------------------------


def test_builder_root_matches_the_rfc_definition_at_every_size() -> None:
    builder = MerkleBuilder()
    assert builder.root() == rfc_mth([])
    for n, leaf in enumerate(LEAVES_64, 1):
        builder.append(leaf)
        assert builder.size == n
        assert builder.root() == rfc_mth(LEAVES_64[:n]) == ROOTS_64[n]
        assert len(builder.frontier()) == n.bit_count()


@settings(max_examples=50)
@given(st.integers(0, 64), st.integers(0, 64))
def test_builder_resumes_from_a_frontier(split: int, extra: int) -> None:
    leaves = leaves_of(split + extra)
    first = MerkleBuilder()
    first.extend(leaves[:split])
    resumed = MerkleBuilder.from_frontier(split, first.frontier())
    resumed.extend(leaves[split:])
    assert resumed.root() == root(leaves)


def test_a_frontier_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError):
        MerkleBuilder.from_frontier(5, [b"\x00" * 32])
    with pytest.raises(ValueError):
        MerkleBuilder.from_frontier(1, [b"\x00" * 31])


def test_root_takes_a_stream() -> None:
    assert root(iter(LEAVES_64)) == ROOTS_64[64]


# --- inclusion ---------------------------------------------------------------------------------------


def test_every_inclusion_proof_verifies_for_sizes_1_to_64() -> None:
    for size in range(1, 65):
        for index in range(size):
            proof = inclusion_proof(index, size, LEAVES_64)
            assert proof == rfc_path(index, LEAVES_64[:size])
            assert verify_inclusion(LEAVES_64[index], index, size, proof, ROOTS_64[size])


@settings(max_examples=200)
@given(st.data())
def test_a_modified_inclusion_proof_fails(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 64), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(index, size, LEAVES_64)
    leaf, good_root = LEAVES_64[index], ROOTS_64[size]
    assert verify_inclusion(leaf, index, size, proof, good_root)

    if proof:
        at = data.draw(st.integers(0, len(proof) - 1), label="element")
        bit = data.draw(st.integers(0, 255), label="bit")
        assert not verify_inclusion(leaf, index, size, [*proof[:at], flip_bit(proof[at], bit), *proof[at + 1 :]],
                                    good_root)
        assert not verify_inclusion(leaf, index, size, proof[:-1], good_root)
        if len(proof) > 1:
            assert not verify_inclusion(leaf, index, size, proof[::-1], good_root)
    assert not verify_inclusion(leaf, index, size, [*proof, b"\x00" * 32], good_root)
    assert not verify_inclusion(flip_bit(leaf, 0), index, size, proof, good_root)
    assert not verify_inclusion(leaf, index, size, proof, flip_bit(good_root, 7))
    assert not verify_inclusion(leaf, size, size, proof, good_root)
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index) if size > 1 else st.none())
    if other is not None:
        assert not verify_inclusion(leaf, other, size, proof, good_root)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 2000), st.data())
def test_inclusion_in_larger_trees(size: int, data: st.DataObject) -> None:
    leaves = leaves_of(size)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof(index, size, leaves)
    assert len(proof) <= (size - 1).bit_length()
    assert verify_inclusion(leaves[index], index, size, proof, root(leaves))


def test_inclusion_proof_refuses_impossible_positions() -> None:
    with pytest.raises(ValueError):
        inclusion_proof(3, 3, LEAVES_64)
    with pytest.raises(ValueError):
        inclusion_proof(0, 65, LEAVES_64)


# --- consistency ---------------------------------------------------------------------------------------


def test_every_consistency_proof_verifies_for_sizes_up_to_40() -> None:
    for new in range(0, 41):
        for old in range(0, new + 1):
            proof = consistency_proof(old, new, LEAVES_64)
            if 0 < old < new:
                assert proof == rfc_subproof(old, LEAVES_64[:new], True)
            else:
                assert proof == []
            assert verify_consistency(old, new, ROOTS_64[old], ROOTS_64[new], proof), (old, new)


@settings(max_examples=200)
@given(st.data())
def test_a_modified_consistency_proof_fails(data: st.DataObject) -> None:
    new = data.draw(st.integers(2, 40), label="new")
    old = data.draw(st.integers(1, new - 1), label="old")
    proof = consistency_proof(old, new, LEAVES_64)
    old_root, new_root = ROOTS_64[old], ROOTS_64[new]
    at = data.draw(st.integers(0, len(proof) - 1), label="element")
    bit = data.draw(st.integers(0, 255), label="bit")
    assert not verify_consistency(old, new, old_root, new_root,
                                  [*proof[:at], flip_bit(proof[at], bit), *proof[at + 1 :]])
    assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
    assert not verify_consistency(old, new, old_root, new_root, [*proof, b"\x00" * 32])
    assert not verify_consistency(old, new, flip_bit(old_root, 3), new_root, proof)
    assert not verify_consistency(old, new, old_root, flip_bit(new_root, 3), proof)
    assert not verify_consistency(new, old, new_root, old_root, proof)
    assert not verify_consistency(old, new, old_root, new_root, [])


def test_a_rewritten_history_has_no_consistency_proof() -> None:
    rewritten = list(LEAVES_64[:40])
    rewritten[7] = b"\xff" * 32
    for old in range(8, 40):
        # The best a rewritten log can offer: a proof from its own tree, against the root handed out before.
        proof = consistency_proof(old, 40, rewritten)
        assert not verify_consistency(old, 40, ROOTS_64[old], root(rewritten), proof)


def test_equal_and_empty_trees() -> None:
    assert verify_consistency(5, 5, ROOTS_64[5], ROOTS_64[5], [])
    assert not verify_consistency(5, 5, ROOTS_64[5], ROOTS_64[6], [])
    assert not verify_consistency(5, 5, ROOTS_64[5], ROOTS_64[5], [ROOTS_64[5]])
    assert verify_consistency(0, 9, EMPTY_ROOT, ROOTS_64[9], [])
    assert not verify_consistency(0, 9, ROOTS_64[1], ROOTS_64[9], [])
