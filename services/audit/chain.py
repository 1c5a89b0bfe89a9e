"""The hash chain of the audit stream: one record per event, each bound to the one before it.

Every record carries ``record_hash = sha256(canonical_bytes(record))`` and ``prev_hash`` (the
``record_hash`` of the record before it, or ``GENESIS_HASH`` for seq 1). Changing, deleting, inserting
or reordering records therefore breaks either a record's own hash or the next record's link, and
``verify_chain`` names the first place where that happens.

A chain alone cannot catch someone who rewrites a record *and recomputes every hash after it*, nor a
truncated tail: signed checkpoints over a Merkle tree of the record hashes (``checkpoint.py``) do.

Identifying data never appears in a record in the clear: it is sealed per case before it reaches the
payload, so erasing a case's key (crypto-shredding) makes it unreadable while every hash here still
verifies.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

GENESIS_HASH = "0" * 64

# The order of the dataclass fields; canonical bytes sort keys anyway, so this order is only for humans.
RECORD_FIELDS: tuple[str, ...] = (
    "seq",
    "event_id",
    "event_type",
    "source",
    "subject",
    "event_time",
    "topic",
    "partition",
    "offset",
    "traceparent",
    "payload",
    "prev_hash",
    "record_hash",
)
HASHED_FIELDS: tuple[str, ...] = RECORD_FIELDS[:-1]

_HASH_HEX = re.compile(r"[0-9a-f]{64}")
# Below the interpreter's recursion limit, so every sealed payload can also be encoded and verified.
_MAX_PAYLOAD_DEPTH = 200

# Canonical JSON is built from the C encoder pieces once, not with json.dumps per record: dumps builds a new
# encoder on every call, and formatting the fixed top-level fields directly halves the cost of verifying a
# record. allow_nan=False because NaN and Infinity are not JSON and other verifiers could not rebuild the
# bytes. A test checks this against plain json.dumps(sort_keys=True, ...) on generated records.
_GENERIC_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _not_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON value")


# Arguments: markers (None: no cycle check, sealing refuses cycles), default, string encoder, indent,
# key separator, item separator, sort_keys, skipkeys, allow_nan.
_c_encoder = (
    c_make_encoder(None, _not_json, encode_basestring, None, ":", ",", True, False, False)
    if c_make_encoder is not None
    else None
)


def _json_value(value: Any) -> str:
    if _c_encoder is None:  # pragma: no cover - interpreters without the C accelerator
        return _GENERIC_ENCODER.encode(value)
    return "".join(_c_encoder(value, 0))


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One sealed entry of the audit stream, exactly as it is stored and exported.

    ``payload`` is a JSON value and is not deep-frozen (JSON encoders cannot read frozen mappings);
    mutating it after sealing is caught by ``verify_chain`` like any other tampering.
    """

    seq: int
    event_id: str
    event_type: str
    source: str
    subject: str | None
    event_time: str
    topic: str
    partition: int
    offset: int
    traceparent: str | None
    payload: Any
    prev_hash: str
    record_hash: str

    def __hash__(self) -> int:
        # The generated hash would try to hash the payload dict; the record hash already identifies it.
        return hash(self.record_hash)

    def to_dict(self) -> dict[str, Any]:
        """The record as a plain dict (the form exported in records.jsonl and stored as JSON)."""
        return {
            "seq": self.seq,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "source": self.source,
            "subject": self.subject,
            "event_time": self.event_time,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "traceparent": self.traceparent,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "record_hash": self.record_hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRecord:
        """Rebuild a record read from storage or an export, rejecting anything that is not a record.

        Types are checked strictly because the hash covers their JSON form: ``true`` is not ``1``. Unknown
        keys are refused because they would sit next to the record without being covered by its hash.
        The hash itself is *not* checked here; that is ``verify_chain``'s job, so that a tampered record
        can still be loaded and reported with its position.
        """
        keys = set(data)
        if keys != set(RECORD_FIELDS):
            missing = sorted(set(RECORD_FIELDS) - keys)
            unknown = sorted(keys - set(RECORD_FIELDS))
            raise ValueError(f"not an audit record: missing {missing}, unknown {unknown}")
        record = cls(**{name: data[name] for name in RECORD_FIELDS})
        _check_types(record)
        if not _HASH_HEX.fullmatch(record.record_hash):
            raise ValueError("record_hash must be 64 lowercase hex digits")
        return record


@dataclass(frozen=True, slots=True)
class ChainVerdict:
    """The outcome of walking a chain.

    ``records_checked`` counts the records that passed every check (all of them when ``ok``), so the chain
    is trustworthy up to ``first_bad_seq - 1``. ``first_bad_seq`` is the seq the first failing *position*
    should have had: for a deleted record it is the missing seq, for a swap the first swapped position.
    ``last_hash`` is the record_hash of the last good record (or the starting prev_hash), so a verifier can
    continue from there with the next segment.
    """

    ok: bool
    records_checked: int
    first_bad_seq: int | None
    reason: str | None
    last_hash: str = GENESIS_HASH


def _canonical_text(record: AuditRecord) -> str:
    return _canonical_layout(record.seq, record.event_id, record.event_type, record.source, record.subject,
                             record.event_time, record.topic, record.partition, record.offset, record.traceparent,
                             _json_value(record.payload), record.prev_hash)


def _canonical_layout(seq: int, event_id: str, event_type: str, source: str, subject: str | None, event_time: str,
                      topic: str, partition: int, offset: int, traceparent: str | None, payload_json: str,
                      prev_hash: str) -> str:
    # Keys written out in sorted order by hand; only the payload goes through the (sorting) encoder.
    if type(seq) is not int or type(partition) is not int or type(offset) is not int:
        # f"{True}" would be "True", which is not JSON; only exact ints are formatted directly.
        raise ValueError("seq, partition and offset must be ints")
    esc = encode_basestring
    return (
        f'{{"event_id":{esc(event_id)},"event_time":{esc(event_time)},'
        f'"event_type":{esc(event_type)},"offset":{offset},"partition":{partition},'
        f'"payload":{payload_json},"prev_hash":{esc(prev_hash)},"seq":{seq},'
        f'"source":{esc(source)},"subject":{"null" if subject is None else esc(subject)},'
        f'"topic":{esc(topic)},"traceparent":{"null" if traceparent is None else esc(traceparent)}}}'
    )


def payload_json(payload: Any) -> str:
    """The payload's canonical JSON text: the exact text ``canonical_bytes`` embeds for it.

    Storing the payload in this form lets a verifier hash a stored record without parsing its payload
    (``stored_record_hash``); raises ValueError where the payload has no canonical form.
    """
    try:
        return _json_value(payload)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"payload has no canonical JSON form: {exc}") from exc


