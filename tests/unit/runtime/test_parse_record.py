"""What a consumer accepts, and the reason it gives for what it dead-letters."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka.structs import ConsumerRecord

from schemas.envelope import Envelope, EnvelopeError
from schemas.events import CaseWithdrawn
from services.runtime.consumer import Rejected, parse_record


def record(value: bytes, headers: dict[str, str]) -> ConsumerRecord:
    return ConsumerRecord("t", 0, 7, 0, 0, b"k", value, None, len(value), 0,
                          tuple((k, v.encode()) for k, v in headers.items()))


def headers(event_type: str = CaseWithdrawn.type) -> dict[str, str]:
    return Envelope(str(uuid.uuid4()), "/tests", event_type, datetime.now(UTC), "case-1").to_headers()


def test_a_valid_record_gives_its_envelope_and_event() -> None:
    event = CaseWithdrawn(case_id="case-1", reason="moved on")
    envelope, parsed = parse_record(record(event.model_dump_json().encode(), headers()))
    assert parsed == event and envelope.subject == "case-1"


@pytest.mark.parametrize(
    ("value", "header_values", "kind", "says"),
    [
        (b"{", headers(), "unparseable", "not JSON"),
        (b"{}", {}, "unparseable", "missing CloudEvents header"),
        (json.dumps({"case_id": "case-1"}).encode(), headers(), "schema_violation", "reason: Field required"),
        (json.dumps({"case_id": "case-1", "reason": "x", "extra": 1}).encode(), headers(), "schema_violation",
         "extra: Extra inputs are not permitted"),
        (b"{}", headers("centre.case.withdrawn.v2"), "unknown_type", "centre.case.withdrawn.v2"),
    ],
)
def test_a_bad_record_is_rejected_with_a_reason(value: bytes, header_values: dict, kind: str, says: str) -> None:
    with pytest.raises(Rejected) as rejection:
        parse_record(record(value, header_values))
    assert rejection.value.kind == kind and says in rejection.value.reason


def test_an_envelope_round_trips_through_headers_and_rejects_another_specversion() -> None:
    envelope = Envelope("id-1", "/s", "t.v1", datetime.now(UTC), "subject", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert Envelope.from_headers(envelope.to_headers()) == envelope
    with pytest.raises(EnvelopeError, match="specversion"):
        Envelope.from_headers({**envelope.to_headers(), "ce_specversion": "0.3"})
