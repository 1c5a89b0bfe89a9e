#!/usr/bin/env python3
"""Check an export of the matching centre's audit stream, with nothing but this file.

Usage::

    python standalone_verifier.py EXPORT_DIR [--public-key KEY.pem] [--key-id HEX]

Needs Python 3.11+ and the ``cryptography`` package, nothing else. Exit status: 0 when the export is
intact, 1 when it is not (the first bad record or checkpoint is named), 2 for a usage error.

An export directory holds records.jsonl (one audit record per line), checkpoints.json (signed
checkpoints), public_key.pem (the centre's Ed25519 checkpoint key) and manifest.json (first_seq, last_seq,
prev_hash of the first record, record_count). This script checks that

* every record's hash matches its contents, seqs run without gaps and every record links to the one
  before it (from the genesis hash, or from the manifest's prev_hash for an export that starts later);
* every checkpoint is signed by the key, and for every checkpoint the records reach, its Merkle root
  (RFC 6962) and last record hash equal those recomputed from the records. A root needs the records from
  seq 1, or the manifest's ``merkle_frontier`` for an export that starts later. A checkpoint past the last
  record means records it vouched for are missing: the export fails.

Why the hashing, Merkle tree and checkpoint format are written out again here instead of imported from
the centre's code (services/audit/chain.py, merkle.py, checkpoint.py): an auditor must be able to read
the whole check in one short file and run it years from now without installing, or trusting, the system
under audit. A verifier that imports the code it verifies would share every bug and every malicious change
in it and agree with it on a wrong answer; a second, independent implementation turns such a mistake into
a disagreement. The centre's test suite checks that both implementations agree.

The key in the export only proves that the export is consistent with itself: someone who rewrites the
whole log can sign new checkpoints with a key of their own. Compare the printed key id with the one the
centre published, or pass the published key with --public-key (or its id with --key-id).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS_HASH = "0" * 64
EMPTY_ROOT = hashlib.sha256(b"").digest()
SIGNING_DOMAIN = b"matching-centre audit checkpoint v1\n"
EXPORT_FORMAT = "matching-centre-audit-export/1"
RECORD_FIELDS = frozenset(
    ("seq", "event_id", "event_type", "source", "subject", "event_time", "topic", "partition", "offset",
     "traceparent", "payload", "prev_hash", "record_hash")
)
CHECKPOINT_FIELDS = frozenset(("size", "root_hash", "last_record_hash", "sealed_at", "key_id"))
_HEX = frozenset("0123456789abcdef")


def _is_hex(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX


def _is_time(value: object) -> bool:
    try:
        return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


# ---- record hash: sha256 of canonical JSON (sorted keys, no whitespace, UTF-8) of all but record_hash ----


def _not_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON value")


_c_encoder = (
    c_make_encoder(None, _not_json, encode_basestring, None, ":", ",", True, False, False)
    if c_make_encoder is not None
    else None
)
_GENERIC_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _json_value(value: Any) -> str:
    if _c_encoder is None:  # pragma: no cover - interpreters without the C accelerator
        return _GENERIC_ENCODER.encode(value)
    return "".join(_c_encoder(value, 0))


def canonical_text(record: dict[str, Any]) -> str:
    """Same text as json.dumps(record minus record_hash, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False); the top-level keys are written out by hand because that is twice
    as fast, which matters for millions of records."""
    seq, partition, offset = record["seq"], record["partition"], record["offset"]
    if type(seq) is not int or type(partition) is not int or type(offset) is not int:
        raise ValueError("seq, partition and offset must be integers")
    esc = encode_basestring
    subject, traceparent = record["subject"], record["traceparent"]
    return (
        f'{{"event_id":{esc(record["event_id"])},"event_time":{esc(record["event_time"])},'
        f'"event_type":{esc(record["event_type"])},"offset":{offset},"partition":{partition},'
        f'"payload":{_json_value(record["payload"])},"prev_hash":{esc(record["prev_hash"])},"seq":{seq},'
        f'"source":{esc(record["source"])},"subject":{"null" if subject is None else esc(subject)},'
        f'"topic":{esc(record["topic"])},"traceparent":{"null" if traceparent is None else esc(traceparent)}}}'
    )


def record_hash(record: dict[str, Any]) -> str:
    """The hash a record must carry, as lowercase hex."""
    return hashlib.sha256(canonical_text(record).encode("utf-8")).hexdigest()


# ---- RFC 6962 Merkle tree: leaf = sha256(0x00 || record hash bytes), node = sha256(0x01 || l || r) ----


class MerkleBuilder:
    """Roots of the perfect subtrees of the leaves so far (one per 1 bit of the size): O(log n) memory."""

    def __init__(self, size: int = 0, frontier: list[bytes] | None = None) -> None:
        self.size = size
        self.stack = list(frontier or [])
        if len(self.stack) != size.bit_count():
            raise ValueError(f"a Merkle frontier for {size} leaves has {size.bit_count()} hashes")

    def append(self, leaf: bytes) -> None:
        hashed = hashlib.sha256(b"\x00" + leaf).digest()
        n = self.size
        while n & 1:
            hashed = hashlib.sha256(b"\x01" + self.stack.pop() + hashed).digest()
            n >>= 1
        self.stack.append(hashed)
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        result = self.stack[-1]
        for left in reversed(self.stack[:-1]):
            result = hashlib.sha256(b"\x01" + left + result).digest()
        return result


# ---- checkpoints ----


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of sha256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoint_signed_bytes(checkpoint: dict[str, Any]) -> bytes:
    """Domain label, then canonical JSON of the five checkpoint fields."""
    body = {name: checkpoint[name] for name in CHECKPOINT_FIELDS}
    return SIGNING_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def load_public_key(data: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"not an Ed25519 public key ({type(key).__name__})")
    return key


# ---- the check ----


class ExportError(Exception):
    """The first thing found wrong with the export; the message names the record or checkpoint."""


@dataclass
class Report:
    """What a verification found: ``ok``, the lines to print, and the first failure if any."""

    ok: bool = False
    lines: list[str] = field(default_factory=list)
    failure: str | None = None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ExportError(f"{path.name} is missing") from None
    except ValueError as exc:
        raise ExportError(f"{path.name} is not valid JSON ({exc})") from None


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise ExportError("records.jsonl is missing") from None
    with handle:
        for line_no, line in enumerate(handle, 1):
            try:
                record = json.loads(line)
            except ValueError:
                raise ExportError(f"records.jsonl line {line_no}: not a JSON record") from None
            if type(record) is not dict or record.keys() != RECORD_FIELDS:
                raise ExportError(f"records.jsonl line {line_no}: not an audit record (wrong fields)")
            yield line_no, record


def _load_checkpoints(directory: Path, public_key: Ed25519PublicKey) -> list[dict[str, Any]]:
    entries = _read_json(directory / "checkpoints.json")
    if type(entries) is not list:
        raise ExportError("checkpoints.json is not a list")
    expected_id = key_id(public_key)
    for number, entry in enumerate(entries, 1):
        name = f"checkpoint #{number}"
        if type(entry) is not dict or entry.keys() != CHECKPOINT_FIELDS | {"signature"}:
            raise ExportError(f"{name}: not a signed checkpoint (wrong fields)")
        size = entry["size"]
        if type(size) is not int or size < 0:
            raise ExportError(f"{name}: size is not a non-negative integer")
        name = f"checkpoint #{number} (size {size})"
        if not (_is_hex(entry["root_hash"], 64) and _is_hex(entry["last_record_hash"], 64)
                and _is_hex(entry["signature"], 128) and _is_time(entry["sealed_at"])):
            raise ExportError(f"{name}: malformed hash, signature or time")
        if entry["key_id"] != expected_id:
            raise ExportError(f"{name}: signed by key {entry['key_id']}, not by the export's key {expected_id}")
        try:
            public_key.verify(bytes.fromhex(entry["signature"]), checkpoint_signed_bytes(entry))
        except InvalidSignature:
            raise ExportError(f"{name}: signature does not verify (checkpoint altered or forged)") from None
        entry["number"] = number
    return sorted(entries, key=lambda entry: entry["size"])


def _manifest(directory: Path) -> dict[str, Any]:
    manifest = _read_json(directory / "manifest.json")
    if type(manifest) is not dict:
        raise ExportError("manifest.json is not an object")
    if manifest.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
        raise ExportError(f"manifest.json: unknown export format {manifest.get('format')!r}")
    first, last, count = manifest.get("first_seq"), manifest.get("last_seq"), manifest.get("record_count")
    if not (type(first) is int and type(last) is int and type(count) is int and first >= 1 and count >= 0):
        raise ExportError("manifest.json: first_seq, last_seq and record_count must be integers")
    if last != first + count - 1:
        raise ExportError(f"manifest.json: seqs {first}..{last} do not hold {count} records")
    if not _is_hex(manifest.get("prev_hash"), 64):
        raise ExportError("manifest.json: prev_hash must be 64 hex digits")
    if first == 1 and manifest["prev_hash"] != GENESIS_HASH:
        raise ExportError("manifest.json: an export from seq 1 must start from the genesis hash")
    frontier = manifest.get("merkle_frontier")
    if frontier is not None and (type(frontier) is not list or not all(_is_hex(h, 64) for h in frontier)):
        raise ExportError("manifest.json: merkle_frontier must be a list of 64-hex-digit hashes")
    return manifest


def verify_export(
    directory: str | Path, *, pinned_key_pem: bytes | None = None, expected_key_id: str | None = None
) -> Report:
    """Check one export directory; never raises for a bad export, the Report says what is wrong."""
    report = Report()
    say = report.lines.append
    directory = Path(directory)
    say(f"Audit export: {directory}")
    try:
        _check(directory, pinned_key_pem, expected_key_id, say)
    except ExportError as exc:
        report.failure = str(exc)
        say(f"RESULT: BAD - {exc}")
        return report
    report.ok = True
    say("RESULT: GOOD - the records are intact and match every signed checkpoint they reach.")
    return report


def _check(
    directory: Path, pinned_key_pem: bytes | None, expected_key_id: str | None, say: Callable[[str], None]
) -> None:
    key_path = directory / "public_key.pem"
    try:
        export_key = load_public_key(key_path.read_bytes()) if key_path.exists() else None
        pinned_key = load_public_key(pinned_key_pem) if pinned_key_pem is not None else None
    except ValueError as exc:
        raise ExportError(f"public key: {exc}") from None
    if pinned_key is not None:
        if export_key is not None and key_id(export_key) != key_id(pinned_key):
            raise ExportError(f"public_key.pem (key id {key_id(export_key)}) is not the pinned key "
                              f"(key id {key_id(pinned_key)})")
        public_key, origin = pinned_key, "the pinned key given with --public-key"
    elif export_key is not None:
        public_key, origin = export_key, "public_key.pem; compare it with the key id the centre published"
    else:
        raise ExportError("public_key.pem is missing")
    if expected_key_id is not None and key_id(public_key) != expected_key_id.lower():
        raise ExportError(f"the key's id is {key_id(public_key)}, not the expected {expected_key_id}")
    say(f"  key          Ed25519, key id {key_id(public_key)} (from {origin})")

    manifest = _manifest(directory)
    first_seq, prev_hash = manifest["first_seq"], manifest["prev_hash"]
    say(f"  manifest     seq {first_seq}..{manifest['last_seq']} ({manifest['record_count']} records), "
        + ("starting at the genesis record" if first_seq == 1 else f"continuing from hash {prev_hash[:16]}..."))

    checkpoints = _load_checkpoints(directory, public_key)
    say(f"  signatures   {len(checkpoints)} checkpoint(s), every signature valid")

    start = first_seq - 1
    builder: MerkleBuilder | None = None
    if start == 0:
        builder = MerkleBuilder()
    elif manifest.get("merkle_frontier") is not None:
        try:
            builder = MerkleBuilder(start, [bytes.fromhex(h) for h in manifest["merkle_frontier"]])
        except ValueError as exc:
            raise ExportError(f"manifest.json: {exc}") from None
    pending = [entry for entry in checkpoints if entry["size"] >= start]
    outside = [entry["size"] for entry in checkpoints if entry["size"] < start]
    matched: list[int] = []
    linked: list[int] = []
    index = 0

    def check_checkpoints(position: int, last_hash: str) -> None:
        nonlocal index
        while index < len(pending) and pending[index]["size"] == position:
            entry = pending[index]
            index += 1
            name = f"checkpoint #{entry['number']} (size {position})"
            if entry["last_record_hash"] != last_hash:
                raise ExportError(f"{name}: its last_record_hash is not the hash of record {position}; "
                                  f"records up to {position} were rewritten or the checkpoint is not from this log")
            if builder is not None:
                if entry["root_hash"] != builder.root().hex():
                    raise ExportError(f"{name}: its Merkle root differs from the root of records 1..{position}; "
                                      f"records up to {position} were rewritten")
                matched.append(position)
            else:
                linked.append(position)

    sha256 = hashlib.sha256
    expected_seq, last_hash, count = first_seq, prev_hash, 0
    check_checkpoints(start, last_hash)
    for line_no, record in _records(directory / "records.jsonl"):
        seq = record["seq"]
        problem = None
        if type(seq) is not int:
            problem = "seq is not an integer"
        elif seq > expected_seq:
            problem = f"found seq {seq} instead; record(s) {expected_seq}..{seq - 1} missing or out of order"
        elif seq < expected_seq:
            problem = f"found seq {seq} instead; record inserted, duplicated or out of order"
        elif record["prev_hash"] != last_hash:
            problem = "prev_hash does not match the hash of the record before it"
        else:
            try:
                digest = sha256(canonical_text(record).encode("utf-8")).hexdigest()
            except (TypeError, ValueError, RecursionError) as exc:
                problem = f"a field has no canonical JSON form ({exc})"
            else:
                if digest != record["record_hash"]:
                    problem = "record_hash does not match the record's contents (record altered)"
        if problem is not None:
            raise ExportError(f"record seq {expected_seq} (records.jsonl line {line_no}): {problem}")
        last_hash = digest
        count += 1
        if builder is not None:
            builder.append(bytes.fromhex(digest))
        check_checkpoints(seq, last_hash)
        expected_seq += 1

    if count != manifest["record_count"]:
        raise ExportError(f"records.jsonl holds {count} records (seq {first_seq}..{first_seq + count - 1}), "
                          f"the manifest promises {manifest['record_count']}")
    if manifest.get("last_record_hash", last_hash) != last_hash:
        raise ExportError("manifest.json: last_record_hash is not the hash of the last record")
    if index < len(pending):
        entry = pending[index]
        last_seq = first_seq + count - 1
        raise ExportError(f"checkpoint #{entry['number']} (size {entry['size']}) reaches past the last record "
                          f"(seq {last_seq}): records {last_seq + 1}..{entry['size']} are missing")
    say(f"  records      {count} checked: every hash, seq and link intact")
    if matched:
        say(f"  checkpoints  Merkle root and last hash match at size(s) {_sizes(matched)}")
    if linked:
        say(f"  checkpoints  last record hash matches at size(s) {_sizes(linked)} "
            "(no merkle_frontier in the manifest, so their roots could not be recomputed)")
    if outside:
        say(f"  note         checkpoint(s) at size(s) {_sizes(outside)} lie before this export: "
            "only their signatures were checked")
    last_covered = max(matched + linked, default=start)
    if not checkpoints:
        say("  note         no checkpoints: a log rewritten from the start with recomputed hashes "
            "would not be detected")
    elif last_covered < first_seq + count - 1:
        say(f"  note         records after seq {last_covered} are covered by no checkpoint in this export: "
            "a cut-off or rewritten tail there would not be detected")


def _sizes(sizes: list[int]) -> str:
    shown = ", ".join(str(size) for size in sizes[:8])
    return shown + (f" and {len(sizes) - 8} more" if len(sizes) > 8 else "")


def main(argv: list[str] | None = None) -> int:
    """Command line entry: print the verdict, return the exit status."""
    parser = argparse.ArgumentParser(description="Verify an export of the matching centre's audit stream.")
    parser.add_argument("export_dir", type=Path, help="directory with records.jsonl, checkpoints.json, ...")
    parser.add_argument("--public-key", type=Path, help="the centre's published key (PEM) to check against")
    parser.add_argument("--key-id", help="the centre's published key id (16 hex digits)")
    args = parser.parse_args(argv)
    pinned = args.public_key.read_bytes() if args.public_key else None
    report = verify_export(args.export_dir, pinned_key_pem=pinned, expected_key_id=args.key_id)
    print("\n".join(report.lines))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
