"""The hash chain: canonical bytes, sealing, and every kind of tampering verify_chain must name."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.audit import chain
from services.audit.chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    AuditRecord,
    canonical_bytes,
    record_hash_of,
    seal,
    verify_chain,
)
from tests.unit.audit.audit_samples import build_chain, event_fields, iter_chain, record_fields, reseal_from


def replace(record: AuditRecord, **changes: Any) -> AuditRecord:
    return dataclasses.replace(record, **changes)


# --- canonical form and sealing ---------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(record_fields())
def test_canonical_bytes_are_plain_sorted_compact_json(fields: dict[str, Any]) -> None:
    record = seal(**fields, prev=None)
    expected = json.dumps(
        {name: record.to_dict()[name] for name in HASHED_FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")
    assert canonical_bytes(record) == expected
    assert canonical_bytes(record.to_dict()) == expected
    assert record.record_hash == hashlib.sha256(expected).hexdigest()
    assert verify_chain([record]).ok
    assert AuditRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_canonical_bytes_without_the_c_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    record = seal(**event_fields(3), prev=None)
    monkeypatch.setattr(chain, "_c_encoder", None)
    assert canonical_bytes(record).decode("utf-8") == json.dumps(
        {name: record.to_dict()[name] for name in HASHED_FIELDS}, sort_keys=True, separators=(",", ":"),
        ensure_ascii=False,
    )
    assert verify_chain([record]).ok


def test_canonical_bytes_leave_out_record_hash_and_keep_non_ascii() -> None:
    record = seal(**event_fields(1), prev=None)
    text = canonical_bytes(record).decode("utf-8")
    assert "record_hash" not in text
    assert "Zürich – قسم" in text
    assert " " not in text.replace("Zürich – قسم", "")
    assert list(json.loads(text)) == sorted(HASHED_FIELDS)


def test_seal_links_each_record_to_the_one_before() -> None:
    first = seal(**event_fields(1), prev=None)
    second = seal(**event_fields(2), prev=first, seq=2)
    assert (first.seq, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.seq, second.prev_hash) == (2, first.record_hash)
    assert second.record_hash == record_hash_of(second) == hashlib.sha256(canonical_bytes(second)).hexdigest()
    assert GENESIS_HASH == "0" * 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"event_time": "2026-01-01T00:00:00"}, "UTC offset"),
        ({"event_time": "yesterday"}, "ISO-8601"),
        ({"partition": True}, "partition"),
        ({"offset": -1}, "offset"),
        ({"event_id": ""}, "event_id"),
        ({"subject": 7}, "subject"),
        ({"payload": {"score": float("nan")}}, "NaN"),
        ({"payload": {1: "one"}}, "keys must be str"),
        ({"payload": {"tags": {"a", "b"}}}, "set"),
        ({"payload": ("tuple",)}, "tuple"),
    ],
)
def test_seal_refuses_what_could_not_be_verified_later(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        seal(**{**event_fields(1), **change}, prev=None)


def test_seal_refuses_a_payload_that_contains_itself() -> None:
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(ValueError, match="nested too deeply"):
        seal(**{**event_fields(1), "payload": looped}, prev=None)


def test_seal_refuses_a_seq_that_does_not_follow() -> None:
    first = seal(**event_fields(1), prev=None)
    with pytest.raises(ValueError, match="expected 2"):
        seal(**event_fields(2), prev=first, seq=5)


def test_from_dict_refuses_extra_missing_and_mistyped_fields(chain_100: list[AuditRecord]) -> None:
    good = chain_100[0].to_dict()
    with pytest.raises(ValueError, match="unknown"):
        AuditRecord.from_dict({**good, "note": "unhashed"})
    with pytest.raises(ValueError, match="missing"):
        AuditRecord.from_dict({k: v for k, v in good.items() if k != "topic"})
    with pytest.raises(ValueError, match="seq"):
        AuditRecord.from_dict({**good, "seq": True})
    with pytest.raises(ValueError, match="record_hash"):
        AuditRecord.from_dict({**good, "record_hash": "XYZ"})


def test_records_are_hashable_values(chain_100: list[AuditRecord]) -> None:
    assert len(set(chain_100)) == 100
    with pytest.raises(dataclasses.FrozenInstanceError):
        chain_100[0].seq = 2  # type: ignore[misc]


# --- verifying ----------------------------------------------------------------------------------------


def test_an_untouched_chain_verifies(chain_100: list[AuditRecord]) -> None:
    verdict = verify_chain(chain_100)
    assert verdict.ok
    assert (verdict.records_checked, verdict.first_bad_seq, verdict.reason) == (100, None, None)
    assert verdict.last_hash == chain_100[-1].record_hash


def test_an_empty_chain_verifies() -> None:
    verdict = verify_chain([])
    assert verdict.ok and verdict.records_checked == 0 and verdict.last_hash == GENESIS_HASH


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("event_id", "evt-forged"),
        ("event_type", "org.matchingcentre.case.withdrawn.v1"),
        ("source", "/services/elsewhere"),
        ("subject", "case-999"),
        ("event_time", "2030-01-01T00:00:00+00:00"),
        ("topic", "other"),
        ("partition", 9),
        ("offset", 12345),
        ("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"),
        ("payload", {"case_id": "case-1", "household_size": 9}),
        ("record_hash", "f" * 64),
    ],
)
def test_a_changed_field_is_named(chain_100: list[AuditRecord], name: str, value: Any) -> None:
    records = list(chain_100)
    records[41] = replace(records[41], **{name: value})
    verdict = verify_chain(records)
    assert not verdict.ok
    assert (verdict.first_bad_seq, verdict.records_checked) == (42, 41)
    assert "record_hash does not match" in (verdict.reason or "")


def test_a_payload_mutated_in_place_after_sealing_is_caught() -> None:
    records = build_chain(5)
    records[2].payload["household_size"] = 99
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 3)


def test_a_changed_prev_hash_breaks_the_link(chain_100: list[AuditRecord]) -> None:
    records = list(chain_100)
    records[10] = replace(records[10], prev_hash=chain_100[8].record_hash)
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 11)
    assert "prev_hash" in (verdict.reason or "")


@pytest.mark.parametrize("index", [0, 1, 50, 98])
def test_a_deleted_record_is_named(chain_100: list[AuditRecord], index: int) -> None:
    records = chain_100[:index] + chain_100[index + 1 :]
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.first_bad_seq, verdict.records_checked) == (False, index + 1, index)
    assert "missing" in (verdict.reason or "")


def test_deleting_the_last_record_needs_a_checkpoint_to_be_seen(chain_100: list[AuditRecord]) -> None:
    # The chain alone cannot know the stream was longer; test_audit_checkpoint covers the catch.
    assert verify_chain(chain_100[:-1]).ok


def test_an_inserted_record_is_named(chain_100: list[AuditRecord]) -> None:
    forged = seal(**event_fields(999), prev=chain_100[29])  # a perfectly sealed seq 31
    records = [*chain_100[:30], forged, *chain_100[30:]]
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 32)
    assert "inserted" in (verdict.reason or "")


def test_a_duplicated_record_is_named(chain_100: list[AuditRecord]) -> None:
    records = [*chain_100[:30], chain_100[29], *chain_100[30:]]
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 31)


@pytest.mark.parametrize(("a", "b"), [(10, 11), (0, 1), (20, 70)])
def test_two_swapped_records_are_named(chain_100: list[AuditRecord], a: int, b: int) -> None:
    records = list(chain_100)
    records[a], records[b] = records[b], records[a]
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.first_bad_seq) == (False, a + 1)


def test_swapped_records_renumbered_break_the_links(chain_100: list[AuditRecord]) -> None:
    records = list(chain_100)
    records[10], records[11] = replace(records[11], seq=11), replace(records[10], seq=12)
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 11)


def test_a_rewritten_record_with_a_recomputed_hash_is_caught_by_the_next_link(
    chain_100: list[AuditRecord],
) -> None:
    records = list(chain_100)
    fields = {k: v for k, v in records[60].to_dict().items() if k not in ("seq", "prev_hash", "record_hash")}
    records[60] = seal(**{**fields, "payload": {"case_id": "case-4", "decision": "forged"}}, prev=records[59])
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 62)
    assert "prev_hash" in (verdict.reason or "")


def test_a_rewrite_that_recomputes_every_later_hash_passes_the_chain(chain_100: list[AuditRecord]) -> None:
    # Only a signed checkpoint can catch this one (see test_audit_checkpoint); the chain cannot.
    forged = reseal_from(chain_100, 60, payload={"decision": "forged"})
    assert verify_chain(forged).ok
    assert forged[-1].record_hash != chain_100[-1].record_hash


def test_a_record_that_is_not_json_is_reported_not_raised(chain_100: list[AuditRecord]) -> None:
    records = list(chain_100[:3])
    records[1] = replace(records[1], payload={"when": object()})
    verdict = verify_chain(records)
    assert (verdict.ok, verdict.first_bad_seq) == (False, 2)
    assert "canonical JSON" in (verdict.reason or "")


def test_a_segment_verifies_from_a_trusted_prev_hash(chain_100: list[AuditRecord]) -> None:
    segment = chain_100[40:]
    assert verify_chain(segment, first_seq=41, prev_hash=chain_100[39].record_hash).ok
    assert not verify_chain(segment, first_seq=41, prev_hash=chain_100[38].record_hash).ok
    assert not verify_chain(segment).ok


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 29),
    st.sampled_from(["delete", "duplicate", "swap", "edit", "relink", "reseal"]),
    st.data(),
)
def test_any_single_tampering_is_found_at_or_just_after_its_place(
    chain_100: list[AuditRecord], index: int, kind: str, data: st.DataObject
) -> None:
    records = list(chain_100[:30])
    if kind == "delete":
        del records[index]
        expect = index + 1
    elif kind == "duplicate":
        records.insert(index, records[index])
        expect = index + 2
    elif kind == "swap":
        other = data.draw(st.integers(0, 29).filter(lambda j: j != index))
        records[index], records[other] = records[other], records[index]
        expect = min(index, other) + 1
    elif kind == "edit":
        records[index] = replace(records[index], event_type="edited")
        expect = index + 1
    elif kind == "relink":
        records[index] = replace(records[index], prev_hash="1" * 64)
        expect = index + 1
    else:
        fields = {k: v for k, v in records[index].to_dict().items() if k not in ("seq", "prev_hash", "record_hash")}
        records[index] = seal(**{**fields, "event_type": "edited"}, prev=records[index - 1] if index else None)
        expect = index + 2
    verdict = verify_chain(records)
    if kind in ("delete", "reseal") and index == 29:
        # A missing or re-sealed last record leaves a consistent, shorter chain: that is the checkpoint's job.
        assert verdict.ok
        return
    assert not verdict.ok
    assert verdict.first_bad_seq == expect
    assert verdict.records_checked == expect - 1


def test_verify_chain_streams_in_constant_memory() -> None:
    tracemalloc.start()
    try:
        verdict = verify_chain(iter_chain(3_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert verdict.ok and verdict.records_checked == 3_000
    # Holding these 3,000 records at once takes about 3 MB; streaming them takes a few kB.
    assert peak < 200_000