def stored_record_hash(seq: int, event_id: str, event_type: str, source: str, subject: str | None,
                       event_time: str, topic: str, partition: int, offset: int, traceparent: str | None,
                       payload_text: str, prev_hash: str) -> str:
    """sha256 over a stored record's bytes, its payload taken verbatim as stored.

    Equal to ``record_hash_of`` the parsed record whenever ``payload_text`` is ``payload_json`` of the
    payload, which is how the audit service stores it; it skips parsing and re-encoding the payload,
    which is most of the cost of verifying a record. It checks the bytes, not that they are canonical:
    a record hashed over a non-canonical payload text passes here and fails ``verify_chain``.
    """
    try:
        text = _canonical_layout(seq, event_id, event_type, source, subject, event_time, topic, partition,
                                 offset, traceparent, payload_text, prev_hash)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"record has no canonical form: {exc}") from exc


def canonical_bytes(record: AuditRecord | Mapping[str, Any]) -> bytes:
    """The exact bytes that ``record_hash`` covers: canonical JSON of every field but record_hash.

    Canonical means sorted keys, no whitespace, UTF-8 without escaping non-ASCII: exactly Python's
    ``json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, so an auditor can
    rebuild the bytes from an exported record with a few lines of stdlib Python. (It is not RFC 8785 JCS:
    floats are written as Python's shortest repr and keys sort by code point, which matters only for
    floats and for keys outside the Basic Multilingual Plane.)
    Raises ValueError for values that have no canonical JSON form (NaN, lone surrogates, non-JSON types).
    """
    if not isinstance(record, AuditRecord):
        record = AuditRecord(**{name: record[name] for name in HASHED_FIELDS}, record_hash="")
    try:
        return _canonical_text(record).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"record has no canonical JSON form: {exc}") from exc


def record_hash_of(record: AuditRecord | Mapping[str, Any]) -> str:
    """sha256 of the canonical bytes, as lowercase hex: what ``record_hash`` must equal."""
    return hashlib.sha256(canonical_bytes(record)).hexdigest()


def _check_types(record: AuditRecord) -> None:
    def need(condition: bool, message: str) -> None:
        if not condition:
            raise ValueError(message)

    # type(...) is int, not isinstance: bool is an int subclass and would hash as true/false.
    need(type(record.seq) is int and record.seq >= 1, "seq must be an int >= 1")
    for name in ("event_id", "event_type", "source", "topic"):
        value = getattr(record, name)
        need(type(value) is str and value != "", f"{name} must be a non-empty str")
    for name in ("subject", "traceparent"):
        value = getattr(record, name)
        need(value is None or type(value) is str, f"{name} must be a str or None")
    need(type(record.partition) is int and record.partition >= 0, "partition must be an int >= 0")
    need(type(record.offset) is int and record.offset >= 0, "offset must be an int >= 0")
    need(type(record.event_time) is str, "event_time must be an ISO-8601 str")
    try:
        parsed = datetime.fromisoformat(record.event_time)
    except ValueError as exc:
        raise ValueError(f"event_time is not ISO-8601: {record.event_time!r}") from exc
    need(parsed.tzinfo is not None, "event_time must carry a UTC offset, or the order of events is ambiguous")
    need(type(record.prev_hash) is str and _HASH_HEX.fullmatch(record.prev_hash) is not None,
         "prev_hash must be 64 lowercase hex digits")


