"""Signed checkpoints of the audit stream, log verification against them, and the auditor's export.

A checkpoint states "the first ``size`` records have Merkle root R and the last of them has hash H",
signed with the centre's Ed25519 key. The hash chain alone cannot catch a rewrite that recomputes every
hash after the change, or a cut-off tail; a checkpoint that was handed out (to an auditor, a partner, a
public notice board) before such a rewrite can.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.chain import GENESIS_HASH, AuditRecord, verify_chain
from services.audit.merkle import EMPTY_ROOT, MerkleBuilder

# Signed bytes start with this label so a checkpoint signature can never be replayed as a signature over
# anything else the same key might sign (and vice versa). The standalone verifier repeats it.
SIGNING_DOMAIN = b"matching-centre audit checkpoint v1\n"
EXPORT_FORMAT = "matching-centre-audit-export/1"

_HEX = frozenset("0123456789abcdef")


def _is_hex(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What the centre vouches for: the first ``size`` records, their Merkle root and the last record hash.

    ``last_record_hash`` ties the checkpoint to the hash chain as well as to the tree, so a verifier holding
    only a segment of the stream can still anchor the segment to a signed statement.
    """

    size: int
    root_hash: str
    last_record_hash: str
    sealed_at: str
    key_id: str

    def __post_init__(self) -> None:
        if type(self.size) is not int or self.size < 0:
            raise ValueError("size must be an int >= 0")
        if not _is_hex(self.root_hash, 64) or not _is_hex(self.last_record_hash, 64):
            raise ValueError("root_hash and last_record_hash must be 64 lowercase hex digits")
        if self.size == 0 and (self.root_hash != EMPTY_ROOT.hex() or self.last_record_hash != GENESIS_HASH):
            raise ValueError("an empty checkpoint has the empty root and the genesis hash")
        if not _is_hex(self.key_id, 16):
            raise ValueError("key_id must be 16 lowercase hex digits")
        if not isinstance(self.sealed_at, str) or datetime.fromisoformat(self.sealed_at).tzinfo is None:
            raise ValueError("sealed_at must be an ISO-8601 time with a UTC offset")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict form, as stored and exported."""
        return {
            "size": self.size,
            "root_hash": self.root_hash,
            "last_record_hash": self.last_record_hash,
            "sealed_at": self.sealed_at,
            "key_id": self.key_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        """Rebuild from the dict form; unknown keys are refused as they would not be signed."""
        names = {"size", "root_hash", "last_record_hash", "sealed_at", "key_id"}
        if set(data) != names:
            raise ValueError(f"not a checkpoint: keys {sorted(data)}")
        return cls(**data)

    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers: domain label, then canonical JSON of the five fields."""
        body = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return SIGNING_DOMAIN + body.encode("utf-8")


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint with its Ed25519 signature (128 hex digits)."""

    checkpoint: Checkpoint
    signature: str

    def to_dict(self) -> dict[str, Any]:
        """Flat dict: the checkpoint's fields plus ``signature`` (the form in checkpoints.json)."""
        return {**self.checkpoint.to_dict(), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignedCheckpoint:
        """Rebuild from the flat dict form."""
        fields = dict(data)
        signature = fields.pop("signature", None)
        if not isinstance(signature, str):
            raise ValueError("signed checkpoint has no signature")
        return cls(Checkpoint.from_dict(fields), signature)


# --- keys -------------------------------------------------------------------------------------------


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 signing key for checkpoints."""
    return Ed25519PrivateKey.generate()


def public_key_raw(public_key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key (what key ids are computed from)."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of sha256(raw public key): short enough to read out over the phone when an
    auditor checks that an export's key is the one the centre published."""
    return hashlib.sha256(public_key_raw(public_key)).hexdigest()[:16]


def private_key_raw(private_key: Ed25519PrivateKey) -> bytes:
    """The 32-byte seed of a private key (for secret stores that hold raw bytes)."""
    return private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def private_key_from_raw(raw: bytes) -> Ed25519PrivateKey:
    """Load a private key from its 32-byte seed."""
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    """Load a public key from its 32 raw bytes."""
    return Ed25519PublicKey.from_public_bytes(raw)


def private_key_to_pem(private_key: Ed25519PrivateKey, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted when a password is given (keys at rest should be)."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def load_private_key_pem(data: bytes, password: bytes | None = None) -> Ed25519PrivateKey:
    """Load a PKCS#8 PEM private key, refusing anything but Ed25519."""
    key = serialization.load_pem_private_key(data, password=password)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"expected an Ed25519 private key, got {type(key).__name__}")
    return key


def public_key_to_pem(public_key: Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM, the form auditors get in an export (public_key.pem)."""
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public_key_pem(data: bytes) -> Ed25519PublicKey:
    """Load a SubjectPublicKeyInfo PEM public key, refusing anything but Ed25519."""
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


# --- signing and verifying ------------------------------------------------------------------------------


def make_checkpoint(records: Iterable[AuditRecord], *, key_id: str, sealed_at: str | None = None) -> Checkpoint:
    """Checkpoint the stream from seq 1 up to its last record, in one streaming pass.

    The chain is verified on the way and a broken chain raises ValueError: once signed, a checkpoint would
    vouch for the tampering.
    """
    builder = MerkleBuilder()

    def leaves() -> Iterator[AuditRecord]:
        for record in records:
            yield record
            builder.append(bytes.fromhex(record.record_hash))

    verdict = verify_chain(leaves())
    if not verdict.ok:
        raise ValueError(f"refusing to checkpoint a broken chain at seq {verdict.first_bad_seq}: {verdict.reason}")
    return Checkpoint(
        size=builder.size,
        root_hash=builder.root().hex(),
        last_record_hash=verdict.last_hash,
        sealed_at=sealed_at or datetime.now(UTC).isoformat(timespec="microseconds"),
        key_id=key_id,
    )


def sign_checkpoint(checkpoint: Checkpoint, private_key: Ed25519PrivateKey) -> SignedCheckpoint:
    """Sign a checkpoint; its key_id must name this key so verifiers know which published key to use."""
    own_id = key_id(private_key.public_key())
    if checkpoint.key_id != own_id:
        raise ValueError(f"checkpoint names key {checkpoint.key_id}, but the signing key is {own_id}")
    return SignedCheckpoint(checkpoint, private_key.sign(checkpoint.signed_bytes()).hex())


def verify_checkpoint(signed: SignedCheckpoint, public_key: Ed25519PublicKey) -> bool:
    """True when the signature is valid for this public key and the checkpoint names this key.

    Returns False (never raises) for a malformed signature, so callers treat every bad input alike.
    """
    if signed.checkpoint.key_id != key_id(public_key) or not _is_hex(signed.signature, 128):
        return False
    try:
        public_key.verify(bytes.fromhex(signed.signature), signed.checkpoint.signed_bytes())
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True, slots=True)
class LogVerdict:
    """The outcome of checking records against signed checkpoints.

    ``checkpoints_matched`` counts checkpoints whose root and last record hash were both recomputed from the
    records; ``checkpoints_unchecked`` lists the sizes of validly signed checkpoints whose root could not be
    recomputed (before the first record given, or inside a segment given without a Merkle frontier).
    ``first_bad_seq`` is None when the records are intact but disagree with a checkpoint as a whole.
    """

    ok: bool
    records_checked: int
    checkpoints_matched: int
    first_bad_seq: int | None = None
    bad_checkpoint_size: int | None = None
    reason: str | None = None
    checkpoints_unchecked: tuple[int, ...] = field(default_factory=tuple)


def verify_log(
    records: Iterable[AuditRecord],
    checkpoints: Iterable[SignedCheckpoint],
    public_key: Ed25519PublicKey,
    *,
    first_seq: int = 1,
    prev_hash: str = GENESIS_HASH,
    merkle_frontier: Sequence[bytes] | None = None,
) -> LogVerdict:
    """Verify a run of records and every checkpoint that falls in it, in one streaming pass.

    Records may start after seq 1 (``first_seq``, ``prev_hash``); then a ``merkle_frontier`` of the records
    before them (``MerkleBuilder.frontier()``) lets the signed roots still be recomputed. Without it such
    checkpoints are checked through their last record hash only. A checkpoint beyond the last record fails:
    the records it vouched for are missing (pass only the checkpoints the records should reach). Same
    checks as the standalone verifier, for the service's own replay-and-verify.
    """
    ordered = sorted(checkpoints, key=lambda signed: signed.checkpoint.size)
    for signed in ordered:
        if not verify_checkpoint(signed, public_key):
            return LogVerdict(False, 0, 0, None, signed.checkpoint.size,
                              f"checkpoint of size {signed.checkpoint.size}: signature does not verify")

    start = first_seq - 1
    builder: MerkleBuilder | None = None
    if start == 0:
        builder = MerkleBuilder()
    elif merkle_frontier is not None:
        builder = MerkleBuilder.from_frontier(start, merkle_frontier)
    pending = [signed.checkpoint for signed in ordered if signed.checkpoint.size >= start]
    unchecked = [signed.checkpoint.size for signed in ordered if signed.checkpoint.size < start]
    matched = 0
    failure: LogVerdict | None = None
    position, last_hash, index = start, prev_hash, 0

    def check_checkpoints_at_position() -> None:
        nonlocal index, matched, failure
        while index < len(pending) and pending[index].size == position:
            checkpoint = pending[index]
            index += 1
            if checkpoint.last_record_hash != last_hash:
                reason = f"checkpoint of size {checkpoint.size}: last_record_hash differs from record {position}"
            elif builder is not None and checkpoint.root_hash != builder.root().hex():
                reason = f"checkpoint of size {checkpoint.size}: Merkle root differs from records 1..{position}"
            else:
                if builder is None:
                    unchecked.append(checkpoint.size)
                else:
                    matched += 1
                continue
            failure = LogVerdict(False, position - start, matched, None, checkpoint.size, reason)
            return

    def feed() -> Iterator[AuditRecord]:
        nonlocal position, last_hash
        check_checkpoints_at_position()
        for record in records:
            if failure is not None:
                return
            yield record
            # Resumed only once verify_chain accepted the record just yielded.
            position += 1
            last_hash = record.record_hash
            if builder is not None:
                builder.append(bytes.fromhex(last_hash))
            check_checkpoints_at_position()

    chain = verify_chain(feed(), first_seq=first_seq, prev_hash=prev_hash)
    if failure is not None:
        return failure
    if not chain.ok:
        return LogVerdict(False, chain.records_checked, matched, chain.first_bad_seq, None, chain.reason)
    if index < len(pending):
        # A signed checkpoint beyond the last record means records it vouched for are gone.
        size = pending[index].size
        return LogVerdict(False, chain.records_checked, matched, position + 1, size,
                          f"checkpoint of size {size} reaches past the last record (seq {position}): "
                          f"records {position + 1}..{size} are missing")
    return LogVerdict(True, chain.records_checked, matched, checkpoints_unchecked=tuple(sorted(unchecked)))


# --- export ---------------------------------------------------------------------------------------------


def write_export(
    directory: str | os.PathLike[str],
    records: Iterable[AuditRecord],
    checkpoints: Iterable[SignedCheckpoint],
    public_key_pem: bytes,
    *,
    first_seq: int | None = None,
    prev_hash: str | None = None,
    merkle_frontier: Sequence[bytes] | None = None,
) -> dict[str, Any]:
    """Write an export an auditor can check with nothing but standalone_verifier.py; returns the manifest.

    Records are streamed to records.jsonl one per line, so exports of any length take constant memory.
    They are written as stored, without verifying them: an export must also be able to carry evidence of
    tampering. ``first_seq`` and ``prev_hash`` default to the first record's (1 and the genesis hash when
    there are none). For an export that starts after seq 1, ``merkle_frontier`` (the frontier of records
    1..first_seq-1) lets the verifier recompute every signed root inside it. Checkpoints past the last
    record are left out: the export cannot show the records they vouch for. manifest.json is written last,
    so a directory without one is an interrupted export.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    names = ("records.jsonl", "checkpoints.json", "public_key.pem", "manifest.json")
    if any((target / name).exists() for name in names):
        raise FileExistsError(f"{target} already holds an export")
    load_public_key_pem(public_key_pem)

    count, first, last = 0, None, None
    with (target / "records.jsonl").open("w", encoding="utf-8", newline="\n") as out:
        for record in records:
            if first is None:
                first = record
            last = record
            out.write(json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False))
            out.write("\n")
            count += 1
    if first is not None:
        if first_seq is not None and first_seq != first.seq:
            raise ValueError(f"first_seq {first_seq} but the first record has seq {first.seq}")
        if prev_hash is not None and prev_hash != first.prev_hash:
            raise ValueError("prev_hash differs from the first record's prev_hash")
        first_seq, prev_hash = first.seq, first.prev_hash
    first_seq = 1 if first_seq is None else first_seq
    prev_hash = GENESIS_HASH if prev_hash is None else prev_hash

    last_seq = last.seq if last is not None else first_seq - 1
    # The verifier treats a checkpoint past the last record as proof of missing records.
    reachable = [signed.to_dict() for signed in checkpoints if signed.checkpoint.size <= last_seq]
    (target / "checkpoints.json").write_text(json.dumps(reachable, indent=2) + "\n", encoding="utf-8")
    (target / "public_key.pem").write_bytes(public_key_pem)
    manifest: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "prev_hash": prev_hash,
        "record_count": count,
        "last_record_hash": last.record_hash if last is not None else prev_hash,
    }
    if merkle_frontier is not None and first_seq > 1:
        MerkleBuilder.from_frontier(first_seq - 1, merkle_frontier)
        manifest["merkle_frontier"] = [node.hex() for node in merkle_frontier]
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
