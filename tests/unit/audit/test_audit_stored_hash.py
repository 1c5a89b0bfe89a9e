"""Hashing a stored record without parsing its payload gives the record's hash, for everything sealed."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings

from services.audit.chain import payload_json, record_hash_of, seal, stored_record_hash
from tests.unit.audit.audit_samples import event_fields, json_values, record_fields


def stored_columns(record: Any, text: str) -> list[Any]:
    fields = record.to_dict()
    return [*(fields[name] for name in ("seq", "event_id", "event_type", "source", "subject", "event_time", "topic",
                                        "partition", "offset", "traceparent")), text, fields["prev_hash"]]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(record_fields())
def test_the_stored_text_hashes_to_the_record_hash(fields: dict[str, Any]) -> None:
    record = seal(**fields, prev=None)
    text = payload_json(record.payload)
    assert stored_record_hash(*stored_columns(record, text)) == record.record_hash == record_hash_of(record)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_the_stored_text_is_what_json_dumps_writes_and_parses_back(value: Any) -> None:
    text = payload_json(value)
    assert text == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert json.loads(text) == value


def test_other_bytes_for_the_same_value_hash_differently() -> None:
    record = seal(**{**event_fields(1), "payload": {"a": 1}}, prev=None)
    assert stored_record_hash(*stored_columns(record, '{"a": 1}')) != record.record_hash
