"""Signed checkpoints: keys, signatures and their forgeries, and records checked against checkpoints."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.chain import GENESIS_HASH, AuditRecord
from services.audit.checkpoint import (
    SIGNING_DOMAIN,
    Checkpoint,
    SignedCheckpoint,
    generate_private_key,
    key_id,
    load_private_key_pem,
    load_public_key_pem,
    make_checkpoint,
    private_key_from_raw,
    private_key_raw,
    private_key_to_pem,
    public_key_from_raw,
    public_key_raw,
    public_key_to_pem,
    sign_checkpoint,
    verify_checkpoint,
    verify_log,
    write_export,
)
from services.audit.merkle import EMPTY_ROOT, MerkleBuilder, root
from tests.unit.audit.audit_samples import SEALED_AT, build_chain, reseal_from

Signer = Callable[[list[AuditRecord], int], SignedCheckpoint]


# --- keys ---------------------------------------------------------------------------------------------


def test_key_id_is_the_start_of_the_public_key_hash(signing_key: Ed25519PrivateKey) -> None:
    public = signing_key.public_key()
    assert key_id(public) == hashlib.sha256(public_key_raw(public)).hexdigest()[:16]
    assert len(public_key_raw(public)) == 32


def test_keys_round_trip_through_pem_and_raw_bytes(signing_key: Ed25519PrivateKey) -> None:
    public = signing_key.public_key()
    for password in (None, b"correct horse"):
        pem = private_key_to_pem(signing_key, password)
        assert (b"ENCRYPTED" in pem) == (password is not None)
        assert private_key_raw(load_private_key_pem(pem, password)) == private_key_raw(signing_key)
    assert key_id(load_public_key_pem(public_key_to_pem(public))) == key_id(public)
    assert private_key_raw(private_key_from_raw(private_key_raw(signing_key))) == private_key_raw(signing_key)
    assert key_id(public_key_from_raw(public_key_raw(public))) == key_id(public)


def test_keys_of_another_algorithm_are_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    private_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_private_key_pem(private_pem)
    with pytest.raises(ValueError, match="Ed25519"):
        load_public_key_pem(public_pem)


# --- checkpoints and signatures --------------------------------------------------------------------------


def test_a_checkpoint_states_size_root_and_last_hash(
    chain_100: list[AuditRecord], signing_key: Ed25519PrivateKey
) -> None:
    checkpoint = make_checkpoint(chain_100[:64], key_id=key_id(signing_key.public_key()), sealed_at=SEALED_AT)
    assert checkpoint.size == 64
    assert checkpoint.root_hash == root(bytes.fromhex(r.record_hash) for r in chain_100[:64]).hex()
    assert checkpoint.last_record_hash == chain_100[63].record_hash
    assert checkpoint.signed_bytes().startswith(SIGNING_DOMAIN)
    assert Checkpoint.from_dict(checkpoint.to_dict()) == checkpoint


def test_an_empty_log_has_an_empty_checkpoint(signing_key: Ed25519PrivateKey) -> None:
    checkpoint = make_checkpoint([], key_id=key_id(signing_key.public_key()))
    assert (checkpoint.size, checkpoint.root_hash, checkpoint.last_record_hash) == (0, EMPTY_ROOT.hex(), GENESIS_HASH)


def test_a_broken_chain_is_never_checkpointed(chain_100: list[AuditRecord], signing_key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="broken chain at seq 3"):
        make_checkpoint([*chain_100[:2], *chain_100[3:10]], key_id=key_id(signing_key.public_key()))


def test_a_signed_checkpoint_verifies(chain_100: list[AuditRecord], sign_at: Signer,
                                      signing_key: Ed25519PrivateKey) -> None:
    signed = sign_at(chain_100, 100)
    assert verify_checkpoint(signed, signing_key.public_key())
    assert SignedCheckpoint.from_dict(json.loads(json.dumps(signed.to_dict()))) == signed


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("size", 99),
        ("root_hash", "ab" * 32),
        ("last_record_hash", "cd" * 32),
        ("sealed_at", "2020-01-01T00:00:00+00:00"),
    ],
)
def test_a_changed_checkpoint_field_fails_verification(
    chain_100: list[AuditRecord], sign_at: Signer, signing_key: Ed25519PrivateKey, name: str, value: object
) -> None:
    signed = sign_at(chain_100, 100)
    changes: dict[str, Any] = {name: value}
    forged = SignedCheckpoint(dataclasses.replace(signed.checkpoint, **changes), signed.signature)
    assert not verify_checkpoint(forged, signing_key.public_key())


def test_forged_signatures_fail(chain_100: list[AuditRecord], sign_at: Signer, signing_key: Ed25519PrivateKey) -> None:
    public = signing_key.public_key()
    signed = sign_at(chain_100, 100)
    flipped = bytearray(bytes.fromhex(signed.signature))
    flipped[10] ^= 0x01
    assert not verify_checkpoint(SignedCheckpoint(signed.checkpoint, flipped.hex()), public)
    assert not verify_checkpoint(SignedCheckpoint(signed.checkpoint, "00" * 64), public)
    assert not verify_checkpoint(SignedCheckpoint(signed.checkpoint, "not hex"), public)
    assert not verify_checkpoint(SignedCheckpoint(signed.checkpoint, signed.signature[:-2]), public)

    # A forger with a key of their own, even naming the centre's key id, gets nowhere.
    forger = generate_private_key()
    forged_signature = forger.sign(signed.checkpoint.signed_bytes()).hex()
    assert not verify_checkpoint(SignedCheckpoint(signed.checkpoint, forged_signature), public)
    # And the centre's signature is no good under another key.
    assert not verify_checkpoint(signed, forger.public_key())


def test_the_signing_key_must_match_the_key_id(chain_100: list[AuditRecord], signing_key: Ed25519PrivateKey) -> None:
    checkpoint = make_checkpoint(chain_100[:5], key_id="0" * 16, sealed_at=SEALED_AT)
    with pytest.raises(ValueError, match="names key"):
        sign_checkpoint(checkpoint, signing_key)


@pytest.mark.parametrize(
    "fields",
    [
        {"size": -1},
        {"size": True},
        {"root_hash": "AB" * 32},
        {"key_id": "short"},
        {"sealed_at": "2026-01-01T00:00:00"},
        {"size": 0},
    ],
)
def test_malformed_checkpoints_are_refused(fields: dict[str, object]) -> None:
    good = {"size": 3, "root_hash": "a" * 64, "last_record_hash": "b" * 64, "sealed_at": SEALED_AT,
            "key_id": "c" * 16}
    with pytest.raises(ValueError):
        Checkpoint(**{**good, **fields})  # type: ignore[arg-type]


# --- records against checkpoints -------------------------------------------------------------------------


def test_an_untouched_log_matches_all_its_checkpoints(
    chain_100: list[AuditRecord], sign_at: Signer, signing_key: Ed25519PrivateKey
) -> None:
    checkpoints = [sign_at(chain_100, size) for size in (0, 1, 10, 64, 100)]
    verdict = verify_log(chain_100, checkpoints, signing_key.public_key())
    assert verdict.ok, verdict.reason
    assert (verdict.records_checked, verdict.checkpoints_matched) == (100, 5)


def test_a_rewrite_with_recomputed_hashes_is_caught_by_the_checkpoint(
    chain_100: list[AuditRecord], sign_at: Signer, signing_key: Ed25519PrivateKey
) -> None:
    checkpoints = [sign_at(chain_100, 50), sign_at(chain_100, 100)]
    forged = reseal_from(chain_100, 70, payload={"decision": "forged"})
    verdict = verify_log(forged, checkpoints, signing_key.public_key())
    assert not verdict.ok
    assert verdict.bad_checkpoint_size == 100
    assert verdict.checkpoints_matched == 1
    assert "differs" in (verdict.reason or "")


def test_a_rewrite_before_a_checkpoint_is_caught_by_its_root(
    chain_100: list[AuditRecord], sign_at: Signer, signing_key: Ed25519PrivateKey
) -> None:
    forged = reseal_from(chain_100, 20, payload={"decision": "forged"})
    # A forger who also keeps the old last record hash at size 50 is still caught by the root.
    checkpoint = sign_at(chain_100, 50).checkpoint
    assert forged[49].record_hash != checkpoint.last_record_hash
    verdict = verify_log(forged, [sign_at(chain_100, 50)], signing_key.public_key())
    assert (verdict.ok, verdict.bad_checkpoint_size) == (False, 50)


def test_a_cut_off_tail_is_caught_by_the_checkpoint(
    chain_100: list[AuditRecord], sign_at: Signer, signing_key: Ed25519PrivateKey
) -> None:
    verdict = verify_log(chain_100[:97], [sign_at(chain_100, 100)], signing_key.public_key())
    assert not verdict.ok
    assert (verdict.first_bad_seq, verdict.bad_checkpoint_size) == (98, 100)
    assert "98..100 are missing" in (verdict.reason or "")


def test_a_forged_checkpoint_fails_the_log(
    chain_100: list[AuditRecord], sign_at: Signer, signing_key: Ed25519PrivateKey
) -> None:
    signed = sign_at(chain_100, 100)
    forged = SignedCheckpoint(dataclasses.replace(signed.checkpoint, size=99), signed.signature)
    verdict = verify_log(chain_100, [forged], signing_key.public_key())
    assert (verdict.ok, verdict.bad_checkpoint_size) == (False, 99)
    assert "signature" in (verdict.reason or "")


def test_chain_damage_is_reported_with_its_seq(
    chain_100: list[AuditRecord], sign_at: Signer, signing_key: Ed25519PrivateKey
) -> None:
    records = list(chain_100)
    records[30], records[31] = records[31], records[30]
    verdict = verify_log(records, [sign_at(chain_100, 100)], signing_key.public_key())
    assert (verdict.ok, verdict.first_bad_seq, verdict.records_checked) == (False, 31, 30)


def test_a_segment_with_a_frontier_recomputes_the_roots(
    chain_100: list[AuditRecord], sign_at: Signer, signing_key: Ed25519PrivateKey
) -> None:
    builder = MerkleBuilder()
    builder.extend(bytes.fromhex(r.record_hash) for r in chain_100[:40])
    checkpoints = [sign_at(chain_100, size) for size in (10, 40, 64, 100)]
    public = signing_key.public_key()
    kwargs: dict[str, Any] = {"first_seq": 41, "prev_hash": chain_100[39].record_hash}

    with_frontier = verify_log(chain_100[40:], checkpoints, public, **kwargs, merkle_frontier=builder.frontier())
    assert with_frontier.ok, with_frontier.reason
    assert (with_frontier.checkpoints_matched, with_frontier.checkpoints_unchecked) == (3, (10,))

    without = verify_log(chain_100[40:], checkpoints, public, **kwargs)
    assert without.ok and without.checkpoints_matched == 0 and without.checkpoints_unchecked == (10, 40, 64, 100)

    forged = reseal_from(chain_100, 50, payload={"decision": "forged"})[40:]
    assert not verify_log(forged, checkpoints, public, **kwargs, merkle_frontier=builder.frontier()).ok


# --- writing an export ---------------------------------------------------------------------------------


def test_write_export_writes_the_four_files(
    chain_100: list[AuditRecord], sign_at: Signer, public_pem: bytes, export_dir: Path
) -> None:
    checkpoints = [sign_at(chain_100, 50), sign_at(chain_100, 100)]
    manifest = write_export(export_dir, chain_100, checkpoints, public_pem)
    assert manifest == json.loads((export_dir / "manifest.json").read_text())
    assert (manifest["first_seq"], manifest["last_seq"], manifest["record_count"]) == (1, 100, 100)
    assert (manifest["prev_hash"], manifest["last_record_hash"]) == (GENESIS_HASH, chain_100[-1].record_hash)
    lines = (export_dir / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert [AuditRecord.from_dict(json.loads(line)) for line in lines] == chain_100
    assert len(json.loads((export_dir / "checkpoints.json").read_text())) == 2
    assert (export_dir / "public_key.pem").read_bytes() == public_pem


def test_write_export_leaves_out_checkpoints_past_the_last_record(
    chain_100: list[AuditRecord], sign_at: Signer, public_pem: bytes, export_dir: Path
) -> None:
    write_export(export_dir, chain_100[:60], [sign_at(chain_100, 50), sign_at(chain_100, 100)], public_pem)
    assert [c["size"] for c in json.loads((export_dir / "checkpoints.json").read_text())] == [50]


def test_write_export_refuses_to_overwrite_or_take_a_wrong_key(
    chain_100: list[AuditRecord], public_pem: bytes, export_dir: Path
) -> None:
    write_export(export_dir, chain_100[:3], [], public_pem)
    with pytest.raises(FileExistsError):
        write_export(export_dir, chain_100[:3], [], public_pem)
    with pytest.raises(ValueError):
        write_export(export_dir.parent / "other", chain_100[:3], [], b"-----BEGIN NOTHING-----")


def test_write_export_of_a_segment_records_its_start(
    public_pem: bytes, export_dir: Path
) -> None:
    records = build_chain(20)
    builder = MerkleBuilder()
    builder.extend(bytes.fromhex(r.record_hash) for r in records[:5])
    manifest = write_export(export_dir, records[5:], [], public_pem, merkle_frontier=builder.frontier())
    assert (manifest["first_seq"], manifest["prev_hash"]) == (6, records[4].record_hash)
    assert [bytes.fromhex(h) for h in manifest["merkle_frontier"]] == builder.frontier()
    with pytest.raises(ValueError, match="first_seq"):
        write_export(export_dir.parent / "again", records[5:], [], public_pem, first_seq=7)