def _check_payload(payload: Any) -> None:
    # The encoder would quietly turn {1: "a"} into {"1": "a"} (and {1: .., "1": ..} into duplicate keys) and
    # tuples into lists: bytes that no longer round-trip to the sealed value. Refuse them before hashing.
    pending: list[tuple[Any, int]] = [(payload, 0)]
    while pending:
        value, depth = pending.pop()
        if depth > _MAX_PAYLOAD_DEPTH:
            raise ValueError("payload is nested too deeply (or refers to itself)")
        if value is None or isinstance(value, (str, bool, int)):
            continue
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError("payload holds NaN or Infinity, which JSON cannot represent")
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, dict):
            if not all(type(key) is str for key in value):
                raise ValueError("payload object keys must be str")
            pending.extend((item, depth + 1) for item in value.values())
        else:
            raise ValueError(f"payload holds a {type(value).__name__}, which is not a JSON value")


def seal(
    *,
    event_id: str,
    event_type: str,
    source: str,
    subject: str | None,
    event_time: str,
    topic: str,
    partition: int,
    offset: int,
    traceparent: str | None,
    payload: Any,
    prev: AuditRecord | None,
    seq: int | None = None,
) -> AuditRecord:
    """Append one event to the chain: the new record links to ``prev`` (None for the first record).

    ``seq`` follows from ``prev``; passing it is optional and only checked, so a caller that already
    assigned a seq (e.g. from a database sequence) learns at once when it disagrees with the chain.
    Sealing validates every field, because a record that is hashed and stored can never be fixed.
    """
    expected_seq = 1 if prev is None else prev.seq + 1
    if seq is not None and seq != expected_seq:
        raise ValueError(f"seq {seq} does not follow the previous record (expected {expected_seq})")
    unsealed = AuditRecord(
        seq=expected_seq,
        event_id=event_id,
        event_type=event_type,
        source=source,
        subject=subject,
        event_time=event_time,
        topic=topic,
        partition=partition,
        offset=offset,
        traceparent=traceparent,
        payload=payload,
        prev_hash=GENESIS_HASH if prev is None else prev.record_hash,
        record_hash="",
    )
    _check_types(unsealed)
    _check_payload(payload)
    return AuditRecord(**{**unsealed.to_dict(), "record_hash": record_hash_of(unsealed)})


def verify_chain(
    records: Iterable[AuditRecord],
    *,
    first_seq: int = 1,
    prev_hash: str = GENESIS_HASH,
) -> ChainVerdict:
    """Walk the records in order and report the first one that breaks the chain.

    Streams with constant memory, so it can walk the whole stream straight from a database cursor or a
    file. ``first_seq`` and ``prev_hash`` let it verify a segment that does not start at the genesis
    record (the hash of the record before the segment must come from somewhere trusted, e.g. a checkpoint).

    Per record, in this order: seq is the next one (catches deletion, insertion, reordering); prev_hash is
    the previous record's hash (catches a broken link, e.g. a record rewritten with a recomputed hash);
    record_hash matches the contents (catches any changed field).
    """
    sha256 = hashlib.sha256
    canonical = _canonical_text
    expected_seq = first_seq
    last_hash = prev_hash
    checked = 0

    def bad(reason: str) -> ChainVerdict:
        return ChainVerdict(False, checked, expected_seq, reason, last_hash)

    for record in records:
        seq = record.seq
        if seq != expected_seq or type(seq) is not int:
            if type(seq) is not int:
                return bad(f"seq {seq!r} is not an int")
            if seq > expected_seq:
                return bad(f"expected seq {expected_seq}, found {seq}: record(s) missing or out of order")
            return bad(f"expected seq {expected_seq}, found {seq}: record inserted, duplicated or out of order")
        if record.prev_hash != last_hash:
            return bad(f"seq {seq}: prev_hash does not match the record_hash of the record before it")
        try:
            digest = sha256(canonical(record).encode("utf-8")).hexdigest()
        except (TypeError, ValueError, RecursionError) as exc:
            return bad(f"seq {seq}: contents have no canonical JSON form ({exc})")
        if digest != record.record_hash:
            return bad(f"seq {seq}: record_hash does not match the record's contents")
        last_hash = digest
        expected_seq += 1
        checked += 1
    return ChainVerdict(True, checked, None, None, last_hash)
